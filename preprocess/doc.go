// Package preprocess turns request inputs into model inputs, byte for byte the way the
// Python reference does.
//
// The text half (tokenize*.go, bpe*.go, ftfy*.go) is open_clip's SimpleTokenizer: ftfy +
// HTML unescaping, whitespace cleaning, lower-casing and CLIP's byte-level BPE, 77 tokens.
//
// The image half (image*.go, decode*.go, jpeg*.go, resample*.go, limits*.go) reproduces
// Hugging Face CLIPImageProcessor as of transformers 4.27 running on Pillow 9.4: decode,
// Image.convert("RGB"), shortest-edge BICUBIC resize (a port of Pillow's fixed-point
// Resample.c), center crop, rescale by 1/255 and normalise, producing NCHW float32. JPEG
// is decoded by libjpeg-turbo through cgo, exactly as Pillow decodes it. See IMAGES.md for
// the per-format conversion table and the parity results.
package preprocess
