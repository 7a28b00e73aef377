//go:build cgo

package preprocess

/*
#cgo LDFLAGS: -ldeflate
#include <stddef.h>
#include <libdeflate.h>
*/
import "C"

import "unsafe"

// adlerSum is libdeflate's Adler-32 (vectorised): 0.1–0.2 ms on a 1024² RGB PNG's 3.1 MB
// where hash/adler32 takes about 0.9 ms.
func adlerSum(b []byte) uint32 {
	if len(b) == 0 {
		return 1
	}
	return uint32(C.libdeflate_adler32(1, unsafe.Pointer(&b[0]), C.size_t(len(b))))
}
