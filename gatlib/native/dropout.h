/* Dropout keep decisions (gatlib.ops.dropout) from a counter-based random stream: element i's
 * byte is byte i % 8 of word i / 8 of splitmix64's sequence from seed (each word a function of
 * its index alone, so threads share the work and the answer is the same whatever their number).
 *
 * The rule is gatlib.ops.dropout's: with p * 2^40 = a * 2^32 + b (a < 256), an element is dropped
 * when its byte u < a, kept when u > a, and on a tie (u == a) dropped when a 32-bit word of a
 * second stream (seed mixed with a constant, indexed by i) is below b; P(drop) = p to 2^-41.
 * Kept elements get `one` (or x * one), dropped ones 0. Returns 0, or GATLIB_BAD_THRESHOLD for a or b out of
 * range (nothing written). */

#ifndef GATLIB_KEEP_SHARED
#define GATLIB_KEEP_SHARED
#define KEEP_PARALLEL_MIN (1 << 16)

/* Word i of splitmix64's sequence from seed. */
static inline uint64_t keep_word(uint64_t seed, uint64_t i) {
    return mix64(seed + (i + 1) * 0x9E3779B97F4A7C15ULL);
}

/* Keep element i, whose byte ties with a: unless the 32-bit word i of the tie stream is below
 * b (always with b = 0, where p is a multiple of 1/256). */
static inline int keep_tie(uint64_t tie_seed, int64_t i, uint64_t b) {
    return b == 0 || (keep_word(tie_seed, (uint64_t)i) & 0xFFFFFFFFULL) >= b;
}

/* Blocks of KEEP_BLOCK words: the words of a block are made in one vectorised loop into a
 * buffer whose bytes, in memory order, are the block's elements' bytes (little-endian: byte j of
 * word w is element 8 w + j); a second vectorised loop compares them with a; the few ties
 * (1 in 256) are decided last. */
#define KEEP_BLOCK 256
#define KEEP_BODY(AT)                                                                         \
    do {                                                                                      \
        if ((uint64_t)a > 255 || (uint64_t)b > 0xFFFFFFFFULL) return GATLIB_BAD_THRESHOLD;    \
        const uint64_t s_ = (uint64_t)seed, t_ = mix64(s_ ^ 0xD1B54A32D192ED03ULL);           \
        const uint8_t a8 = (uint8_t)a;                                                        \
        const int64_t nb_ = (n + 8 * KEEP_BLOCK - 1) / (8 * KEEP_BLOCK);                      \
        _Pragma("omp parallel for num_threads(nthreads) schedule(static) if (n >= KEEP_PARALLEL_MIN)") \
        for (int64_t blk = 0; blk < nb_; ++blk) {                                             \
            uint64_t words[KEEP_BLOCK];                                                       \
            const uint8_t *u = (const uint8_t *)words;                                        \
            const int64_t i0 = blk * 8 * KEEP_BLOCK;                                          \
            const int64_t m = n - i0 < 8 * KEEP_BLOCK ? n - i0 : 8 * KEEP_BLOCK;              \
            const uint64_t w0 = (uint64_t)blk * KEEP_BLOCK;                                   \
            _Pragma("omp simd")                                                               \
            for (int w = 0; w < KEEP_BLOCK; ++w) words[w] = keep_word(s_, w0 + (uint64_t)w);  \
            int ties = 0;                                                                     \
            _Pragma("omp simd reduction(|:ties)")                                             \
            for (int64_t j = 0; j < m; ++j) {                                                 \
                out[i0 + j] = u[j] > a8 ? AT(i0 + j) : 0;                                     \
                ties |= u[j] == a8;                                                           \
            }                                                                                 \
            if (ties)                                                                         \
                for (int64_t w = 0; w < (m + 7) / 8; ++w) {                                   \
                    /* words with a byte equal to a (a zero byte of words[w] ^ a..a; the test   \
                     * may flag more bytes than tie, each is checked) */                       \
                    const uint64_t v = words[w] ^ (0x0101010101010101ULL * a8);               \
                    if (!((v - 0x0101010101010101ULL) & ~v & 0x8080808080808080ULL)) continue; \
                    for (int64_t j = 8 * w; j < 8 * w + 8 && j < m; ++j)                       \
                        if (u[j] == a8 && keep_tie(t_, i0 + j, (uint64_t)b))                  \
                            out[i0 + j] = AT(i0 + j);                                         \
                }                                                                             \
        }                                                                                     \
        return GATLIB_OK;                                                                     \
    } while (0)

/* Keep flags as bytes (1 keep, 0 drop): a bool mask. */
#define KEEP_ONE(i) 1
int gatlib_keep_bytes(int64_t n, int64_t seed, int64_t a, int64_t b, uint8_t *out, int nthreads) {
    KEEP_BODY(KEEP_ONE);
}
#undef KEEP_ONE
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUFFIX)

/* Dropout's factor: `one` (1 / (1 - p)) where kept, 0 where dropped. */
#define KEEP_FACTOR(i) one
int FN(gatlib_keep_factor)(int64_t n, int64_t seed, int64_t a, int64_t b, REAL one, REAL *out,
                           int nthreads) {
    KEEP_BODY(KEEP_FACTOR);
}
#undef KEEP_FACTOR

/* Dropout applied: out = x * one where kept, 0 where dropped (out is not x: ties read x last).
 * The same seed gives the same mask, so the backward pass applies it to the gradient again
 * instead of keeping it. */
#define KEEP_SCALED(i) (x[i] * one)
int FN(gatlib_dropout)(int64_t n, int64_t seed, int64_t a, int64_t b, REAL one, const REAL *x,
                       REAL *out, int nthreads) {
    KEEP_BODY(KEEP_SCALED);
}
#undef KEEP_SCALED

#undef FN
#undef CAT
#undef CAT_
