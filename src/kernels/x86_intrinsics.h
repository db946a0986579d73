// <immintrin.h> for the hand-written x86 kernels (int_matmul_x86.cpp, int_matmul_tiles_x86.cpp).
//
// GCC 12's AVX-512 headers start unpack/shuffle/permute intrinsics from _mm512_undefined_*(),
// written as the self-initialization `__m512i __Y = __Y;`; once inlined, GCC reports that as "may
// be used uninitialized" (GCC bug 105593, fixed in GCC 13). The value is never read, so the
// warning is silenced in the files that include this header, and only there.
#pragma once
#include <immintrin.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
