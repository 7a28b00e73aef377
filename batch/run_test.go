package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icthp/icthp/batch/batchtest"
	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/imagereward"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
)

// fakeScorer scores an image by hashing its bytes (and prompt), so that
// every row can be checked against its own input. Images whose bytes start
// with "BAD" fail on their own, as undecodable images do in the service.
type fakeScorer struct {
	versions map[string]string
	dim      int

	mu        sync.Mutex
	calls     int
	images    int
	failAfter int // the call after this many fails as a whole (0: never)
	sizes     []int
}

func newFake() *fakeScorer {
	return &fakeScorer{versions: map[string]string{"ict": "clip-test", "hp": "hp-test"}, dim: 3}
}

func h64(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

var errUndecodable = errors.New("undecodable image")

// expected is the fake's score of one (prompt, image).
func expected(prompt string, data []byte) (ict, logit float64) {
	return float64(h64(prompt, string(data))%1000000) / 1e6, float64(h64(string(data))%1000)/100 - 5
}

func fakeEmbed(data []byte, dim int) []float32 {
	e := make([]float32, dim)
	for j := range e {
		e[j] = float32(h64(string(data), fmt.Sprint(j))%1000) / 1000
	}
	return e
}

func (f *fakeScorer) Versions() map[string]string { return f.versions }

// Specs are the registry's specs of the fake's "loaded" models.
func (f *fakeScorer) Specs() []scorer.Spec {
	var out []scorer.Spec
	for _, e := range []scorer.Entry{ict.Entry, hp.Entry, imagereward.Entry} {
		if _, ok := f.versions[e.Name]; ok {
			out = append(out, e.Spec)
		}
	}
	return out
}

// TakesRGB: ImageReward reads files itself, so batch may not decode ahead.
func (f *fakeScorer) TakesRGB() bool { _, ir := f.versions["imagereward"]; return !ir }

// content is what the fake hashes: the file's bytes, or the decoded pixels
// when batch decoded ahead.
func content(im scoring.Image) []byte {
	if im.RGB != nil {
		return append([]byte(fmt.Sprintf("%dx%d:", im.RGB.W, im.RGB.H)), im.RGB.Pix...)
	}
	return im.Data
}

// fileContent is what the fake sees of a file: its bytes when the run does
// not decode ahead (ImageReward loaded), its RGB pixels when it does.
func fileContent(t *testing.T, data []byte, ahead bool) ([]byte, error) {
	if !ahead {
		return data, nil
	}
	img, err := preprocess.DecodeRGB(data, preprocess.ImageOptions{})
	if err != nil {
		return nil, err
	}
	return content(scoring.Image{RGB: img}), nil
}

func (f *fakeScorer) Reward(ctx context.Context, items []scoring.RewardItem, _ *scoring.Combination) (*scoring.RewardResponse, error) {
	f.mu.Lock()
	f.calls++
	fail := f.failAfter > 0 && f.calls > f.failAfter
	if !fail {
		f.images += len(items)
		f.sizes = append(f.sizes, len(items))
	}
	f.mu.Unlock()
	if fail {
		return nil, errors.New("the model broke")
	}
	res := &scoring.RewardResponse{Scores: make([]scoring.Scores, len(items)), Rewards: make([]*float64, len(items)), Versions: f.versions}
	for i, it := range items {
		if bytes.HasPrefix(it.Image.Data, []byte("BAD")) {
			res.Scores[i].Err = errUndecodable
			continue
		}
		ict, logit := expected(it.Prompt, content(it.Image))
		p := hp.Sigmoid(logit)
		res.Scores[i] = scoring.Scores{Values: []scoring.Score{{Name: "ict", Value: ict}, {Name: "hp", Value: p}, {Name: "hp_logit", Value: logit}}}
	}
	return res, nil
}

func (f *fakeScorer) EmbedImages(ctx context.Context, images []scoring.Image) ([][]float32, []error, error) {
	emb := make([][]float32, len(images))
	errs := make([]error, len(images))
	for i, im := range images {
		if bytes.HasPrefix(im.Data, []byte("BAD")) {
			errs[i] = errUndecodable
			continue
		}
		emb[i] = fakeEmbed(content(im), f.dim)
	}
	return emb, errs, nil
}

// dataset writes n generated images (with some prompts missing and one
// broken file) and returns the folder and its keys in walk order.
func dataset(t *testing.T, n int) (string, []string) {
	t.Helper()
	d := t.TempDir()
	keys, err := batchtest.WriteFolder(d, n, batchtest.Options{Size: 16, MissingPrompts: []int{5, 17}})
	if err != nil {
		t.Fatal(err)
	}
	// Image 9 is damaged.
	p := filepath.Join(d, "000", "000009.png")
	if err := os.WriteFile(p, []byte("BAD png"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d, keys
}

// checkRows compares rows with what each input must give.
func checkRows(t *testing.T, dir string, keys []string, rows []Row, embeddings, ahead bool) {
	t.Helper()
	if len(rows) != len(keys) {
		t.Fatalf("%d rows, want %d", len(rows), len(keys))
	}
	for i, r := range rows {
		if r.Key != keys[i] {
			t.Fatalf("row %d key %q, want %q", i, r.Key, keys[i])
		}
		data, err := os.ReadFile(r.Source)
		if err != nil {
			t.Fatalf("row %d source %q: %v", i, r.Source, err)
		}
		if rel, _ := filepath.Rel(dir, r.Source); strings.TrimSuffix(filepath.ToSlash(rel), filepath.Ext(rel)) != r.Key {
			t.Fatalf("row %d: source %q does not belong to key %q", i, r.Source, r.Key)
		}
		var idx int
		fmt.Sscanf(r.Key[4:], "%d", &idx)
		switch {
		case idx == 5 || idx == 17:
			if r.Error == nil || !strings.Contains(*r.Error, "no prompt") || len(r.Scores) != 0 {
				t.Errorf("row %d (no prompt) = %+v, want a no-prompt error and no scores", i, r)
			}
		case idx == 9:
			want := errUndecodable.Error() // the service's verdict
			if _, err := fileContent(t, data, ahead); err != nil {
				want = err.Error() // the decoder's, ahead of the service
			}
			if r.Error == nil || *r.Error != want || len(r.Scores) != 0 {
				t.Errorf("row %d (damaged) = %+v, want error %q", i, r, want)
			}
		default:
			want := batchtest.Prompt(idx, 4)
			data, err := fileContent(t, data, ahead)
			if err != nil {
				t.Fatal(err)
			}
			ict, logit := expected(want, data)
			if r.Error != nil || r.Prompt == nil || *r.Prompt != want || !reflect.DeepEqual(r.Scores, []scoring.Score{{Name: "ict", Value: ict}, {Name: "hp", Value: hp.Sigmoid(logit)}, {Name: "hp_logit", Value: logit}}) ||
				!reflect.DeepEqual(r.Versions, []ModelVersion{{"ict", "clip-test"}, {"hp", "hp-test"}}) {
				t.Fatalf("row %d = %+v, want prompt %q ict %v hp_logit %v", i, r, want, ict, logit)
			}
			if embeddings && !reflect.DeepEqual(r.Embedding, fakeEmbed(data, 3)) {
				t.Fatalf("row %d embedding %v, want %v", i, r.Embedding, fakeEmbed(data, 3))
			}
		}
	}
}

func TestRunJSONL(t *testing.T) {
	dir, keys := dataset(t, 53)
	out := filepath.Join(t.TempDir(), "o", "scores.jsonl")
	f := newFake()
	sum, err := Run(context.Background(), f, Options{Inputs: []string{dir}, Out: out, BatchSize: 4, PartSize: 10, InFlight: 3})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadJSONL(out)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, dir, keys, rows, false, true)
	if sum.Items != 53 || sum.Scored != 53 || sum.Skipped != 0 || sum.Errors != 3 || sum.Parts != 6 || sum.Out != out {
		t.Errorf("summary %+v", sum)
	}
	// Batches never exceed the batch size; error rows never reach the service.
	total := 0
	for _, s := range f.sizes {
		if s > 4 {
			t.Errorf("a batch of %d > 4", s)
		}
		total += s
	}
	if total != 50 {
		t.Errorf("the service saw %d images, want 50 (53 less the two without prompts and the one the decoder refused)", total)
	}
	if m, _ := filepath.Glob(filepath.Join(out+".parts", "part-*")); len(m) != 0 {
		t.Errorf("parts left after the merge: %v", m)
	}

	// A rerun finds everything done and leaves the output alone.
	before, _ := os.ReadFile(out)
	f2 := newFake()
	sum, err = Run(context.Background(), f2, Options{Inputs: []string{dir}, Out: out, BatchSize: 4, PartSize: 10, InFlight: 3})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(out)
	if sum.Scored != 0 || sum.Skipped != 53 || sum.Errors != 3 || f2.calls != 0 || !bytes.Equal(before, after) {
		t.Errorf("rerun: summary %+v, %d calls, output changed: %v", sum, f2.calls, !bytes.Equal(before, after))
	}
}

// TestRunWithImageReward checks the path without decoding ahead: with
// ImageReward loaded the service gets the files' bytes.
func TestRunWithImageReward(t *testing.T) {
	dir, keys := dataset(t, 30)
	out := filepath.Join(t.TempDir(), "s.parquet")
	f := newFake()
	f.versions = map[string]string{"ict": "clip-test", "hp": "hp-test", "imagereward": "ir-test"}
	if _, err := Run(context.Background(), f, Options{Inputs: []string{dir}, Out: out, BatchSize: 5, PartSize: 10}); err != nil {
		t.Fatal(err)
	}
	rows, err := ReadParquet(out)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if rows[i].Error == nil {
			if v := rows[i].Version("imagereward"); v == nil || *v != "ir-test" {
				t.Fatalf("row %d has no imagereward version: %+v", i, rows[i])
			}
			rows[i].Versions = slices.DeleteFunc(rows[i].Versions, func(v ModelVersion) bool { return v.Model == "imagereward" })
		}
	}
	checkRows(t, dir, keys, rows, false, false)
}

// TestRunResume stops a run part way (the model fails), damages what a
// crash could leave behind, and checks that the rerun scores only what is
// missing and writes exactly what an uninterrupted run writes.
func TestRunResume(t *testing.T) {
	for _, format := range []string{"jsonl", "parquet"} {
		t.Run(format, func(t *testing.T) {
			dir, keys := dataset(t, 61)
			tmp := t.TempDir()
			o := Options{Inputs: []string{dir}, BatchSize: 4, PartSize: 8, InFlight: 1, Embeddings: true, EmbeddingDim: 3}

			whole := o
			whole.Out = filepath.Join(tmp, "whole."+format)
			if _, err := Run(context.Background(), newFake(), whole); err != nil {
				t.Fatal(err)
			}

			part := o
			part.Out = filepath.Join(tmp, "resumed."+format)
			f := newFake()
			f.failAfter = 7
			if _, err := Run(context.Background(), f, part); err == nil || !strings.Contains(err.Error(), "the model broke") {
				t.Fatalf("failing run: err = %v", err)
			}
			pdir := part.Out + ".parts"
			j, err := os.ReadFile(filepath.Join(pdir, journalName))
			if err != nil {
				t.Fatal(err)
			}
			committed := bytes.Count(j, []byte(`"part":{`))
			if committed < 2 || committed >= 8 {
				t.Fatalf("%d parts committed before the failure, want 2..7", committed)
			}
			crashDebris(pdir, format, j)

			f2 := newFake()
			sum, err := Run(context.Background(), f2, part)
			if err != nil {
				t.Fatal(err)
			}
			if sum.PartsSkipped != committed || sum.Skipped != committed*8 || sum.Scored != 61-committed*8 || sum.Errors != 3 {
				t.Errorf("resumed summary %+v with %d parts committed before", sum, committed)
			}
			if f2.images > 61-committed*8 {
				t.Errorf("the rerun scored %d images, more than the %d missing", f2.images, 61-committed*8)
			}
			checkRows(t, dir, keys, sameOutput(t, format, whole.Out, part.Out), true, true)
		})
	}
}

// crashDebris leaves in the parts folder pdir (whose journal reads j) what
// a kill -9 can: a half-written temporary file, a part on disk that the
// journal does not name yet, and a torn journal line.
func crashDebris(pdir, format string, j []byte) {
	os.WriteFile(filepath.Join(pdir, "part-00007."+format+".tmp"), []byte("half"), 0o644)
	free := 0
	for bytes.Contains(j, []byte(fmt.Sprintf(`"part":{"part":%d,`, free))) {
		free++
	}
	os.WriteFile(filepath.Join(pdir, fmt.Sprintf("part-%05d.%s", free, format)), []byte("uncommitted garbage"), 0o644)
	jf, _ := os.OpenFile(filepath.Join(pdir, journalName), os.O_APPEND|os.O_WRONLY, 0)
	jf.WriteString(`{"part":{"part":99,"fir`)
	jf.Close()
}

// sameOutput checks that the resumed run's output (and a JSONL's .npy)
// equals the uninterrupted run's, and returns its rows, embeddings
// included.
func sameOutput(t *testing.T, format, whole, resumed string) []Row {
	t.Helper()
	var rows []Row
	var err error
	if format == "jsonl" {
		a, _ := os.ReadFile(whole)
		b, _ := os.ReadFile(resumed)
		if !bytes.Equal(a, b) {
			t.Errorf("resumed JSONL differs from the uninterrupted run's")
		}
		na, _ := os.ReadFile(NpyPath(whole))
		nb, _ := os.ReadFile(NpyPath(resumed))
		if !bytes.Equal(na, nb) {
			t.Errorf("resumed .npy differs from the uninterrupted run's")
		}
		rows, err = ReadJSONL(resumed)
		if err != nil {
			t.Fatal(err)
		}
		emb, n, d, err := ReadNpy(NpyPath(resumed))
		if err != nil || n != len(rows) || d != 3 {
			t.Fatalf("npy: %d×%d, %v", n, d, err)
		}
		for i := range rows {
			if rows[i].Error == nil {
				rows[i].Embedding = emb[i*3 : i*3+3]
			} else if !math.IsNaN(float64(emb[i*3])) {
				t.Errorf("npy row %d of a failed image is %v, want NaN", i, emb[i*3:i*3+3])
			}
		}
	} else {
		a, err := ReadParquet(whole)
		if err != nil {
			t.Fatal(err)
		}
		if rows, err = ReadParquet(resumed); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normal(a), normal(rows)) {
			t.Errorf("resumed Parquet rows differ from the uninterrupted run's")
		}
	}
	return rows
}

// normal makes rows comparable with DeepEqual (nil and empty lists alike).
func normal(rows []Row) []Row {
	for i := range rows {
		if len(rows[i].Embedding) == 0 {
			rows[i].Embedding = nil
		}
	}
	return rows
}

// TestRunShards scores a WebDataset tar and a manifest in 3 shards and
// checks that the shards' rows together are the whole run's, once each.
func TestRunShards(t *testing.T) {
	d := t.TempDir()
	tarKeys, err := batchtest.WriteTar(filepath.Join(d, "00000.tar"), 40, batchtest.Options{Size: 16})
	if err != nil {
		t.Fatal(err)
	}
	var man strings.Builder
	for i := 0; i < 20; i++ {
		data, ext, _ := batchtest.Encode(100+i, batchtest.Options{Size: 16})
		name := fmt.Sprintf("m%02d.%s", i, ext)
		os.WriteFile(filepath.Join(d, name), data, 0o644)
		fmt.Fprintf(&man, `{"key": "man-%02d", "image": %q, "prompt": "prompt %d"}`+"\n", i, name, i)
	}
	os.WriteFile(filepath.Join(d, "m.jsonl"), []byte(man.String()), 0o644)
	inputs := []string{filepath.Join(d, "*.tar"), filepath.Join(d, "m.jsonl")}
	out := filepath.Join(d, "out", "s.parquet")
	whole, err := Run(context.Background(), newFake(), Options{Inputs: inputs, Out: out, BatchSize: 3, PartSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	all, err := ReadParquet(out)
	if err != nil || len(all) != 60 || whole.Errors != 0 {
		t.Fatalf("whole run: %d rows, %v, %+v", len(all), err, whole)
	}
	for i, k := range tarKeys {
		if all[i].Key != k {
			t.Fatalf("row %d key %q, want %q", i, all[i].Key, k)
		}
	}
	byKey := map[string]Row{}
	for _, r := range all {
		byKey[r.Key] = r
	}
	seen := map[string]int{}
	for i := 0; i < 3; i++ {
		sh := Shard{i, 3}
		// The shards list the inputs in another order: the split must not care.
		rev := []string{inputs[1], inputs[0]}
		sum, err := Run(context.Background(), newFake(), Options{Inputs: rev, Out: out, Shard: sh, BatchSize: 3, PartSize: 5})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := ReadParquet(sh.OutputPath(out))
		if err != nil {
			t.Fatal(err)
		}
		if sum.Items != len(rows) || len(rows) == 0 {
			t.Errorf("shard %v: %d rows, summary %+v", sh, len(rows), sum)
		}
		for _, r := range rows {
			seen[r.Key]++
			if !reflect.DeepEqual(normal([]Row{r}), normal([]Row{byKey[r.Key]})) {
				t.Errorf("shard %v row %q = %+v, want %+v", sh, r.Key, r, byKey[r.Key])
			}
		}
	}
	var missing, dup []string
	for k := range byKey {
		switch seen[k] {
		case 0:
			missing = append(missing, k)
		case 1:
		default:
			dup = append(dup, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 || len(dup) > 0 || len(seen) != len(byKey) {
		t.Errorf("shards miss %v and repeat %v", missing, dup)
	}
}

func TestRunRefusesOtherRuns(t *testing.T) {
	dir, _ := dataset(t, 20)
	out := filepath.Join(t.TempDir(), "s.jsonl")
	f := newFake()
	f.failAfter = 2
	o := Options{Inputs: []string{dir}, Out: out, BatchSize: 4, PartSize: 4, InFlight: 1}
	if _, err := Run(context.Background(), f, o); err == nil {
		t.Fatal("want the failing run to fail")
	}
	other := newFake()
	other.versions = map[string]string{"ict": "clip-other", "hp": "hp-test"}
	changed := o
	changed.PartSize = 8
	for name, c := range map[string]struct {
		s Scorer
		o Options
	}{"other models": {other, o}, "other part size": {newFake(), changed}} {
		if _, err := Run(context.Background(), c.s, c.o); !errors.Is(err, ErrJournalMismatch) {
			t.Errorf("%s: err = %v, want ErrJournalMismatch", name, err)
		}
	}
	// New inputs change the input hash.
	os.WriteFile(filepath.Join(dir, "extra.png"), []byte("x"), 0o644)
	if _, err := Run(context.Background(), newFake(), o); !errors.Is(err, ErrJournalMismatch) {
		t.Errorf("changed input: err = %v, want ErrJournalMismatch", err)
	}
}

func TestRunCancel(t *testing.T) {
	dir, _ := dataset(t, 30)
	out := filepath.Join(t.TempDir(), "s.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, newFake(), Options{Inputs: []string{dir}, Out: out, BatchSize: 4, PartSize: 4}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: err = %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a cancelled run wrote the merged output")
	}
}

func TestJournalBusy(t *testing.T) {
	d := t.TempDir()
	h := header{Journal: 1, Format: JSONL, Shard: "0/1", PartSize: 4}
	j, err := openJournal(d, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openJournal(d, h); !errors.Is(err, ErrBusy) {
		t.Errorf("second open: err = %v, want ErrBusy", err)
	}
	j.close()
	j, err = openJournal(d, h)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	j.close()
}

func TestJournalDamage(t *testing.T) {
	d := t.TempDir()
	h := header{Journal: 1, Format: JSONL, Shard: "0/1", PartSize: 4, Items: 8, InputHash: "x", Models: map[string]string{"hp": "v"}}
	j, err := openJournal(d, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.commitPart(partRecord{Part: 0, Count: 4, Hash: "a", Bytes: 10}); err != nil {
		t.Fatal(err)
	}
	j.close()
	p := filepath.Join(d, journalName)
	good, _ := os.ReadFile(p)
	// A torn last line is dropped (and truncated away), a damaged middle
	// line is an error.
	os.WriteFile(p, append(append([]byte{}, good...), `{"part":{"pa`...), 0o644)
	j, err = openJournal(d, h)
	if err != nil || len(j.parts) != 1 {
		t.Fatalf("torn journal: %v, %d parts", err, len(j.parts))
	}
	j.close()
	if now, _ := os.ReadFile(p); !bytes.Equal(now, good) {
		t.Errorf("torn line not truncated: %q", now)
	}
	lines := bytes.SplitAfter(good, []byte("\n"))
	bad := append(append(append([]byte{}, lines[0]...), "garbage\n"...), lines[1]...)
	os.WriteFile(p, bad, 0o644)
	if _, err := openJournal(d, h); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("damaged middle line: err = %v", err)
	}
}

func TestNpyHeader(t *testing.T) {
	h := npyHeader(7, 1024)
	// Hand-made from the format: magic, version 1.0, header length 118 (0x76),
	// the dict, padded to 128 bytes in all; numpy 1.24 np.save writes the same
	// bytes for a float32 array of shape (7, 1024).
	dict := "{'descr': '<f4', 'fortran_order': False, 'shape': (7, 1024), }"
	want := "\x93NUMPY\x01\x00\x76\x00" + dict + strings.Repeat(" ", 128-10-len(dict)-1) + "\n"
	if string(h) != want {
		t.Errorf("npyHeader = %q, want %q", h, want)
	}
}

func TestProgressDraw(t *testing.T) {
	var b bytes.Buffer
	clock := time.Unix(0, 0)
	now := func() time.Time { return clock }
	p := newProgress(&b, now, time.Hour, 10, 2, 1) // draws only when told
	clock = clock.Add(2 * time.Second)
	p.add(4, 1)
	p.draw()
	p.draw() // unchanged: not drawn again
	p.add(4, 0)
	p.stop()
	want := "\r 6/10 [############........]  60%  2.0 img/s  ETA 2s  errors 2" +
		"\r10/10 [####################] 100%  4.0 img/s  ETA 0s  errors 2\n"
	if b.String() != want {
		t.Errorf("progress output %q, want %q", b.String(), want)
	}
}

func TestProgressLine(t *testing.T) {
	for _, c := range []struct {
		done, total, run, errs int
		secs                   float64
		want                   string
	}{
		{0, 100, 0, 0, 0, "  0/100 [....................]   0%  0.0 img/s  ETA ?  errors 0"},
		{60, 100, 50, 2, 10, " 60/100 [############........]  60%  5.0 img/s  ETA 8s  errors 2"},
		{100, 100, 100, 0, 4, "100/100 [####################] 100%  25.0 img/s  ETA 0s  errors 0"},
	} {
		if got := progressLine(c.done, c.total, c.run, c.errs, secs(c.secs)); got != c.want {
			t.Errorf("progressLine(%d, %d, %d, %d, %vs) = %q, want %q", c.done, c.total, c.run, c.errs, c.secs, got, c.want)
		}
	}
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
