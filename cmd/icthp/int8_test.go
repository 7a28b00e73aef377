package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icthp/icthp/internal/blipref"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/blip"
)

// `convert --int8`: the manifest says int8 and the version is not the float
// model's; an image's scores are the same alone and among others (each item
// runs alone, because the activation scale is per run); bad combinations are
// usage errors.
func TestInt8Models(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	dir := func(n string) string { return filepath.Join(root, n) }
	convertRandomTwins(t, root, "hp", "tiny", "hp", "3")
	mustRun(t, "convert", "random", "--preset", "tiny", "--kind", "clip", "--seed", "4", "--int8", "--out", dir("clip8"))
	m8, mf := mustManifest(t, dir("hp8")), mustManifest(t, dir("hp"))
	if m8.Precision != models.PrecisionInt8 || mf.Precision != models.PrecisionFloat32 || m8.Version == mf.Version {
		t.Errorf("int8 manifest: precision %s version %s; float: %s %s", m8.Precision, m8.Version, mf.Precision, mf.Version)
	}

	imgs := []string{"../../testdata/demo/sunset.png", "../../testdata/demo/checkers.webp", "../../testdata/demo/sunset.png"}
	score := func(model string, images ...string) []outLine {
		args := append([]string{"score", "--prompt", "a red fox"}, model)
		return parseLines(t, mustRun(t, append(args, images...)...))
	}
	alone := score("--hp="+dir("hp8"), imgs[0])
	together := score("--hp="+dir("hp8"), imgs[1], imgs[0], imgs[2])
	if *alone[0].HP != *together[1].HP || *alone[0].HP != *together[2].HP {
		t.Errorf("int8 hp of %s: alone %v, among others %v and %v", imgs[0], *alone[0].HP, *together[1].HP, *together[2].HP)
	}
	float := score("--hp="+dir("hp"), imgs[0])
	if *float[0].HPLogit == *alone[0].HPLogit {
		t.Errorf("int8 and float hp_logit are identical (%v): is the int8 model quantised?", *alone[0].HPLogit)
	}
	t.Logf("hp_logit float %.6f int8 %.6f", *float[0].HPLogit, *alone[0].HPLogit)
	ictAlone := score("--ict="+dir("clip8"), imgs[0])
	ictTogether := score("--ict="+dir("clip8"), imgs[1], imgs[0])
	if *ictAlone[0].ICT != *ictTogether[1].ICT {
		t.Errorf("int8 ict of %s: alone %v, among others %v", imgs[0], *ictAlone[0].ICT, *ictTogether[1].ICT)
	}

	_, errOut, code := icthp(t, "convert", "random", "--preset", "tiny", "--int8", "--fp16", "--out", dir("x"))
	if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "int8") {
		t.Errorf("icthp convert --int8 --fp16: exit %d, stderr %q; want 2 and one line naming --int8", code, errOut)
	}
}

// ImageReward with --int8: `convert random` and `convert imagereward` write
// int8 directories (precision in model.json, a version of their own), and
// `score --imagereward` gives an image the same score alone and among
// others (the text graph's cross-attention quantises over its input's image
// tokens, so it too runs one item at a time).
func TestInt8ImageReward(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	dir := func(n string) string { return filepath.Join(root, n) }
	convertRandomTwins(t, root, "ir", "imagereward-tiny", "imagereward", "2")

	c, err := blip.PresetConfig(blip.PresetTiny)
	if err != nil {
		t.Fatal(err)
	}
	ckpt, med, vis, vocab := dir("ImageReward.pt"), dir("med_config.json"), dir("vision.json"), dir("vocab.txt")
	if err := blipref.WriteCheckpoint(ckpt, &c, blipref.RandomWeights(&c, 3)); err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string][]byte{med: blipref.MedConfigJSON(&c), vis: blipref.VisionConfigJSON(&c), vocab: blip.SyntheticVocab()} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, "convert", "imagereward", "--checkpoint", ckpt, "--med-config", med, "--vision-config", vis, "--vocab", vocab, "--int8", "--out", dir("ck8"))

	for d, want := range map[string]string{"ir8": models.PrecisionInt8, "ck8": models.PrecisionInt8, "ir": models.PrecisionFloat32} {
		if p := mustManifest(t, dir(d)).Precision; p != want {
			t.Errorf("%s: precision %s, want %s", d, p, want)
		}
	}
	if a, b := mustManifest(t, dir("ir8")).Version, mustManifest(t, dir("ir")).Version; a == b {
		t.Errorf("int8 and float directories share the version %s", a)
	}

	imgs := []string{"../../testdata/demo/sunset.png", "../../testdata/demo/checkers.webp", "../../testdata/demo/apple.jpg"}
	score := func(model string, images ...string) []outLine {
		args := append([]string{"score", "--prompt", "a red fox", "--imagereward=" + dir(model)}, images...)
		lines := parseLines(t, mustRun(t, args...))
		for _, l := range lines {
			if l.ImageReward == nil {
				t.Fatalf("score line %+v has no imagereward", l)
			}
		}
		return lines
	}
	for _, d := range []string{"ir8", "ck8"} {
		alone := score(d, imgs[0])
		together := score(d, imgs[1], imgs[0], imgs[2])
		if *alone[0].ImageReward != *together[1].ImageReward {
			t.Errorf("%s: int8 imagereward of %s alone %v, among others %v", d, imgs[0], *alone[0].ImageReward, *together[1].ImageReward)
		}
	}
	if f, q := *score("ir", imgs[0])[0].ImageReward, *score("ir8", imgs[0])[0].ImageReward; f == q {
		t.Errorf("int8 and float imagereward are identical (%v): is the int8 model quantised?", q)
	}
}

// convertRandomTwins writes `convert random` models of one preset, kind and
// seed under root: NAME8 with --int8 (convert's output must name the
// precision) and NAME without.
func convertRandomTwins(t *testing.T, root, name, preset, kind, seed string) {
	t.Helper()
	args := []string{"convert", "random", "--preset", preset, "--kind", kind, "--seed", seed}
	out := mustRun(t, append(args, "--int8", "--out", filepath.Join(root, name+"8"))...)
	if !strings.Contains(out, "int8") {
		t.Errorf("convert says %q, want the precision int8 in it", out)
	}
	mustRun(t, append(args, "--out", filepath.Join(root, name))...)
}

func mustManifest(t *testing.T, dir string) *models.Manifest {
	t.Helper()
	m, err := models.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
