//go:build amd64 && !purego

#include "textflag.h"

// HRows8: the horizontal pass of resamplesimd_amd64.s (same sums, same bytes) over eight
// rows at once with AVX-512: per output, four taps per step, each row's four pixels as
// one 16-byte load widened to sixteen int32 lanes (12 of them used for 3-byte pixels) and
// one multiply, where the AVX2 kernel needs two of each for four rows. Eight rows share
// each step's weights and the per-output set-up. The sums of the four taps' lanes are
// folded with two-table permutes, two rows at a time and then four, into one register of
// four rows' R, G, B (and a zero or X) lanes, shifted and clipped as Pillow's clip8
// (VPSRAD, then max with 0 and unsigned saturation to a byte).

// Rows8 offsets (resamplesimd_amd64.go).
#define B_SRC 0
#define B_SSTRIDE 8
#define B_DST 16
#define B_DSTRIDE 24
#define B_XMIN 32
#define B_CNT 40
#define B_K 48
#define B_KPS 56
#define B_N 64
#define B_PS 72

// Per pixel size, six int32 × 16 vectors: the VPERMD indices that spread weights k0..k3
// (lanes 4.. zero) over a load's lanes; the two-table indices that fold two rows' sums
// (first table: a row, second: the next) to lanes 0..5 | 6..11 (3 bytes) or 0..7 | 8..15
// (4 bytes): tap pairs (0, 1) and (2, 3) of each row; the indices that fold two such
// registers to four rows of four lanes; the starting sums (1<<21 once per channel).
// Index 12 of a 3-byte fold is a lane whose weights are zero: it is zero.
DATA z3<>+0(SB)/4, $0
DATA z3<>+4(SB)/4, $0
DATA z3<>+8(SB)/4, $0
DATA z3<>+12(SB)/4, $1
DATA z3<>+16(SB)/4, $1
DATA z3<>+20(SB)/4, $1
DATA z3<>+24(SB)/4, $2
DATA z3<>+28(SB)/4, $2
DATA z3<>+32(SB)/4, $2
DATA z3<>+36(SB)/4, $3
DATA z3<>+40(SB)/4, $3
DATA z3<>+44(SB)/4, $3
DATA z3<>+48(SB)/4, $4
DATA z3<>+52(SB)/4, $4
DATA z3<>+56(SB)/4, $4
DATA z3<>+60(SB)/4, $4
DATA z3<>+64(SB)/4, $0
DATA z3<>+68(SB)/4, $1
DATA z3<>+72(SB)/4, $2
DATA z3<>+76(SB)/4, $3
DATA z3<>+80(SB)/4, $4
DATA z3<>+84(SB)/4, $5
DATA z3<>+88(SB)/4, $0x10
DATA z3<>+92(SB)/4, $0x11
DATA z3<>+96(SB)/4, $0x12
DATA z3<>+100(SB)/4, $0x13
DATA z3<>+104(SB)/4, $0x14
DATA z3<>+108(SB)/4, $0x15
DATA z3<>+112(SB)/4, $12
DATA z3<>+116(SB)/4, $12
DATA z3<>+120(SB)/4, $12
DATA z3<>+124(SB)/4, $12
DATA z3<>+128(SB)/4, $6
DATA z3<>+132(SB)/4, $7
DATA z3<>+136(SB)/4, $8
DATA z3<>+140(SB)/4, $9
DATA z3<>+144(SB)/4, $10
DATA z3<>+148(SB)/4, $11
DATA z3<>+152(SB)/4, $0x16
DATA z3<>+156(SB)/4, $0x17
DATA z3<>+160(SB)/4, $0x18
DATA z3<>+164(SB)/4, $0x19
DATA z3<>+168(SB)/4, $0x1a
DATA z3<>+172(SB)/4, $0x1b
DATA z3<>+176(SB)/4, $12
DATA z3<>+180(SB)/4, $12
DATA z3<>+184(SB)/4, $12
DATA z3<>+188(SB)/4, $12
DATA z3<>+192(SB)/4, $0
DATA z3<>+196(SB)/4, $1
DATA z3<>+200(SB)/4, $2
DATA z3<>+204(SB)/4, $12
DATA z3<>+208(SB)/4, $6
DATA z3<>+212(SB)/4, $7
DATA z3<>+216(SB)/4, $8
DATA z3<>+220(SB)/4, $12
DATA z3<>+224(SB)/4, $0x10
DATA z3<>+228(SB)/4, $0x11
DATA z3<>+232(SB)/4, $0x12
DATA z3<>+236(SB)/4, $12
DATA z3<>+240(SB)/4, $0x16
DATA z3<>+244(SB)/4, $0x17
DATA z3<>+248(SB)/4, $0x18
DATA z3<>+252(SB)/4, $12
DATA z3<>+256(SB)/4, $3
DATA z3<>+260(SB)/4, $4
DATA z3<>+264(SB)/4, $5
DATA z3<>+268(SB)/4, $12
DATA z3<>+272(SB)/4, $9
DATA z3<>+276(SB)/4, $10
DATA z3<>+280(SB)/4, $11
DATA z3<>+284(SB)/4, $12
DATA z3<>+288(SB)/4, $0x13
DATA z3<>+292(SB)/4, $0x14
DATA z3<>+296(SB)/4, $0x15
DATA z3<>+300(SB)/4, $12
DATA z3<>+304(SB)/4, $0x19
DATA z3<>+308(SB)/4, $0x1a
DATA z3<>+312(SB)/4, $0x1b
DATA z3<>+316(SB)/4, $12
DATA z3<>+320(SB)/4, $0x200000
DATA z3<>+324(SB)/4, $0x200000
DATA z3<>+328(SB)/4, $0x200000
DATA z3<>+332(SB)/4, $0
DATA z3<>+336(SB)/4, $0
DATA z3<>+340(SB)/4, $0
DATA z3<>+344(SB)/4, $0
DATA z3<>+348(SB)/4, $0
DATA z3<>+352(SB)/4, $0
DATA z3<>+356(SB)/4, $0
DATA z3<>+360(SB)/4, $0
DATA z3<>+364(SB)/4, $0
DATA z3<>+368(SB)/4, $0
DATA z3<>+372(SB)/4, $0
DATA z3<>+376(SB)/4, $0
DATA z3<>+380(SB)/4, $0
GLOBL z3<>(SB), RODATA|NOPTR, $384

DATA z4<>+0(SB)/4, $0
DATA z4<>+4(SB)/4, $0
DATA z4<>+8(SB)/4, $0
DATA z4<>+12(SB)/4, $0
DATA z4<>+16(SB)/4, $1
DATA z4<>+20(SB)/4, $1
DATA z4<>+24(SB)/4, $1
DATA z4<>+28(SB)/4, $1
DATA z4<>+32(SB)/4, $2
DATA z4<>+36(SB)/4, $2
DATA z4<>+40(SB)/4, $2
DATA z4<>+44(SB)/4, $2
DATA z4<>+48(SB)/4, $3
DATA z4<>+52(SB)/4, $3
DATA z4<>+56(SB)/4, $3
DATA z4<>+60(SB)/4, $3
DATA z4<>+64(SB)/4, $0
DATA z4<>+68(SB)/4, $1
DATA z4<>+72(SB)/4, $2
DATA z4<>+76(SB)/4, $3
DATA z4<>+80(SB)/4, $4
DATA z4<>+84(SB)/4, $5
DATA z4<>+88(SB)/4, $6
DATA z4<>+92(SB)/4, $7
DATA z4<>+96(SB)/4, $0x10
DATA z4<>+100(SB)/4, $0x11
DATA z4<>+104(SB)/4, $0x12
DATA z4<>+108(SB)/4, $0x13
DATA z4<>+112(SB)/4, $0x14
DATA z4<>+116(SB)/4, $0x15
DATA z4<>+120(SB)/4, $0x16
DATA z4<>+124(SB)/4, $0x17
DATA z4<>+128(SB)/4, $8
DATA z4<>+132(SB)/4, $9
DATA z4<>+136(SB)/4, $10
DATA z4<>+140(SB)/4, $11
DATA z4<>+144(SB)/4, $12
DATA z4<>+148(SB)/4, $13
DATA z4<>+152(SB)/4, $14
DATA z4<>+156(SB)/4, $15
DATA z4<>+160(SB)/4, $0x18
DATA z4<>+164(SB)/4, $0x19
DATA z4<>+168(SB)/4, $0x1a
DATA z4<>+172(SB)/4, $0x1b
DATA z4<>+176(SB)/4, $0x1c
DATA z4<>+180(SB)/4, $0x1d
DATA z4<>+184(SB)/4, $0x1e
DATA z4<>+188(SB)/4, $0x1f
DATA z4<>+192(SB)/4, $0
DATA z4<>+196(SB)/4, $1
DATA z4<>+200(SB)/4, $2
DATA z4<>+204(SB)/4, $3
DATA z4<>+208(SB)/4, $8
DATA z4<>+212(SB)/4, $9
DATA z4<>+216(SB)/4, $10
DATA z4<>+220(SB)/4, $11
DATA z4<>+224(SB)/4, $0x10
DATA z4<>+228(SB)/4, $0x11
DATA z4<>+232(SB)/4, $0x12
DATA z4<>+236(SB)/4, $0x13
DATA z4<>+240(SB)/4, $0x18
DATA z4<>+244(SB)/4, $0x19
DATA z4<>+248(SB)/4, $0x1a
DATA z4<>+252(SB)/4, $0x1b
DATA z4<>+256(SB)/4, $4
DATA z4<>+260(SB)/4, $5
DATA z4<>+264(SB)/4, $6
DATA z4<>+268(SB)/4, $7
DATA z4<>+272(SB)/4, $12
DATA z4<>+276(SB)/4, $13
DATA z4<>+280(SB)/4, $14
DATA z4<>+284(SB)/4, $15
DATA z4<>+288(SB)/4, $0x14
DATA z4<>+292(SB)/4, $0x15
DATA z4<>+296(SB)/4, $0x16
DATA z4<>+300(SB)/4, $0x17
DATA z4<>+304(SB)/4, $0x1c
DATA z4<>+308(SB)/4, $0x1d
DATA z4<>+312(SB)/4, $0x1e
DATA z4<>+316(SB)/4, $0x1f
DATA z4<>+320(SB)/4, $0x200000
DATA z4<>+324(SB)/4, $0x200000
DATA z4<>+328(SB)/4, $0x200000
DATA z4<>+332(SB)/4, $0
DATA z4<>+336(SB)/4, $0
DATA z4<>+340(SB)/4, $0
DATA z4<>+344(SB)/4, $0
DATA z4<>+348(SB)/4, $0
DATA z4<>+352(SB)/4, $0
DATA z4<>+356(SB)/4, $0
DATA z4<>+360(SB)/4, $0
DATA z4<>+364(SB)/4, $0
DATA z4<>+368(SB)/4, $0
DATA z4<>+372(SB)/4, $0
DATA z4<>+376(SB)/4, $0
DATA z4<>+380(SB)/4, $0
GLOBL z4<>(SB), RODATA|NOPTR, $384

// One source row's step: 16 bytes at ADDR widened, times the weights (Z8), into ACC.
#define ZSTEP(ADDR, T, ACC) \
	VPMOVZXBD ADDR, T    \
	VPMULLD   Z8, T, T   \
	VPADDD    T, ACC, ACC

// Fold rows A and B (their sums) into D, two tables' worth of lanes, with T spare.
#define ZFOLD(A, B, PIDX, QIDX, D, T) \
	VMOVDQA32 PIDX, D \
	VPERMI2D  B, A, D \
	VMOVDQA32 QIDX, T \
	VPERMI2D  B, A, T \
	VPADDD    T, D, D

// Store the low 3 bytes of R at ADDR, then bring the next row's 4 bytes down.
#define ZSTORE3(R, ADDR, ADDR2) \
	MOVW R, ADDR   \
	SHRQ $16, R    \
	MOVB R, ADDR2  \
	SHRQ $16, R

// func HRows8(a *Rows8)
//
// Registers: AX and DX the current pixel of rows 0 and 4, R9 and R10 the source stride
// and three times it, R11 and R8 the output row stride and three times it, R12 the pixel
// size and R13 four pixels' bytes, BX the weights, CX the steps left, DI the output.
TEXT ·HRows8(SB), NOSPLIT, $0-8
	MOVQ a+0(FP), SI
	MOVQ B_SSTRIDE(SI), R9
	LEAQ (R9)(R9*2), R10
	MOVQ B_DSTRIDE(SI), R11
	LEAQ (R11)(R11*2), R8
	MOVQ B_PS(SI), R12
	LEAQ z4<>(SB), AX
	CMPQ R12, $3
	JNE  ztables
	LEAQ z3<>(SB), AX

ztables:
	VMOVDQU32 0(AX), Z24
	VMOVDQU32 64(AX), Z25
	VMOVDQU32 128(AX), Z26
	VMOVDQU32 192(AX), Z27
	VMOVDQU32 256(AX), Z28
	VMOVDQU32 320(AX), Z29
	VPXORD    Z31, Z31, Z31
	LEAQ      (R12*4), R13
	XORQ      DI, DI

zoutput:
	CMPQ      DI, B_N(SI)
	JGE       zdone
	MOVQ      B_XMIN(SI), AX
	MOVLQSX   (AX)(DI*4), DX
	IMULQ     R12, DX
	MOVQ      B_SRC(SI), AX
	ADDQ      DX, AX           // row 0's pixel xmin
	LEAQ      (AX)(R9*4), DX   // row 4's
	MOVQ      B_CNT(SI), CX
	MOVLQSX   (CX)(DI*4), CX
	ADDQ      $3, CX
	SHRQ      $2, CX           // steps of four taps
	MOVQ      B_KPS(SI), BX
	IMULQ     DI, BX
	SHLQ      $2, BX
	ADDQ      B_K(SI), BX      // weights of output DI
	VMOVDQA32 Z29, Z0
	VMOVDQA32 Z29, Z1
	VMOVDQA32 Z29, Z2
	VMOVDQA32 Z29, Z3
	VMOVDQA32 Z29, Z4
	VMOVDQA32 Z29, Z5
	VMOVDQA32 Z29, Z6
	VMOVDQA32 Z29, Z7
	TESTQ     CX, CX
	JZ        zfold

zstep:
	VMOVDQU (BX), X8 // k0..k3; lanes 4..15 zeroed
	VPERMD  Z8, Z24, Z8
	ZSTEP((AX), Z9, Z0)
	ZSTEP((AX)(R9*1), Z10, Z1)
	ZSTEP((AX)(R9*2), Z11, Z2)
	ZSTEP((AX)(R10*1), Z12, Z3)
	ZSTEP((DX), Z13, Z4)
	ZSTEP((DX)(R9*1), Z14, Z5)
	ZSTEP((DX)(R9*2), Z15, Z6)
	ZSTEP((DX)(R10*1), Z16, Z7)
	ADDQ    R13, AX
	ADDQ    R13, DX
	ADDQ    $16, BX
	DECQ    CX
	JNZ     zstep

zfold:
	ZFOLD(Z0, Z1, Z25, Z26, Z17, Z18)
	ZFOLD(Z2, Z3, Z25, Z26, Z19, Z20)
	ZFOLD(Z4, Z5, Z25, Z26, Z21, Z22)
	ZFOLD(Z6, Z7, Z25, Z26, Z23, Z9)
	ZFOLD(Z17, Z19, Z27, Z28, Z0, Z1) // rows 0..3
	ZFOLD(Z21, Z23, Z27, Z28, Z2, Z3) // rows 4..7
	VPSRAD    $22, Z0, Z0
	VPSRAD    $22, Z2, Z2
	VPMAXSD   Z31, Z0, Z0
	VPMAXSD   Z31, Z2, Z2
	VPMOVUSDB Z0, X0
	VPMOVUSDB Z2, X2
	LEAQ      (DI)(DI*2), DX
	ADDQ      B_DST(SI), DX    // output DI of row 0
	VMOVQ     X0, AX
	VPEXTRQ   $1, X0, CX
	ZSTORE3(AX, (DX), 2(DX))
	ZSTORE3(AX, (DX)(R11*1), 2(DX)(R11*1))
	ZSTORE3(CX, (DX)(R11*2), 2(DX)(R11*2))
	ZSTORE3(CX, (DX)(R8*1), 2(DX)(R8*1))
	LEAQ      (DX)(R11*4), DX
	VMOVQ     X2, AX
	VPEXTRQ   $1, X2, CX
	ZSTORE3(AX, (DX), 2(DX))
	ZSTORE3(AX, (DX)(R11*1), 2(DX)(R11*1))
	ZSTORE3(CX, (DX)(R11*2), 2(DX)(R11*2))
	ZSTORE3(CX, (DX)(R8*1), 2(DX)(R8*1))
	INCQ      DI
	JMP       zoutput

zdone:
	VZEROUPPER
	RET
