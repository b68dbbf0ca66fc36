/* The fused CPU attention kernels, written once for a floating type REAL (included twice by
 * native.c: float with suffix _f32, double with suffix _f64).
 *
 * One kernel per pass, for the three score kinds of gatlib's attention ops:
 *   KIND_ATTEND: s = score[e, h]                                  (given scores)
 *   KIND_GAT:    s = leaky_relu(a_src[j, h] + a_dst[i, h] + term[e, h])
 *   KIND_DOT:    s = param * <q[i, h], k[j, h]> + term[e, h]
 * for the edge e = perm[p] (caller's order) at target-sorted position p, from source j = col[p]
 * to target i. The forward pass computes every edge's scores for all heads less its row's shift
 * ([E, H] scratch), their exponentials in one long vectorised loop (a row of a small graph is too
 * short to vectorise), then per target the sums, the weights and the weighted sum of v: nothing
 * per edge is returned except the weights when asked for, and no [E, H, C] tensor exists. The
 * backward pass recomputes the weights from the saved log-sum-exp the same way, computes each
 * target's gradients and keeps each edge's two factors ([E, H] each), then gathers every
 * source's gradients over the source-sorted order: each pass writes its rows whole (no zeroing,
 * no scatter). Edges are the outer loop and heads the inner one, so that a source's row of v
 * (H * C values) is read once, contiguously; the rows read at random (v, k, the output
 * gradient) are prefetched a few edges ahead. The per-head loops have no branches (selects
 * only): with -fno-trapping-math they vectorise with 256-bit vectors as with AVX-512's masks.
 *
 * Numerics follow gatlib's CPU backend (gatlib/ops/cpu/ops.py): the row's shift is its max, or 0
 * when that is not finite; lse = shift + log(sum exp(s - shift)) (-inf for a row without edges);
 * the weights are exp(s - shift) / sum in the forward pass and exp(s - lse) in the backward pass,
 * and exp(s - inf) (0, nan for a nan or +inf score) for a row whose lse is not finite; a -inf
 * pre-activation stays -inf through the LeakyReLU for every slope.
 *
 * Layouts (all contiguous): node tensors [N, H, D]; per-target statistics lse [H, T]; per-edge
 * tensors [E, H] in the caller's edge order; the dropout mask [E, H] as bytes (1 = kept).
 *
 * The bodies are always-inlined functions of (kind, D, C): each entry point calls them with
 * constant sizes for the common head widths (8, 16, 32, 64), so that the compiler unrolls the
 * per-head loops, and with the run-time sizes otherwise.
 */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUFFIX)
#define INLINE static inline __attribute__((always_inline))

#ifndef GATLIB_RANGES_DEFINED
#define GATLIB_RANGES_DEFINED
/* How many ranges to split R rows into: 1 on one thread or below min_parallel edge-head pairs,
 * else up to 8 per thread (dynamic scheduling evens out rows of unequal cost). */
static int64_t num_ranges(int64_t R, int64_t pairs, int nthreads, int64_t min_parallel) {
    if (nthreads <= 1 || pairs < min_parallel || R < 2) return 1;
    const int64_t n = 8 * (int64_t)nthreads;
    return n < R ? n : R;
}

/* bounds[0..n]: n ranges of the rows of the offsets ptr (R rows, E edges) with about equal
 * edges (unchecked offsets only move the bounds: each row is checked where it is read). */
static void range_bounds(const int64_t *ptr, int64_t R, int64_t E, int64_t n,
                         int64_t *bounds) {
    int64_t r = 0;
    bounds[0] = 0;
    for (int64_t c = 1; c < n; ++c) {
        const int64_t goal = (int64_t)((double)E * (double)c / (double)n);
        while (r < R && ptr[r] < goal) ++r;
        bounds[c] = r;
    }
    bounds[n] = R;
}

/* A thread's own scratch of the given size; NULL, with *status set, when memory ran out. */
static void *thread_scratch(size_t bytes, int *status) {
    void *p = malloc(bytes);
    if (!p) {
#pragma omp atomic write
        *status = GATLIB_NO_MEMORY;
    }
    return p;
}

/* Keeps the first error of the threads in *status; returns the status seen so far. */
static int note_status(int *status, int rc) {
    if (rc) {
#pragma omp atomic write
        *status = rc;
    }
    int seen;
#pragma omp atomic read
    seen = *status;
    return seen;
}

#ifndef PREFETCH_AHEAD
#define PREFETCH_AHEAD 8
#endif
/* A hint to start loading row r ([0, n), else nothing) of base, rows of the given bytes, into
 * the cache: the loops below ask for the row an edge PREFETCH_AHEAD positions ahead needs, which
 * are read at random (a source's values, a target's output gradient), so that several rows are
 * on their way while one is being used. */
static inline void prefetch_row(const void *base, int64_t r, int64_t n, int64_t bytes) {
    if (OUTSIDE(r, n)) return;
    const char *p = (const char *)base + r * bytes;
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b);
    __builtin_prefetch(p + bytes - 1);
}
#endif

/* The LeakyReLU of a GAT score: x for x > 0, nan or +-inf (a -inf pre-activation stays -inf
 * for every slope), else slope * x; one select, no branch. */
#ifndef LEAKY
#define LEAKY(x, slope) (((x) <= 0) & ((x) > -INFINITY) ? (slope) * (x) : (x))
#endif

/* <a, b> over D values. For a D known at compile time (a power of two up to 64) the products
 * are summed pairwise, halving the vector each step: a short dependency chain instead of D - 1
 * dependent additions. */
INLINE REAL FN(dot)(const REAL *restrict a, const REAL *restrict b, const int64_t D) {
    if (D == 8 || D == 16 || D == 32 || D == 64) {
        REAL x[64];
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) x[d] = a[d] * b[d];
        for (int64_t w = D / 2; w >= 1; w /= 2) {
#pragma omp simd
            for (int64_t d = 0; d < w; ++d) x[d] += x[d + w];
        }
        return x[0];
    }
    REAL acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t d = 0; d < D; ++d) acc += a[d] * b[d];
    return acc;
}

/* s[t * H + h]: the scores of the n in-edges of target i, all heads (col and perm from the
 * row's first edge on, left entries of them readable); the pre-activations of a
 * GAT score in pre[] (same layout) when pre is not NULL. Every source j = col[t] must lie in
 * [0, S) and every edge id e = perm[t] in [0, E), else the status says which did not. */
INLINE int FN(row_scores)(const int kind, int64_t i, int64_t n, int64_t left, const int64_t S,
                          const int64_t E, const int64_t H, const int64_t D,
                          const int64_t *restrict col, const int64_t *restrict perm,
                          const REAL *restrict q, const REAL *restrict k,
                          const REAL *restrict term, REAL param, REAL *restrict s,
                          REAL *restrict pre) {
    for (int64_t t = 0; t < n; ++t) {
        int64_t j, e;
        READ_EDGE(col, perm, t, S, E, j, e);
        if (t + PREFETCH_AHEAD < left) {
            if (kind != KIND_ATTEND)
                prefetch_row(k, col[t + PREFETCH_AHEAD], S, H * D * (int64_t)sizeof(REAL));
            if (term)                            /* in the caller's edge order */
                prefetch_row(term, perm[t + PREFETCH_AHEAD], E, H * (int64_t)sizeof(REAL));
        }
        REAL *st = s + t * H;
        if (kind == KIND_ATTEND) {
            for (int64_t h = 0; h < H; ++h) st[h] = term[e * H + h];
        } else if (kind == KIND_GAT) {
            /* loops without branches: they vectorise over the heads with 256-bit vectors too
             * (a conditional store or a || chain in one loop needs AVX-512's masks) */
            const REAL *kj = k + j * H, *qi = q + i * H;
            for (int64_t h = 0; h < H; ++h) st[h] = kj[h] + qi[h];
            if (term) {
                const REAL *te = term + e * H;
                for (int64_t h = 0; h < H; ++h) st[h] += te[h];
            }
            if (pre)
                for (int64_t h = 0; h < H; ++h) pre[t * H + h] = st[h];
            for (int64_t h = 0; h < H; ++h) st[h] = LEAKY(st[h], param);
        } else {
            const REAL *qi = q + i * H * D, *kj = k + j * H * D;
            for (int64_t h = 0; h < H; ++h) {
                REAL acc = param * FN(dot)(qi + h * D, kj + h * D, D);
                if (term) acc += term[e * H + h];
                st[h] = acc;
            }
        }
    }
    return GATLIB_OK;
}

/* m[h]: the shift of head h's scores s[t * H + h], t < n: their max, or 0 when that is not
 * finite (or a score is nan); then s[t * H + h] -= m[h]. bad: H values of scratch. The edges are
 * the outer loop and the heads the inner one, which vectorises (a loop over one head's scores
 * would be strided). */
INLINE void FN(row_shifts)(REAL *restrict s, int64_t n, int64_t H, REAL *restrict m,
                           REAL *restrict bad) {
    for (int64_t h = 0; h < H; ++h) {
        m[h] = -INFINITY;
        bad[h] = 0;
    }
    for (int64_t t = 0; t < n; ++t) {
        const REAL *st = s + t * H;
        for (int64_t h = 0; h < H; ++h) {
            const REAL x = st[h];
            bad[h] = x != x ? 1 : bad[h];
            m[h] = x > m[h] ? x : m[h];
        }
    }
    for (int64_t h = 0; h < H; ++h)
        m[h] = (bad[h] != 0) | !(fabs(m[h]) < INFINITY) ? 0 : m[h];
    for (int64_t t = 0; t < n; ++t)
        for (int64_t h = 0; h < H; ++h) s[t * H + h] -= m[h];
}

/* x[r] <- exp(x[r]) (log_of == NULL), or x[r] <- log_of[r] + log(x[r]), for r in block b of
 * [0, n): long loops, vectorised with libmvec (a row of a small graph is too short for that, so
 * the exponentials of all rows run here at once). The blocks are fixed multiples of BLOCK
 * values, whatever the thread count: which values take the vector code and which the scalar
 * remainder never changes, so neither do the results. */
#ifndef BLOCK
#define BLOCK 4096
#endif
static void FN(math_block)(REAL *x, const REAL *log_of, int64_t n, int64_t b) {
    REAL *restrict y = x + b * BLOCK;
    const int64_t m = (b + 1) * BLOCK < n ? BLOCK : n - b * BLOCK;
    if (log_of) {
        const REAL *restrict a = log_of + b * BLOCK;
#pragma omp simd
        for (int64_t r = 0; r < m; ++r) y[r] = a[r] + LOG(y[r]);
    } else {
#pragma omp simd
        for (int64_t r = 0; r < m; ++r) y[r] = EXP(y[r]);
    }
}

/* math_block over every block of [0, n), shared out among the threads of the enclosing parallel
 * region (run whole by one thread outside one). */
static void FN(math_blocks)(REAL *x, const REAL *log_of, int64_t n) {
#pragma omp for schedule(static)
    for (int64_t b = 0; b < (n + BLOCK - 1) / BLOCK; ++b)
        FN(math_block)(x, log_of, n, b);
}

/* Targets i0 <= i < i1 (a range writes only its targets' rows and edges; gatlib passes the
 * whole graph as one range). scratch: [E, H] for the edges' scores (indexed by edge position)
 * and [H, T] for the rows' shifts (indexed by target); local: 2 * H values of the range's own.
 * Returns GATLIB_OK or the status of the first broken index. Every offset and index is
 * checked where phase 0 first reads it; phase 1 (run only when phase 0 found every range
 * sound, see attention_forward) reads the same entries again without a second check. */
INLINE int FN(forward_impl)(const int kind, int64_t T, int64_t S, int64_t E, int64_t i0,
                            int64_t i1, const int64_t H,
                             const int64_t D, const int64_t C, const int64_t *restrict rowptr,
                             const int64_t *restrict col, const int64_t *restrict perm,
                             const REAL *restrict q, const REAL *restrict k,
                             const REAL *restrict v, const REAL *restrict term,
                             const uint8_t *restrict mask, REAL keep_scale, REAL param,
                             REAL *restrict out, REAL *restrict lse_out,
                             REAL *restrict alpha_out, REAL *restrict scratch,
                             REAL *restrict local, int phase) {
    REAL *p = scratch;                       /* [E, H]: scores - shift, then their exp */
    REAL *shift = p + E * H;                 /* [H, T] */
    REAL *z = local, *inv = local + H;      /* [H] each: the sums, 1 / sum (1 for a row
                                                without mass) */
    int64_t p0, n;
    if (phase == 0) {
    for (int64_t i = i0; i < i1; ++i) {
        ROW(rowptr, i, E, p0, n, GATLIB_BAD_ROWPTR);
        REAL *s = p + p0 * H;
        const int rc = FN(row_scores)(kind, i, n, E - p0, S, E, H, D, col + p0, perm + p0, q,
                                      k, term, param, s, NULL);
        if (rc) return rc;
        FN(row_shifts)(s, n, H, local, local + H);
        for (int64_t h = 0; h < H; ++h) shift[h * T + i] = local[h];
    }
    return GATLIB_OK;
    }
    /* phase 1, after the exponentials (exp_blocks) */
    for (int64_t i = i0; i < i1; ++i) {
        p0 = rowptr[i];                         /* checked in phase 0 */
        n = rowptr[i + 1] - p0;
        REAL *s = p + p0 * H;
        for (int64_t h = 0; h < H; ++h) z[h] = 0;
        for (int64_t t = 0; t < n; ++t)      /* each head's sum in edge order, heads vectorised */
            for (int64_t h = 0; h < H; ++h) z[h] += s[t * H + h];
        for (int64_t h = 0; h < H; ++h) {
            lse_out[h * T + i] = z[h];       /* the sum for now: the logs run in one pass */
            inv[h] = 1 / z[h];
        }
        for (int64_t h = 0; h < H; ++h) {
            if (!(z[h] > 0 && z[h] < INFINITY)) {  /* lse not finite: weights exp(s - inf) */
                inv[h] = 1;
                for (int64_t t = 0; t < n; ++t) {
                    const REAL x = s[t * H + h];
                    s[t * H + h] = (isnan(x) || isinf(x)) ? NAN : 0;
                }
            }
        }
        REAL *o = out + i * H * C;
        for (int64_t c = 0; c < H * C; ++c) o[c] = 0;
        for (int64_t t = 0; t < n; ++t) {
            const int64_t j = col[p0 + t], e = perm[p0 + t];   /* checked in phase 0 */
            const REAL *vj = v + j * H * C;
            if (p0 + t + PREFETCH_AHEAD < E)
                prefetch_row(v, col[p0 + t + PREFETCH_AHEAD], S, H * C * (int64_t)sizeof(REAL));
            /* st: the weights, then times the dropout factors; loops without branches over the
             * heads (they vectorise with 256-bit vectors too), then the sum of v */
            REAL *st = s + t * H;
            for (int64_t h = 0; h < H; ++h) st[h] *= inv[h];
            if (alpha_out)
                for (int64_t h = 0; h < H; ++h) alpha_out[e * H + h] = st[h];
            if (mask)
                for (int64_t h = 0; h < H; ++h) st[h] = mask[e * H + h] ? st[h] * keep_scale : 0;
            for (int64_t h = 0; h < H; ++h) {
                const REAL w = st[h];
                REAL *oh = o + h * C;
                const REAL *vh = vj + h * C;
#pragma omp simd
                for (int64_t c = 0; c < C; ++c) oh[c] += w * vh[c];
            }
        }
    }
    return GATLIB_OK;
}

/* The backward pass (indices checked in phase 0, as in the forward pass), first over targets
 * i0 <= i < i1: the recomputed weights, d loss / d score
 * (g) and each target's own gradients (grad_q: DOT's queries or GAT's target halves, written
 * whole), with each edge's weight times its dropout factor (w) and g kept in [E, H] buffers for
 * the pass over sources. scratch: [E, H] (w) and [E, H] (g); local: ld * H + H values
 * (ld >= the largest in-degree). */
INLINE int FN(backward_targets_impl)(const int kind, int64_t T, int64_t S, int64_t E,
                                      int64_t i0, int64_t i1,
                                      const int64_t H, const int64_t D, const int64_t C,
                                      const int64_t *restrict rowptr,
                                      const int64_t *restrict col,
                                      const int64_t *restrict perm, const REAL *restrict q,
                                      const REAL *restrict k, const REAL *restrict v,
                                      const REAL *restrict term, const uint8_t *restrict mask,
                                      REAL keep_scale, REAL param, const REAL *restrict lse_in,
                                      const REAL *restrict grad_out,
                                      const REAL *restrict grad_alpha, REAL *restrict grad_q,
                                      REAL *restrict grad_term, REAL *restrict scratch,
                                      REAL *restrict local, int64_t ld, int phase) {
    REAL *wb = scratch;                      /* [E, H]: scores - lse, the weights, then w */
    REAL *gb = wb + E * H;                   /* [E, H]: GAT's pre-activations, then g */
    REAL *dalpha = local;                    /* [ld, H] */
    REAL *dot = dalpha + ld * H;             /* [H] */
    int64_t p0, n;
    if (phase == 0) {
    for (int64_t i = i0; i < i1; ++i) {
        ROW(rowptr, i, E, p0, n, GATLIB_BAD_ROWPTR);
        REAL *s = wb + p0 * H;
        const int rc = FN(row_scores)(kind, i, n, E - p0, S, E, H, D, col + p0, perm + p0, q,
                                      k, term, param, s, kind == KIND_GAT ? gb + p0 * H : NULL);
        if (rc) return rc;
        for (int64_t h = 0; h < H; ++h) {
            const REAL lse = lse_in[h * T + i];
            dot[h] = isfinite(lse) ? lse : INFINITY;        /* dot[]: phase 1's, free here */
        }
        for (int64_t t = 0; t < n; ++t)
            for (int64_t h = 0; h < H; ++h) s[t * H + h] -= dot[h];
    }
    return GATLIB_OK;
    }
    /* phase 1, after the exponentials (exp_blocks) */
    for (int64_t i = i0; i < i1; ++i) {
        p0 = rowptr[i];                         /* checked in phase 0 */
        n = rowptr[i + 1] - p0;
        if (UNLIKELY(n > ld)) return GATLIB_BAD_DEGREE;       /* dalpha holds ld rows */
        const REAL *go = grad_out + i * H * C;
        REAL *a_i = wb + p0 * H, *g_i = gb + p0 * H;
        for (int64_t h = 0; h < H; ++h) dot[h] = 0;
        /* loops without branches over the heads (they vectorise with 256-bit vectors too) */
        for (int64_t t = 0; t < n; ++t) {
            const int64_t j = col[p0 + t], e = perm[p0 + t];   /* checked in phase 0 */
            const REAL *vj = v + j * H * C;
            if (p0 + t + PREFETCH_AHEAD < E) {
                const int64_t ja = col[p0 + t + PREFETCH_AHEAD];
                prefetch_row(v, ja, S, H * C * (int64_t)sizeof(REAL));
                if (kind == KIND_DOT)                /* read by the loop after this one */
                    prefetch_row(k, ja, S, H * D * (int64_t)sizeof(REAL));
            }
            REAL *dt = dalpha + t * H;
            for (int64_t h = 0; h < H; ++h) dt[h] = FN(dot)(go + h * C, vj + h * C, C);
            if (mask)
                for (int64_t h = 0; h < H; ++h) dt[h] *= mask[e * H + h] ? keep_scale : 0;
            if (grad_alpha)
                for (int64_t h = 0; h < H; ++h) dt[h] += grad_alpha[e * H + h];
            const REAL *at = a_i + t * H;
            for (int64_t h = 0; h < H; ++h) dot[h] += at[h] * dt[h];
        }
        REAL *gq = kind == KIND_DOT ? grad_q + i * H * D : kind == KIND_GAT ? grad_q + i * H : NULL;
        if (kind == KIND_DOT)
            for (int64_t r = 0; r < H * D; ++r) gq[r] = 0;
        else if (kind == KIND_GAT)
            for (int64_t h = 0; h < H; ++h) gq[h] = 0;
        for (int64_t t = 0; t < n; ++t) {
            const int64_t j = col[p0 + t], e = perm[p0 + t];     /* checked in the loop above */
            REAL *at = a_i + t * H, *gt = g_i + t * H;
            const REAL *dt = dalpha + t * H;
            for (int64_t h = 0; h < H; ++h) {
                REAL g = (dt[h] - dot[h]) * at[h];               /* d loss / d score */
                if (kind == KIND_GAT)
                    g = gt[h] > 0 ? g : g * param;               /* through the LeakyReLU */
                gt[h] = g;
            }
            if (kind == KIND_GAT) {
                for (int64_t h = 0; h < H; ++h) gq[h] += gt[h];
            } else if (kind == KIND_DOT) {
                for (int64_t h = 0; h < H; ++h) {
                    const REAL gs = gt[h] * param;
                    const REAL *kj = k + (j * H + h) * D;
                    REAL *gqh = gq + h * D;
#pragma omp simd
                    for (int64_t d = 0; d < D; ++d) gqh[d] += gs * kj[d];
                }
            }
            if (grad_term)
                for (int64_t h = 0; h < H; ++h) grad_term[e * H + h] = gt[h];
            if (mask)
                for (int64_t h = 0; h < H; ++h) at[h] = mask[e * H + h] ? at[h] * keep_scale : 0;
        }
    }
    return GATLIB_OK;
}

/* Then over sources j0 <= j < j1 (the source-sorted order: rowptr_t, col_t = each edge's
 * target, perm_t = its target-sorted position): grad_v [S, H, C] and grad_k (DOT's keys
 * [S, H, D], GAT's source halves [S, H]), each source's rows written whole. */
INLINE int FN(backward_sources_impl)(const int kind, int64_t T, int64_t j0, int64_t j1,
                                      const int64_t H, const int64_t D, const int64_t C,
                                      const int64_t *restrict rowptr_t,
                                      const int64_t *restrict col_t,
                                      const int64_t *restrict perm_t, const REAL *restrict q,
                                      const REAL *restrict grad_out, REAL param,
                                      const REAL *restrict scratch, REAL *restrict grad_k,
                                      REAL *restrict grad_v, int64_t E) {
    const REAL *wb = scratch, *gb = scratch + E * H;
    for (int64_t j = j0; j < j1; ++j) {
        REAL *gv = grad_v + j * H * C;
        for (int64_t c = 0; c < H * C; ++c) gv[c] = 0;
        REAL *gk = kind == KIND_DOT ? grad_k + j * H * D : kind == KIND_GAT ? grad_k + j * H : NULL;
        if (kind == KIND_DOT)
            for (int64_t r = 0; r < H * D; ++r) gk[r] = 0;
        else if (kind == KIND_GAT)
            for (int64_t h = 0; h < H; ++h) gk[h] = 0;
        int64_t u0, m;
        ROW(rowptr_t, j, E, u0, m, GATLIB_BAD_ROWPTR_T);
        for (int64_t u = u0; u < u0 + m; ++u) {
            const int64_t i = col_t[u], p = perm_t[u];
            CHECK_INDEX(i, T, GATLIB_BAD_COL_T);
            CHECK_INDEX(p, E, GATLIB_BAD_PERM_T);
            const REAL *go = grad_out + i * H * C;
            if (u + PREFETCH_AHEAD < E) {
                const int64_t ia = col_t[u + PREFETCH_AHEAD], pa = perm_t[u + PREFETCH_AHEAD];
                prefetch_row(grad_out, ia, T, H * C * (int64_t)sizeof(REAL));
                if (kind == KIND_DOT) prefetch_row(q, ia, T, H * D * (int64_t)sizeof(REAL));
                prefetch_row(wb, pa, E, H * (int64_t)sizeof(REAL));
                prefetch_row(gb, pa, E, H * (int64_t)sizeof(REAL));
            }
            for (int64_t h = 0; h < H; ++h) {
                const REAL w = wb[p * H + h], g = gb[p * H + h];
                REAL *gvh = gv + h * C;
                const REAL *gh = go + h * C;
#pragma omp simd
                for (int64_t c = 0; c < C; ++c) gvh[c] += w * gh[c];
                if (kind == KIND_GAT) {
                    gk[h] += g;
                } else if (kind == KIND_DOT) {
                    const REAL gs = g * param;
                    const REAL *qi = q + (i * H + h) * D;
                    REAL *gkh = gk + h * D;
#pragma omp simd
                    for (int64_t d = 0; d < D; ++d) gkh[d] += gs * qi[d];
                }
            }
        }
    }
    return GATLIB_OK;
}

/* Returns BODY(kind, D, C), with compile-time constants where (kind, D, C) is a common shape. */
#define DISPATCH(BODY, kind, D, C)                                                      \
    do {                                                                                \
        if (kind == KIND_DOT && D == C) {                                               \
            switch (C) {                                                                \
            case 8: return BODY(KIND_DOT, 8, 8);                                       \
            case 16: return BODY(KIND_DOT, 16, 16);                                    \
            case 32: return BODY(KIND_DOT, 32, 32);                                    \
            case 64: return BODY(KIND_DOT, 64, 64);                                    \
            }                                                                           \
        } else if (kind == KIND_GAT || kind == KIND_ATTEND) {                           \
            const int g_ = kind == KIND_GAT;                                            \
            switch (C) {                                                                \
            case 8: return g_ ? BODY(KIND_GAT, 1, 8) : BODY(KIND_ATTEND, 1, 8);     \
            case 16: return g_ ? BODY(KIND_GAT, 1, 16) : BODY(KIND_ATTEND, 1, 16);  \
            case 32: return g_ ? BODY(KIND_GAT, 1, 32) : BODY(KIND_ATTEND, 1, 32);  \
            case 64: return g_ ? BODY(KIND_GAT, 1, 64) : BODY(KIND_ATTEND, 1, 64);  \
            }                                                                           \
        }                                                                               \
        return BODY(kind, D, C);                                                        \
    } while (0)

/* One range of targets (or sources) through the kernel for its (kind, D, C), with the sizes as
 * compile-time constants where DISPATCH has them. */
static int FN(forward_range)(int kind, int64_t T, int64_t S, int64_t E, int64_t i0, int64_t i1,
                             int64_t H, int64_t D,
                              int64_t C, const int64_t *rowptr, const int64_t *col,
                              const int64_t *perm, const REAL *q, const REAL *k, const REAL *v,
                              const REAL *term, const uint8_t *mask, REAL keep_scale,
                              REAL param, REAL *out, REAL *lse_out, REAL *alpha_out,
                              REAL *scratch, REAL *local, int phase) {
#define FWD(K_, D_, C_)                                                                 \
    FN(forward_impl)(K_, T, S, E, i0, i1, H, D_, C_, rowptr, col, perm, q, k, v, term, mask,  \
                     keep_scale, param, out, lse_out, alpha_out, scratch, local, phase)
    DISPATCH(FWD, kind, D, C);
#undef FWD
}

static int FN(targets_range)(int kind, int64_t T, int64_t S, int64_t E, int64_t i0, int64_t i1,
                             int64_t H, int64_t D,
                              int64_t C, const int64_t *rowptr, const int64_t *col,
                              const int64_t *perm, const REAL *q, const REAL *k, const REAL *v,
                              const REAL *term, const uint8_t *mask, REAL keep_scale,
                              REAL param, const REAL *lse_in, const REAL *grad_out,
                              const REAL *grad_alpha, REAL *grad_q, REAL *grad_term,
                              REAL *scratch, REAL *local, int64_t ld, int phase) {
#define BWD(K_, D_, C_)                                                                 \
    FN(backward_targets_impl)(K_, T, S, E, i0, i1, H, D_, C_, rowptr, col, perm, q, k, v, term, \
                              mask, keep_scale, param, lse_in, grad_out, grad_alpha, grad_q, \
                              grad_term, scratch, local, ld, phase)
    DISPATCH(BWD, kind, D, C);
#undef BWD
}

static int FN(sources_range)(int kind, int64_t T, int64_t j0, int64_t j1, int64_t H, int64_t D,
                              int64_t C, const int64_t *rowptr_t, const int64_t *col_t,
                              const int64_t *perm_t, const REAL *q, const REAL *grad_out,
                              REAL param, const REAL *scratch, REAL *grad_k, REAL *grad_v,
                              int64_t E) {
#define SRC(K_, D_, C_)                                                                 \
    FN(backward_sources_impl)(K_, T, j0, j1, H, D_, C_, rowptr_t, col_t, perm_t, q, grad_out, \
                              param, scratch, grad_k, grad_v, E)
    DISPATCH(SRC, kind, D, C);
#undef SRC
}

/* The forward pass over T targets, S sources and E edges. scratch: E * H + H * T values. With
 * nthreads > 1 and at least min_parallel edge-head pairs, the targets run in ranges of about
 * equal edge counts on an OpenMP team (the process's OpenMP runtime: torch's own when it is
 * loaded first), each output row computed by one thread in the same order as on one: the
 * results do not depend on the thread count. Returns GATLIB_OK, GATLIB_NO_MEMORY, or the status
 * of a broken index (rowptr, col, perm; nothing is then read or written out of bounds). */
int FN(attention_forward)(int kind, int64_t T, int64_t S, int64_t E, int64_t H, int64_t D,
                          int64_t C, const int64_t *rowptr, const int64_t *col,
                          const int64_t *perm, const REAL *q, const REAL *k, const REAL *v,
                          const REAL *term, const uint8_t *mask, REAL keep_scale, REAL param,
                          REAL *out, REAL *lse_out, REAL *alpha_out, REAL *scratch, int nthreads,
                          int64_t min_parallel) {
    if (rowptr[0] != 0 || rowptr[T] != E) return GATLIB_BAD_ROWPTR;
    int64_t n = num_ranges(T, E * H, nthreads, min_parallel);
    int64_t *bounds = malloc((size_t)(n + 1) * sizeof(int64_t));
    if (!bounds) return GATLIB_NO_MEMORY;
    range_bounds(rowptr, T, E, n, bounds);
    int status = GATLIB_OK;
#pragma omp parallel num_threads(n > 1 ? nthreads : 1) if (n > 1)
    {
        REAL *local = thread_scratch((size_t)(2 * H) * sizeof(REAL), &status);
        for (int phase = 0; phase < 2; ++phase) {
            /* every thread meets every worksharing loop; after an error they skip its work */
#pragma omp for schedule(dynamic, 1)
            for (int64_t r = 0; r < n; ++r)
                if (local && !note_status(&status, 0))
                    note_status(&status, FN(forward_range)(
                        kind, T, S, E, bounds[r], bounds[r + 1], H, D, C, rowptr, col, perm, q,
                        k, v, term, mask, keep_scale, param, out, lse_out, alpha_out, scratch,
                        local, phase));
            if (phase == 0)
                FN(math_blocks)(scratch, NULL, E * H);
        }
        /* lse = shift + log(sum), the sums in lse_out, the shifts after the [E, H] block */
        FN(math_blocks)(lse_out, scratch + E * H, H * T);
        free(local);
    }
    free(bounds);
    return status;
}

/* The backward pass: over targets (grad_q: DOT [T,H,D], GAT grad_a_dst [T,H]; grad_term [E,H],
 * the score's gradient for ATTEND, the bias's or edge score's otherwise, NULL without a term),
 * then over sources (grad_v [S,H,C]; grad_k: DOT [S,H,D], GAT grad_a_src [S,H], ATTEND NULL).
 * scratch: 2 * E * H values; ld >= the largest in-degree (checked per row). Threads as in the
 * forward pass. Returns GATLIB_OK, GATLIB_NO_MEMORY or the status of a broken index. */
int FN(attention_backward)(int kind, int64_t T, int64_t S, int64_t E, int64_t H, int64_t D,
                           int64_t C, const int64_t *rowptr, const int64_t *col,
                           const int64_t *perm, const int64_t *rowptr_t, const int64_t *col_t,
                           const int64_t *perm_t, const REAL *q, const REAL *k, const REAL *v,
                           const REAL *term, const uint8_t *mask, REAL keep_scale, REAL param,
                           const REAL *lse_in, const REAL *grad_out, const REAL *grad_alpha,
                           REAL *grad_q, REAL *grad_k, REAL *grad_v, REAL *grad_term,
                           REAL *scratch, int64_t ld, int nthreads, int64_t min_parallel) {
    if (rowptr[0] != 0 || rowptr[T] != E) return GATLIB_BAD_ROWPTR;
    if (rowptr_t[0] != 0 || rowptr_t[S] != E) return GATLIB_BAD_ROWPTR_T;
    if (ld < 0 || ld > E) return GATLIB_BAD_ROWPTR;         /* a degree above E: a broken rowptr */
    const int64_t nt = num_ranges(T, E * H, nthreads, min_parallel);
    const int64_t ns = num_ranges(S, E * H, nthreads, min_parallel);
    int64_t *bt = malloc((size_t)(nt + ns + 2) * sizeof(int64_t));
    if (!bt) return GATLIB_NO_MEMORY;
    int64_t *bs = bt + nt + 1;
    range_bounds(rowptr, T, E, nt, bt);
    range_bounds(rowptr_t, S, E, ns, bs);
    int status = GATLIB_OK;
    const int team = (nt > 1 || ns > 1) ? nthreads : 1;
#pragma omp parallel num_threads(team) if (team > 1)
    {
        REAL *local = thread_scratch((size_t)(ld * H + H) * sizeof(REAL), &status);
        for (int phase = 0; phase < 2; ++phase) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t r = 0; r < nt; ++r)
                if (local && !note_status(&status, 0))
                    note_status(&status, FN(targets_range)(
                        kind, T, S, E, bt[r], bt[r + 1], H, D, C, rowptr, col, perm, q, k, v,
                        term, mask, keep_scale, param, lse_in, grad_out, grad_alpha, grad_q,
                        grad_term, scratch, local, ld, phase));
            if (phase == 0)
                FN(math_blocks)(scratch, NULL, E * H);
        }
        /* the loop's barrier: every target's factors are in scratch before the sources read */
#pragma omp for schedule(dynamic, 1)
        for (int64_t r = 0; r < ns; ++r)
            if (local && !note_status(&status, 0))
                note_status(&status, FN(sources_range)(
                    kind, T, bs[r], bs[r + 1], H, D, C, rowptr_t, col_t, perm_t, q, grad_out,
                    param, scratch, grad_k, grad_v, E));
        free(local);
    }
    free(bt);
    return status;
}

#undef INLINE
#undef FN
#undef CAT
#undef CAT_
