package models

import (
	"context"
	"fmt"
	"path/filepath"
)

// Model is an opened model directory: its manifest and one onnxruntime
// session per graph. It knows tensors, not images or prompts.
type Model struct {
	Dir      string
	Manifest *Manifest
	Provider Provider
	sessions map[string]*Session
}

// Open reads dir's manifest and opens its graphs, checking each graph's
// inputs and outputs against the manifest.
func Open(dir string, o SessionOptions) (*Model, error) {
	man, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	m := &Model{Dir: dir, Manifest: man, Provider: o.Provider, sessions: map[string]*Session{}}
	if man.Precision == PrecisionInt8 {
		// DynamicQuantizeMatMul takes one activation scale over the whole
		// batch: batched, an image's score would depend on the images run
		// with it (and the cache would keep whichever came first). One item
		// per run keeps each result a function of its own input; on CPU an
		// int8 graph gains little from batching anyway (BENCHMARKS.md).
		o.MaxBatch = 1
	}
	if m.Provider == "" {
		m.Provider = CPU
	}
	for name, g := range man.Graphs {
		if len(g.Inputs) != 1 {
			// Multi-input graphs (ImageReward's text+cross part) are opened
			// by their own package.
			continue
		}
		s, err := OpenSession(filepath.Join(dir, g.File), g.Inputs[0], g.Outputs, o)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("model %s: %w", dir, err)
		}
		m.sessions[name] = s
	}
	if err := m.checkPixelType(); err != nil {
		m.Close()
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	return m, nil
}

// Session returns the session of a graph ("vision", "text"), or nil.
func (m *Model) Session(graph string) *Session { return m.sessions[graph] }

// EncodeImages runs the vision graph on n preprocessed images (NCHW float32,
// one after another) and returns each output as n rows, in the manifest's
// output order.
func (m *Model) EncodeImages(ctx context.Context, pixels []float32, n int) ([][]float32, error) {
	s := m.sessions["vision"]
	if s == nil {
		return nil, fmt.Errorf("model %s has no vision graph", m.Dir)
	}
	return s.RunFloat(ctx, pixels, n)
}

// EncodeTexts runs the text graph on n rows of token ids.
func (m *Model) EncodeTexts(ctx context.Context, ids []int64, n int) ([][]float32, error) {
	s := m.sessions["text"]
	if s == nil {
		return nil, fmt.Errorf("model %s has no text graph", m.Dir)
	}
	return s.RunInt64(ctx, ids, n)
}

// Close releases every session.
func (m *Model) Close() error {
	var first error
	for _, s := range m.sessions {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
	}
	m.sessions = nil
	return first
}
