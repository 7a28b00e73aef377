// Package text turns prompts into token ids, id for id the way the Python reference does.
//
// Tokenizer (tokenize*.go, bpe.go, ftfy*.go, textclean*.go) is open_clip's SimpleTokenizer:
// ftfy + HTML unescaping, whitespace cleaning, lower-casing and CLIP's byte-level BPE, 77
// tokens; see TOKENIZER.md. WordPiece (wordpiece.go) is the BERT uncased tokenizer
// ImageReward uses (35 tokens). The images of the same requests go through package
// preprocess.
package text
