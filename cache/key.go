package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Kind says what an entry holds; it is part of the key, so one content hash
// can have an entry of each kind per model.
type Kind uint8

// The kinds of entries the scoring service caches.
const (
	KindText  Kind = iota // a text embedding, keyed by the prompt's token ids
	KindImage             // an image's features (an embedding, image tokens), keyed by the image's bytes
	KindHP                // HP's logit and backbone embedding, keyed by the image's bytes
	numKinds
)

var kindNames = [numKinds]string{"text", "image", "hp"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// keyFormat is the version of the key layout and of the value encoding: a
// change to either bumps it, so old entries are simply never read again.
const keyFormat = "2"

// Key names one cache entry: the model's version string, the kind and a
// SHA-256 of the content. Different model versions never share an entry.
type Key struct {
	Version string
	Kind    Kind
	Sum     [sha256.Size]byte
}

// String is the Redis key: icthp:2:<version>:<kind>:<hex sha256>. For an
// image file the hash is the file's own SHA-256, so `sha256sum FILE` finds
// its entry.
func (k Key) String() string {
	b := make([]byte, 0, 9+len(k.Version)+1+5+1+2*sha256.Size)
	b = append(b, "icthp:"+keyFormat+":"...)
	b = append(b, k.Version...)
	b = append(b, ':')
	b = append(b, k.Kind.String()...)
	b = append(b, ':')
	b = hex.AppendEncode(b, k.Sum[:])
	return string(b)
}

// BytesSum hashes an image file's bytes.
func BytesSum(data []byte) [sha256.Size]byte { return sha256.Sum256(data) }

// TokensSum hashes a prompt's token ids (after cleaning, BPE, truncation and
// padding), so prompts that tokenize alike share one entry.
func TokensSum(ids []int64) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte("ids\x00"))
	var b [8]byte
	for _, id := range ids {
		binary.LittleEndian.PutUint64(b[:], uint64(id))
		h.Write(b[:])
	}
	var s [sha256.Size]byte
	h.Sum(s[:0])
	return s
}

// PixelsSum hashes raw RGB pixels with their shape; the "rgb" prefix keeps
// them apart from any file's bytes.
func PixelsSum(w, h int, pix []byte) [sha256.Size]byte {
	d := sha256.New()
	var b [20]byte
	copy(b[:4], "rgb\x00")
	binary.LittleEndian.PutUint64(b[4:], uint64(w))
	binary.LittleEndian.PutUint64(b[12:], uint64(h))
	d.Write(b[:])
	d.Write(pix)
	var s [sha256.Size]byte
	d.Sum(s[:0])
	return s
}
