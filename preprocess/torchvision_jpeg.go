//go:build cgo

package preprocess

// decodeJPEGPIL decodes a JPEG as Pillow holds it: "L", "RGB", or "CMYK"
// with the inverted ("CMYK;I") values Pillow's JPEG plugin stores, left
// unconverted so that the resize runs in CMYK as it does in Pillow.
func decodeJPEGPIL(data []byte, lim limits) (*pilImage, error) {
	w, h, comps, buf, err := decodeJPEGRaw(data, lim)
	if err != nil {
		return nil, err
	}
	im := &pilImage{w: w, h: h, kind: kindPlain, nch: comps, pix: *buf, pooled: buf}
	if comps == 4 {
		im.kind = kindCMYK
		for i, v := range im.pix {
			im.pix[i] = 255 - v
		}
	}
	return im, nil
}
