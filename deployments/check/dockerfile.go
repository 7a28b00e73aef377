package check

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Instruction is one Dockerfile instruction, continuation lines joined.
type Instruction struct {
	Line  int
	Cmd   string   // upper case: FROM, COPY, RUN, ...
	Flags []string // --from=build, --chown=...
	Args  []string // the exec (JSON) form's elements, or the words of the shell form
	Exec  bool     // the JSON array form
	Raw   string
}

// ParseDockerfile reads the instructions of a Dockerfile: comments and
// parser directives are skipped, lines ending in a backslash are joined, and
// the JSON array form of RUN, CMD, ENTRYPOINT, COPY and HEALTHCHECK CMD is
// decoded. It is the subset of the syntax the project's Dockerfiles use (no
// heredocs, the default escape character).
func ParseDockerfile(file string) ([]Instruction, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Instruction
	sc := bufio.NewScanner(f)
	var cur strings.Builder
	start, n := 0, 0
	for sc.Scan() {
		n++
		line := sc.Text()
		t := strings.TrimSpace(line)
		if cur.Len() == 0 && (t == "" || strings.HasPrefix(t, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(t, "#") {
			continue // comment lines inside a continued instruction
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(t, "\\") {
			cur.WriteString(strings.TrimSuffix(t, "\\"))
			cur.WriteString(" ")
			continue
		}
		cur.WriteString(t)
		in, err := parseInstruction(start, cur.String())
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, start, err)
		}
		out = append(out, in)
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("%s:%d: instruction continues past the end of the file", file, start)
	}
	return out, nil
}

func parseInstruction(line int, s string) (Instruction, error) {
	cmd, rest, _ := strings.Cut(s, " ")
	in := Instruction{Line: line, Cmd: strings.ToUpper(cmd), Raw: s}
	rest = strings.TrimSpace(rest)
	if in.Cmd == "HEALTHCHECK" {
		for strings.HasPrefix(rest, "--") {
			var f string
			f, rest, _ = strings.Cut(rest, " ")
			in.Flags = append(in.Flags, f)
			rest = strings.TrimSpace(rest)
		}
		c, r, _ := strings.Cut(rest, " ")
		if strings.ToUpper(c) != "CMD" && strings.ToUpper(c) != "NONE" {
			return in, fmt.Errorf("HEALTHCHECK %q: want CMD or NONE", c)
		}
		rest = strings.TrimSpace(r)
	}
	if in.Cmd == "COPY" || in.Cmd == "ADD" || in.Cmd == "RUN" {
		for strings.HasPrefix(rest, "--") {
			var f string
			f, rest, _ = strings.Cut(rest, " ")
			in.Flags = append(in.Flags, f)
			rest = strings.TrimSpace(rest)
		}
	}
	if strings.HasPrefix(rest, "[") {
		if err := json.Unmarshal([]byte(rest), &in.Args); err != nil {
			return in, fmt.Errorf("%s: bad JSON array form %s: %w", in.Cmd, rest, err)
		}
		in.Exec = true
		return in, nil
	}
	in.Args = strings.Fields(rest)
	return in, nil
}

// Flag returns the value of --name=value among the instruction's flags.
func (in Instruction) Flag(name string) (string, bool) {
	for _, f := range in.Flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// IgnoreRules are the patterns of a .dockerignore file.
type IgnoreRules []struct {
	pattern string
	negate  bool
}

// ReadDockerignore reads the patterns of a .dockerignore file (comments and
// blank lines skipped, ! for exceptions).
func ReadDockerignore(file string) (IgnoreRules, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var rs IgnoreRules
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		neg := strings.HasPrefix(l, "!")
		l = path.Clean(strings.TrimPrefix(strings.TrimPrefix(l, "!"), "/"))
		rs = append(rs, struct {
			pattern string
			negate  bool
		}{l, neg})
	}
	return rs, nil
}

// Excluded reports whether the build context leaves out rel (a slash path
// from the context's root): as Docker does, the last matching pattern wins,
// a pattern matching a folder leaves out all below it, and ** matches any
// number of folders.
func (rs IgnoreRules) Excluded(rel string) bool {
	rel = path.Clean(filepath.ToSlash(rel))
	excluded := false
	for _, r := range rs {
		if matchIgnore(r.pattern, rel) {
			excluded = !r.negate
		}
	}
	return excluded
}

func matchIgnore(pattern, rel string) bool {
	parts := strings.Split(rel, "/")
	for i := 1; i <= len(parts); i++ { // rel or one of the folders above it
		if globMatch(strings.Split(pattern, "/"), parts[:i]) {
			return true
		}
	}
	return false
}

func globMatch(pat, name []string) bool {
	if len(pat) == 0 {
		return len(name) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(name); i++ {
			if globMatch(pat[1:], name[i:]) {
				return true
			}
		}
		return false
	}
	if len(name) == 0 {
		return false
	}
	if ok, err := path.Match(pat[0], name[0]); err != nil || !ok {
		return false
	}
	return globMatch(pat[1:], name[1:])
}
