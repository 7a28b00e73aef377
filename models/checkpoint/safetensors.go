package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxSafetensorsHeader is the header size limit the reference implementation
// enforces (100 MB).
const maxSafetensorsHeader = 100_000_000

type safetensorsEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// loadSafetensors reads the header of a safetensors file:
// 8-byte little-endian header length N, N bytes of JSON, then the data.
func (s *StateDict) loadSafetensors(f io.ReaderAt, size int64, name string) error {
	if size < 8 {
		return fmt.Errorf("safetensors: file of %d bytes has no header length", size)
	}
	var lb [8]byte
	if _, err := f.ReadAt(lb[:], 0); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	n := binary.LittleEndian.Uint64(lb[:])
	if n > maxSafetensorsHeader {
		return fmt.Errorf("safetensors: header length %d exceeds the %d-byte limit", n, maxSafetensorsHeader)
	}
	if n > uint64(size-8) {
		return fmt.Errorf("safetensors: header length %d exceeds the file size %d (truncated file?)", n, size)
	}
	hdr := make([]byte, n)
	if _, err := f.ReadAt(hdr, 8); err != nil {
		return fmt.Errorf("safetensors: reading header: %w", err)
	}
	data := &blob{f: f, off: 8 + int64(n), size: size - 8 - int64(n), order: binary.LittleEndian, name: name}
	return s.parseSafetensorsHeader(hdr, data)
}

func (s *StateDict) parseSafetensorsHeader(hdr []byte, data *blob) error {
	dec := json.NewDecoder(bytes.NewReader(hdr))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("safetensors: header is not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("safetensors: header is not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("safetensors: header: %w", err)
		}
		name, _ := tok.(string)
		if name == "__metadata__" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fmt.Errorf("safetensors: header __metadata__: %w", err)
			}
			continue
		}
		var e safetensorsEntry
		if err := dec.Decode(&e); err != nil {
			return fmt.Errorf("safetensors: header entry %q: %w", name, err)
		}
		t, err := safetensorsTensor(e, data)
		if err != nil {
			return fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
		if err := s.add(name, t); err != nil {
			return fmt.Errorf("safetensors: %w", err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return fmt.Errorf("safetensors: header: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("safetensors: trailing data after the header's JSON object")
	}
	return nil
}

func safetensorsTensor(e safetensorsEntry, data *blob) (*tensor, error) {
	dt := DType(e.DType)
	if !dt.Valid() {
		return nil, fmt.Errorf("unsupported dtype %q", e.DType)
	}
	if e.Shape == nil {
		return nil, errors.New("no shape")
	}
	if len(e.DataOffsets) != 2 {
		return nil, fmt.Errorf("data_offsets must be [begin, end], got %v", e.DataOffsets)
	}
	es := int64(dt.Size())
	numel, err := numelOf(e.Shape, es)
	if err != nil {
		return nil, err
	}
	b, end := e.DataOffsets[0], e.DataOffsets[1]
	if b < 0 || end < b || end > data.size {
		return nil, fmt.Errorf("data_offsets [%d, %d] outside the %d-byte data section", b, end, data.size)
	}
	if end-b != numel*es {
		return nil, fmt.Errorf("data_offsets [%d, %d] hold %d bytes but %s %v needs %d", b, end, end-b, dt, e.Shape, numel*es)
	}
	if b%es != 0 {
		// Offsets are in bytes; the reader works in elements. The format
		// does not require alignment, so give the tensor its own blob.
		sub := *data
		sub.off += b
		sub.size = end - b
		return &tensor{dtype: dt, shape: e.Shape, numel: numel, data: &sub}, nil
	}
	return &tensor{dtype: dt, shape: e.Shape, numel: numel, offset: b / es, data: data}, nil
}
