package main

// The reward zoo end to end: tiny random models of every zoo kind (made by
// `icthp convert random`) beside ICT and HP, through `icthp score`,
// `icthp batch` (JSONL and Parquet) and `icthp serve` (/v1/score, /v1/rank,
// /v1/reward with weights mixing zoo models, Flow-GRPO's multi_score
// shape), real onnxruntime sessions, loopback HTTP.

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/icthp/icthp/api"
	"github.com/icthp/icthp/batch"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/modelset"
	"github.com/icthp/icthp/server/servertest"
)

// zooKinds are the `convert random --kind` names and the registry names
// (the CLI flags) of the zoo models, plus ICT and HP.
var zooKinds = []struct{ kind, name string }{
	{"clip", "ict"}, {"hp", "hp"}, {"pickscore", "pickscore"}, {"clipscore", "clipscore"},
	{"clipscore-100", "clipscore100"}, {"hpsv2", "hpsv2"}, {"aesthetic", "aesthetic"},
}

// zooScoreNames are the scores every image gets with all of them loaded.
var zooScoreNames = []string{"ict", "hp", "hp_logit", "pickscore", "pickscore_prob", "clipscore", "clipscore100", "hpsv2", "aesthetic"}

// zooModels converts the models and returns the model flags.
func zooModels(t *testing.T, root string) []string {
	t.Helper()
	var flags []string
	for i, k := range zooKinds {
		dir := filepath.Join(root, k.name)
		mustRun(t, "convert", "random", "--kind", k.kind, "--preset", "tiny", "--seed", string(rune('1'+i)), "--out", dir)
		flags = append(flags, "--"+k.name, dir)
	}
	return flags
}

// decodeScores reads one JSON object's numeric members.
func decodeScores(t *testing.T, raw json.RawMessage) map[string]float64 {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	out := map[string]float64{}
	for k, v := range m {
		if f, ok := v.(float64); ok && k != "index" {
			out[k] = f
		}
	}
	return out
}

// sameScores checks that got has every zoo score (but skip) and equals
// want's within float32 noise.
func sameScores(t *testing.T, what string, got, want map[string]float64, skip ...string) {
	t.Helper()
	for _, name := range zooScoreNames {
		if slices.Contains(skip, name) {
			continue
		}
		g, ok := got[name]
		if !ok || !near(g, want[name], 1e-5) {
			t.Errorf("%s %s = %v (present %v), icthp score %v", what, name, g, ok, want[name])
		}
	}
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

func TestRewardZooEndToEnd(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	flags := zooModels(t, root)
	const prompt = "a red fox in the snow"
	ds := filepath.Join(root, "ds")
	os.MkdirAll(ds, 0o755)
	const n = 5
	files := make([]string, n)
	b64 := make([]string, n)
	for i := range n {
		img := irTestPNG(t, i)
		files[i] = filepath.Join(ds, string(rune('a'+i))+".png")
		os.WriteFile(files[i], img, 0o644)
		os.WriteFile(strings.TrimSuffix(files[i], ".png")+".txt", []byte(prompt), 0o644)
		b64[i] = base64.StdEncoding.EncodeToString(img)
	}

	// icthp score: every image alone, the reference of the others.
	cli := make([]map[string]float64, n)
	for i, f := range files {
		out := mustRun(t, append(append([]string{"score", "--threads", "1", "--prompt", prompt}, flags...), f)...)
		cli[i] = decodeScores(t, json.RawMessage(out))
		for _, name := range zooScoreNames {
			if _, ok := cli[i][name]; !ok {
				t.Fatalf("score %s: no %s in %s", f, name, out)
			}
		}
		if cli[i]["pickscore_prob"] != 1 {
			t.Errorf("pickscore_prob of one image alone = %v, want 1", cli[i]["pickscore_prob"])
		}
	}
	t.Run("batch", func(t *testing.T) { zooBatch(t, root, ds, flags, cli) })
	t.Run("serve", func(t *testing.T) { zooServe(t, root, prompt, b64, flags, cli) })
}

// zooBatch: batch's JSONL and Parquet columns equal icthp score's values.
func zooBatch(t *testing.T, root, ds string, flags []string, cli []map[string]float64) {
	n := len(cli)
	for _, ext := range []string{"jsonl", "parquet"} {
		out := filepath.Join(root, "zoo."+ext)
		mustRun(t, append([]string{"batch", "--threads", "1", "--batch-size", "2", "--input", ds, "--out", out}, flags...)...)
		read := batch.ReadJSONL
		if ext == "parquet" {
			read = batch.ReadParquet
		}
		rows, err := read(out)
		if err != nil || len(rows) != n {
			t.Fatalf("%s: %d rows, %v", ext, len(rows), err)
		}
		for i, r := range rows {
			got := map[string]float64{}
			var names []string
			for _, s := range r.Scores {
				got[s.Name] = s.Value
				names = append(names, s.Name)
			}
			want := slices.DeleteFunc(slices.Clone(zooScoreNames), func(s string) bool { return s == "pickscore_prob" })
			if !slices.Equal(names, want) {
				t.Errorf("%s row %d columns %v, want %v (registry order, no pickscore_prob)", ext, i, names, want)
			}
			sameScores(t, ext+" "+r.Key, got, cli[i], "pickscore_prob")
			for _, k := range zooKinds {
				if r.Version(k.name) == nil {
					t.Errorf("%s row %d: no %s_version", ext, i, k.name)
				}
			}
		}
	}
}

// zooServe: /v1/score equals icthp score, pickscore_prob is the softmax of
// the request's pickscores, /v1/rank and /v1/reward's components equal
// /v1/score's, and the reward is the weighted sum of its components.
func zooServe(t *testing.T, root, prompt string, b64, flags []string, cli []map[string]float64) {
	n := len(b64)
	url := serveInProcess(t, append([]string{"--drain-delay", "0s", "--threads", "1"}, flags...)...)
	var sr struct {
		Scores []json.RawMessage `json:"scores"`
	}
	servertest.PostOK(t, url+"/v1/score", map[string]any{"prompt": prompt, "images": b64}, &sr)
	if len(sr.Scores) != n {
		t.Fatalf("/v1/score: %d scores", len(sr.Scores))
	}
	route := make([]map[string]float64, n)
	ps := make([]float64, n)
	for i, raw := range sr.Scores {
		route[i] = decodeScores(t, raw)
		sameScores(t, "/v1/score image "+string(rune('a'+i)), route[i], cli[i], "pickscore_prob")
		ps[i] = route[i]["pickscore"]
	}
	// PickScore's probability: the softmax of the request's pickscores.
	m := slices.Max(ps)
	var z float64
	for _, p := range ps {
		z += math.Exp(p - m)
	}
	for i := range n {
		if want := math.Exp(ps[i]-m) / z; !near(route[i]["pickscore_prob"], want, 1e-9) {
			t.Errorf("pickscore_prob[%d] = %v, softmax of the pickscores %v", i, route[i]["pickscore_prob"], want)
		}
	}

	var rr struct {
		Ranking []json.RawMessage `json:"ranking"`
	}
	servertest.PostOK(t, url+"/v1/rank", map[string]any{"prompt": prompt, "images": b64}, &rr)
	if len(rr.Ranking) != n {
		t.Fatalf("/v1/rank: %d candidates", len(rr.Ranking))
	}
	for _, raw := range rr.Ranking {
		var idx struct{ Index int }
		json.Unmarshal(raw, &idx)
		sameScores(t, "/v1/rank candidate", decodeScores(t, raw), route[idx.Index])
		if got := decodeScores(t, raw)["pickscore_prob"]; got != route[idx.Index]["pickscore_prob"] {
			t.Errorf("/v1/rank pickscore_prob %v, /v1/score %v", got, route[idx.Index]["pickscore_prob"])
		}
	}

	checkZooModels(t, url, root)
	checkZooReward(t, url, prompt, b64, route)
}

// checkZooReward: /v1/reward with weights mixing zoo models (Flow-GRPO's
// multi_score shape) returns each component, equal to /v1/score's value
// (route), beside their weighted sum.
func checkZooReward(t *testing.T, url, prompt string, b64 []string, route []map[string]float64) {
	n := len(b64)
	weights := map[string]float64{"pickscore": 0.5, "hpsv2": 1, "aesthetic": 0.1}
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = map[string]any{"prompt": prompt, "image": b64[i]}
	}
	var rw map[string]json.RawMessage
	servertest.PostOK(t, url+"/v1/reward", map[string]any{"items": items, "weights": weights}, &rw)
	var rewards []float64
	json.Unmarshal(rw["rewards"], &rewards)
	cols := map[string][]float64{}
	for _, name := range zooScoreNames {
		var col []float64
		if err := json.Unmarshal(rw[name], &col); err != nil || len(col) != n {
			t.Fatalf("/v1/reward has no %s column of %d values: %s", name, n, rw[name])
		}
		cols[name] = col
	}
	if len(rewards) != n {
		t.Fatalf("/v1/reward: %d rewards", len(rewards))
	}
	for i := range n {
		got := map[string]float64{}
		for name, col := range cols {
			got[name] = col[i]
		}
		sameScores(t, "/v1/reward item", got, route[i])
		if got["pickscore_prob"] != route[i]["pickscore_prob"] {
			t.Errorf("/v1/reward pickscore_prob %v, /v1/score %v", got["pickscore_prob"], route[i]["pickscore_prob"])
		}
		want := 0.5*got["pickscore"] + got["hpsv2"] + 0.1*got["aesthetic"]
		if math.Abs(rewards[i]-want) > 1e-12*math.Max(1, math.Abs(want)) {
			t.Errorf("reward[%d] = %v, weighted sum of its components %v", i, rewards[i], want)
		}
	}
}

// checkZooModels: /v1/models describes each model from its manifest (kind,
// version, embedding width, precision, formula, source) and lists its
// scores as the registry names them.
func checkZooModels(t *testing.T, url, root string) {
	t.Helper()
	res, err := http.Get(url + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var got api.ModelsResponse
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got.Models) != len(zooKinds) {
		t.Fatalf("/v1/models lists %d models, want %d", len(got.Models), len(zooKinds))
	}
	for i, k := range zooKinds {
		m := got.Models[i]
		man, err := models.ReadManifest(filepath.Join(root, k.name))
		if err != nil {
			t.Fatal(err)
		}
		e, _ := modelset.Lookup(k.name)
		var scores []string
		for _, o := range e.Outputs {
			scores = append(scores, o.Name)
		}
		if m.Name != k.name || m.Kind != string(man.Kind) || m.Version != man.Version || m.EmbeddingDim != man.EmbeddingDim ||
			m.Precision != man.Precision || !slices.Equal(m.Scores, scores) {
			t.Errorf("/v1/models[%d] = %+v; manifest %s %s %d %s, scores %v", i, m, man.Kind, man.Version, man.EmbeddingDim, man.Precision, scores)
		}
		if man.Formula == nil {
			if m.Formula != nil {
				t.Errorf("%s: formula %+v, the manifest has none", k.name, m.Formula)
			}
		} else if m.Formula == nil || m.Formula.Name != man.Formula.Name || m.Formula.Description != man.Formula.Describe() || m.Formula.Reference != man.Formula.Source {
			t.Errorf("%s: formula %+v, manifest's %+v (%s)", k.name, m.Formula, man.Formula, man.Formula.Describe())
		}
		src, _ := m.Source["random"].(map[string]any)
		if src["preset"] != "tiny" || src["seed"] != float64(1+i) {
			t.Errorf("%s: source %v, want the random preset tiny and seed %d", k.name, m.Source, 1+i)
		}
	}
	for _, k := range []string{"pickscore", "clipscore", "clipscore100", "hpsv2", "aesthetic"} {
		if i := slices.IndexFunc(got.Models, func(m api.ModelInfo) bool { return m.Name == k }); i < 0 || got.Models[i].Formula == nil {
			t.Errorf("%s: no formula in /v1/models", k)
		}
	}
}

func TestPublicSource(t *testing.T) {
	src := map[string]any{"checkpoint": "/srv/models/HPS_v2_compressed.pt", "format": "open_clip",
		"clip": map[string]any{"dir": "/home/me/clip-vit-l-14", "n": 3.0}, "random": "no/slash-free"}
	got := publicSource(src)
	want := map[string]any{"checkpoint": "HPS_v2_compressed.pt", "format": "open_clip",
		"clip": map[string]any{"dir": "clip-vit-l-14", "n": 3.0}, "random": "slash-free"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("publicSource = %v, want %v", got, want)
	}
	if publicSource(nil) != nil {
		t.Error("publicSource(nil) is not nil")
	}
}
