package text

import (
	"testing"
	"unicode/utf8"
)

// The generated single-byte encodings (ftfyCharmapSUB, ftfyCharmapHigh,
// windows1252Undefined) expand to what the code pages define: 256 distinct
// characters each, Latin-1 the identity, and strict windows-1252 without
// exactly its five undefined bytes.
func TestCharmapTables(t *testing.T) {
	d := ftfyTables()
	for i, name := range ftfyCharmapNames {
		if n := utf8.RuneCountInString(ftfyCharmapHigh[i]); n != 128 {
			t.Fatalf("%s: %d characters for bytes 0x80-0xff", name, n)
		}
		if len(d.encoders[i]) != 256 {
			t.Errorf("%s: %d distinct characters, want 256", name, len(d.encoders[i]))
		}
	}
	for b, r := range d.charmaps[ftfyLatin1] {
		if r != rune(b) {
			t.Errorf("latin-1 byte %#x decodes to %U", b, r)
		}
	}
	for _, c := range []struct {
		enc  int
		b    byte
		want rune
	}{
		{ftfySloppy1252, 0x80, '€'}, {ftfySloppy1252, 0x1a, 0xfffd}, {ftfySloppy1252, 0x81, 0x81},
		{ftfySloppy1252, 0x9f, 'Ÿ'}, {9, 0xdb, '█'}, {8, 0xdb, '€'}, {2, 0xc0, 'А'},
	} {
		if got := d.charmaps[c.enc][c.b]; got != c.want {
			t.Errorf("%s byte %#x decodes to %U, want %U", ftfyCharmapNames[c.enc], c.b, got, c.want)
		}
	}
	for b, r := range d.strict1252 {
		undefined := b == 0x81 || b == 0x8d || b == 0x8f || b == 0x90 || b == 0x9d
		switch {
		case undefined && r != -1, !undefined && b < 0x80 && r != rune(b),
			!undefined && b >= 0x80 && r != d.charmaps[ftfySloppy1252][b]:
			t.Errorf("strict windows-1252 byte %#x decodes to %d", b, r)
		}
	}
}
