// Package docker holds no Go code: it tests convert-models.sh, the models
// init step the images, compose and the Helm chart run, against checkpoint
// folders in both layouts it reads, with the real icthp binary.
package docker

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/icthp/icthp/internal/testmodels"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
)

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// buildIcthp compiles cmd/icthp into dir.
func buildIcthp(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "icthp")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/icthp")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/icthp: %v: %s", err, out)
	}
	return bin
}

// script runs convert-models.sh with env and returns its exit status and output.
func script(t *testing.T, bin string, env ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("sh", filepath.Join(repoRoot(t), "deployments", "docker", "convert-models.sh"))
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "ICTHP_BIN=" + bin}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatal(err)
	return -1, ""
}

func manifest(t *testing.T, dir string, kind models.Kind) *models.Manifest {
	t.Helper()
	m, err := models.ReadManifest(dir)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	if m.Kind != kind {
		t.Errorf("%s: kind %s, want %s", dir, m.Kind, kind)
	}
	return m
}

// hfFolders writes the tiny ICT, HP and base checkpoints: as
// `huggingface-cli download --local-dir` leaves them (base/, ict/, hp/)
// when hub is false, else as a hub cache (hub/models--OWNER--NAME/snapshots/REV).
func hfFolders(t *testing.T, root string, hub bool, vocab []byte) {
	t.Helper()
	c, err := clip.PresetConfig(clip.PresetTiny)
	if err != nil {
		t.Fatal(err)
	}
	all := testmodels.Names(c.Params())
	folder := map[string]string{"base": "base", "ict": "ict", "hp": "hp"}
	if hub {
		for k, repo := range map[string]string{"base": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "ict": "8y/ICT", "hp": "8y/HP"} {
			cache := filepath.Join("hub", "models--"+strings.ReplaceAll(repo, "/", "--"))
			folder[k] = filepath.Join(cache, "snapshots", "0123abcd")
			// An older snapshot that refs/main does not name: never used.
			if err := os.MkdirAll(filepath.Join(root, cache, "snapshots", "old"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(root, cache, "refs"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, cache, "refs", "main"), []byte("0123abcd"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	p := func(k string, rest ...string) string {
		return filepath.Join(append([]string{root, folder[k]}, rest...)...)
	}
	if err := testmodels.WriteFolder(p("base"), c, clip.NewRandom(&c, 7, false), all, testmodels.Safetensors, "F32"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("base", "bpe_simple_vocab_16e6.txt.gz"), vocab, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := testmodels.WriteFolder(p("ict"), c, clip.NewRandom(&c, 8, false), all, testmodels.Torch, "F32"); err != nil {
		t.Fatal(err)
	}
	hpW := clip.NewRandom(&c, 9, true)
	if err := testmodels.WriteFolder(p("hp", "hp_backbone"), c, hpW, all, testmodels.Safetensors, "F32"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(p("hp", "hp_scorer"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := testmodels.WriteHead(p("hp", "hp_scorer", "mlp_pytorch_model.bin"), c, hpW); err != nil {
		t.Fatal(err)
	}
}

func TestConvertModels(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	vocab, err := os.ReadFile(filepath.Join(repoRoot(t), "..", "shared", "vocab", "bpe_simple_vocab_16e6.txt.gz"))
	if err != nil {
		t.Skipf("the real CLIP vocabulary is not at ../shared/vocab (the converted ICT model needs one): %v", err)
	}
	tmp := t.TempDir()
	bin := buildIcthp(t, tmp)

	t.Run("demo, then idempotent", func(t *testing.T) {
		out := filepath.Join(tmp, "demo")
		code, log := script(t, bin, "ICTHP_DEMO=1", "ICTHP_MODELS_DIR="+out)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, log)
		}
		ict, hp := manifest(t, filepath.Join(out, "ict"), models.KindCLIP), manifest(t, filepath.Join(out, "hp"), models.KindHP)
		code, log = script(t, bin, "ICTHP_DEMO=1", "ICTHP_MODELS_DIR="+out)
		if code != 0 || strings.Count(log, "is ready, skipping") != 2 {
			t.Errorf("second run: exit %d, want both models skipped: %s", code, log)
		}
		if manifest(t, filepath.Join(out, "ict"), models.KindCLIP).Version != ict.Version || manifest(t, filepath.Join(out, "hp"), models.KindHP).Version != hp.Version {
			t.Error("the second run changed the models")
		}
		if m, _ := filepath.Glob(filepath.Join(out, ".*partial*")); len(m) > 0 {
			t.Errorf("partial folders left: %v", m)
		}
	})

	// The same weights in both layouts convert to the same model versions
	// (the version is a hash of the weights' bytes).
	versions := map[bool][2]string{}
	for _, hub := range []bool{false, true} {
		name := map[bool]string{false: "local-dir layout", true: "hub cache layout"}[hub]
		t.Run(name, func(t *testing.T) {
			hf, out := filepath.Join(tmp, name, "hf"), filepath.Join(tmp, name, "models")
			hfFolders(t, hf, hub, vocab)
			// A failed earlier attempt: a folder without model.json.
			if err := os.MkdirAll(filepath.Join(out, "ict", "junk"), 0o755); err != nil {
				t.Fatal(err)
			}
			code, log := script(t, bin, "ICTHP_HF_DIR="+hf, "ICTHP_MODELS_DIR="+out)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, log)
			}
			ict, hp := manifest(t, filepath.Join(out, "ict"), models.KindCLIP), manifest(t, filepath.Join(out, "hp"), models.KindHP)
			if _, err := os.Stat(filepath.Join(out, "ict", "junk")); err == nil {
				t.Error("the failed attempt's folder was kept")
			}
			versions[hub] = [2]string{ict.Version, hp.Version}
		})
	}
	if versions[false] != versions[true] || versions[false][0] == "" {
		t.Errorf("versions differ between layouts: %v", versions)
	}

	t.Run("errors", func(t *testing.T) {
		empty := t.TempDir()
		code, log := script(t, bin, "ICTHP_HF_DIR="+empty, "ICTHP_MODELS_DIR="+filepath.Join(empty, "m"), "ICTHP_CONVERT=ict")
		if code != 1 || !strings.Contains(log, "no laion/CLIP-ViT-H-14-laion2B-s32B-b79K checkpoint under "+empty) {
			t.Errorf("no checkpoints: exit %d: %s", code, log)
		}
		code, log = script(t, bin, "ICTHP_DEMO=1", "ICTHP_MODELS_DIR="+filepath.Join(empty, "m"), "ICTHP_CONVERT=ict clip")
		if code != 2 || !strings.Contains(log, `unknown model "clip"`) {
			t.Errorf("unknown model: exit %d: %s", code, log)
		}
	})
}
