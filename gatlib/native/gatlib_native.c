/* gatlib's native CPU code: the fused attention kernels (attention.h), GATv2's score
 * (gatv2.h) and the CSR builder (csr.h). Built at first use by gatlib/native/__init__.py with the system's C compiler; without
 * one gatlib runs on torch's kernels instead. Plain C99, no Python or torch headers: the
 * functions take raw pointers through ctypes. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef GATLIB_MVEC
/* glibc's vector math library (libmvec, at most 4 ulp from the exact result) for the loops
 * over a row's scores; without it each exp and log is a scalar call. */
#pragma omp declare simd notinbranch
extern float expf(float);
#pragma omp declare simd notinbranch
extern float logf(float);
#pragma omp declare simd notinbranch
extern double exp(double);
#pragma omp declare simd notinbranch
extern double log(double);
#endif

enum { KIND_ATTEND = 0, KIND_GAT = 1, KIND_DOT = 2 };

/* The ABI version native.py checks before using the library. */
int gatlib_native_version(void) { return 8; }

#include "csr.h"

#define REAL float
#define SUFFIX _f32
#define EXP expf
#define LOG logf
#include "attention.h"
#include "gatv2.h"
#undef REAL
#undef SUFFIX
#undef EXP
#undef LOG

#define REAL double
#define SUFFIX _f64
#define EXP exp
#define LOG log
#include "attention.h"
#include "gatv2.h"
#undef REAL
#undef SUFFIX
#undef EXP
#undef LOG
