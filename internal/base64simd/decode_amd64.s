//go:build amd64 && !purego

#include "textflag.h"

// Per 128-bit lane (VPSHUFB looks up within lanes), the tables of the method: a character
// c is in the alphabet exactly when lut_lo[c & 15] & lut_hi[c >> 4] is zero; adding
// lut_roll[(c >> 4) - (c == '/')] turns it into its 6-bit value.
DATA lutlo<>+0(SB)/8, $0x1111111111111115
DATA lutlo<>+8(SB)/8, $0x1a1b1b1b1a131111
DATA lutlo<>+16(SB)/8, $0x1111111111111115
DATA lutlo<>+24(SB)/8, $0x1a1b1b1b1a131111
GLOBL lutlo<>(SB), RODATA|NOPTR, $32

DATA luthi<>+0(SB)/8, $0x0804080402011010
DATA luthi<>+8(SB)/8, $0x1010101010101010
DATA luthi<>+16(SB)/8, $0x0804080402011010
DATA luthi<>+24(SB)/8, $0x1010101010101010
GLOBL luthi<>(SB), RODATA|NOPTR, $32

// 0, 16, 19, 4, -65, -65, -71, -71, then zeros
DATA lutroll<>+0(SB)/8, $0xb9b9bfbf04131000
DATA lutroll<>+8(SB)/8, $0x0000000000000000
DATA lutroll<>+16(SB)/8, $0xb9b9bfbf04131000
DATA lutroll<>+24(SB)/8, $0x0000000000000000
GLOBL lutroll<>(SB), RODATA|NOPTR, $32

DATA nib<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nib<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nib<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nib<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nib<>(SB), RODATA|NOPTR, $32

DATA slash<>+0(SB)/8, $0x2f2f2f2f2f2f2f2f
DATA slash<>+8(SB)/8, $0x2f2f2f2f2f2f2f2f
DATA slash<>+16(SB)/8, $0x2f2f2f2f2f2f2f2f
DATA slash<>+24(SB)/8, $0x2f2f2f2f2f2f2f2f
GLOBL slash<>(SB), RODATA|NOPTR, $32

// VPMADDUBSW by 0x40, 0x01 pairs: two 6-bit values into 12 bits; VPMADDWD by 0x1000,
// 0x0001 pairs: two 12-bit values into 24.
DATA madd1<>+0(SB)/8, $0x0140014001400140
DATA madd1<>+8(SB)/8, $0x0140014001400140
DATA madd1<>+16(SB)/8, $0x0140014001400140
DATA madd1<>+24(SB)/8, $0x0140014001400140
GLOBL madd1<>(SB), RODATA|NOPTR, $32

DATA madd2<>+0(SB)/8, $0x0001100000011000
DATA madd2<>+8(SB)/8, $0x0001100000011000
DATA madd2<>+16(SB)/8, $0x0001100000011000
DATA madd2<>+24(SB)/8, $0x0001100000011000
GLOBL madd2<>(SB), RODATA|NOPTR, $32

// Each 32-bit lane's three bytes, big-endian first, packed to 12 bytes per 128-bit lane.
DATA pack<>+0(SB)/8, $0x090a040506000102
DATA pack<>+8(SB)/8, $0xffffffff0c0d0e08
DATA pack<>+16(SB)/8, $0x090a040506000102
DATA pack<>+24(SB)/8, $0xffffffff0c0d0e08
GLOBL pack<>(SB), RODATA|NOPTR, $32

// The two lanes' 12 bytes side by side: dwords 0, 1, 2, 4, 5, 6.
DATA lanes<>+0(SB)/4, $0
DATA lanes<>+4(SB)/4, $1
DATA lanes<>+8(SB)/4, $2
DATA lanes<>+12(SB)/4, $4
DATA lanes<>+16(SB)/4, $5
DATA lanes<>+20(SB)/4, $6
DATA lanes<>+24(SB)/4, $7
DATA lanes<>+28(SB)/4, $7
GLOBL lanes<>(SB), RODATA|NOPTR, $32

// func decodeAVX2(dst, src *byte, n int) int
TEXT ·decodeAVX2(SB), NOSPLIT, $0-32
	MOVQ    dst+0(FP), DI
	MOVQ    src+8(FP), SI
	MOVQ    n+16(FP), CX
	XORQ    AX, AX
	VMOVDQU lutlo<>(SB), Y8
	VMOVDQU luthi<>(SB), Y9
	VMOVDQU lutroll<>(SB), Y10
	VMOVDQU nib<>(SB), Y11
	VMOVDQU slash<>(SB), Y12
	VMOVDQU madd1<>(SB), Y13
	VMOVDQU madd2<>(SB), Y14
	VMOVDQU pack<>(SB), Y15
	VMOVDQU lanes<>(SB), Y7

loop:
	CMPQ     AX, CX
	JGE      done
	VMOVDQU  (SI), Y0
	VPSRLD   $4, Y0, Y1
	VPAND    Y11, Y1, Y1     // high nibbles
	VPAND    Y11, Y0, Y2     // low nibbles
	VPSHUFB  Y2, Y8, Y3
	VPSHUFB  Y1, Y9, Y4
	VPTEST   Y3, Y4
	JNZ      done            // a character outside the alphabet
	VPCMPEQB Y12, Y0, Y5     // '/'
	VPADDB   Y5, Y1, Y5
	VPSHUFB  Y5, Y10, Y5
	VPADDB   Y5, Y0, Y0      // 6-bit values
	VPMADDUBSW Y13, Y0, Y0
	VPMADDWD Y14, Y0, Y0
	VPSHUFB  Y15, Y0, Y0
	VPERMD   Y0, Y7, Y0
	VMOVDQU  Y0, (DI)
	ADDQ     $32, SI
	ADDQ     $24, DI
	INCQ     AX
	JMP      loop

done:
	VZEROUPPER
	MOVQ AX, ret+24(FP)
	RET
