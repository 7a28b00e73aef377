package checkpoint_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/icthp/icthp/models/checkpoint"
)

// A training checkpoint {"epoch": 7, "state_dict": {...}} reads back as its
// inner state dict, keys in order, values exact.
func TestWriteTorchZipWrapped(t *testing.T) {
	ts := []checkpoint.NamedTensor{
		{Name: "module.visual.proj", DType: checkpoint.F32, Shape: []int64{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
		{Name: "module.logit_scale", DType: checkpoint.F32, Shape: []int64{}, Data: []float32{4.6052}},
		{Name: "module.ln_final.bias", DType: checkpoint.F16, Shape: []int64{2}, Data: []float32{0.5, -2}},
	}
	var buf bytes.Buffer
	if err := checkpoint.WriteTorchZipWrapped(&buf, "HPS_v2_compressed", "state_dict", 7, ts); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ck.pt")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sd, err := checkpoint.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	if got := sd.Keys(); !slices.Equal(got, []string{"module.visual.proj", "module.logit_scale", "module.ln_final.bias"}) {
		t.Errorf("keys %v", got)
	}
	for _, x := range ts {
		v, err := sd.Float32(x.Name)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := sd.Shape(x.Name)
		if !slices.Equal(v, x.Data) || !slices.Equal(s, x.Shape) {
			t.Errorf("%s: %v %v, want %v %v", x.Name, s, v, x.Shape, x.Data)
		}
	}
	if err := checkpoint.WriteTorchZipWrapped(&buf, "", "", 0, ts); err == nil {
		t.Error("empty wrapper key accepted")
	}
}
