package preprocess

import (
	"fmt"
	"image"
	"strings"

	"golang.org/x/image/webp"
)

// decodeWebP decodes with golang.org/x/image/webp, whose VP8 (lossy) and VP8L (lossless)
// decoders produce the same Y'CbCr planes / ARGB values as libwebp (the VP8 reconstruction
// is exactly specified). Pillow 9.4 decodes through libwebp's WebPAnimDecoder in RGBA or
// RGBX mode, i.e. not premultiplied, with libwebp's default "fancy" chroma upsampling and
// its fixed-point YUV→RGB conversion; x/image/webp only returns the planes, so
// yuvToRGBFancy below ports libwebp 1.2.4's UpsampleRgbLinePair (src/dsp/upsampling.c),
// EmitFancyRGB (src/dec/io_dec.c) and VP8YuvToRgb (src/dsp/yuv.h). Alpha, when present, is
// dropped by convert("RGB"). Animated WebP is not supported by x/image/webp (Pillow would
// return the first frame): ErrUnsupportedFormat.
func decodeWebP(data []byte, lim limits) (*pixbuf, error) {
	img, err := stdCodec{"WebP", webp.DecodeConfig, webp.Decode, webpError}.decodeChecked(data, lim)
	if err != nil {
		return nil, err
	}
	switch m := img.(type) {
	case *image.YCbCr:
		return yuvToRGBFancy(m), nil
	case *image.NYCbCrA:
		return yuvToRGBFancy(&m.YCbCr), nil
	case *image.NRGBA:
		b := m.Bounds()
		return &pixbuf{w: b.Dx(), h: b.Dy(), ps: 4, stride: m.Stride, pix: m.Pix[m.PixOffset(b.Min.X, b.Min.Y):]}, nil
	}
	return nil, fmt.Errorf("%w: WebP: unexpected decoded image type %T", ErrUnsupportedFormat, img)
}

// webpError: x/image/webp has no error type; its messages name what it does not support.
func webpError(err error) error {
	msg := err.Error()
	return codecError("WebP", err, strings.Contains(msg, "unsupported") || strings.Contains(msg, "animat"))
}

// libwebp's fixed-point YUV→RGB (yuv.h, YUV_FIX2 = 6).
func webpMultHi(v, coeff int) int { return (v * coeff) >> 8 }

func webpClip8(v int) byte {
	const mask = (256 << 6) - 1
	if v&^mask == 0 {
		return byte(v >> 6)
	}
	if v < 0 {
		return 0
	}
	return 255
}

func webpYUVToRGB(y, u, v int, d []byte) {
	yy := webpMultHi(y, 19077)
	d[0] = webpClip8(yy + webpMultHi(v, 26149) - 14234)
	d[1] = webpClip8(yy - webpMultHi(u, 6419) - webpMultHi(v, 13320) + 8708)
	d[2] = webpClip8(yy + webpMultHi(u, 33050) - 17685)
}

// webpUpsamplePair is UPSAMPLE_FUNC for one chroma plane pair, computed lane by lane
// (libwebp packs U and V into one uint32; the lanes never interact in the bits that are
// used, so this is the same arithmetic). bot may be nil.
func webpUpsamplePair(topY, botY, topU, topV, curU, curV []byte, topDst, botDst []byte, n int) {
	last := (n - 1) >> 1
	tlU, tlV := int(topU[0]), int(topV[0])
	lU, lV := int(curU[0]), int(curV[0])
	webpYUVToRGB(int(topY[0]), (3*tlU+lU+2)>>2, (3*tlV+lV+2)>>2, topDst[0:3])
	if botY != nil {
		webpYUVToRGB(int(botY[0]), (3*lU+tlU+2)>>2, (3*lV+tlV+2)>>2, botDst[0:3])
	}
	for x := 1; x <= last; x++ {
		tU, tV := int(topU[x]), int(topV[x])
		uU, uV := int(curU[x]), int(curV[x])
		avgU := tlU + tU + lU + uU + 8
		avgV := tlV + tV + lV + uV + 8
		d12U, d12V := (avgU+2*(tU+lU))>>3, (avgV+2*(tV+lV))>>3
		d03U, d03V := (avgU+2*(tlU+uU))>>3, (avgV+2*(tlV+uV))>>3
		i0, i1 := 2*x-1, 2*x
		webpYUVToRGB(int(topY[i0]), (d12U+tlU)>>1, (d12V+tlV)>>1, topDst[3*i0:3*i0+3])
		webpYUVToRGB(int(topY[i1]), (d03U+tU)>>1, (d03V+tV)>>1, topDst[3*i1:3*i1+3])
		if botY != nil {
			webpYUVToRGB(int(botY[i0]), (d03U+lU)>>1, (d03V+lV)>>1, botDst[3*i0:3*i0+3])
			webpYUVToRGB(int(botY[i1]), (d12U+uU)>>1, (d12V+uV)>>1, botDst[3*i1:3*i1+3])
		}
		tlU, tlV, lU, lV = tU, tV, uU, uV
	}
	if n&1 == 0 {
		i := n - 1
		webpYUVToRGB(int(topY[i]), (3*tlU+lU+2)>>2, (3*tlV+lV+2)>>2, topDst[3*i:3*i+3])
		if botY != nil {
			webpYUVToRGB(int(botY[i]), (3*lU+tlU+2)>>2, (3*lV+tlV+2)>>2, botDst[3*i:3*i+3])
		}
	}
}

// yuvToRGBFancy is EmitFancyRGB over the whole picture: row 0 mirrors the chroma at the
// top edge, rows (2k-1, 2k) interpolate chroma rows k-1 and k, and the last row of an
// even-height picture uses the last chroma row alone.
func yuvToRGBFancy(m *image.YCbCr) *pixbuf {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	buf := getBuf(w * h * 3)
	out := *buf
	yrow := func(y int) []byte { o := m.YOffset(b.Min.X, b.Min.Y+y); return m.Y[o : o+w] }
	crow := func(p []byte, cy int) []byte {
		o := m.COffset(b.Min.X, b.Min.Y+2*cy)
		return p[o:]
	}
	dst := func(y int) []byte { return out[y*w*3 : (y+1)*w*3] }
	webpUpsamplePair(yrow(0), nil, crow(m.Cb, 0), crow(m.Cr, 0), crow(m.Cb, 0), crow(m.Cr, 0), dst(0), nil, w)
	y := 0
	for ; y+2 < h; y += 2 {
		k := y / 2
		webpUpsamplePair(yrow(y+1), yrow(y+2), crow(m.Cb, k), crow(m.Cr, k), crow(m.Cb, k+1), crow(m.Cr, k+1),
			dst(y+1), dst(y+2), w)
	}
	if h&1 == 0 {
		k := y / 2
		webpUpsamplePair(yrow(y+1), nil, crow(m.Cb, k), crow(m.Cr, k), crow(m.Cb, k), crow(m.Cr, k), dst(y+1), nil, w)
	}
	return &pixbuf{w: w, h: h, ps: 3, stride: w * 3, pix: out, pooled: buf}
}
