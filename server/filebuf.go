package server

import (
	"math/bits"
	"sync"

	"github.com/gin-gonic/gin"
)

// fileBuffers are the buffers the images of JSON requests are decoded into
// (api.UnmarshalRequestBuffers) and multipart image parts copied into
// (readPart): one pool per power-of-two size from 64 KiB
// to 128 MiB. Fresh buffers of megabytes mostly meet pages the heap has
// just given back to the system: at 8 clients × 16 noisy 1024² PNGs a
// request the server took 331 page faults an image (110 as multipart), and
// decoding base64 into them ran at about 1 GB/s.
type fileBuffers struct {
	pools [fileClasses]sync.Pool // *[]byte of cap 1 << (fileMinShift + class)
}

const (
	fileMinShift = 16
	fileClasses  = 12
	keyFileBufs  = "icthp.filebufs" // a request's file buffers, for deadline() to give back
)

// fileClass is the class of a buffer of n bytes (n ≥ 1); fileClasses and
// beyond are not pooled.
func fileClass(n int) int { return max(0, bits.Len(uint(n-1))-fileMinShift) }

func (f *fileBuffers) get(n int) []byte {
	c := fileClass(n)
	if c >= fileClasses {
		return make([]byte, n)
	}
	if b, ok := f.pools[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<(fileMinShift+c))
}

func (f *fileBuffers) put(b []byte) {
	c := fileClass(cap(b))
	if c < fileClasses && cap(b) == 1<<(fileMinShift+c) {
		b = b[:cap(b)]
		f.pools[c].Put(&b)
	}
}

// fileGetter returns what api.UnmarshalRequestBuffers takes buffers from
// for c's request: the pool, each buffer listed on c for releaseFiles.
func (s *Server) fileGetter(c *gin.Context) func(n int) []byte {
	return func(n int) []byte {
		b := s.files.get(n)
		list := bufList(c, keyFileBufs)
		*list = append(*list, b)
		return b
	}
}

// bufList is the list of buffers a request holds under key (raw pixels,
// files), made on first use; the deadline middleware gives them back.
func bufList(c *gin.Context, key string) *[][]byte {
	v, _ := c.Get(key)
	list, _ := v.(*[][]byte)
	if list == nil {
		list = new([][]byte)
		c.Set(key, list)
	}
	return list
}

// releaseFiles gives back the request's file buffers, to their pools only
// when the request ended in time (reuse): a request cut short by its
// deadline may have left decoding work that still reads them.
func (s *Server) releaseFiles(c *gin.Context, reuse bool) {
	v, ok := c.Get(keyFileBufs)
	if !ok {
		return
	}
	list := v.(*[][]byte)
	if reuse {
		for _, b := range *list {
			s.files.put(b)
		}
	}
	*list = nil
}
