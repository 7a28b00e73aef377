//go:build cgo

package preprocess

// JPEG is decoded by the system libjpeg-turbo (Debian libjpeg62-turbo) through its libjpeg
// API, with the settings Pillow 9.4's JpegDecode.c uses: jpeg_read_header, out_color_space
// chosen from the number of components (1 → JCS_GRAYSCALE, 3 → JCS_RGB, 4 → JCS_CMYK, the
// colour space of the file left to libjpeg's own guess from the JFIF/Adobe markers), no
// scaling, default dct_method (JDCT_ISLOW, the accurate integer IDCT) and default
// do_fancy_upsampling (TRUE), then jpeg_read_scanlines. This is the same library and the
// same calls Pillow makes, so the pixels are the same bytes. (TurboJPEG's tjDecompress2
// would give the same pixels, but its error reporting does not tell a truncated file
// apart from other warnings, and Pillow treats those differently.)
//
// Pillow reads through a suspending source and raises "image file is truncated" when the
// data ends before the last scanline; libjpeg's memory source instead warns
// (JWRN_JPEG_EOF) and pads with an EOI marker. We report that warning, seen before the
// last scanline is read, as ErrUndecodable. A file that only lacks its EOI marker decodes
// in both. Other libjpeg warnings (corrupt entropy data, extraneous bytes) are ignored, as
// Pillow ignores them.

/*
#cgo LDFLAGS: -ljpeg
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
	int eof;
} icthp_jerr;

static void icthp_error_exit(j_common_ptr cinfo) {
	icthp_jerr *e = (icthp_jerr *)cinfo->err;
	longjmp(e->jb, 1);
}

static void icthp_emit_message(j_common_ptr cinfo, int level) {
	icthp_jerr *e = (icthp_jerr *)cinfo->err;
	if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) e->eof = 1;
}

static void icthp_output_message(j_common_ptr cinfo) {}

typedef struct {
	int w, h, comps;
	int msg_code;      // libjpeg message code of a fatal error, 0 if none
	int truncated;     // data ended before the last scanline
	char msg[JMSG_LENGTH_MAX];
} icthp_jres;

// icthp_jpeg runs the decoder. With out == NULL it stops after jpeg_read_header and
// reports the dimensions; otherwise it decodes into out (w*h*comps bytes, comps as
// reported by the header call). Returns 0 on success.
static int icthp_jpeg(const unsigned char *data, unsigned long len, unsigned char *out, icthp_jres *res) {
	struct jpeg_decompress_struct cinfo;
	icthp_jerr jerr;
	JSAMPROW rows[16];
	memset(&cinfo, 0, sizeof(cinfo));
	cinfo.err = jpeg_std_error(&jerr.pub);
	jerr.pub.error_exit = icthp_error_exit;
	jerr.pub.emit_message = icthp_emit_message;
	jerr.pub.output_message = icthp_output_message;
	jerr.eof = 0;
	res->msg_code = 0;
	res->truncated = 0;
	res->msg[0] = 0;
	if (setjmp(jerr.jb)) {
		res->msg_code = jerr.pub.msg_code;
		(*jerr.pub.format_message)((j_common_ptr)&cinfo, res->msg);
		jpeg_destroy_decompress(&cinfo);
		return 1;
	}
	jpeg_create_decompress(&cinfo);
	jpeg_mem_src(&cinfo, data, len);
	jpeg_read_header(&cinfo, TRUE);
	res->w = cinfo.image_width;
	res->h = cinfo.image_height;
	res->comps = cinfo.num_components;
	if (out == NULL || jerr.eof) {
		res->truncated = jerr.eof;
		jpeg_destroy_decompress(&cinfo);
		return 0;
	}
	switch (cinfo.num_components) {
	case 1: cinfo.out_color_space = JCS_GRAYSCALE; break;
	case 3: cinfo.out_color_space = JCS_RGB; break;
	case 4: cinfo.out_color_space = JCS_CMYK; break;
	default:
		snprintf(res->msg, sizeof(res->msg), "cannot handle %d-layer images", cinfo.num_components);
		res->msg_code = -1;
		jpeg_destroy_decompress(&cinfo);
		return 1;
	}
	jpeg_start_decompress(&cinfo);
	if ((int)cinfo.output_width != res->w || (int)cinfo.output_height != res->h ||
	    cinfo.output_components != res->comps) {
		snprintf(res->msg, sizeof(res->msg), "unexpected output geometry");
		res->msg_code = -1;
		jpeg_destroy_decompress(&cinfo);
		return 1;
	}
	size_t stride = (size_t)res->w * (size_t)res->comps;
	while (cinfo.output_scanline < cinfo.output_height) {
		int n = cinfo.output_height - cinfo.output_scanline;
		if (n > 16) n = 16;
		for (int i = 0; i < n; i++) rows[i] = out + (size_t)(cinfo.output_scanline + i) * stride;
		if (jpeg_read_scanlines(&cinfo, rows, n) == 0) break;
		if (jerr.eof) {
			res->truncated = 1;
			break;
		}
	}
	if (!res->truncated) {
		jpeg_finish_decompress(&cinfo);  // a missing EOI only warns, as in Pillow
	}
	jpeg_destroy_decompress(&cinfo);
	return 0;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// jpegNative reports whether JPEG decoding is bit-exact with Pillow (cgo libjpeg-turbo).
const jpegNative = true

func jpegCall(data []byte, out []byte) (C.icthp_jres, C.int) {
	var res C.icthp_jres
	var op *C.uchar
	if len(out) > 0 {
		op = (*C.uchar)(unsafe.Pointer(&out[0]))
	}
	rc := C.icthp_jpeg((*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), op, &res)
	return res, rc
}

func jpegError(res *C.icthp_jres) error {
	msg := C.GoString(&res.msg[0])
	switch res.msg_code {
	case C.JERR_BAD_PRECISION, C.JERR_CCIR601_NOTIMPL, C.JERR_NOT_COMPILED, C.JERR_COMPONENT_COUNT:
		return fmt.Errorf("%w: JPEG: %s", ErrUnsupportedFormat, msg)
	case -1:
		return fmt.Errorf("%w: JPEG: %s", ErrUnsupportedFormat, msg)
	}
	return fmt.Errorf("%w: JPEG: %s", ErrUndecodable, msg)
}

// decodeJPEGRaw decodes a JPEG with libjpeg-turbo into a pooled buffer of
// its own components (1 gray, 3 RGB, 4 CMYK as stored), after checking the
// header's size against the limits. Both image pipelines start here.
func decodeJPEGRaw(data []byte, lim limits) (w, h, comps int, buf *[]byte, err error) {
	res, rc := jpegCall(data, nil)
	if rc != 0 {
		return 0, 0, 0, nil, jpegError(&res)
	}
	if res.truncated != 0 {
		return 0, 0, 0, nil, fmt.Errorf("%w: JPEG: truncated header", ErrUndecodable)
	}
	w, h, comps = int(res.w), int(res.h), int(res.comps)
	if err := lim.checkDims("JPEG", w, h); err != nil {
		return 0, 0, 0, nil, err
	}
	if comps != 1 && comps != 3 && comps != 4 {
		return 0, 0, 0, nil, fmt.Errorf("%w: JPEG: cannot handle %d-layer images", ErrUnsupportedFormat, comps)
	}
	buf = getBuf(w * h * comps)
	res, rc = jpegCall(data, *buf)
	if rc != 0 {
		putBuf(buf)
		return 0, 0, 0, nil, jpegError(&res)
	}
	if res.truncated != 0 {
		putBuf(buf)
		return 0, 0, 0, nil, fmt.Errorf("%w: JPEG: image file is truncated", ErrUndecodable)
	}
	return w, h, comps, buf, nil
}

func decodeJPEG(data []byte, lim limits) (*pixbuf, error) {
	w, h, comps, buf, err := decodeJPEGRaw(data, lim)
	if err != nil {
		return nil, err
	}
	pb := &pixbuf{w: w, h: h, ps: comps, stride: w * comps, pix: *buf, pooled: buf}
	if comps == 4 {
		cmykToRGBX(pb.pix)
	}
	return pb, nil
}
