package preprocess

import "strings"

// ImageExtensions returns the file name endings, lower case with their dot, of the
// formats this package decodes: what a folder or a glob contributes to `icthp score`,
// `icthp batch` and the load generator. Which format a file really is comes from its
// bytes, never from its name.
func ImageExtensions() []string {
	return []string{".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}
}

// IsImageExt reports whether ext (a file name's ending with its dot, as filepath.Ext
// returns it) is one of ImageExtensions, in any case.
func IsImageExt(ext string) bool {
	switch strings.ToLower(ext) {
	case ".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp":
		return true
	}
	return false
}
