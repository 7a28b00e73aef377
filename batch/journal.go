package batch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"os"
	"path/filepath"
	"syscall"
)

// ErrJournalMismatch means the parts folder was made by a run over other
// inputs, models or settings, so its parts cannot be reused.
var ErrJournalMismatch = errors.New("parts folder belongs to another run")

// ErrBusy means another run holds the parts folder.
var ErrBusy = errors.New("output busy")

// journalName is the journal's file name inside the parts folder.
const journalName = "journal.jsonl"

// header is the journal's first line: what the parts were made from.
type header struct {
	Journal    int               `json:"journal"` // format version
	Format     Format            `json:"format"`
	Shard      string            `json:"shard"`
	PartSize   int               `json:"part_size"`
	Items      int               `json:"items"`
	InputHash  string            `json:"input_hash"`
	Models     map[string]string `json:"models"`
	Embeddings bool              `json:"embeddings"`
}

// partRecord says that a part was committed: its file holds the Count
// items of the shard starting at First, whose keys and sources hash to Hash.
type partRecord struct {
	Part     int    `json:"part"`
	First    int    `json:"first"`
	Count    int    `json:"count"`
	Hash     string `json:"hash"`
	Errors   int    `json:"errors"`
	Bytes    int64  `json:"bytes"`
	NpyBytes int64  `json:"npy_bytes,omitempty"`
}

// mergedRecord says that the merged output was written.
type mergedRecord struct {
	Rows     int   `json:"rows"`
	Bytes    int64 `json:"bytes"`
	NpyBytes int64 `json:"npy_bytes,omitempty"`
}

type journalLine struct {
	Header *header       `json:"header,omitempty"`
	Part   *partRecord   `json:"part,omitempty"`
	Merged *mergedRecord `json:"merged,omitempty"`
}

// journal is the append-only log of committed parts. Each line is written
// and fsynced after the part's file is in place, so a line never names a
// part that is not on disk; a crash can at worst leave a part on disk that
// no line names (it is redone) or a torn last line (dropped on open).
type journal struct {
	f      *os.File
	header header
	parts  map[int]partRecord
	merged *mergedRecord
}

// itemsHash hashes the keys and sources of items (FNV-1a 64, hex).
func itemsHash(items []Item) string {
	h := fnv.New64a()
	for _, it := range items {
		h.Write([]byte(it.Key))
		h.Write([]byte{0})
		h.Write([]byte(it.Source))
		h.Write([]byte{0})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// openJournal opens (or starts) the journal in dir for a run described by
// want. An existing journal must describe the same run.
func openJournal(dir string, want header) (*journal, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, journalName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	// One writer per parts folder: a second run on the same output would
	// interleave its parts with ours.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s is in use by another icthp batch (%v)", ErrBusy, dir, err)
	}
	j := &journal{f: f, parts: map[int]partRecord{}}
	good, err := j.read()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	// Drop a torn last line so that appends start on a line of their own.
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	if good == 0 {
		j.header = want
		if err := j.append(journalLine{Header: &want}); err != nil {
			f.Close()
			return nil, err
		}
		return j, nil
	}
	if err := sameRun(j.header, want); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s: %v (remove the folder to start over, or write to another --out)", ErrJournalMismatch, dir, err)
	}
	return j, nil
}

func sameRun(got, want header) error {
	switch {
	case got.Journal != want.Journal:
		return fmt.Errorf("journal format %d, this program writes %d", got.Journal, want.Journal)
	case got.Format != want.Format:
		return fmt.Errorf("its parts are %s, not %s", got.Format, want.Format)
	case got.Shard != want.Shard:
		return fmt.Errorf("it is shard %s, not %s", got.Shard, want.Shard)
	case got.PartSize != want.PartSize:
		return fmt.Errorf("it was made with --part-size %d, not %d", got.PartSize, want.PartSize)
	case got.Items != want.Items || got.InputHash != want.InputHash:
		return fmt.Errorf("the input has changed (%d items, hash %s; now %d items, hash %s)", got.Items, got.InputHash, want.Items, want.InputHash)
	case !maps.Equal(got.Models, want.Models):
		return fmt.Errorf("it was scored with the models %v, not %v", got.Models, want.Models)
	case got.Embeddings != want.Embeddings:
		return fmt.Errorf("it was made with --embeddings=%v", got.Embeddings)
	}
	return nil
}

// read loads the journal and returns the length of its complete lines. A
// last line without its newline, or that does not parse, is a torn write
// and is ignored; a bad line before the last is corruption.
func (j *journal) read() (int64, error) {
	data, err := io.ReadAll(j.f)
	if err != nil {
		return 0, err
	}
	var good int64
	lineNo := 0
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break // torn
		}
		line := data[:i]
		data = data[i+1:]
		lineNo++
		var l journalLine
		if err := json.Unmarshal(line, &l); err != nil {
			if len(data) == 0 {
				break // torn (a crash mid-write can leave garbage bytes)
			}
			return 0, fmt.Errorf("line %d is damaged: %v", lineNo, err)
		}
		switch {
		case lineNo == 1 && l.Header != nil:
			j.header = *l.Header
		case lineNo == 1:
			return 0, errors.New("line 1 is not a header")
		case l.Part != nil:
			j.parts[l.Part.Part] = *l.Part
			j.merged = nil // a part rewritten after a merge outdates it
		case l.Merged != nil:
			m := *l.Merged
			j.merged = &m
		}
		good += int64(i + 1)
	}
	return good, nil
}

func (j *journal) append(l journalLine) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(j.f)
	w.Write(b)
	w.WriteByte('\n')
	if err := w.Flush(); err != nil {
		return err
	}
	return j.f.Sync()
}

func (j *journal) commitPart(r partRecord) error {
	if err := j.append(journalLine{Part: &r}); err != nil {
		return err
	}
	j.parts[r.Part] = r
	j.merged = nil
	return nil
}

func (j *journal) commitMerged(m mergedRecord) error {
	if err := j.append(journalLine{Merged: &m}); err != nil {
		return err
	}
	j.merged = &m
	return nil
}

func (j *journal) close() error { return j.f.Close() }
