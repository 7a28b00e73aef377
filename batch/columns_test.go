package batch

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/imagereward"
	"github.com/icthp/icthp/pickscore"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
)

// legacyRow is the fixed Row struct batch wrote before its columns came
// from the registry: the reference its outputs must still equal, byte for
// byte, for the models it knew.
type legacyRow struct {
	Key                string    `json:"key" parquet:"key"`
	Source             string    `json:"source" parquet:"source"`
	Prompt             *string   `json:"prompt,omitempty" parquet:"prompt,optional"`
	ICT                *float64  `json:"ict,omitempty" parquet:"ict,optional"`
	HP                 *float64  `json:"hp,omitempty" parquet:"hp,optional"`
	HPLogit            *float64  `json:"hp_logit,omitempty" parquet:"hp_logit,optional"`
	ImageReward        *float64  `json:"imagereward,omitempty" parquet:"imagereward,optional"`
	Error              *string   `json:"error,omitempty" parquet:"error,optional"`
	ICTVersion         *string   `json:"ict_version,omitempty" parquet:"ict_version,optional,dict"`
	HPVersion          *string   `json:"hp_version,omitempty" parquet:"hp_version,optional,dict"`
	ImageRewardVersion *string   `json:"imagereward_version,omitempty" parquet:"imagereward_version,optional,dict"`
	Embedding          []float32 `json:"-" parquet:"embedding,list"`
}

func ptr[T any](v T) *T { return &v }

// sampleRows are rows of every shape: scored by some of the models, failed,
// without a prompt, with characters JSON escapes, with embeddings.
func sampleRows(withIR bool) ([]Row, []legacyRow) {
	var rows []Row
	var old []legacyRow
	for i := range 40 {
		key := "img/" + string(rune('a'+i%26)) + "<&>"
		r := Row{Key: key, Source: "/data/" + key + ".png", Embedding: []float32{float32(i), -0.5, 1e-7}}
		o := legacyRow{Key: r.Key, Source: r.Source, Embedding: r.Embedding}
		if i%7 != 3 {
			r.Prompt, o.Prompt = ptr("a \"cat\" <b>"+key), ptr("a \"cat\" <b>"+key)
		}
		if i%5 == 4 {
			r.Error, o.Error = ptr("undecodable image: ünïcode \u2028"), ptr("undecodable image: ünïcode \u2028")
			r.Embedding, o.Embedding = nil, nil
		} else {
			ictv, p, l := float64(i)/41-0.3, 1/(1+float64(i)), float64(i)*1e-9-3.25
			r.Scores = []scoring.Score{{Name: "ict", Value: ictv}, {Name: "hp", Value: p}, {Name: "hp_logit", Value: l}}
			r.Versions = []ModelVersion{{"ict", "clip-abc"}, {"hp", "hp-def"}}
			o.ICT, o.HP, o.HPLogit, o.ICTVersion, o.HPVersion = ptr(ictv), ptr(p), ptr(l), ptr("clip-abc"), ptr("hp-def")
			if withIR {
				r.Scores = append(r.Scores, scoring.Score{Name: "imagereward", Value: float64(i) * -0.125})
				r.Versions = append(r.Versions, ModelVersion{"imagereward", "ir-1"})
				o.ImageReward, o.ImageRewardVersion = ptr(float64(i)*-0.125), ptr("ir-1")
			}
		}
		rows, old = append(rows, r), append(old, o)
	}
	return rows, old
}

// TestOutputsAsBefore writes the same rows through the registry-built
// columns and through the old fixed struct, and compares the files' bytes
// (JSONL, Parquet, and a Parquet merged from parts).
func TestOutputsAsBefore(t *testing.T) {
	for _, c := range []struct {
		name   string
		specs  []scorer.Spec
		withIR bool
	}{
		{"ict+hp", []scorer.Spec{ict.Entry.Spec, hp.Entry.Spec}, false},
		{"ict+hp+imagereward", []scorer.Spec{ict.Entry.Spec, hp.Entry.Spec, imagereward.Entry.Spec}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows, old := sampleRows(c.withIR)
			var got, want bytes.Buffer
			if err := writeJSONL(&got, rows); err != nil {
				t.Fatal(err)
			}
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(false)
			for i := range old {
				if err := enc.Encode(&old[i]); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("JSONL differs from the fixed struct's:\n%s\nwant\n%s", got.Bytes()[:300], want.Bytes()[:300])
			}

			cols := newColumns(c.specs)
			got.Reset()
			want.Reset()
			if err := writeParquet(&got, cols, rows); err != nil {
				t.Fatal(err)
			}
			// The schema takes its name from the struct's: the old one was Row.
			legacy := parquet.NewSchema("Row", parquet.SchemaOf(legacyRow{}))
			pw := parquet.NewGenericWriter[legacyRow](&want, append(parquetOptions(), legacy)...)
			if _, err := pw.Write(old); err != nil {
				t.Fatal(err)
			}
			if err := pw.Close(); err != nil {
				t.Fatal(err)
			}
			if cols.schema.String() != legacy.String() {
				t.Errorf("schema\n%s\nwant\n%s", cols.schema, legacy)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("Parquet differs from the fixed struct's (%d and %d bytes)", got.Len(), want.Len())
			}

			// Parts merged: the same bytes as the rows written at once.
			dir := t.TempDir()
			var parts []string
			for k, lo := 0, 0; lo < len(rows); k, lo = k+1, lo+15 {
				p := filepath.Join(dir, "part"+string(rune('0'+k)))
				f, _ := os.Create(p)
				if err := writeParquet(f, cols, rows[lo:min(lo+15, len(rows))]); err != nil {
					t.Fatal(err)
				}
				f.Close()
				parts = append(parts, p)
			}
			out := filepath.Join(dir, "all.parquet")
			if _, err := mergeParts(Parquet, cols, out, parts); err != nil {
				t.Fatal(err)
			}
			merged, _ := os.ReadFile(out)
			if !bytes.Equal(merged, want.Bytes()) {
				t.Errorf("merged Parquet differs from the fixed struct's (%d and %d bytes)", len(merged), want.Len())
			}
			back, err := ReadParquet(out)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, rows) {
				t.Errorf("read back:\n%+v\nwant\n%+v", back[:2], rows[:2])
			}
		})
	}
}

// TestZooColumns: a zoo model adds its score and version columns after the
// base ones; PickScore's probability, relative to the batch, is left out.
func TestZooColumns(t *testing.T) {
	cols := newColumns([]scorer.Spec{hp.Entry.Spec, pickscore.Entry.Spec})
	if want := []string{"ict", "hp", "hp_logit", "imagereward", "pickscore"}; !reflect.DeepEqual(cols.scores, want) {
		t.Errorf("score columns %v, want %v", cols.scores, want)
	}
	if want := []string{"ict", "hp", "imagereward", "pickscore"}; !reflect.DeepEqual(cols.versions, want) {
		t.Errorf("version columns %v, want %v", cols.versions, want)
	}
	sc := scoring.Scores{Values: []scoring.Score{{Name: "hp", Value: 0.5}, {Name: "hp_logit", Value: 0}, {Name: "pickscore", Value: 21.5}, {Name: "pickscore_prob", Value: 0.25}}}
	r := Row{Key: "k", Source: "s", Scores: cols.scoresOf(sc), Versions: []ModelVersion{{"hp", "h"}, {"pickscore", "p"}}}
	var b bytes.Buffer
	if err := writeJSONL(&b, []Row{r}); err != nil {
		t.Fatal(err)
	}
	if want := `{"key":"k","source":"s","hp":0.5,"hp_logit":0,"pickscore":21.5,"hp_version":"h","pickscore_version":"p"}` + "\n"; b.String() != want {
		t.Errorf("JSONL %s, want %s", b.String(), want)
	}
	var back Row
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || !reflect.DeepEqual(back, r) {
		t.Errorf("read back %+v (%v), want %+v", back, err, r)
	}
	b.Reset()
	if err := writeParquet(&b, cols, []Row{r}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "z.parquet")
	os.WriteFile(p, b.Bytes(), 0o644)
	rows, err := ReadParquet(p)
	if err != nil || len(rows) != 1 || !reflect.DeepEqual(rows[0], r) {
		t.Errorf("Parquet read back %+v (%v), want %+v", rows, err, r)
	}
}
