//go:build amd64 && !purego

#include "textflag.h"

// AVX2 kernels of the fixed-point resampling passes of preprocess/resample.go. Pillow's sums are
// int32: acc = 1<<21 + Σ pixel·k, out = clip8(acc >> 22). Every product and every true sum
// fits in int32 and int32 addition wraps the same in any order, so summing in 32-bit
// lanes (VPMOVZXBD, VPMULLD, VPADDD) in any order gives Pillow's bytes; VPSRAD then
// VPACKSSDW + VPACKUSWB is clip8 (signed saturation to int16, then to 0..255).

// Rows offsets (resamplesimd_amd64.go).
#define A_SRC0 0
#define A_SRC1 8
#define A_SRC2 16
#define A_SRC3 24
#define A_DST0 32
#define A_DST1 40
#define A_DST2 48
#define A_DST3 56
#define A_XMIN 64
#define A_CNT 72
#define A_K 80
#define A_KPS 88
#define A_N 96
#define A_PS 104

// Per pixel size, four int32 × 8 vectors: the VPERMD indices that spread weights
// k0 k1 k2 k3 (lanes 4..7 zero) over the lanes of the load at pixel p (k0, k1) and at
// pixel p+2 (k2, k3); the VPERMD indices that fold the two pixels' sums onto lanes 0..2;
// the starting sums (1<<21 once per channel).
// 3 bytes: a load at pixel p is R G B R G B R G of pixels p, p+1, p+2; the last two lanes
// get weight 0 (lane 4 of the weights).
DATA tab3<>+0(SB)/4, $0
DATA tab3<>+4(SB)/4, $0
DATA tab3<>+8(SB)/4, $0
DATA tab3<>+12(SB)/4, $1
DATA tab3<>+16(SB)/4, $1
DATA tab3<>+20(SB)/4, $1
DATA tab3<>+24(SB)/4, $4
DATA tab3<>+28(SB)/4, $4
DATA tab3<>+32(SB)/4, $2
DATA tab3<>+36(SB)/4, $2
DATA tab3<>+40(SB)/4, $2
DATA tab3<>+44(SB)/4, $3
DATA tab3<>+48(SB)/4, $3
DATA tab3<>+52(SB)/4, $3
DATA tab3<>+56(SB)/4, $4
DATA tab3<>+60(SB)/4, $4
DATA tab3<>+64(SB)/4, $3
DATA tab3<>+68(SB)/4, $4
DATA tab3<>+72(SB)/4, $5
DATA tab3<>+76(SB)/4, $7
DATA tab3<>+80(SB)/4, $7
DATA tab3<>+84(SB)/4, $7
DATA tab3<>+88(SB)/4, $7
DATA tab3<>+92(SB)/4, $7
DATA tab3<>+96(SB)/4, $0x200000
DATA tab3<>+100(SB)/4, $0x200000
DATA tab3<>+104(SB)/4, $0x200000
DATA tab3<>+108(SB)/4, $0
DATA tab3<>+112(SB)/4, $0
DATA tab3<>+116(SB)/4, $0
DATA tab3<>+120(SB)/4, $0
DATA tab3<>+124(SB)/4, $0
GLOBL tab3<>(SB), RODATA|NOPTR, $128

// 4 bytes: a load at pixel p is R G B X R G B X of pixels p, p+1 (X summed, unused).
DATA tab4<>+0(SB)/4, $0
DATA tab4<>+4(SB)/4, $0
DATA tab4<>+8(SB)/4, $0
DATA tab4<>+12(SB)/4, $0
DATA tab4<>+16(SB)/4, $1
DATA tab4<>+20(SB)/4, $1
DATA tab4<>+24(SB)/4, $1
DATA tab4<>+28(SB)/4, $1
DATA tab4<>+32(SB)/4, $2
DATA tab4<>+36(SB)/4, $2
DATA tab4<>+40(SB)/4, $2
DATA tab4<>+44(SB)/4, $2
DATA tab4<>+48(SB)/4, $3
DATA tab4<>+52(SB)/4, $3
DATA tab4<>+56(SB)/4, $3
DATA tab4<>+60(SB)/4, $3
DATA tab4<>+64(SB)/4, $4
DATA tab4<>+68(SB)/4, $5
DATA tab4<>+72(SB)/4, $6
DATA tab4<>+76(SB)/4, $7
DATA tab4<>+80(SB)/4, $4
DATA tab4<>+84(SB)/4, $5
DATA tab4<>+88(SB)/4, $6
DATA tab4<>+92(SB)/4, $7
DATA tab4<>+96(SB)/4, $0x200000
DATA tab4<>+100(SB)/4, $0x200000
DATA tab4<>+104(SB)/4, $0x200000
DATA tab4<>+108(SB)/4, $0x200000
DATA tab4<>+112(SB)/4, $0
DATA tab4<>+116(SB)/4, $0
DATA tab4<>+120(SB)/4, $0
DATA tab4<>+124(SB)/4, $0
GLOBL tab4<>(SB), RODATA|NOPTR, $128

// 1 byte: the starting sum in lane 0 only (lanes are folded into one sum); then the
// VPERMD indices that put VRow's packed dwords back in order.
DATA tab1<>+0(SB)/4, $0x200000
DATA tab1<>+4(SB)/4, $0
DATA tab1<>+8(SB)/4, $0
DATA tab1<>+12(SB)/4, $0
DATA tab1<>+16(SB)/4, $0
DATA tab1<>+20(SB)/4, $0
DATA tab1<>+24(SB)/4, $0
DATA tab1<>+28(SB)/4, $0
DATA tab1<>+32(SB)/4, $0
DATA tab1<>+36(SB)/4, $4
DATA tab1<>+40(SB)/4, $1
DATA tab1<>+44(SB)/4, $5
DATA tab1<>+48(SB)/4, $2
DATA tab1<>+52(SB)/4, $6
DATA tab1<>+56(SB)/4, $3
DATA tab1<>+60(SB)/4, $7
GLOBL tab1<>(SB), RODATA|NOPTR, $64

// One source row's step in HRows: pixels at offsets AX and DX (= AX + 2·ps) of row
// SRC, weights in Y5 (pixels p, p+1) and Y6 (p+2, p+3), into ACC.
#define HSTEP(SRC, ACC) \
	VPMOVZXBD (SRC)(AX*1), Y7 \
	VPMOVZXBD (SRC)(DX*1), Y8 \
	VPMULLD   Y5, Y7, Y7      \
	VPMULLD   Y6, Y8, Y8      \
	VPADDD    Y7, ACC, ACC    \
	VPADDD    Y8, ACC, ACC

// Store the low 3 bytes of R at 3·i (DI) of the output row whose pointer is at OFF(SI);
// R is then shifted right by 32 in all, bringing the next row's bytes down.
#define STORE3(OFF, R) \
	MOVQ OFF(SI), BX         \
	MOVW R, (BX)(DX*1)       \
	SHRQ $16, R              \
	MOVB R, 2(BX)(DX*1)      \
	SHRQ $16, R

// func HRows(a *Rows)
TEXT ·HRows(SB), NOSPLIT, $0-8
	MOVQ a+0(FP), SI
	MOVQ A_SRC0(SI), R8
	MOVQ A_SRC1(SI), R9
	MOVQ A_SRC2(SI), R10
	MOVQ A_SRC3(SI), R11
	MOVQ A_PS(SI), R12
	LEAQ tab4<>(SB), AX
	CMPQ R12, $3
	JNE  tables
	LEAQ tab3<>(SB), AX

tables:
	VMOVDQU 0(AX), Y12
	VMOVDQU 32(AX), Y13
	VMOVDQU 64(AX), Y14
	VMOVDQU 96(AX), Y15
	MOVQ    R12, R13
	SHLQ    $2, R13     // bytes per step of four pixels
	XORQ    DI, DI      // output index

output:
	CMPQ    DI, A_N(SI)
	JGE     done
	MOVQ    A_XMIN(SI), AX
	MOVLQSX (AX)(DI*4), AX
	IMULQ   R12, AX             // AX = xmin·ps
	LEAQ    (AX)(R12*2), DX     // DX = AX + 2·ps
	MOVQ    A_CNT(SI), CX
	MOVLQSX (CX)(DI*4), CX
	ADDQ    $3, CX
	SHRQ    $2, CX              // steps of four taps
	MOVQ    A_KPS(SI), BX
	IMULQ   DI, BX
	SHLQ    $2, BX
	ADDQ    A_K(SI), BX         // weights of output DI
	VMOVDQA Y15, Y0
	VMOVDQA Y15, Y1
	VMOVDQA Y15, Y2
	VMOVDQA Y15, Y3
	TESTQ   CX, CX
	JZ      fold

step:
	VMOVDQU (BX), X4            // k0..k3; lanes 4..7 zeroed
	VPERMD  Y4, Y12, Y5
	VPERMD  Y4, Y13, Y6
	HSTEP(R8, Y0)
	HSTEP(R9, Y1)
	HSTEP(R10, Y2)
	HSTEP(R11, Y3)
	ADDQ    R13, AX
	ADDQ    R13, DX
	ADDQ    $16, BX
	DECQ    CX
	JNZ     step

fold:
	VPERMD       Y0, Y14, Y7
	VPADDD       Y7, Y0, Y0
	VPERMD       Y1, Y14, Y7
	VPADDD       Y7, Y1, Y1
	VPERMD       Y2, Y14, Y7
	VPADDD       Y7, Y2, Y2
	VPERMD       Y3, Y14, Y7
	VPADDD       Y7, Y3, Y3
	VINSERTI128  $1, X1, Y0, Y0 // rows 0 | 1
	VINSERTI128  $1, X3, Y2, Y2 // rows 2 | 3
	VPSRAD       $22, Y0, Y0
	VPSRAD       $22, Y2, Y2
	VPACKSSDW    Y2, Y0, Y0     // words: rows 0, 2 | rows 1, 3
	VPACKUSWB    Y0, Y0, Y0     // bytes: rows 0, 2, 0, 2 | 1, 3, 1, 3
	VMOVQ        X0, AX
	VEXTRACTI128 $1, Y0, X0
	VMOVQ        X0, CX
	LEAQ         (DI)(DI*2), DX
	STORE3(A_DST0, AX)
	STORE3(A_DST2, AX)
	STORE3(A_DST1, CX)
	STORE3(A_DST3, CX)
	INCQ         DI
	JMP          output

done:
	VZEROUPPER
	RET

// One source row's step in HRows1: eight pixels at offset AX of row SRC, weights in
// Y4, into ACC.
#define HSTEP1(SRC, ACC) \
	VPMOVZXBD (SRC)(AX*1), Y5 \
	VPMULLD   Y4, Y5, Y5      \
	VPADDD    Y5, ACC, ACC

// Store byte 0 of R at i (DI) of the output row whose pointer is at OFF(SI), then shift
// the next row's byte down.
#define STORE1(OFF, R) \
	MOVQ OFF(SI), BX   \
	MOVB R, (BX)(DI*1) \
	SHRL $8, R

// func HRows1(a *Rows)
TEXT ·HRows1(SB), NOSPLIT, $0-8
	MOVQ    a+0(FP), SI
	MOVQ    A_SRC0(SI), R8
	MOVQ    A_SRC1(SI), R9
	MOVQ    A_SRC2(SI), R10
	MOVQ    A_SRC3(SI), R11
	VMOVDQU tab1<>+0(SB), Y15
	XORQ    DI, DI

output1:
	CMPQ    DI, A_N(SI)
	JGE     done1
	MOVQ    A_XMIN(SI), AX
	MOVLQSX (AX)(DI*4), AX
	MOVQ    A_CNT(SI), CX
	MOVLQSX (CX)(DI*4), CX
	ADDQ    $7, CX
	SHRQ    $3, CX              // steps of eight taps
	MOVQ    A_KPS(SI), BX
	IMULQ   DI, BX
	SHLQ    $2, BX
	ADDQ    A_K(SI), BX
	VMOVDQA Y15, Y0
	VMOVDQA Y15, Y1
	VMOVDQA Y15, Y2
	VMOVDQA Y15, Y3
	TESTQ   CX, CX
	JZ      fold1

step1:
	VMOVDQU (BX), Y4
	HSTEP1(R8, Y0)
	HSTEP1(R9, Y1)
	HSTEP1(R10, Y2)
	HSTEP1(R11, Y3)
	ADDQ    $8, AX
	ADDQ    $32, BX
	DECQ    CX
	JNZ     step1

fold1:
	VPHADDD      Y1, Y0, Y0 // a01 a23 b01 b23 | a45 a67 b45 b67
	VPHADDD      Y3, Y2, Y2 // c.. d..
	VPHADDD      Y2, Y0, Y0 // a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7
	VEXTRACTI128 $1, Y0, X1
	VPADDD       X1, X0, X0
	VPSRAD       $22, X0, X0
	VPACKSSDW    X0, X0, X0
	VPACKUSWB    X0, X0, X0
	VMOVD        X0, AX
	STORE1(A_DST0, AX)
	STORE1(A_DST1, AX)
	STORE1(A_DST2, AX)
	STORE1(A_DST3, AX)
	INCQ         DI
	JMP          output1

done1:
	VZEROUPPER
	RET

// func VRow(dst, src *byte, n int, k *int32, cnt int)
TEXT ·VRow(SB), NOSPLIT, $0-40
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), DX
	MOVQ         k+24(FP), R8
	MOVQ         cnt+32(FP), R9
	VPBROADCASTD tab1<>+0(SB), Y15
	VMOVDQU      tab1<>+32(SB), Y14
	XORQ         BX, BX          // byte offset in the row
	CMPQ         DX, $32
	JLT          narrow

wide:
	LEAQ    (SI)(BX*1), R10
	MOVQ    R8, R11
	MOVQ    R9, CX
	VMOVDQA Y15, Y0
	VMOVDQA Y15, Y1
	VMOVDQA Y15, Y2
	VMOVDQA Y15, Y3
	TESTQ   CX, CX
	JZ      widepack

widetap:
	VPBROADCASTD (R11), Y4
	VPMOVZXBD    (R10), Y5
	VPMOVZXBD    8(R10), Y6
	VPMOVZXBD    16(R10), Y7
	VPMOVZXBD    24(R10), Y8
	VPMULLD      Y4, Y5, Y5
	VPMULLD      Y4, Y6, Y6
	VPMULLD      Y4, Y7, Y7
	VPMULLD      Y4, Y8, Y8
	VPADDD       Y5, Y0, Y0
	VPADDD       Y6, Y1, Y1
	VPADDD       Y7, Y2, Y2
	VPADDD       Y8, Y3, Y3
	ADDQ         DX, R10
	ADDQ         $4, R11
	DECQ         CX
	JNZ          widetap

widepack:
	VPSRAD    $22, Y0, Y0
	VPSRAD    $22, Y1, Y1
	VPSRAD    $22, Y2, Y2
	VPSRAD    $22, Y3, Y3
	VPACKSSDW Y1, Y0, Y0     // a0-3 b0-3 | a4-7 b4-7
	VPACKSSDW Y3, Y2, Y2     // c0-3 d0-3 | c4-7 d4-7
	VPACKUSWB Y2, Y0, Y0     // dwords a0-3 b0-3 c0-3 d0-3 a4-7 b4-7 c4-7 d4-7
	VPERMD    Y0, Y14, Y0    // a0-7 b0-7 c0-7 d0-7
	VMOVDQU   Y0, (DI)(BX*1)
	ADDQ      $32, BX
	MOVQ      DX, AX
	SUBQ      BX, AX
	CMPQ      AX, $32
	JGE       wide
	TESTQ     AX, AX
	JZ        vdone
	MOVQ      DX, BX
	SUBQ      $32, BX         // the last 32 bytes, overlapping the previous chunk
	JMP       wide

narrow:
	LEAQ    (SI)(BX*1), R10
	MOVQ    R8, R11
	MOVQ    R9, CX
	VMOVDQA Y15, Y0
	TESTQ   CX, CX
	JZ      narrowpack

narrowtap:
	VPBROADCASTD (R11), Y4
	VPMOVZXBD    (R10), Y5
	VPMULLD      Y4, Y5, Y5
	VPADDD       Y5, Y0, Y0
	ADDQ         DX, R10
	ADDQ         $4, R11
	DECQ         CX
	JNZ          narrowtap

narrowpack:
	VPSRAD       $22, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPACKSSDW    X1, X0, X0  // a0-7
	VPACKUSWB    X0, X0, X0
	VMOVQ        X0, (DI)(BX*1)
	ADDQ         $8, BX
	MOVQ         DX, AX
	SUBQ         BX, AX
	CMPQ         AX, $8
	JGE          narrow
	TESTQ        AX, AX
	JZ           vdone
	MOVQ         DX, BX
	SUBQ         $8, BX           // the last 8 bytes, overlapping the previous chunk
	JMP          narrow

vdone:
	VZEROUPPER
	RET
