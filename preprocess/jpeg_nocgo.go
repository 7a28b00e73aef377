//go:build !cgo

package preprocess

import (
	"errors"
	"image"
	"image/color"
	"image/jpeg"
)

// Without cgo, JPEG falls back to the standard library decoder. Its IDCT and chroma
// upsampling differ from libjpeg-turbo's, so pixels can differ by a few levels from
// Pillow's; builds that need parity must enable cgo (the default with gcc present).
const jpegNative = false

func decodeJPEG(data []byte, lim limits) (*pixbuf, error) {
	img, err := stdCodec{"JPEG", jpeg.DecodeConfig, jpeg.Decode, stdJPEGError}.decodeChecked(data, lim)
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	switch m := img.(type) {
	case *image.CMYK:
		buf := getBuf(w * h * 4)
		for y := 0; y < h; y++ {
			copy((*buf)[y*w*4:(y+1)*w*4], m.Pix[y*m.Stride:])
		}
		// image/jpeg already un-inverts Adobe CMYK; re-invert to libjpeg's raw bytes.
		for i := range *buf {
			(*buf)[i] = 255 - (*buf)[i]
		}
		cmykToRGBX(*buf)
		return &pixbuf{w: w, h: h, ps: 4, stride: w * 4, pix: *buf, pooled: buf}, nil
	case *image.YCbCr:
		buf := getBuf(w * h * 3)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi, ci := m.YOffset(x+b.Min.X, y+b.Min.Y), m.COffset(x+b.Min.X, y+b.Min.Y)
				r, g, bb := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				(*buf)[(y*w+x)*3], (*buf)[(y*w+x)*3+1], (*buf)[(y*w+x)*3+2] = r, g, bb
			}
		}
		return &pixbuf{w: w, h: h, ps: 3, stride: w * 3, pix: *buf, pooled: buf}, nil
	}
	return pixbufOfImage(img, false) // *image.Gray
}

func stdJPEGError(err error) error {
	var ue jpeg.UnsupportedError
	return codecError("JPEG", err, errors.As(err, &ue))
}
