package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// maxIndexBytes bounds an index JSON (a weight_map line per tensor).
const maxIndexBytes = 64 << 20

// openIndex opens a sharded checkpoint from its index JSON
// ({"metadata": ..., "weight_map": {tensor: shard file}}). Shards are opened
// in the order the weight_map first names them; Keys lists each shard's
// tensors in that shard's file order. Every weight_map entry must be in the
// shard it names.
func openIndex(path string) (*StateDict, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if len(raw) > maxIndexBytes {
		return nil, fmt.Errorf("checkpoint: %s: index of %d bytes is too large", path, len(raw))
	}
	names, shards, err := parseWeightMap(raw)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	var order []string
	seen := map[string]bool{}
	for _, n := range names {
		if sh := shards[n]; !seen[sh] {
			seen[sh] = true
			order = append(order, sh)
		}
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("checkpoint: %s: empty weight_map", path)
	}
	s := &StateDict{path: path, tensors: map[string]*tensor{}}
	fail := func(err error) (*StateDict, error) {
		s.Close()
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	for _, sh := range order {
		if !filepath.IsLocal(sh) {
			return fail(fmt.Errorf("shard name %q must be a file name relative to the index", sh))
		}
		part, err := openFile(filepath.Join(dir, sh), false)
		if err != nil {
			return fail(err)
		}
		s.files = append(s.files, part.files...)
		for _, k := range part.keys {
			if err := s.add(k, part.tensors[k]); err != nil {
				return fail(fmt.Errorf("shard %s: %w", sh, err))
			}
		}
	}
	for _, n := range names {
		if _, ok := s.tensors[n]; !ok {
			return fail(fmt.Errorf("weight_map puts %q in %s, which has no such tensor", n, shards[n]))
		}
	}
	return s, nil
}

// parseWeightMap returns the weight_map's tensor names in file order and the
// shard of each.
func parseWeightMap(raw []byte) ([]string, map[string]string, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, nil, fmt.Errorf("index is not a JSON object: %w", err)
	}
	wm, ok := top["weight_map"]
	if !ok {
		return nil, nil, errors.New("index has no weight_map")
	}
	dec := json.NewDecoder(bytes.NewReader(wm))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, errors.New("weight_map is not a JSON object")
	}
	var names []string
	shards := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("weight_map: %w", err)
		}
		name, _ := tok.(string)
		var shard string
		if err := dec.Decode(&shard); err != nil {
			return nil, nil, fmt.Errorf("weight_map[%q]: %w", name, err)
		}
		if _, dup := shards[name]; dup {
			return nil, nil, fmt.Errorf("weight_map names %q twice", name)
		}
		shards[name] = shard
		names = append(names, name)
	}
	return names, shards, nil
}

// Checkpoint file names OpenFolder looks for, in order of preference.
var folderFiles = []string{
	"model.safetensors",
	"model.safetensors.index.json",
	"pytorch_model.bin",
	"pytorch_model.bin.index.json",
}

// OpenFolder opens a Hugging Face model folder: the first of
// model.safetensors, model.safetensors.index.json, pytorch_model.bin and
// pytorch_model.bin.index.json that exists, and returns config.json's bytes
// alongside (nil when the folder has no config.json).
func OpenFolder(dir string) (*StateDict, []byte, error) {
	var cfg []byte
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	switch {
	case err == nil:
		cfg = b
	case !errors.Is(err, os.ErrNotExist):
		return nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	for _, name := range folderFiles {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil || st.IsDir() {
			continue
		}
		s, err := Open(p)
		if err != nil {
			return nil, nil, err
		}
		return s, cfg, nil
	}
	return nil, nil, fmt.Errorf("checkpoint: %s has none of %s", dir, strings.Join(folderFiles, ", "))
}
