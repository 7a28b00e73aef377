// Package modelset opens a set of model directories into a scoring
// Service: the registry of model kinds (the one place that imports every
// scorer package), the constructor the command line and the tests share,
// and the built-in demo models made on first use.
//
// Adding a model kind is its package (implementing the scorer interfaces
// and exporting a scorer.Entry) plus one line in Registry.
package modelset

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/icthp/icthp/aesthetic"
	"github.com/icthp/icthp/clipscore"
	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/hpsv2"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/imagereward"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/convert"
	"github.com/icthp/icthp/pickscore"
	"github.com/icthp/icthp/preprocess/text"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
)

// Registry lists the model kinds, in the order responses, columns and the
// default reward use them. It is a function, so no caller can change
// another's list.
func Registry() []scorer.Entry {
	return []scorer.Entry{ict.Entry, hp.Entry, imagereward.Entry,
		pickscore.Entry, clipscore.Entry, clipscore.Entry100, hpsv2.Entry, aesthetic.Entry}
}

// Lookup returns the registry entry of that name.
func Lookup(name string) (scorer.Entry, bool) {
	for _, e := range Registry() {
		if e.Name == name {
			return e, true
		}
	}
	return scorer.Entry{}, false
}

// EnvVar is the environment variable of a model's directory flag:
// ICTHP_ followed by its name upper-cased (ICTHP_ICT, ICTHP_IMAGEREWARD).
func EnvVar(name string) string { return "ICTHP_" + strings.ToUpper(name) }

// Options say which directories to open and how.
type Options struct {
	// Dirs are model directories by registry name; empty values are
	// skipped. At least one must be set.
	Dirs map[string]string
	// Open is passed to each entry's Open (sessions, the batcher in front
	// of each graph, the decoder limits).
	Open scorer.OpenOptions
	// Scoring configures the Service; its image limits default to
	// Open's.
	Scoring scoring.Options
}

// Set is an opened set of models and the Service over them.
type Set struct {
	Service *scoring.Service
	Models  []scorer.Model
	closers []io.Closer
}

// Close releases every model's sessions.
func (s *Set) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Open opens the directories of o in registry order and makes the Service.
func Open(o Options) (*Set, error) {
	s := &Set{}
	known := map[string]bool{}
	for _, e := range Registry() {
		known[e.Name] = true
		dir := o.Dirs[e.Name]
		if dir == "" {
			continue
		}
		sc, c, err := e.Open(dir, o.Open)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("%s: %w", e.Name, err)
		}
		s.closers = append(s.closers, c)
		s.Models = append(s.Models, scorer.Model{Spec: e.Spec, Scorer: sc})
	}
	for name, dir := range o.Dirs {
		if !known[name] && dir != "" {
			s.Close()
			return nil, fmt.Errorf("modelset: unknown model kind %q", name)
		}
	}
	if len(s.Models) == 0 {
		return nil, errors.New("modelset: no model directory given")
	}
	so := o.Scoring
	if so.MaxImageBytes == 0 {
		so.MaxImageBytes = o.Open.MaxImageBytes
	}
	if so.MaxImagePixels == 0 {
		so.MaxImagePixels = o.Open.MaxImagePixels
	}
	var err error
	if s.Service, err = scoring.New(s.Models, so); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// DemoSeed and DemoMerges make the demo models: tiny random ICT and HP
// models (meaningless scores that exercise the plumbing).
const (
	DemoSeed   = 2025
	DemoMerges = 2000 // synthetic vocabulary: common prompts tokenize into word-sized pieces
)

// Demo makes (once) and returns the demo model directories under root,
// by registry name (ict, hp). Each is built in a temporary folder and
// renamed, so that two processes starting at once never see half a model.
func Demo(root string) (map[string]string, error) {
	return RandomModels(root, DemoSeed, DemoMerges)
}

// RandomModels makes (once) tiny random ICT and HP model directories
// under root with the given seed and synthetic vocabulary size: the demo
// models, and the tests' fixtures.
func RandomModels(root string, seed uint64, merges int) (map[string]string, error) {
	dirs := map[string]string{ict.Name: filepath.Join(root, "ict"), hp.Name: filepath.Join(root, "hp")}
	kinds := map[string]models.Kind{ict.Name: models.KindCLIP, hp.Name: models.KindHP}
	for _, name := range []string{ict.Name, hp.Name} {
		dir := dirs[name]
		if _, err := models.ReadManifest(dir); err == nil {
			continue
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, err
		}
		tmp, err := os.MkdirTemp(root, "build-")
		if err != nil {
			return nil, err
		}
		o := convert.RandomOptions{Preset: clip.PresetTiny, Kind: kinds[name], Seed: seed, Out: tmp, Build: clip.BuildOptions{Fused: true}}
		if kinds[name] == models.KindCLIP {
			o.Vocab, o.Synthetic = text.SyntheticVocab(merges), true
		}
		if _, err := convert.Random(o); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		os.RemoveAll(dir)
		if err := os.Rename(tmp, dir); err != nil {
			os.RemoveAll(tmp)
			if _, err2 := models.ReadManifest(dir); err2 != nil {
				return nil, err
			}
		}
	}
	return dirs, nil
}
