package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/preprocess/text"
)

// The real CLIP vocabulary, beside the repository (never committed).
const tokenizeTestVocab = "../../../shared/vocab/bpe_simple_vocab_16e6.txt.gz"

func tokenizeRun(args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	code = run(context.Background(), &app{stdout: &o, stderr: &e, getenv: func(string) string { return "" }}, args)
	return o.String(), e.String(), code
}

// tokenizeLines parses the output of `icthp tokenize`: one JSON array per line.
func tokenizeLines(t *testing.T, out string) [][]int64 {
	t.Helper()
	var rows [][]int64
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var ids []int64
		if err := json.Unmarshal([]byte(line), &ids); err != nil {
			t.Fatalf("line %q is not a JSON array of ids: %v", line, err)
		}
		rows = append(rows, ids)
	}
	return rows
}

func pad77(ids ...int64) []int64 {
	out := make([]int64, 77)
	copy(out, ids)
	return out
}

// TestTokenizeCommand converts a tiny random CLIP model carrying the real vocabulary and
// checks `icthp tokenize` against open_clip's ids (from the shared reference: "a photo of
// a cat"), or, without the real vocabulary, against the model's own tokenizer.
func TestTokenizeCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny")
	args := []string{"convert", "random", "--preset", "tiny", "--seed", "3", "--out", dir}
	_, err := os.Stat(tokenizeTestVocab)
	real := err == nil
	if real {
		args = append(args, "--tokenizer", tokenizeTestVocab)
	}
	if _, stderr, code := tokenizeRun(args...); code != 0 {
		t.Fatalf("convert random: exit %d: %s", code, stderr)
	}
	texts := []string{"a photo of a cat", "", "A  PHOTO of a CAT", strings.Repeat("a ", 200), "caf\xc3\xa9 &amp; \xe2\x80\x9cbar\xe2\x80\x9d"}
	out, stderr, code := tokenizeRun(append([]string{"tokenize", "--model", dir}, texts...)...)
	if code != 0 {
		t.Fatalf("tokenize: exit %d: %s", code, stderr)
	}
	rows := tokenizeLines(t, out)
	if len(rows) != len(texts) {
		t.Fatalf("%d lines for %d texts:\n%s", len(rows), len(texts), out)
	}
	man, err := models.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := text.LoadTokenizer(filepath.Join(dir, man.Text.Vocab))
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range texts {
		if len(rows[i]) != 77 {
			t.Fatalf("line %d has %d ids, want 77", i, len(rows[i]))
		}
		want, err := tok.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rows[i], want) {
			t.Errorf("line %d (%q):\n got %v\nwant %v", i, text, rows[i], want)
		}
	}
	if real {
		cat := pad77(49406, 320, 1125, 539, 320, 2368, 49407)
		if !slices.Equal(rows[0], cat) || !slices.Equal(rows[2], cat) {
			t.Errorf("open_clip gives %v for %q; got %v and %v", cat, texts[0], rows[0], rows[2])
		}
		if !slices.Equal(rows[1], pad77(49406, 49407)) {
			t.Errorf("empty text: %v", rows[1])
		}
		cut := rows[3]
		if cut[0] != 49406 || cut[76] != 49407 || slices.ContainsFunc(cut[1:76], func(id int64) bool { return id != 320 }) {
			t.Errorf("a 200-word prompt is not <sot> a×75 <eot>: %v", cut)
		}
	}

	// Flags after the texts, as parseFlags allows.
	out2, stderr, code := tokenizeRun("tokenize", "a photo of a cat", "--model", dir)
	if code != 0 || !slices.Equal(tokenizeLines(t, out2)[0], rows[0]) {
		t.Fatalf("flags after TEXT: exit %d, %q, %s", code, out2, stderr)
	}
}

func TestTokenizeCommandErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny")
	if _, stderr, code := tokenizeRun("convert", "random", "--preset", "tiny", "--out", dir); code != 0 {
		t.Fatalf("convert random: exit %d: %s", code, stderr)
	}
	for _, c := range []struct {
		name string
		args []string
		code int
	}{
		{"no model", []string{"tokenize", "hello"}, 2},
		{"no text", []string{"tokenize", "--model", dir}, 2},
		{"missing directory", []string{"tokenize", "--model", filepath.Join(dir, "nope"), "hello"}, 1},
		{"prompt over the limit", []string{"tokenize", "--model", dir, strings.Repeat("x", text.DefaultMaxInputBytes+1)}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, stderr, code := tokenizeRun(c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, c.code, stderr)
			}
			if out != "" {
				t.Errorf("stdout %q on failure", out)
			}
			if n := strings.Count(stderr, "\n"); n != 1 || !strings.HasPrefix(stderr, "icthp tokenize: ") {
				t.Errorf("stderr is not one 'icthp tokenize: ...' line: %q", stderr)
			}
		})
	}
}
