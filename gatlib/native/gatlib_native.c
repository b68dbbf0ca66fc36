/* gatlib's native CPU code: the fused attention kernels (attention.h), GATv2's score
 * (gatv2.h), the CSR builder (csr.h), a hop of neighbour sampling (sample.h) and dropout's keep
 * decisions (dropout.h). Built at first use by gatlib/native/__init__.py with
 * the system's C compiler; without one gatlib runs on torch's kernels instead. Plain C99, no
 * Python or torch headers: the functions take raw pointers through ctypes, each declared once
 * in gatlib/native/abi.py (a test compares that table with the prototypes here).
 *
 * Every index is checked where it is read: an offset outside [0, E] or falling, a node or edge
 * id outside its range returns a negative status (below) naming the array, never a read or a
 * write out of bounds. The lengths of the arrays themselves are checked by abi.py before the
 * call. */
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

/* The score kinds, gatlib.native.abi.ScoreKind (shared with the CPU backend and Triton). */
enum { KIND_GAT = 0, KIND_DOT = 1, KIND_ATTEND = 2 };

/* The status codes of the kernels, gatlib.native.abi.STATUS: 0, or what was wrong. */
enum {
    GATLIB_OK = 0,
    GATLIB_NO_MEMORY = -1,
    GATLIB_BAD_ROWPTR = -2,
    GATLIB_BAD_COL = -3,
    GATLIB_BAD_PERM = -4,
    GATLIB_BAD_ROWPTR_T = -5,
    GATLIB_BAD_COL_T = -6,
    GATLIB_BAD_PERM_T = -7,
    GATLIB_BAD_DEGREE = -8,
    GATLIB_BAD_FRONTIER = -9,
    GATLIB_BAD_CAPACITY = -10,
    GATLIB_BAD_THRESHOLD = -11
};

#define UNLIKELY(x) __builtin_expect(!!(x), 0)
/* x outside [0, n) (one unsigned compare also catches a negative x) */
#define OUTSIDE(x, n) UNLIKELY((uint64_t)(x) >= (uint64_t)(n))
/* return code when the index x is outside [0, n) */
#define CHECK_INDEX(x, n, code) do { if (OUTSIDE(x, n)) return (code); } while (0)
/* j = col[p] and e = perm[p], or return the status of the one outside [0, S) or [0, E) */
#define READ_EDGE(col, perm, p, S, E, j, e)                                               \
    do {                                                                                  \
        j = (col)[p];                                                                     \
        e = (perm)[p];                                                                    \
        CHECK_INDEX(j, S, GATLIB_BAD_COL);                                                \
        CHECK_INDEX(e, E, GATLIB_BAD_PERM);                                               \
    } while (0)
/* p0 = ptr[i], n = ptr[i + 1] - p0, or return code unless 0 <= ptr[i] <= ptr[i + 1] <= E */
#define ROW(ptr, i, E, p0, n, code)                                                       \
    do {                                                                                  \
        const int64_t a_ = (ptr)[i], b_ = (ptr)[(i) + 1];                                 \
        if (UNLIKELY((uint64_t)a_ > (uint64_t)b_ || (uint64_t)b_ > (uint64_t)(E)))         \
            return (code);                                                                \
        p0 = a_;                                                                          \
        n = b_ - a_;                                                                      \
    } while (0)

/* The ABI version gatlib/native/abi.py checks before using the library. */
int gatlib_native_version(void) { return 11; }

/* splitmix64's output function: a bijective mix of the 64 bits of z (the random streams of
 * sample.h and dropout.h). */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

#include "csr.h"
#include "sample.h"

#define REAL float
#define SUFFIX _f32
#define EXP expf
#define LOG logf
#include "attention.h"
#include "gatv2.h"
#include "dropout.h"
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
#include "dropout.h"
#undef REAL
#undef SUFFIX
#undef EXP
#undef LOG
