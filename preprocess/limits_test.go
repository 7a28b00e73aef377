package preprocess

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

func pngChunk(typ string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.WriteString(typ)
	b.Write(data)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	return b.Bytes()
}

// pngBomb is a valid-looking RGB PNG header declaring w×h pixels followed by a few KB of
// compressed zero rows: what a decompression bomb looks like from the outside.
func pngBomb(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2
	b.Write(pngChunk("IHDR", ihdr))
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	b.Write(pngChunk("IDAT", z.Bytes()))
	b.Write(pngChunk("IEND", nil))
	return b.Bytes()
}

// patchJPEGSize rewrites the SOF dimensions of a JPEG.
func patchJPEGSize(t testing.TB, data []byte, w, h uint16) []byte {
	t.Helper()
	out := append([]byte(nil), data...)
	for i := 2; i+9 < len(out); {
		if out[i] != 0xff {
			t.Fatal("lost marker sync")
		}
		m := out[i+1]
		n := int(binary.BigEndian.Uint16(out[i+2:]))
		if m == 0xc0 || m == 0xc1 || m == 0xc2 {
			binary.BigEndian.PutUint16(out[i+5:], h)
			binary.BigEndian.PutUint16(out[i+7:], w)
			return out
		}
		i += 2 + n
	}
	t.Fatal("no SOF")
	return nil
}

// patchedHeaderFixtures are fixtures whose headers claim what the decoders
// must refuse: a 16384² WebP canvas, a 65535² GIF screen, a 30000² BMP, and
// jpg (a baseline JPEG) as 12-bit.
func patchedHeaderFixtures(t *testing.T, jpg []byte) (webpBig, gifBig, bmpBig, jpeg12 []byte) {
	t.Helper()
	webpBig = append([]byte(nil), readSrc(t, "webp_lossy_alpha.webp")...) // VP8X container
	if string(webpBig[12:16]) != "VP8X" {
		t.Fatal("fixture is not VP8X")
	}
	// canvas width-1 and height-1 are 24-bit little endian at offsets 24 and 27
	webpBig[24], webpBig[25], webpBig[26] = 0xff, 0x3f, 0 // 16384
	webpBig[27], webpBig[28], webpBig[29] = 0xff, 0x3f, 0

	gifBig = append([]byte(nil), readSrc(t, "gif_gray.gif")...)
	gifBig[6], gifBig[7], gifBig[8], gifBig[9] = 0xff, 0xff, 0xff, 0xff

	bmpBig = append([]byte(nil), readSrc(t, "bmp_rgb24.bmp")...)
	binary.LittleEndian.PutUint32(bmpBig[18:], 30000)
	binary.LittleEndian.PutUint32(bmpBig[22:], 30000)

	jpeg12 = append([]byte(nil), jpg...)
	for i := 2; i+4 < len(jpeg12); {
		m, n := jpeg12[i+1], int(binary.BigEndian.Uint16(jpeg12[i+2:]))
		if m == 0xc0 {
			jpeg12[i+4] = 12
			break
		}
		i += 2 + n
	}
	return webpBig, gifBig, bmpBig, jpeg12
}

func TestImageErrors(t *testing.T) {
	opt := ImageOptions{ShortestEdge: 224, CropSize: 224, Mean: clipMean, Std: clipStd}
	jpg := readSrc(t, "jpeg_base_420.jpg")
	pngSmall := readSrc(t, "png_rgb8_37x53.png")

	webpBig, gifBig, bmpBig, jpeg12 := patchedHeaderFixtures(t, jpg)

	cases := []struct {
		name string
		data []byte
		opt  ImageOptions
		want error
	}{
		{"empty", nil, opt, ErrUndecodable},
		{"garbage", []byte("this is not an image at all, just some text"), opt, ErrUnsupportedFormat},
		{"tiff_le", []byte("II*\x00\x08\x00\x00\x00\x00\x00\x00\x00"), opt, ErrUnsupportedFormat},
		{"tiff_be", []byte("MM\x00*\x00\x00\x00\x08\x00\x00"), opt, ErrUnsupportedFormat},
		{"png_signature_only", []byte("\x89PNG\r\n\x1a\n"), opt, ErrUndecodable},
		{"png_truncated_header", pngSmall[:20], opt, ErrUndecodable},
		{"png_truncated_data", pngSmall[:len(pngSmall)/2], opt, ErrUndecodable},
		{"png_bomb_50000x50000", pngBomb(50000, 50000), opt, ErrTooLarge},
		{"png_huge_dims", pngBomb(1<<31-1, 1<<31-1), opt, ErrTooLarge},
		{"png_zero_width", pngBomb(0, 10), opt, ErrUndecodable},
		{"png_over_pixel_limit", pngSmall, ImageOptions{ShortestEdge: 224, CropSize: 224, Mean: clipMean, Std: clipStd, MaxPixels: 37*53 - 1}, ErrTooLarge},
		{"png_over_byte_limit", pngSmall, ImageOptions{ShortestEdge: 224, CropSize: 224, Mean: clipMean, Std: clipStd, MaxBytes: int64(len(pngSmall) - 1)}, ErrTooLarge},
		{"jpeg_soi_only", []byte{0xff, 0xd8, 0xff}, opt, ErrUndecodable},
		{"jpeg_truncated_header", jpg[:100], opt, ErrUndecodable},
		{"jpeg_truncated_data", jpg[:len(jpg)/2], opt, ErrUndecodable},
		{"jpeg_bomb_60000x60000", patchJPEGSize(t, jpg, 60000, 60000), opt, ErrTooLarge},
		{"jpeg_12bit", jpeg12, opt, ErrUnsupportedFormat},
		{"webp_riff_only", []byte("RIFF\x04\x00\x00\x00WEBP"), opt, ErrUndecodable},
		{"webp_canvas_16384", webpBig, opt, ErrTooLarge},
		{"gif_header_only", []byte("GIF89a"), opt, ErrUndecodable},
		{"gif_screen_65535", gifBig, opt, ErrTooLarge},
		{"bmp_30000x30000", bmpBig, opt, ErrTooLarge},
		{"bmp_truncated", readSrc(t, "bmp_rgb24.bmp")[:60], opt, ErrUndecodable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := NewImagePipeline(c.opt)
			if err != nil {
				t.Fatal(err)
			}
			_, err = DecodeRGB(c.data, c.opt)
			if !errors.Is(err, c.want) {
				t.Fatalf("DecodeRGB: %v, want %v", err, c.want)
			}
			if _, err := p.Crop(c.data); !errors.Is(err, c.want) {
				t.Fatalf("Crop: %v, want %v", err, c.want)
			}
			if err := p.Tensor(c.data, make([]float32, p.TensorLen())); !errors.Is(err, c.want) {
				t.Fatalf("Tensor: %v, want %v", err, c.want)
			}
			checkKind(t, err)
		})
	}
}

func TestPipelineOptions(t *testing.T) {
	for _, o := range []ImageOptions{
		{ShortestEdge: 0, CropSize: 224, Std: clipStd},
		{ShortestEdge: 224, CropSize: 0, Std: clipStd},
		{ShortestEdge: 224, CropSize: 224},
		{ShortestEdge: 224, CropSize: 224, Std: [3]float32{1, 0, 1}},
	} {
		if _, err := NewImagePipeline(o); err == nil {
			t.Errorf("NewImagePipeline(%+v) accepted", o)
		}
	}
	p := clipPipeline(t, 224, 224)
	if p.TensorLen() != 3*224*224 {
		t.Fatal(p.TensorLen())
	}
	if _, err := p.CropRGB(&RGB{W: 10, H: 10, Pix: make([]byte, 299)}); !errors.Is(err, ErrUndecodable) {
		t.Fatalf("short RGB buffer: %v", err)
	}
	if _, err := p.CropRGB(&RGB{W: 0, H: 10}); !errors.Is(err, ErrUndecodable) {
		t.Fatalf("empty RGB: %v", err)
	}
	// An extreme aspect ratio whose resized long edge does not fit: refused, not attempted.
	if _, err := p.CropRGB(&RGB{W: 1, H: 5_000_000, Pix: make([]byte, 15_000_000)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("1x5e6: %v", err)
	}
}

func TestResizedSize(t *testing.T) {
	for _, c := range []struct{ w, h, s, ww, wh int }{
		{640, 480, 224, 298, 224},   // 224*640/480 = 298.67 → 298
		{480, 640, 224, 224, 298},   //
		{3, 7, 224, 224, 522},       // 522.67 → 522
		{224, 224, 224, 224, 224},   //
		{1, 1, 224, 224, 224},       //
		{1000, 7, 224, 32000, 224},  // exact
		{333, 517, 224, 224, 347},   // 347.77 → 347
		{4000, 3000, 224, 298, 224}, //
	} {
		w, h, err := resizedSize(c.w, c.h, c.s)
		if err != nil || w != c.ww || h != c.wh {
			t.Errorf("resizedSize(%d, %d, %d) = %d, %d, %v; want %d, %d", c.w, c.h, c.s, w, h, err, c.ww, c.wh)
		}
	}
}
