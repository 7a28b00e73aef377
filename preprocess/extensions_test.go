package preprocess

import (
	"os"
	"path/filepath"
	"testing"
)

// The list and IsImageExt agree, in any case, and every listed format is one the decoders
// take: for each extension (.jpeg shares .jpg's decoder) a committed fixture decodes.
func TestImageExtensions(t *testing.T) {
	for _, e := range ImageExtensions() {
		for _, v := range []string{e, string([]rune(e)[:1]) + upper(e[1:])} {
			if !IsImageExt(v) {
				t.Errorf("IsImageExt(%q) = false for a listed extension", v)
			}
		}
	}
	for _, e := range []string{"", ".", ".tar", ".txt", ".json", ".jpe", ".tif", ".seg.png", "png", ".png.gz"} {
		if IsImageExt(e) {
			t.Errorf("IsImageExt(%q) = true", e)
		}
	}
	dir := filepath.Join("testdata", "images", "src")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	decoded := map[string]bool{}
	for _, d := range ents {
		ext := filepath.Ext(d.Name())
		if !IsImageExt(ext) || decoded[ext] {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, d.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeRGB(data, ImageOptions{}); err == nil {
			decoded[ext] = true
		}
	}
	for _, e := range ImageExtensions() {
		if e != ".jpeg" && !decoded[e] {
			t.Errorf("no fixture ending in %s decodes", e)
		}
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
