package modelset_test

import (
	"context"
	"strings"
	"testing"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/ortlib"
	"github.com/icthp/icthp/modelset"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
)

func TestRegistry(t *testing.T) {
	names, outs := map[string]bool{}, map[string]bool{}
	for _, e := range modelset.Registry() {
		if e.Open == nil || e.Name == "" || len(e.Outputs) == 0 || names[e.Name] {
			t.Errorf("entry %+v: want a unique name, outputs and Open", e.Spec)
		}
		names[e.Name] = true
		for _, o := range e.Outputs {
			if outs[o.Name] {
				t.Errorf("output %q given twice", o.Name)
			}
			outs[o.Name] = true
		}
	}
	if e, ok := modelset.Lookup("hp"); !ok || e.Kind != models.KindHP || modelset.EnvVar("imagereward") != "ICTHP_IMAGEREWARD" {
		t.Errorf("Lookup(hp) = %+v, %v", e.Spec, ok)
	}
}

// Open makes a Service over the directories, in registry order, whose
// scores come from the models opened.
func TestOpen(t *testing.T) {
	if _, err := ortlib.Init(""); err != nil {
		t.Skipf("onnxruntime: %v", err)
	}
	dirs, err := modelset.RandomModels(t.TempDir(), 3, 300)
	if err != nil {
		t.Fatal(err)
	}
	set, err := modelset.Open(modelset.Options{Dirs: dirs, Open: scorer.OpenOptions{Session: models.SessionOptions{IntraOpThreads: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	var got []string
	for _, m := range set.Service.Models() {
		man, err := models.ReadManifest(dirs[m.Name])
		if err != nil || man.Version != m.Version() {
			t.Errorf("%s: version %s, manifest %v (%v)", m.Name, m.Version(), man, err)
		}
		got = append(got, m.Name)
	}
	if strings.Join(got, ",") != "ict,hp" {
		t.Errorf("models %v, want ict,hp in registry order", got)
	}
	p := "a cat"
	img := scoring.Image{Data: []byte("\x89PNG\r\n\x1a\n broken")}
	res, err := set.Service.Score(context.Background(), scoring.ScoreRequest{Prompt: &p, Images: []scoring.Image{img}})
	if err != nil || res.Scores[0].Err == nil {
		t.Errorf("a broken image: %v %+v", err, res)
	}
	if _, err := modelset.Open(modelset.Options{Dirs: map[string]string{"pickscore2": dirs["ict"]}}); err == nil {
		t.Error("an unknown kind was accepted")
	}
	if _, err := modelset.Open(modelset.Options{}); err == nil {
		t.Error("no directory was accepted")
	}
}
