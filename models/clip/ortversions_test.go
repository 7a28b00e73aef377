package clip_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/ortlib"
)

// ORTVersions are the onnxruntime releases one icthp binary is tested with
// (the binding's C API 24 is offered by all of them).
var ORTVersions = []string{"1.29.0", "1.30.0", "1.31.1"}

// One test binary scores the tiny model with each onnxruntime release:
// plain and fused float32 graphs (threads and optimisation levels set)
// against the float64 reference, an int8 graph against the int8 reference,
// a cancelled run, and the plugin-EP calls (GetEpDevices). Each release
// runs in a child process of this binary, since a process loads one
// onnxruntime. `icthp setup --ort-version V` (or scripts/fetch-ort.sh)
// installs a release.
func TestScoresWithEachORTVersion(t *testing.T) {
	if v := os.Getenv("ICTHP_ORTVERSION_CHILD"); v != "" {
		scoreWithThisORT(t, v, os.Getenv("ICTHP_ORTVERSION_OUT"))
		return
	}
	cache, err := ortlib.CacheDir()
	if err != nil {
		t.Skip(err)
	}
	outs := map[string][]float32{}
	for _, v := range ORTVersions {
		t.Run(v, func(t *testing.T) {
			lib := ortlib.InstalledPathVersion(cache, v)
			if _, err := os.Stat(lib); err != nil {
				t.Skipf("onnxruntime %s is not installed at %s: run `icthp setup --ort-version %s` or scripts/fetch-ort.sh", v, lib, v)
			}
			out := filepath.Join(t.TempDir(), "out.json")
			cmd := exec.Command(os.Args[0], "-test.run=^TestScoresWithEachORTVersion$", "-test.v")
			cmd.Env = append(os.Environ(), "ICTHP_ORTVERSION_CHILD="+v, "ICTHP_ORTVERSION_OUT="+out, ortlib.EnvLib+"="+lib)
			b, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(b), "--- PASS: TestScoresWithEachORTVersion") {
				t.Fatalf("onnxruntime %s: %v\n%.3000s", v, err, b)
			}
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, "onnxruntime ") && strings.Contains(l, "against") {
					t.Log(strings.TrimSpace(l))
				}
			}
			raw, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var emb []float32
			if err := json.Unmarshal(raw, &emb); err != nil {
				t.Fatal(err)
			}
			outs[v] = emb
		})
	}
	for _, v := range ORTVersions[1:] {
		if a, b := outs[ORTVersions[0]], outs[v]; a != nil && b != nil {
			t.Logf("image+text embeddings, onnxruntime %s vs %s: max |Δ| %.3g", ORTVersions[0], v, maxDiff(a, b))
		}
	}
}

// scoreWithThisORT is the child: onnxruntime comes from $ICTHP_ORT_LIB.
func scoreWithThisORT(t *testing.T, want, out string) {
	info, err := ortlib.Init("")
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != want {
		t.Fatalf("loaded onnxruntime %s from %s, want %s", info.Version, info.Path, want)
	}
	devs, err := ortlib.EPDevices()
	if err != nil || len(devs) == 0 || devs[0].EP != "CPUExecutionProvider" {
		t.Fatalf("GetEpDevices: %v, %v", devs, err)
	}
	const n = 3
	c := tinyConfig(t, clip.GELU)
	w := clip.NewRandom(&c, 11, true)
	px, ids := inputs(n, 77, 5)
	ref := references(t, &c, w, px, ids, n, false)
	refImg, refTxt := ref.img, ref.txt
	var first []float32
	for _, tc := range []struct {
		opts clip.BuildOptions
		so   models.SessionOptions
	}{
		{clip.BuildOptions{}, models.SessionOptions{IntraOpThreads: 1, OptLevel: "basic", MaxBatch: 2}},
		{clip.BuildOptions{Fused: true}, models.SessionOptions{IntraOpThreads: 2, OptLevel: "all"}},
	} {
		g := buildGraphs(t, &c, w, tc.opts)
		img := runWith(t, g.vision, clip.InputPixels, clip.OutputImage, tc.so, px, nil, n)
		txt := runWith(t, g.text, clip.InputIDs, clip.OutputText, tc.so, nil, ids, n)
		worst := 0.0
		d := c.ProjectionDim
		for i := 0; i < n; i++ {
			for j := 0; j < d; j++ {
				worst = max(worst, math.Abs(float64(img[i*d+j])-refImg[i][j]), math.Abs(float64(txt[i*d+j])-refTxt[i][j]))
			}
		}
		t.Logf("onnxruntime %s fused=%v against float64: max |Δ| %.3g", info.Version, tc.opts.Fused, worst)
		if worst > 1e-4 {
			t.Errorf("fused=%v: max |Δ| %.3g > 1e-4", tc.opts.Fused, worst)
		}
		if first == nil {
			first = append(img, txt...)
		}
	}
	g := buildGraphs(t, &c, w, clip.BuildOptions{Int8: true})
	q := references(t, &c, w, px, ids, n, true).img
	per := len(px) / n
	for i := 0; i < n; i++ {
		img := runWith(t, g.vision, clip.InputPixels, clip.OutputImage, models.SessionOptions{IntraOpThreads: 2}, px[i*per:(i+1)*per], nil, 1)
		for j, v := range img {
			if math.Abs(float64(v)-q[i][j]) > 1e-3 {
				t.Fatalf("int8 image %d [%d]: %v, int8 reference %v", i, j, v, q[i][j])
			}
		}
	}
	s, err := models.OpenSession(g.vision, clip.InputPixels, []string{clip.OutputImage}, models.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.RunFloat(ctx, px, n); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v", err)
	}
	b, _ := json.Marshal(first)
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func runWith(t *testing.T, path, in, out string, so models.SessionOptions, px []float32, ids []int64, n int) []float32 {
	t.Helper()
	s, err := models.OpenSession(path, in, []string{out}, so)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var res [][]float32
	if ids != nil {
		res, err = s.RunInt64(context.Background(), ids, n)
	} else {
		res, err = s.RunFloat(context.Background(), px, n)
	}
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}
