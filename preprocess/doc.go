// Package preprocess turns images into model inputs, byte for byte the way the Python
// reference does. The text half (the CLIP BPE and the BERT WordPiece tokenizers) is the
// package preprocess/text.
//
// The image code (image*.go, decode*.go, jpeg*.go, resample*.go, limits*.go) reproduces
// Hugging Face CLIPImageProcessor as of transformers 4.27 running on Pillow 9.4: decode,
// Image.convert("RGB"), shortest-edge BICUBIC resize (a port of Pillow's fixed-point
// Resample.c), center crop, rescale by 1/255 and normalise, producing NCHW float32. JPEG
// is decoded by libjpeg-turbo through cgo, exactly as Pillow decodes it. See IMAGES.md for
// the per-format conversion table and the parity results. torchvision*.go is the other
// image path (torchvision transforms on PIL images, as ImageReward preprocesses).
package preprocess
