package batch

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzEnumerate feeds arbitrary bytes as a WebDataset tar, a JSONL and a CSV
// manifest: enumeration and loading may report errors (as rows or as
// ErrInput) but never panic, and every item has a key and a source.
func FuzzEnumerate(f *testing.F) {
	f.Add(uint8(0), []byte{})
	f.Add(uint8(1), []byte(`{"key":"a","image":"x.png","prompt":"p"}`+"\n{bad\n"))
	f.Add(uint8(2), []byte("image,prompt,key\nx.png,\"q\"\"uoted\",k\n\"unterminated\n"))
	f.Add(uint8(0), tarBytes([][2]string{{"a.jpg", "J"}, {"a.txt", "prompt"}, {"b.json", `{"caption":"c"}`}}))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		d := t.TempDir()
		name := []string{"in.tar", "in.jsonl", "in.csv"}[int(kind)%3]
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		items, err := Enumerate([]string{p})
		if err != nil {
			return
		}
		for i := range items {
			if items[i].Key == "" || items[i].Source == "" {
				t.Fatalf("item %d without key or source: %+v", i, items[i])
			}
			items[i].load(1 << 20)
		}
	})
}

// FuzzJournal opens arbitrary bytes as a journal: it is refused or read,
// never a panic, and a journal that opens takes a new part and shows it
// after a reopen.
func FuzzJournal(f *testing.F) {
	h := header{Journal: 1, Format: JSONL, Shard: "0/1", PartSize: 4, Items: 8, InputHash: "x", Models: map[string]string{"hp": "v"}}
	f.Add([]byte{})
	f.Add([]byte(`{"header":{"journal":1,"format":"jsonl","shard":"0/1","part_size":4,"items":8,"input_hash":"x","models":{"hp":"v"}}}` + "\n" + `{"part":{"part":0,"count":4}}` + "\n{\"pa"))
	f.Add([]byte("{}\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, journalName), data, 0o644); err != nil {
			t.Fatal(err)
		}
		j, err := openJournal(d, h)
		if err != nil {
			return
		}
		err = j.commitPart(partRecord{Part: 1, First: 4, Count: 4, Hash: "h", Bytes: 7})
		j.close()
		if err != nil {
			t.Fatal(err)
		}
		j, err = openJournal(d, h)
		if err != nil {
			t.Fatalf("reopen after a commit: %v", err)
		}
		defer j.close()
		if r, ok := j.parts[1]; !ok || r.Hash != "h" || r.Bytes != 7 {
			t.Fatalf("the committed part is not in the reopened journal: %+v", j.parts)
		}
	})
}
