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
	i := 0
	marks := 0
	need := func(n uint64) error {
		if n > uint64(len(p)-i) {
			return fmt.Errorf("pickle: argument of %d bytes at offset %d runs past the end (%d bytes left)", n, i, len(p)-i)
		}
		return nil
	}
	line := func() error {
		j := bytes.IndexByte(p[i:], '\n')
		if j < 0 {
			return fmt.Errorf("pickle: unterminated line argument at offset %d", i)
		}
		i += j + 1
		return nil
	}
	fixed := func(n int) error {
		if err := need(uint64(n)); err != nil {
			return err
		}
		i += n
		return nil
	}
	counted := func(width int, signed bool) error {
		if err := need(uint64(width)); err != nil {
			return err
		}
		var n uint64
		switch width {
		case 1:
			n = uint64(p[i])
		case 4:
			v := binary.LittleEndian.Uint32(p[i:])
			if signed && int32(v) < 0 {
				return fmt.Errorf("pickle: negative length at offset %d", i)
			}
			n = uint64(v)
		case 8:
			n = binary.LittleEndian.Uint64(p[i:])
		}
		i += width
		if err := need(n); err != nil {
			return err
		}
		i += int(n)
		return nil
	}
	for i < len(p) {
		op := p[i]
		at := i
		i++
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
			err = line()
		case 'c', 'i':
			if err = line(); err == nil {
				err = line()
			}
		case 'K', 'h', 'q', 0x80, 0x82:
			err = fixed(1)
		case 'M', 0x83:
			err = fixed(2)
		case 'J', 'j', 'r', 0x84:
			err = fixed(4)
		case 'G':
			err = fixed(8)
		case 'U', 'C', 0x8c, 0x8a:
			err = counted(1, false)
		case 'T', 0x8b:
			err = counted(4, true)
		case 'X', 'B':
			err = counted(4, false)
		case 0x8d, 0x8e, 0x96:
			err = counted(8, false)
		case 0x95: // FRAME: its length covers opcodes that follow
			if err = need(8); err == nil {
				n := binary.LittleEndian.Uint64(p[i:])
				i += 8
				err = need(n)
			}
		default:
			return fmt.Errorf("pickle: unknown opcode 0x%02x at offset %d", op, at)
		}
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("pickle: no STOP opcode (truncated data.pkl?)")
}
