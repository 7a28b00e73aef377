package batch

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/icthp/icthp/scoring"
)

// Row is one image's result, the same columns in JSONL and Parquet. A nil
// field was not computed (the image failed: then Error says why and no
// score is set). Scores and Versions are the loaded models' (see
// newColumns), in registry order; JSON members and Parquet columns take
// their names: "ict", "pickscore", "ict_version", ...
type Row struct {
	Key    string
	Source string
	Prompt *string
	Scores []scoring.Score
	Error  *string
	// Versions are the models that scored the image and their versions.
	Versions []ModelVersion
	// Embedding is the L2-normalised image embedding (with --embeddings):
	// a list column in Parquet, a .npy file beside a JSONL output.
	Embedding []float32
}

// Format is an output file format.
type Format string

// The output formats.
const (
	JSONL   Format = "jsonl"
	Parquet Format = "parquet"
)

// FormatOf picks the format from the output file's extension.
func FormatOf(out string) (Format, error) {
	switch strings.ToLower(filepath.Ext(out)) {
	case ".jsonl", ".ndjson":
		return JSONL, nil
	case ".parquet":
		return Parquet, nil
	}
	return "", fmt.Errorf("output %q: want a .jsonl or .parquet file", out)
}

// NpyPath is the embeddings file beside a JSONL output: out without its
// extension plus ".embeddings.npy".
func NpyPath(out string) string {
	return strings.TrimSuffix(out, filepath.Ext(out)) + ".embeddings.npy"
}

// writeAtomic writes path as path.tmp, fsyncs it, renames it over path and
// fsyncs the folder, so that path is either absent, the old file, or the
// whole new one.
func writeAtomic(path string, write func(w io.Writer) error) (int64, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	var size int64
	if err == nil {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil {
			size = st.Size()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return size, syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

func writeJSONL(w io.Writer, rows []Row) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range rows {
		if err := enc.Encode(&rows[i]); err != nil {
			return err
		}
	}
	return nil
}

func parquetOptions() []parquet.WriterOption {
	return []parquet.WriterOption{parquet.Compression(&parquet.Zstd), parquet.CreatedBy("icthp", "batch", "")}
}

func writeParquet(w io.Writer, c *columns, rows []Row) error {
	pw := parquet.NewWriter(w, append(parquetOptions(), c.schema)...)
	for i := range rows {
		if err := pw.Write(c.value(&rows[i])); err != nil {
			return err
		}
	}
	return pw.Close()
}

// ReadParquet reads every row of a Parquet file this package wrote.
func ReadParquet(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pf, err := openParquet(f)
	if err != nil {
		return nil, err
	}
	c, err := columnsOf(pf.Schema())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r := parquet.NewReader(pf, c.schema)
	defer r.Close()
	var rows []Row
	for {
		p := reflect.New(c.typ).Interface()
		err := r.Read(p)
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		rows = append(rows, c.row(p))
	}
}

func openParquet(f *os.File) (*parquet.File, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return pf, nil
}

// copyParquetRows appends the rows of a part to pw, as they are: the part
// has the run's columns.
func copyParquetRows(pw parquet.RowWriter, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	pf, err := openParquet(f)
	if err != nil {
		return err
	}
	r := parquet.NewReader(pf)
	defer r.Close()
	buf := make([]parquet.Row, 256)
	for {
		n, err := r.ReadRows(buf)
		if n > 0 {
			if _, werr := pw.WriteRows(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
}

// ReadJSONL reads every row of a JSONL output.
func ReadJSONL(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []Row
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var r Row
		if err := dec.Decode(&r); err == io.EOF {
			return rows, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: row %d: %w", path, len(rows)+1, err)
		}
		rows = append(rows, r)
	}
}

// mergeParts writes the parts, in order, into out.
func mergeParts(f Format, c *columns, out string, parts []string) (int64, error) {
	return writeAtomic(out, func(w io.Writer) error {
		switch f {
		case JSONL:
			for _, p := range parts {
				if err := copyFile(w, p); err != nil {
					return err
				}
			}
			return nil
		default:
			pw := parquet.NewWriter(w, append(parquetOptions(), c.schema)...)
			for _, p := range parts {
				if err := copyParquetRows(pw, p); err != nil {
					return err
				}
			}
			return pw.Close()
		}
	})
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// The .npy format (version 1.0): magic, version, a little-endian uint16
// header length, a Python dict literal padded with spaces to a multiple of
// 64 bytes ending in '\n', then the data in C order.
func npyHeader(rows, dim int) []byte {
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, dim)
	total := 10 + len(dict) + 1
	pad := (64 - total%64) % 64
	h := make([]byte, 0, total+pad)
	h = append(h, "\x93NUMPY\x01\x00"...)
	h = binary.LittleEndian.AppendUint16(h, uint16(len(dict)+pad+1))
	h = append(h, dict...)
	h = append(h, strings.Repeat(" ", pad)...)
	return append(h, '\n')
}

// writeNpy writes the rows' embeddings as a [len(rows), dim] float32 array;
// a row without one is NaN, so that row i is line i of the JSONL file.
func writeNpy(w io.Writer, rows []Row, dim int) error {
	if _, err := w.Write(npyHeader(len(rows), dim)); err != nil {
		return err
	}
	buf := make([]byte, 4*dim)
	for _, r := range rows {
		for j := 0; j < dim; j++ {
			v := float32(math.NaN())
			if len(r.Embedding) == dim {
				v = r.Embedding[j]
			}
			binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(v))
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// ReadNpy reads a float32 2-D .npy file this package wrote.
func ReadNpy(path string) (data []float32, rows, dim int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, 0, err
	}
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return nil, 0, 0, fmt.Errorf("%s: not a .npy file", path)
	}
	hl := int(binary.LittleEndian.Uint16(b[8:10]))
	if 10+hl > len(b) {
		return nil, 0, 0, fmt.Errorf("%s: truncated header", path)
	}
	if _, err := fmt.Sscanf(string(b[10:10+hl]), "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", &rows, &dim); err != nil {
		return nil, 0, 0, fmt.Errorf("%s: header: %v", path, err)
	}
	body := b[10+hl:]
	if len(body) != 4*rows*dim {
		return nil, 0, 0, fmt.Errorf("%s: %d data bytes for shape (%d, %d)", path, len(body), rows, dim)
	}
	data = make([]float32, rows*dim)
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return data, rows, dim, nil
}

// mergeNpy concatenates the parts' arrays into one.
func mergeNpy(out string, parts []string, dim int) (int64, error) {
	rows := 0
	offs := make([]int64, len(parts))
	for i, p := range parts {
		f, err := os.Open(p)
		if err != nil {
			return 0, err
		}
		var h [10]byte
		_, err = io.ReadFull(f, h[:])
		st, serr := f.Stat()
		f.Close()
		if err != nil || serr != nil {
			return 0, fmt.Errorf("%s: %v", p, errors.Join(err, serr))
		}
		offs[i] = 10 + int64(binary.LittleEndian.Uint16(h[8:10]))
		rows += int((st.Size() - offs[i]) / int64(4*dim))
	}
	return writeAtomic(out, func(w io.Writer) error {
		if _, err := w.Write(npyHeader(rows, dim)); err != nil {
			return err
		}
		for i, p := range parts {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(w, io.NewSectionReader(f, offs[i], math.MaxInt64-offs[i]))
			f.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
}
