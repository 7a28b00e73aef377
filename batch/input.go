package batch

import (
	"archive/tar"
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/icthp/icthp/preprocess"
)

// ErrInput marks an input that cannot be enumerated at all (a path that does
// not exist, a glob without matches, a manifest without an image column).
// Problems with single items are not errors of the run: they become rows
// with an error.
var ErrInput = errors.New("bad input")

func inputErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInput, fmt.Sprintf(format, args...))
}

// Limits on what enumeration reads whole.
const (
	maxPromptBytes   = 1 << 20 // a .txt or .json sidecar
	maxManifestLine  = 16 << 20
	maxTarMemberSize = 1 << 40 // beyond this a tar header is treated as corrupt
)

var errSpanTooLarge = errors.New("file too large")

// span locates bytes: a whole file (size < 0) or a range of one (a tar
// member). path == "" means absent.
type span struct {
	path      string
	off, size int64
}

func (s span) read(limit int64) ([]byte, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if s.size < 0 {
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if limit > 0 && st.Size() > limit {
			return nil, fmt.Errorf("%w: %s: %d bytes, more than the limit of %d", errSpanTooLarge, s.path, st.Size(), limit)
		}
		return io.ReadAll(io.LimitReader(f, max(limit, st.Size())+1))
	}
	if limit > 0 && s.size > limit {
		return nil, fmt.Errorf("%w: %s at %d: %d bytes, more than the limit of %d", errSpanTooLarge, s.path, s.off, s.size, limit)
	}
	b := make([]byte, s.size)
	if _, err := f.ReadAt(b, s.off); err != nil {
		return nil, fmt.Errorf("%s at %d: %w", s.path, s.off, err)
	}
	return b, nil
}

// Item is one image of the dataset, enumerated but not read.
type Item struct {
	Key    string // identifies the image within the dataset
	Source string // where it is: a file path, or TAR:MEMBER

	prompt     *string // known from a manifest
	image      span
	text, meta span  // sidecar .txt and .json
	err        error // a problem found while enumerating
}

// loaded is an Item's bytes and prompt.
type loaded struct {
	data   []byte
	prompt *string
	err    error
}

// load reads the item's image and prompt. maxBytes bounds the image (the
// service checks it again; this keeps a huge file from being read at all).
func (it *Item) load(maxBytes int64) loaded {
	if it.err != nil {
		return loaded{err: it.err}
	}
	var l loaded
	l.prompt = it.prompt
	if l.prompt == nil {
		p, err := it.readPrompt()
		if err != nil {
			return loaded{err: err}
		}
		l.prompt = p
	}
	l.data, l.err = it.image.read(maxBytes)
	if errors.Is(l.err, errSpanTooLarge) {
		l.err = fmt.Errorf("%w: %v", preprocess.ErrTooLarge, l.err)
	}
	return l
}

// readPrompt takes the prompt from the .txt sidecar, else from the "prompt"
// or "caption" field of the .json sidecar; nil when there is none.
func (it *Item) readPrompt() (*string, error) {
	if it.text.path != "" {
		b, err := it.text.read(maxPromptBytes)
		if err != nil {
			return nil, fmt.Errorf("prompt: %w", err)
		}
		s := strings.TrimSpace(string(b))
		return &s, nil
	}
	if it.meta.path != "" {
		b, err := it.meta.read(maxPromptBytes)
		if err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("metadata %s: %w", it.meta.path, err)
		}
		for _, k := range []string{"prompt", "caption"} {
			if s, ok := m[k].(string); ok {
				s = strings.TrimSpace(s)
				return &s, nil
			}
		}
	}
	return nil, nil
}

// Enumerate lists the items of the inputs in a fixed order: inputs in the
// order given (globs expanded and sorted), folders walked in lexical order,
// manifests in line order, tar shards in member order.
//
// An input is classified by what it is: a directory is a folder tree, a
// .tar a WebDataset shard, a .jsonl/.ndjson or .csv a manifest, anything
// else a single image (with its sidecar .txt).
func Enumerate(inputs []string) ([]Item, error) { return eachPath(inputs, true, enumerateOne) }

// eachPath expands each input (expandGlob) and joins what one makes of
// each path, in order; a glob that matches nothing is an error when strict.
func eachPath[T any](inputs []string, strict bool, one func(p string) ([]T, error)) ([]T, error) {
	var out []T
	for _, in := range inputs {
		paths, err := expandGlob(in)
		if err != nil {
			return nil, err
		}
		if strict && len(paths) == 0 {
			return nil, inputErr("%q matches nothing", in)
		}
		for _, p := range paths {
			got, err := one(p)
			if err != nil {
				return nil, err
			}
			out = append(out, got...)
		}
	}
	return out, nil
}

// expandGlob turns one input into paths: a glob (an input that does not exist and has *,
// ? or [ in it) into its matches, sorted (none when it matches nothing); any other input
// into itself.
func expandGlob(in string) ([]string, error) {
	if _, err := os.Stat(in); err == nil || !strings.ContainsAny(in, "*?[") {
		return []string{in}, nil
	}
	m, err := filepath.Glob(in)
	if err != nil {
		return nil, inputErr("bad pattern %q: %v", in, err)
	}
	sort.Strings(m)
	return m, nil
}

// imageFiles lists the image files (preprocess.IsImageExt) of a folder tree in walk order:
// each folder's entries by name, a subfolder's files where its name sorts.
func imageFiles(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && preprocess.IsImageExt(filepath.Ext(p)) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, inputErr("%v", err)
	}
	return files, nil
}

// Files turns image arguments into image files the way Enumerate finds images, for a
// command that takes images only (`icthp score`): a folder gives its image files
// recursively in walk order, a glob its matches sorted (a folder among them its image
// files), and anything else stays itself, even a path that does not exist or a file of
// another ending, so that its problem is reported with it. A glob that matches nothing
// gives no files; errors (a bad pattern, an unreadable folder) wrap ErrInput.
func Files(args []string) ([]string, error) {
	return eachPath(args, false, func(p string) ([]string, error) {
		if st, err := os.Stat(p); err != nil || !st.IsDir() {
			return []string{p}, nil
		}
		return imageFiles(p)
	})
}

func enumerateOne(p string) ([]Item, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, inputErr("%v", err)
	}
	if st.IsDir() {
		return enumerateDir(p)
	}
	switch strings.ToLower(filepath.Ext(p)) {
	case ".tar":
		return enumerateTar(p)
	case ".jsonl", ".ndjson":
		return enumerateJSONL(p)
	case ".csv":
		return enumerateCSV(p)
	}
	base := strings.TrimSuffix(p, filepath.Ext(p))
	return []Item{fileItem(filepath.ToSlash(base), p)}, nil
}

// fileItem is an image file with its sidecars (same path, .txt or .json).
func fileItem(key, path string) Item {
	it := Item{Key: key, Source: path, image: span{path: path, size: -1}}
	base := strings.TrimSuffix(path, filepath.Ext(path))
	if st, err := os.Stat(base + ".txt"); err == nil && st.Mode().IsRegular() {
		it.text = span{path: base + ".txt", size: -1}
	} else if st, err := os.Stat(base + ".json"); err == nil && st.Mode().IsRegular() {
		it.meta = span{path: base + ".json", size: -1}
	}
	return it
}

// enumerateDir walks a folder tree; an image's key is its path relative to
// the folder, with forward slashes and without its extension.
func enumerateDir(root string) ([]Item, error) {
	files, err := imageFiles(root)
	if err != nil {
		return nil, err
	}
	items := make([]Item, 0, len(files))
	for _, p := range files {
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return nil, inputErr("%v", err)
		}
		items = append(items, fileItem(filepath.ToSlash(strings.TrimSuffix(rel, filepath.Ext(rel))), p))
	}
	return items, nil
}

// manifestRow is one line of a JSONL manifest.
type manifestRow struct {
	Key    *string `json:"key"`
	Image  *string `json:"image"`
	Prompt *string `json:"prompt"`
}

// manifestItem resolves a manifest row; image paths are relative to the
// manifest's folder unless absolute. Without a key, the image path as
// written is the key.
func manifestItem(manifest string, line int, key, image, prompt *string) Item {
	where := fmt.Sprintf("%s:%d", manifest, line)
	if image == nil || *image == "" {
		k := where
		if key != nil && *key != "" {
			k = *key
		}
		return Item{Key: k, Source: where, err: fmt.Errorf("%s: no image", where)}
	}
	path := *image
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(manifest), path)
	}
	k := *image
	if key != nil && *key != "" {
		k = *key
	}
	it := Item{Key: k, Source: path, image: span{path: path, size: -1}}
	// Without a prompt, prompt stays nil (no sidecar lookup for manifest
	// rows): the scorer decides whether the loaded models need one.
	if prompt != nil {
		s := strings.TrimSpace(*prompt)
		it.prompt = &s
	}
	return it
}

func enumerateJSONL(p string) ([]Item, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, inputErr("%v", err)
	}
	defer f.Close()
	var items []Item
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxManifestLine)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		var r manifestRow
		if err := json.Unmarshal(b, &r); err != nil {
			where := fmt.Sprintf("%s:%d", p, line)
			items = append(items, Item{Key: where, Source: where, err: fmt.Errorf("%s: %v", where, err)})
			continue
		}
		items = append(items, manifestItem(p, line, r.Key, r.Image, r.Prompt))
	}
	if err := sc.Err(); err != nil {
		return nil, inputErr("%s: line %d: %v", p, line+1, err)
	}
	return items, nil
}

func enumerateCSV(p string) ([]Item, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, inputErr("%v", err)
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	head, err := r.Read()
	if err != nil {
		return nil, inputErr("%s: no header row: %v", p, err)
	}
	col := map[string]int{"key": -1, "image": -1, "prompt": -1}
	for i, h := range head {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, ok := col[h]; ok && col[h] < 0 {
			col[h] = i
		}
	}
	if col["image"] < 0 {
		return nil, inputErr("%s: the header has no \"image\" column", p)
	}
	field := func(rec []string, name string) *string {
		i := col[name]
		if i < 0 || i >= len(rec) {
			return nil
		}
		s := rec[i]
		return &s
	}
	var items []Item
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				where := fmt.Sprintf("%s:%d", p, pe.Line)
				items = append(items, Item{Key: where, Source: where, err: fmt.Errorf("%s: %v", where, pe.Err)})
				continue
			}
			return nil, inputErr("%s: %v", p, err)
		}
		line, _ := r.FieldPos(0) // a record read has at least one field
		items = append(items, manifestItem(p, line, field(rec, "key"), field(rec, "image"), field(rec, "prompt")))
	}
	return items, nil
}

// webdatasetKey splits a tar member name as WebDataset does: the key is the
// path up to the first dot of the file name, the extension the rest.
func webdatasetKey(name string) (key, ext string) {
	dir, file := "", name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		dir, file = name[:i+1], name[i+1:]
	}
	if i := strings.IndexByte(file, '.'); i >= 0 {
		return dir + file[:i], strings.ToLower(file[i+1:])
	}
	return name, ""
}

// enumerateTar lists a WebDataset shard (as img2dataset writes it): members
// grouped by key, key.jpg|png|webp the image, key.txt the prompt, key.json
// optional metadata. It reads only headers, seeking over the data.
func enumerateTar(p string) ([]Item, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, inputErr("%v", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	type group struct {
		image, text, meta span
		imageName         string
	}
	var order []string
	groups := map[string]*group{}
	var tarErr error
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			// A damaged shard keeps the members before the damage; the
			// damage itself becomes an error row.
			tarErr = err
			break
		}
		if h.Typeflag != tar.TypeReg { // the reader reports the legacy TypeRegA as TypeReg
			continue
		}
		if h.Size < 0 || h.Size > maxTarMemberSize {
			tarErr = fmt.Errorf("member %q: implausible size %d", h.Name, h.Size)
			break
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, inputErr("%s: %v", p, err)
		}
		key, ext := webdatasetKey(h.Name)
		g := groups[key]
		if g == nil {
			g = &group{}
			groups[key] = g
			order = append(order, key)
		}
		sp := span{path: p, off: off, size: h.Size}
		switch {
		case preprocess.IsImageExt("." + ext):
			if g.image.path == "" {
				g.image, g.imageName = sp, h.Name
			}
		case ext == "txt":
			g.text = sp
		case ext == "json":
			g.meta = sp
		}
	}
	items := make([]Item, 0, len(order)+1)
	for _, key := range order {
		g := groups[key]
		it := Item{Key: key, Source: p + ":" + g.imageName, image: g.image, text: g.text, meta: g.meta}
		if g.image.path == "" {
			it.Source = p + ":" + key
			it.err = fmt.Errorf("%s: no image member for key %q", p, key)
		}
		items = append(items, it)
	}
	if tarErr != nil {
		where := fmt.Sprintf("%s:damaged", p)
		items = append(items, Item{Key: where, Source: p, err: fmt.Errorf("%s: %v", p, tarErr)})
	}
	return items, nil
}
