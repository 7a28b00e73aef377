package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/icthp/icthp/batch"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scoring"
)

func init() {
	register(command{
		name: "score",
		args: "[--ict DIR] [--hp DIR] [--imagereward DIR] [--pickscore|--clipscore|--clipscore100|--hpsv2|--aesthetic DIR] [--prompt TEXT | --prompt-file FILE] IMAGE|DIR|GLOB...",
		summary: "print one JSON line per image with its scores (ict, hp, hp_logit, imagereward, and each zoo model's); " +
			"with no model given, tiny random demo models",
		run: runScore,
	})
}

// expandImages turns IMAGE arguments into files with batch.Files (the batch
// command's enumerator): a file stays itself (even with another ending, so that
// a bad file gets its error line), a directory gives its image files
// (recursively, in walk order), a glob its matches, sorted. Enumeration errors
// are usage errors.
func expandImages(args []string) ([]string, error) {
	files, err := batch.Files(args)
	if errors.Is(err, batch.ErrInput) {
		return nil, usageError{err.Error()}
	}
	return files, err
}

// scoreLine is one output line (SPEC §3): the image, its scores named by
// the registry's outputs in registry order, its error, and with --versions
// the models' versions.
type scoreLine struct {
	Image  string
	Values []scoring.Score
	Error  string
	Models map[string]string
}

// MarshalJSON writes the members in that order (a map would sort the
// scores).
func (l scoreLine) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	add := func(name string, v any) error {
		if len(b) > 1 {
			b = append(b, ',')
		}
		k, err := json.Marshal(name)
		if err != nil {
			return err
		}
		val, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b = append(append(append(b, k...), ':'), val...)
		return nil
	}
	if err := add("image", l.Image); err != nil {
		return nil, err
	}
	for _, v := range l.Values {
		if err := add(v.Name, v.Value); err != nil {
			return nil, err
		}
	}
	if l.Error != "" {
		if err := add("error", l.Error); err != nil {
			return nil, err
		}
	}
	if l.Models != nil {
		if err := add("models", l.Models); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// maxCommandLine bounds the bytes of the arguments of a command that starts
// onnxruntime. onnxruntime 1.30's environment set-up walks the process's
// command line recursively and overflows an 8 MiB thread stack (SIGSEGV) at
// about 28 KB of arguments, so a longer command line is refused first.
const maxCommandLine = 16 << 10

// checkCommandLine refuses arguments over maxCommandLine with a usage error.
func checkCommandLine(args []string) error {
	n := 0
	for _, a := range args {
		n += len(a) + 1 // as /proc/self/cmdline holds them
	}
	if n > maxCommandLine {
		return usagef("the arguments are %d bytes, over the %d accepted (onnxruntime's start-up overflows its stack "+
			"on long command lines); pass a long prompt with --prompt-file, many images as a directory or a glob", n, maxCommandLine)
	}
	return nil
}

func runScore(ctx context.Context, a *app, args []string) error {
	if err := checkCommandLine(args); err != nil {
		return err
	}
	fs := newFlags(a, "score")
	var mf modelFlags
	mf.register(fs, a)
	prompt := fs.String("prompt", "", "the prompt the images were generated for (needed by ict and imagereward)")
	promptFile := fs.String("prompt-file", "", "read the prompt from this file (for prompts too long for a command line)")
	versions := fs.Bool("versions", false, "add the models' version strings to every line")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	promptGiven := false
	fs.Visit(func(f *flag.Flag) { promptGiven = promptGiven || f.Name == "prompt" })
	if len(pos) == 0 {
		return usagef("give at least one IMAGE, directory or glob")
	}
	if *promptFile != "" {
		if promptGiven {
			return usagef("give --prompt or --prompt-file, not both")
		}
		b, err := readPromptFile(*promptFile)
		if err != nil {
			return err
		}
		*prompt, promptGiven = b, true
	}
	if need := mf.promptModels(); need != "" && !promptGiven {
		return usagef("--prompt (or --prompt-file) is required with %s", need)
	}
	files, err := expandImages(pos)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("no image files in %v", pos)
	}
	l, err := mf.loadModels(a, scoring.Options{})
	if err != nil {
		return err
	}
	defer l.close()
	var p *string
	if promptGiven {
		p = prompt
	}
	enc := json.NewEncoder(a.stdout)
	failed := 0
	for lo := 0; lo < len(files); lo += mf.batch {
		chunk := files[lo:min(lo+mf.batch, len(files))]
		imgs, readErr := readImages(chunk, mf.maxBytes)
		res, err := l.svc.Score(ctx, scoring.ScoreRequest{Prompt: p, Images: imgs})
		if err != nil {
			return err
		}
		n, err := writeScoreLines(enc, chunk, readErr, res, *versions)
		failed += n
		if err != nil {
			return err
		}
	}
	if failed > 0 {
		return exitError{code: 1, msg: fmt.Sprintf("%d of %d images failed (see their \"error\" fields)", failed, len(files))}
	}
	return nil
}

// writeScoreLines writes one JSON line per image of a chunk, an image that
// could not be read or scored with its error, and returns how many failed.
func writeScoreLines(enc *json.Encoder, chunk []string, readErr []error, res *scoring.ScoreResponse, versions bool) (failed int, err error) {
	for i, sc := range res.Scores {
		line := scoreLine{Image: chunk[i], Values: sc.Values}
		switch {
		case readErr[i] != nil:
			line = scoreLine{Image: chunk[i], Error: readErr[i].Error()}
		case sc.Err != nil:
			line.Error = sc.Err.Error()
		}
		if line.Error != "" {
			failed++
		}
		if versions {
			line.Models = res.Versions
		}
		if err := enc.Encode(line); err != nil {
			return failed, err
		}
	}
	return failed, nil
}

// readImages reads each file with readImage: the images, and in the same
// places the errors of those that could not be read.
func readImages(files []string, maxBytes int64) ([]scoring.Image, []error) {
	imgs := make([]scoring.Image, len(files))
	errs := make([]error, len(files))
	for i, f := range files {
		imgs[i].Data, errs[i] = readImage(f, maxBytes)
	}
	return imgs, errs
}

// readImage reads an image file, refusing one larger than maxBytes (0: the
// default limit) before reading it, so that a huge file named by mistake
// costs neither the time nor the memory of reading it.
func readImage(path string, maxBytes int64) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = preprocess.DefaultMaxBytes
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxBytes {
		return nil, fmt.Errorf("%w: %d encoded bytes exceed the limit of %d", preprocess.ErrTooLarge, st.Size(), maxBytes)
	} else if err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > maxBytes { // grew while being read, or not a regular file
		return nil, fmt.Errorf("%w: more than %d encoded bytes", preprocess.ErrTooLarge, maxBytes)
	}
	return data, nil
}

// maxPromptFile bounds what --prompt-file reads; the tokenizer refuses
// prompts over its own limit (64 KiB) with a clear error.
const maxPromptFile = 1 << 20

// readPromptFile reads a prompt from a file, without its final newline.
func readPromptFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--prompt-file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPromptFile+1))
	if err != nil {
		return "", fmt.Errorf("--prompt-file: %w", err)
	}
	if len(b) > maxPromptFile {
		return "", fmt.Errorf("--prompt-file %s: over %d bytes", path, maxPromptFile)
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
}
