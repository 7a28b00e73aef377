//go:build cgo

package preprocess

import "fmt"

// decodeJPEGPIL decodes a JPEG as Pillow holds it: "L", "RGB", or "CMYK"
// with the inverted ("CMYK;I") values Pillow's JPEG plugin stores, left
// unconverted so that the resize runs in CMYK as it does in Pillow.
func decodeJPEGPIL(data []byte, lim limits) (*pilImage, error) {
	res, rc := jpegCall(data, nil)
	if rc != 0 {
		return nil, jpegError(&res)
	}
	if res.truncated != 0 {
		return nil, fmt.Errorf("%w: JPEG: truncated header", ErrUndecodable)
	}
	w, h, comps := int(res.w), int(res.h), int(res.comps)
	if err := lim.checkDims("JPEG", w, h); err != nil {
		return nil, err
	}
	if comps != 1 && comps != 3 && comps != 4 {
		return nil, fmt.Errorf("%w: JPEG: cannot handle %d-layer images", ErrUnsupportedFormat, comps)
	}
	buf := getBuf(w * h * comps)
	res, rc = jpegCall(data, *buf)
	if rc != 0 {
		putBuf(buf)
		return nil, jpegError(&res)
	}
	if res.truncated != 0 {
		putBuf(buf)
		return nil, fmt.Errorf("%w: JPEG: image file is truncated", ErrUndecodable)
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
