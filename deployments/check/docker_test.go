package check

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDockerfiles(t *testing.T) {
	for _, name := range []string{"Dockerfile", "Dockerfile.cuda"} {
		t.Run(name, func(t *testing.T) {
			file := repoPath("deployments", name)
			ins, err := ParseDockerfile(file)
			if err != nil {
				t.Fatal(err)
			}
			ignore, err := ReadDockerignore(file + ".dockerignore")
			if err != nil {
				t.Fatal(err)
			}
			checkFinalImage(t, readImage(t, ins, ignore))
		})
	}
}

// finalImage is what a Dockerfile's last stage sets, and what its RUN lines
// (of every stage) build.
type finalImage struct {
	entry, cmd, health []string
	user               string
	env                map[string]string
	copied             map[string]bool // destinations in the final image
	builds             string
}

// stages names the Dockerfile's stages and returns the index of its last
// FROM.
func stages(ins []Instruction) (map[string]bool, int) {
	named := map[string]bool{}
	final := 0
	for i, in := range ins {
		if in.Cmd == "FROM" {
			final = i
			if len(in.Args) == 3 && strings.EqualFold(in.Args[1], "AS") {
				named[in.Args[2]] = true
			}
		}
	}
	return named, final
}

// readImage walks the instructions, failing the test on a COPY whose source
// is neither a stage nor in the build context.
func readImage(t *testing.T, ins []Instruction, ignore IgnoreRules) finalImage {
	named, final := stages(ins)
	img := finalImage{env: map[string]string{}, copied: map[string]bool{}}
	for i, in := range ins {
		switch in.Cmd {
		case "COPY", "ADD":
			if len(in.Args) < 2 {
				t.Errorf("line %d: %s needs a source and a destination", in.Line, in.Cmd)
				continue
			}
			srcs, dst := in.Args[:len(in.Args)-1], in.Args[len(in.Args)-1]
			if from, ok := in.Flag("from"); ok {
				if !named[from] && !strings.ContainsAny(from, ":/") {
					t.Errorf("line %d: COPY --from=%s names no stage", in.Line, from)
				}
			} else {
				for _, s := range srcs {
					checkContextSource(t, in.Line, s, ignore)
				}
			}
			if i > final {
				for _, s := range srcs {
					if strings.HasSuffix(dst, "/") {
						img.copied[dst+filepath.Base(s)] = true
					} else {
						img.copied[dst] = true
					}
				}
			}
		case "RUN":
			img.builds += in.Raw + "\n"
		case "ENTRYPOINT":
			img.entry = in.Args
		case "CMD":
			img.cmd = in.Args
		case "HEALTHCHECK":
			img.health = in.Args
		case "USER":
			if i > final {
				img.user = in.Args[0]
			}
		case "ENV":
			if i > final {
				for _, kv := range in.Args {
					if k, v, ok := strings.Cut(kv, "="); ok {
						img.env[k] = v
					}
				}
			}
		}
	}
	return img
}

func checkFinalImage(t *testing.T, img finalImage) {
	if !slices.Equal(img.entry, []string{"icthp"}) {
		t.Errorf("ENTRYPOINT %q, want [\"icthp\"] (compose and the chart give only the arguments)", img.entry)
	}
	if len(img.cmd) == 0 || img.cmd[0] != "serve" {
		t.Errorf("CMD %q does not serve", img.cmd)
	} else {
		checkFlags(t, "CMD", img.cmd)
	}
	if u, _, _ := strings.Cut(img.user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("the image runs as %q, want an unprivileged user", img.user)
	}
	if len(img.health) == 0 || img.health[0] != "icthp-probe" {
		t.Errorf("HEALTHCHECK %q does not run icthp-probe", img.health)
	}
	if !strings.Contains(img.builds, "-o /out/icthp-probe ./deployments/probe") || !strings.Contains(img.builds, "-o /out/icthp ./cmd/icthp") {
		t.Error("no RUN builds /out/icthp from ./cmd/icthp and /out/icthp-probe from ./deployments/probe")
	}
	for _, want := range []string{"/usr/local/bin/icthp", "/usr/local/bin/icthp-probe", "/usr/local/bin/convert-models.sh"} {
		if !img.copied[want] {
			t.Errorf("the final image gets no %s (copied: %v)", want, img.copied)
		}
	}
	if lib := img.env["ICTHP_ORT_LIB"]; !strings.HasPrefix(lib, "/opt/onnxruntime/lib/") || !copiedUnder(img.copied, "/opt/onnxruntime/lib/") {
		t.Errorf("ICTHP_ORT_LIB=%q is not where the onnxruntime library is copied (%v)", lib, img.copied)
	}
}

func copiedUnder(copied map[string]bool, dir string) bool {
	for d := range copied {
		if strings.HasPrefix(d, dir) {
			return true
		}
	}
	return false
}

// checkContextSource: a COPY source exists in the build context (the
// repository root) and the Dockerfile's ignore file keeps it; for the whole
// context, every file `go build` needs is kept.
func checkContextSource(t *testing.T, line int, src string, ignore IgnoreRules) {
	t.Helper()
	if src == "." || src == "./" {
		for _, f := range []string{"go.mod", "go.sum"} {
			if ignore.Excluded(f) {
				t.Errorf("line %d: the ignore file leaves out %s", line, f)
			}
		}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			if d.IsDir() {
				switch {
				case rel == ".git", rel == "bin", rel == "deployments/check", d.Name() == "testdata":
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go") && ignore.Excluded(rel) {
				t.Errorf("line %d: the ignore file leaves out %s, which the build compiles", line, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := os.Stat(repoPath(filepath.FromSlash(src))); err != nil {
		t.Errorf("line %d: COPY source %s: %v", line, src, err)
	}
	if ignore.Excluded(src) {
		t.Errorf("line %d: COPY source %s is left out of the context by the ignore file", line, src)
	}
}

func TestDockerignoreMatching(t *testing.T) {
	rules := IgnoreRules{}
	for _, p := range []string{".git", "bin", "**/testdata", "deployments/check", "*.md", "!README.md"} {
		neg := strings.HasPrefix(p, "!")
		rules = append(rules, struct {
			pattern string
			negate  bool
		}{strings.TrimPrefix(p, "!"), neg})
	}
	for rel, want := range map[string]bool{
		".git/config": true, "bin/icthp": true, "binary.go": false, "preprocess/testdata/a.png": true,
		"testdata/demo/apple.jpg": true, "deployments/check/go.mod": true, "deployments/probe/main.go": false,
		"BENCHMARKS.md": true, "README.md": false, "cmd/icthp/main.go": false,
	} {
		if got := rules.Excluded(rel); got != want {
			t.Errorf("Excluded(%s) = %v, want %v", rel, got, want)
		}
	}
}

func TestParseDockerfile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "Dockerfile")
	os.WriteFile(f, []byte("# syntax=docker/dockerfile:1\nFROM a:1 AS b\nRUN x \\\n  # note\n  && y\nCOPY --from=b /o/p /usr/\nHEALTHCHECK --interval=5s CMD [\"p\", \"-t\"]\nCMD [\"serve\"]\n"), 0o644)
	ins, err := ParseDockerfile(f)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range ins {
		got = append(got, in.Cmd+" "+strings.Join(in.Args, ","))
	}
	want := []string{"FROM a:1,AS,b", "RUN x,&&,y", "COPY /o/p,/usr/", "HEALTHCHECK p,-t", "CMD serve"}
	if !slices.Equal(got, want) {
		t.Errorf("parsed %q, want %q", got, want)
	}
	if v, _ := ins[2].Flag("from"); v != "b" {
		t.Errorf("COPY --from = %q", v)
	}
	os.WriteFile(f, []byte("CMD [\"a\",\n"), 0o644)
	if _, err := ParseDockerfile(f); err == nil {
		t.Error("a broken JSON form parsed")
	}
}
