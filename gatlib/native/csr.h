/* The CSR view of a graph (gatlib.graph.GraphCSR's seven arrays) by two counting sorts, O(E + N),
 * shared out among up to nthreads threads.
 *
 * The edges are (src[e], dst[e]) for e < E; with loops != 0 the edges with src == dst are left out
 * and one loop (i, i) per node i < L follows the kept ones, as GraphCSR.with_self_loops() defines
 * the graph the attention layers use. The result's caller order is the kept edges in their order,
 * then the loops; keep[] receives the ids of the kept edges.
 *
 * Output (E' edges, T targets, S sources): rowptr [T + 1], col [E'], row [E'], perm [E'] (the
 * target-sorted order, stable: edges keep the caller's order within a target), rowptr_t [S + 1],
 * col_t [E'], perm_t [E'] (the source-sorted order of the target-sorted edges, stable). cnt is
 * scratch of (nthreads + 1) * (max(S, T) + 1) entries, pairs of 2 (E + L), read and written
 * before col_t and perm_t are: it may be their storage (gatlib passes them, adjacent).
 *
 * Parallel stable counting sort: the edges are cut into P = nthreads contiguous chunks; each
 * chunk counts its own keys (one histogram per chunk in cnt), the histograms are turned into
 * each chunk's first slot per key (chunk c's edges of key k go after those of chunks < c, so
 * the order is the serial one), and each chunk places its edges. The loops are one more chunk,
 * after every edge. The result is the same arrays whatever P (and without OpenMP the chunks run
 * one after the other).
 *
 * Every index is checked where it is first read (the counting pass). Returns the number of
 * edges E', or -1 - e for the first edge e with an index out of range (nothing else is then
 * written but scratch), or -1 - E for a loop count L above S or T or nthreads < 1: the caller
 * checks the ranges before, this is the kernel's own guard.
 */

#ifdef __linux__
#include <sys/mman.h>
#endif

/* Ask for transparent huge pages under an output array of n int64 (Linux, where THP is in
 * "madvise" mode): the counting sorts write it in random order, and 4 KiB pages cost a TLB
 * miss per write and a page fault per 512 entries first touched. Advice only: nothing changes
 * when it is refused. */
static void csr_huge(int64_t *x, int64_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)1 << 21;
    const uintptr_t a = ((uintptr_t)x + huge - 1) & ~(huge - 1);
    const uintptr_t b = ((uintptr_t)(x + n)) & ~(huge - 1);
    if (b > a) madvise((void *)a, b - a, MADV_HUGEPAGE);
#else
    (void)x;
    (void)n;
#endif
}

/* Chunk c of P over [0, n): [*a, *b). */
static void csr_chunk(int64_t n, int64_t P, int64_t c, int64_t *a, int64_t *b) {
    *a = n * c / P;
    *b = n * (c + 1) / P;
}

/* Turn the P + 1 histograms h[c * stride + k] (k < K) into each chunk's first slot per key,
 * the keys' offsets into ptr[0..K]: ptr[k] = sum of all counts of keys < k. */
static void csr_offsets(int64_t *h, int64_t stride, int64_t P, int64_t K, int64_t *ptr) {
    int64_t total = 0;
    for (int64_t k = 0; k < K; ++k) {
        ptr[k] = total;
        for (int64_t c = 0; c <= P; ++c) {
            const int64_t n = h[c * stride + k];
            h[c * stride + k] = total;
            total += n;
        }
    }
    ptr[K] = total;
}

int64_t gatlib_build_csr(const int64_t *src, const int64_t *dst, int64_t E, int64_t S, int64_t T,
                         int loops, int64_t L, int64_t *rowptr, int64_t *col, int64_t *row,
                         int64_t *perm, int64_t *rowptr_t, int64_t *col_t, int64_t *perm_t,
                         int64_t *keep, int64_t *cnt, int64_t *pairs, int nthreads) {
    if (nthreads < 1 || (loops && (L < 0 || L > S || L > T))) return -1 - E;
    if (!loops) L = 0;
    const int64_t P = nthreads, stride = (S > T ? S : T) + 1;
    int64_t bad = E;                     /* the first edge with an index out of range */
    int64_t kept_in[P + 1];              /* kept edges per chunk, then each chunk's first id */
    for (int64_t i = 0; i < (P + 1) * stride; ++i) cnt[i] = 0;
    {
        const int64_t n = E + L;
        csr_huge(col, n);
        csr_huge(row, n);
        csr_huge(perm, n);
        csr_huge(col_t, n);
        csr_huge(perm_t, n);
        csr_huge(keep, E);
        csr_huge(pairs, 2 * n);
    }
    /* Pass 1: check every index, count each chunk's kept edges per target. */
#pragma omp parallel for num_threads(nthreads) schedule(static, 1) if (P > 1)
    for (int64_t c = 0; c < P; ++c) {
        int64_t a, b, k = 0;
        int64_t *restrict h = cnt + c * stride;
        csr_chunk(E, P, c, &a, &b);
        for (int64_t e = a; e < b; ++e) {
            const int64_t s = src[e], d = dst[e];
            if (OUTSIDE(s, S) || OUTSIDE(d, T)) {
#pragma omp critical(gatlib_csr_bad)
                if (e < bad) bad = e;
                break;
            }
            if (!loops || s != d) {
                h[d]++;
                k++;
            }
        }
        kept_in[c] = k;
    }
    if (bad < E) return -1 - bad;
    int64_t kept = 0;
    for (int64_t c = 0; c < P; ++c) {
        const int64_t k = kept_in[c];
        kept_in[c] = kept;
        kept += k;
    }
    const int64_t M = kept + L;
    for (int64_t i = 0; i < L; ++i) cnt[P * stride + i] = 1;
    csr_offsets(cnt, stride, P, T, rowptr);
    /* Pass 2: each chunk places its kept edges (caller ids kept_in[c], ...), then the loops,
     * as (caller id, source) pairs: one random write per edge instead of two. */
#pragma omp parallel for num_threads(nthreads) schedule(static, 1) if (P > 1)
    for (int64_t c = 0; c < P; ++c) {
        int64_t a, b, r = kept_in[c];
        int64_t *restrict h = cnt + c * stride;
        csr_chunk(E, P, c, &a, &b);
        for (int64_t e = a; e < b; ++e) {
            const int64_t s = src[e], d = dst[e];
            if (loops && s == d) continue;
            const int64_t p = h[d]++;
            keep[r] = e;
            pairs[2 * p] = r++;
            pairs[2 * p + 1] = s;
        }
    }
    for (int64_t i = 0; i < L; ++i) {
        const int64_t p = cnt[P * stride + i];
        pairs[2 * p] = kept + i;
        pairs[2 * p + 1] = i;
    }
    /* perm and col from the pairs, and row: each target's run, all written in order. */
#pragma omp parallel for num_threads(nthreads) schedule(static) if (P > 1)
    for (int64_t i = 0; i < T; ++i)
        for (int64_t p = rowptr[i]; p < rowptr[i + 1]; ++p) {
            perm[p] = pairs[2 * p];
            col[p] = pairs[2 * p + 1];
            row[p] = i;
        }
    /* Sources: the same over the target-sorted edges, chunks of positions. */
    for (int64_t i = 0; i < (P + 1) * stride; ++i) cnt[i] = 0;
#pragma omp parallel for num_threads(nthreads) schedule(static, 1) if (P > 1)
    for (int64_t c = 0; c < P; ++c) {
        int64_t a, b;
        int64_t *restrict h = cnt + c * stride;
        csr_chunk(M, P, c, &a, &b);
        for (int64_t p = a; p < b; ++p) h[col[p]]++;
    }
    csr_offsets(cnt, stride, P, S, rowptr_t);
    /* perm_t by one random store per edge (pairs, which may share col_t's and perm_t's
     * storage, is no longer read), then col_t in order. */
#pragma omp parallel for num_threads(nthreads) schedule(static, 1) if (P > 1)
    for (int64_t c = 0; c < P; ++c) {
        int64_t a, b;
        int64_t *restrict h = cnt + c * stride;
        csr_chunk(M, P, c, &a, &b);
        for (int64_t p = a; p < b; ++p) perm_t[h[col[p]]++] = p;
    }
#pragma omp parallel for num_threads(nthreads) schedule(static) if (P > 1)
    for (int64_t q = 0; q < M; ++q) col_t[q] = row[perm_t[q]];
    return M;
}
