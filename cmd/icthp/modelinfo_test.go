package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/scoring"
)

// /v1/models describes every loaded model from its manifest: kind,
// embedding width and precision, ImageReward included.
func TestModelInfo(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	hpDir, irDir := filepath.Join(root, "hp"), filepath.Join(root, "ir")
	mustRun(t, "convert", "random", "--preset", "tiny", "--kind", "hp", "--int8", "--out", hpDir)
	mustRun(t, "convert", "random", "--preset", "imagereward-tiny", "--kind", "imagereward", "--out", irDir)
	var stderr bytes.Buffer
	a := &app{stdout: &bytes.Buffer{}, stderr: &stderr, getenv: func(string) string { return "" }}
	mf := &modelFlags{dirs: map[string]*string{"hp": &hpDir, "imagereward": &irDir}, batch: 4, optLevel: "all", provider: "cpu",
		cache: cacheFlags{breakerFailures: cache.DefaultBreakerThreshold, breakerCooldown: cache.DefaultBreakerCooldown}}
	l, err := mf.loadModels(a, scoring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	so, err := mf.sessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]struct {
		kind, precision, version string
		dim                      int
	}{}
	for _, m := range modelInfo(l.svc, so) {
		got[m.Name] = struct {
			kind, precision, version string
			dim                      int
		}{m.Kind, m.Precision, m.Version, m.EmbeddingDim}
	}
	for name, dir := range map[string]string{"hp": hpDir, "imagereward": irDir} {
		man := mustManifest(t, dir)
		g, ok := got[name]
		if !ok {
			t.Errorf("%s missing from %v", name, got)
			continue
		}
		if g.kind != string(man.Kind) || g.precision != man.Precision || g.version != man.Version || g.dim != man.EmbeddingDim || g.dim == 0 {
			t.Errorf("%s: got %+v, manifest kind %s precision %s version %s width %d", name, g, man.Kind, man.Precision, man.Version, man.EmbeddingDim)
		}
	}
	if got["hp"].precision != models.PrecisionInt8 {
		t.Errorf("hp precision %q, want int8", got["hp"].precision)
	}
}
