package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/icthp/icthp/models"
)

// `convert --int8`: the manifest says int8 and the version is not the float
// model's; an image's scores are the same alone and among others (each item
// runs alone, because the activation scale is per run); bad combinations are
// usage errors.
func TestInt8Models(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	dir := func(n string) string { return filepath.Join(root, n) }
	out := mustRun(t, "convert", "random", "--preset", "tiny", "--kind", "hp", "--seed", "3", "--int8", "--out", dir("hp8"))
	if !strings.Contains(out, "int8") {
		t.Errorf("convert says %q, want the precision int8 in it", out)
	}
	mustRun(t, "convert", "random", "--preset", "tiny", "--kind", "hp", "--seed", "3", "--out", dir("hp"))
	mustRun(t, "convert", "random", "--preset", "tiny", "--kind", "clip", "--seed", "4", "--int8", "--out", dir("clip8"))
	m8, err := models.ReadManifest(dir("hp8"))
	if err != nil {
		t.Fatal(err)
	}
	mf, err := models.ReadManifest(dir("hp"))
	if err != nil {
		t.Fatal(err)
	}
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

	for _, args := range [][]string{
		{"convert", "random", "--preset", "tiny", "--int8", "--fp16", "--out", dir("x")},
		{"convert", "random", "--preset", "imagereward-tiny", "--kind", "imagereward", "--int8", "--out", dir("y")},
	} {
		_, errOut, code := icthp(t, args...)
		if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "int8") {
			t.Errorf("icthp %s: exit %d, stderr %q; want 2 and one line naming --int8", strings.Join(args, " "), code, errOut)
		}
	}
}
