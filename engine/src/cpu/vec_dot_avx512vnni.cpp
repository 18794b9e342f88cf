// AVX512-VNNI decode kernels: the AVX2 kernel file compiled again with
// -mavx512vnni -mavx512vl, its unsigned x signed byte dot (maddubs + madd) done
// by one vpdpbusd (Q4_0/Q5_0/Q8_0 and Q4_1/Q5_1 x Q8). Chosen at run time by matmul.cpp.
#define GB_VEC_DOT_VNNI 1
#define GB_VEC_DOT_KERNELS avx512vnni_kernels
#include "cpu/vec_dot_avx2.cpp"
