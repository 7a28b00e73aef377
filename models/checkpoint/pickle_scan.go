package checkpoint

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// maxPickleMarks bounds the MARK opcodes in one pickle. Every MARK makes the
// unpickler set a stack aside; a state dict of n tensors has about 2n.
const maxPickleMarks = 1 << 22

// scanPickle walks the opcode stream of a pickle without executing it and
// checks that every length-prefixed argument fits in the data that is left.
// gopickle allocates an argument's buffer before reading it, so without this
// check a 20-byte pickle claiming a 2^60-byte string would make it try to
// allocate that much. It also rejects opcodes outside protocols 0-5 and data
// after STOP-less ends.
func scanPickle(p []byte) error {
	sc := &pickleScanner{p: p}
	marks := 0
	for sc.i < len(p) {
		op := p[sc.i]
		at := sc.i
		sc.i++
		var err error
		switch op {
		case '.': // STOP
			return nil
		case '(':
			marks++
			if marks > maxPickleMarks {
				return fmt.Errorf("pickle: more than %d MARK opcodes", maxPickleMarks)
			}
		case '0', '1', '2', 'N', 'R', 'a', 'b', 'd', '}', 'e', 'l', ']', 'o', 's', 't', ')', 'u', 'Q',
			0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x97, 0x98:
			// no argument
		case 'F', 'I', 'L', 'P', 'S', 'V', 'p', 'g':
			err = sc.line()
		case 'c', 'i':
			if err = sc.line(); err == nil {
				err = sc.line()
			}
		case 'K', 'h', 'q', 0x80, 0x82:
			err = sc.fixed(1)
		case 'M', 0x83:
			err = sc.fixed(2)
		case 'J', 'j', 'r', 0x84:
			err = sc.fixed(4)
		case 'G':
			err = sc.fixed(8)
		case 'U', 'C', 0x8c, 0x8a:
			err = sc.counted(1, false)
		case 'T', 0x8b:
			err = sc.counted(4, true)
		case 'X', 'B':
			err = sc.counted(4, false)
		case 0x8d, 0x8e, 0x96:
			err = sc.counted(8, false)
		case 0x95: // FRAME: its length covers opcodes that follow
			err = sc.frame()
		default:
			return fmt.Errorf("pickle: unknown opcode 0x%02x at offset %d", op, at)
		}
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("pickle: no STOP opcode (truncated data.pkl?)")
}

// pickleScanner walks a pickle's opcodes at offset i, checking that each
// argument fits in what is left of p before stepping over it.
type pickleScanner struct {
	p []byte
	i int
}

// need checks that n more bytes are left after the offset.
func (s *pickleScanner) need(n uint64) error {
	if n > uint64(len(s.p)-s.i) {
		return fmt.Errorf("pickle: argument of %d bytes at offset %d runs past the end (%d bytes left)", n, s.i, len(s.p)-s.i)
	}
	return nil
}

// line steps over a newline-terminated argument.
func (s *pickleScanner) line() error {
	j := bytes.IndexByte(s.p[s.i:], '\n')
	if j < 0 {
		return fmt.Errorf("pickle: unterminated line argument at offset %d", s.i)
	}
	s.i += j + 1
	return nil
}

// fixed steps over an argument of n bytes.
func (s *pickleScanner) fixed(n int) error {
	if err := s.need(uint64(n)); err != nil {
		return err
	}
	s.i += n
	return nil
}

// counted steps over a length of width bytes (little-endian) and the bytes
// it counts.
func (s *pickleScanner) counted(width int, signed bool) error {
	if err := s.need(uint64(width)); err != nil {
		return err
	}
	var n uint64
	switch width {
	case 1:
		n = uint64(s.p[s.i])
	case 4:
		v := binary.LittleEndian.Uint32(s.p[s.i:])
		if signed && int32(v) < 0 {
			return fmt.Errorf("pickle: negative length at offset %d", s.i)
		}
		n = uint64(v)
	case 8:
		n = binary.LittleEndian.Uint64(s.p[s.i:])
	}
	s.i += width
	if err := s.need(n); err != nil {
		return err
	}
	s.i += int(n)
	return nil
}

// frame steps over a FRAME's 8-byte length, checking that the opcodes it
// covers are there (they are scanned one by one after it).
func (s *pickleScanner) frame() error {
	if err := s.need(8); err != nil {
		return err
	}
	n := binary.LittleEndian.Uint64(s.p[s.i:])
	s.i += 8
	return s.need(n)
}
