package batch

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/icthp/icthp/preprocess"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// got is what an item yields once loaded, for comparisons.
type got struct {
	Key, Source, Data string
	Prompt            *string
	Err               string
}

func loadAll(t *testing.T, items []Item) []got {
	t.Helper()
	out := make([]got, len(items))
	for i := range items {
		l := items[i].load(0)
		out[i] = got{Key: items[i].Key, Source: items[i].Source, Data: string(l.data), Prompt: l.prompt}
		if l.err != nil {
			out[i].Err = l.err.Error()
		}
	}
	return out
}

func sp(s string) *string { return &s }

func checkGot(t *testing.T, items []Item, want []got) {
	t.Helper()
	g := loadAll(t, items)
	if len(g) != len(want) {
		t.Fatalf("%d items, want %d: %+v", len(g), len(want), g)
	}
	for i := range want {
		w, h := want[i], g[i]
		errOK := (w.Err == "" && h.Err == "") || (w.Err != "" && strings.Contains(h.Err, w.Err))
		if w.Key != h.Key || w.Source != h.Source || w.Data != h.Data || !reflect.DeepEqual(w.Prompt, h.Prompt) || !errOK {
			t.Errorf("item %d = %+v (prompt %v), want %+v (prompt %v)", i, h, deref(h.Prompt), w, deref(w.Prompt))
		}
	}
}

func deref(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestEnumerateFolder(t *testing.T) {
	d := t.TempDir()
	writeFile(t, filepath.Join(d, "b.png"), "B")
	writeFile(t, filepath.Join(d, "b.txt"), "  prompt of b \n")
	writeFile(t, filepath.Join(d, "a", "x.JPG"), "X")
	writeFile(t, filepath.Join(d, "a", "x.json"), `{"caption": "caption of x", "width": 3}`)
	writeFile(t, filepath.Join(d, "a", "y.webp"), "Y") // no prompt at all
	writeFile(t, filepath.Join(d, "a", "z.webp"), "Z")
	writeFile(t, filepath.Join(d, "a", "z.json"), `{not json`)
	writeFile(t, filepath.Join(d, "notes.md"), "ignored")
	items, err := Enumerate([]string{d})
	if err != nil {
		t.Fatal(err)
	}
	checkGot(t, items, []got{
		{Key: "a/x", Source: filepath.Join(d, "a", "x.JPG"), Data: "X", Prompt: sp("caption of x")},
		{Key: "a/y", Source: filepath.Join(d, "a", "y.webp"), Data: "Y"},
		{Key: "a/z", Source: filepath.Join(d, "a", "z.webp"), Err: "z.json"},
		{Key: "b", Source: filepath.Join(d, "b.png"), Data: "B", Prompt: sp("prompt of b")},
	})
}

// Files is the enumerator of `icthp score`: the same folder walk and globs as Enumerate,
// every image ending (any case) and no other, a folder's files in walk order ("a" before
// "a.png", unlike a sort of whole paths), a glob's matches sorted with a matched folder
// walked, other arguments kept as they are (a missing file, a .txt, a .tar: score reports
// each on its own line), a glob that matches nothing adding nothing.
func TestFiles(t *testing.T) {
	d := t.TempDir()
	for _, n := range []string{"a.png", "a/x.JPG", "a/y.txt", "a/z.Gif", "b.bmp", "b.webp", "c.jpeg", "c.tif", "d/e.jpg", "s.tar"} {
		writeFile(t, filepath.Join(d, n), n)
	}
	j := func(n string) string { return filepath.Join(d, filepath.FromSlash(n)) }
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"folder", []string{d}, []string{j("a/x.JPG"), j("a/z.Gif"), j("a.png"), j("b.bmp"), j("b.webp"), j("c.jpeg"), j("d/e.jpg")}},
		{"glob with a folder", []string{j("[ad]*")}, []string{j("a/x.JPG"), j("a/z.Gif"), j("a.png"), j("d/e.jpg")}},
		{"glob of files", []string{j("*.*")}, []string{j("a.png"), j("b.bmp"), j("b.webp"), j("c.jpeg"), j("c.tif"), j("s.tar")}},
		{"files as given", []string{j("s.tar"), j("missing.png"), j("a/y.txt")}, []string{j("s.tar"), j("missing.png"), j("a/y.txt")}},
		{"glob matching nothing", []string{j("*.nothing"), j("b.bmp")}, []string{j("b.bmp")}},
	} {
		got, err := Files(c.args)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Files = %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	if _, err := Files([]string{j("[")}); !errors.Is(err, ErrInput) {
		t.Errorf("bad pattern: err = %v, want ErrInput", err)
	}
}

func TestEnumerateManifests(t *testing.T) {
	d := t.TempDir()
	writeFile(t, filepath.Join(d, "img", "1.png"), "one")
	writeFile(t, filepath.Join(d, "img", "2.png"), "two")
	abs := filepath.Join(d, "img", "2.png")
	writeFile(t, filepath.Join(d, "m.jsonl"), `{"key": "k1", "image": "img/1.png", "prompt": "first"}

{"image": "`+abs+`", "prompt": "second"}
{"key": "k3", "image": "img/missing.png", "prompt": "third"}
{"key": "k4", "prompt": "no image"}
this is not json
{"key": "k6", "image": "img/1.png"}
`)
	writeFile(t, filepath.Join(d, "m.csv"), "\ufeffPrompt,image,key\n\"a, quoted \"\"prompt\"\"\",img/1.png,c1\n,img/2.png,c2\nonly-one-field\n")
	items, err := Enumerate([]string{filepath.Join(d, "m.jsonl"), filepath.Join(d, "m.csv")})
	if err != nil {
		t.Fatal(err)
	}
	one := filepath.Join(d, "img", "1.png")
	m := filepath.Join(d, "m.jsonl")
	checkGot(t, items, []got{
		{Key: "k1", Source: one, Data: "one", Prompt: sp("first")},
		{Key: abs, Source: abs, Data: "two", Prompt: sp("second")},
		{Key: "k3", Source: filepath.Join(d, "img", "missing.png"), Prompt: sp("third"), Err: "no such file"},
		{Key: "k4", Source: m + ":5", Err: "no image"},
		{Key: m + ":6", Source: m + ":6", Err: "invalid character"},
		{Key: "k6", Source: one, Data: "one"},
		{Key: "c1", Source: one, Data: "one", Prompt: sp(`a, quoted "prompt"`)},
		{Key: "c2", Source: abs, Data: "two", Prompt: sp("")},
		{Key: filepath.Join(d, "m.csv") + ":4", Source: filepath.Join(d, "m.csv") + ":4", Err: "no image"},
	})

	writeFile(t, filepath.Join(d, "noimage.csv"), "key,prompt\na,b\n")
	if _, err := Enumerate([]string{filepath.Join(d, "noimage.csv")}); !errors.Is(err, ErrInput) {
		t.Errorf("csv without an image column: err = %v, want ErrInput", err)
	}
}

// tarBytes is a tar archive of the members (name, contents).
func tarBytes(members [][2]string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, m := range members {
		tw.WriteHeader(&tar.Header{Name: m[0], Mode: 0o644, Size: int64(len(m[1])), Typeflag: tar.TypeReg})
		tw.Write([]byte(m[1]))
	}
	tw.Close()
	return b.Bytes()
}

func writeTar(t *testing.T, path string, members [][2]string) {
	t.Helper()
	if err := os.WriteFile(path, tarBytes(members), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestEnumerateWebDataset(t *testing.T) {
	d := t.TempDir()
	p := filepath.Join(d, "00000.tar")
	long := strings.Repeat("L", 1500) // spans several tar blocks
	writeTar(t, p, [][2]string{
		{"000000001.jpg", "jpeg bytes"}, {"000000001.txt", "first prompt\n"}, {"000000001.json", `{"caption":"not used"}`},
		{"000000002.png", long}, {"000000002.json", `{"caption": "from json"}`},
		{"000000003.txt", "prompt without image"},
		{"sub/000000004.seg.png", "a mask, not the image"}, {"sub/000000004.png", "four"}, {"sub/000000004.txt", "in a folder"},
	})
	items, err := Enumerate([]string{filepath.Join(d, "*.tar")})
	if err != nil {
		t.Fatal(err)
	}
	checkGot(t, items, []got{
		{Key: "000000001", Source: p + ":000000001.jpg", Data: "jpeg bytes", Prompt: sp("first prompt")},
		{Key: "000000002", Source: p + ":000000002.png", Data: long, Prompt: sp("from json")},
		{Key: "000000003", Source: p + ":000000003", Err: "no image member"},
		{Key: "sub/000000004", Source: p + ":sub/000000004.png", Data: "four", Prompt: sp("in a folder")},
	})

	// A truncated shard keeps what precedes the damage and reports it.
	b, _ := os.ReadFile(p)
	cut := filepath.Join(d, "cut.tar")
	if err := os.WriteFile(cut, b[:512+512+100], 0o644); err != nil {
		t.Fatal(err)
	}
	items, err = Enumerate([]string{cut})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) == 0 || items[len(items)-1].err == nil || !strings.Contains(items[len(items)-1].Key, "damaged") {
		t.Errorf("truncated tar: items %+v, want a final damaged-shard error row", loadAll(t, items))
	}
}

func TestEnumerateBadInputs(t *testing.T) {
	d := t.TempDir()
	for _, in := range []string{filepath.Join(d, "nope"), filepath.Join(d, "*.nothing"), filepath.Join(d, "[")} {
		if _, err := Enumerate([]string{in}); !errors.Is(err, ErrInput) {
			t.Errorf("Enumerate(%q) err = %v, want ErrInput", in, err)
		}
	}
	// A single image file is an input of its own, with its sidecar.
	writeFile(t, filepath.Join(d, "one.png"), "1")
	writeFile(t, filepath.Join(d, "one.txt"), "p")
	items, err := Enumerate([]string{filepath.Join(d, "one.png")})
	if err != nil {
		t.Fatal(err)
	}
	checkGot(t, items, []got{{Key: filepath.ToSlash(filepath.Join(d, "one")), Source: filepath.Join(d, "one.png"), Data: "1", Prompt: sp("p")}})
	// Too large a file is an error row, not a read of the whole file.
	l := items[0].load(0)
	if l.err != nil {
		t.Fatal(l.err)
	}
	if l := items[0].load(0); string(l.data) != "1" {
		t.Fatal("reload differs")
	}
	writeFile(t, filepath.Join(d, "big.png"), strings.Repeat("x", 100))
	big, _ := Enumerate([]string{filepath.Join(d, "big.png")})
	if l := big[0].load(10); !errors.Is(l.err, preprocess.ErrTooLarge) || !strings.Contains(l.err.Error(), "limit") {
		t.Errorf("100-byte file with a 10-byte limit: err = %v", l.err)
	}
}

func TestWebDatasetKey(t *testing.T) {
	for _, c := range []struct{ name, key, ext string }{
		{"000001.jpg", "000001", "jpg"},
		{"a/b/000001.seg.PNG", "a/b/000001", "seg.png"},
		{"dir.v2/x.txt", "dir.v2/x", "txt"},
		{"noext", "noext", ""},
	} {
		k, e := webdatasetKey(c.name)
		if k != c.key || e != c.ext {
			t.Errorf("webdatasetKey(%q) = %q, %q; want %q, %q", c.name, k, e, c.key, c.ext)
		}
	}
}
