//go:build !cgo

package preprocess

// decodeJPEGPIL without cgo: the standard library decoder (not Pillow-exact,
// see jpeg_nocgo.go), CMYK already converted to RGB before the resize.
func decodeJPEGPIL(data []byte, lim limits) (*pilImage, error) {
	pb, err := decodeJPEG(data, lim)
	if err != nil {
		return nil, err
	}
	defer pb.release()
	return pilOfPixbuf(pb, kindPlain, false), nil
}
