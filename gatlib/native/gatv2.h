/* GATv2's score, written once for a floating type REAL (included twice by gatlib_native.c):
 *
 *   score[e, h] = sum_c att[h, c] * LeakyReLU(xs[j, h, c] + xd[i, h, c] + xe[p, h, c])
 *
 * for the edge e = perm[p] (caller's order) at target-sorted position p, from source j = col[p]
 * to target i; xe (edge features already projected, [E, H, C] in the target-sorted order) is
 * optional. The activations are recomputed where needed and never stored: the forward pass
 * writes [E, H] scores, the backward pass one pass over targets (d xd, d att, d xe) and one over
 * sources (d xs, over the source-sorted order), each writing its rows whole. The derivative of
 * the LeakyReLU is 1 where its input is > 0 and the slope elsewhere, as torch's. T targets, S
 * sources, E edges; every offset and index is checked where it is read (the return status
 * names the first broken array, as in attention.h).
 */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUFFIX)

int FN(gatv2_score_forward)(int64_t T, int64_t S, int64_t E, int64_t H, int64_t C,
                            const int64_t *restrict rowptr, const int64_t *restrict col,
                            const int64_t *restrict perm,
                             const REAL *restrict xs, const REAL *restrict xd,
                             const REAL *restrict xe, const REAL *restrict att, REAL slope,
                             REAL *restrict score) {
    const int64_t HC = H * C;
    if (rowptr[0] != 0 || rowptr[T] != E) return GATLIB_BAD_ROWPTR;
    for (int64_t i = 0; i < T; ++i) {
        const REAL *xi = xd + i * HC;
        int64_t p0, n;
        ROW(rowptr, i, E, p0, n, GATLIB_BAD_ROWPTR);
        for (int64_t p = p0; p < p0 + n; ++p) {
            int64_t j, e;
            READ_EDGE(col, perm, p, S, E, j, e);
            const REAL *xj = xs + j * HC, *ep = xe ? xe + p * HC : NULL;
            for (int64_t h = 0; h < H; ++h) {
                REAL acc = 0;
                const int64_t o = h * C;
                if (ep) {
#pragma omp simd reduction(+ : acc)
                    for (int64_t c = 0; c < C; ++c) {
                        const REAL z = xj[o + c] + xi[o + c] + ep[o + c];
                        acc += att[o + c] * (z > 0 ? z : slope * z);
                    }
                } else {
#pragma omp simd reduction(+ : acc)
                    for (int64_t c = 0; c < C; ++c) {
                        const REAL z = xj[o + c] + xi[o + c];
                        acc += att[o + c] * (z > 0 ? z : slope * z);
                    }
                }
                score[e * H + h] = acc;
            }
        }
    }
    return GATLIB_OK;
}

/* d xd [T, H, C], d att [H, C] and d xe [E, H, C] (sorted order; NULL without edge features)
 * from the scores' gradient g [E, H] (caller's order). */
int FN(gatv2_score_backward_targets)(int64_t T, int64_t S, int64_t E, int64_t H, int64_t C,
                                      const int64_t *restrict rowptr,
                                      const int64_t *restrict col,
                                      const int64_t *restrict perm, const REAL *restrict xs,
                                      const REAL *restrict xd, const REAL *restrict xe,
                                      const REAL *restrict att, REAL slope,
                                      const REAL *restrict g, REAL *restrict g_xd,
                                      REAL *restrict g_att, REAL *restrict g_xe) {
    const int64_t HC = H * C;
    if (rowptr[0] != 0 || rowptr[T] != E) return GATLIB_BAD_ROWPTR;
    for (int64_t r = 0; r < HC; ++r) g_att[r] = 0;
    for (int64_t i = 0; i < T; ++i) {
        const REAL *xi = xd + i * HC;
        REAL *gi = g_xd + i * HC;
        for (int64_t r = 0; r < HC; ++r) gi[r] = 0;
        int64_t p0, n;
        ROW(rowptr, i, E, p0, n, GATLIB_BAD_ROWPTR);
        for (int64_t p = p0; p < p0 + n; ++p) {
            int64_t j, e;
            READ_EDGE(col, perm, p, S, E, j, e);
            const REAL *xj = xs + j * HC, *ep = xe ? xe + p * HC : NULL;
            REAL *gep = g_xe ? g_xe + p * HC : NULL;
            for (int64_t h = 0; h < H; ++h) {
                const REAL gh = g[e * H + h];
                const int64_t o = h * C;
#pragma omp simd
                for (int64_t c = 0; c < C; ++c) {
                    const REAL z = xj[o + c] + xi[o + c] + (ep ? ep[o + c] : 0);
                    const REAL d = gh * att[o + c] * (z > 0 ? 1 : slope);
                    gi[o + c] += d;
                    g_att[o + c] += gh * (z > 0 ? z : slope * z);
                    if (gep) gep[o + c] = d;
                }
            }
        }
    }
    return GATLIB_OK;
}

/* d xs [S, H, C] over the source-sorted order (rowptr_t, col_t = each edge's target, perm_t =
 * its target-sorted position). */
int FN(gatv2_score_backward_sources)(int64_t T, int64_t S, int64_t E, int64_t H, int64_t C,
                                      const int64_t *restrict rowptr_t,
                                      const int64_t *restrict col_t,
                                      const int64_t *restrict perm_t,
                                      const int64_t *restrict perm, const REAL *restrict xs,
                                      const REAL *restrict xd, const REAL *restrict xe,
                                      const REAL *restrict att, REAL slope,
                                      const REAL *restrict g, REAL *restrict g_xs) {
    const int64_t HC = H * C;
    if (rowptr_t[0] != 0 || rowptr_t[S] != E) return GATLIB_BAD_ROWPTR_T;
    for (int64_t j = 0; j < S; ++j) {
        const REAL *xj = xs + j * HC;
        REAL *gj = g_xs + j * HC;
        for (int64_t r = 0; r < HC; ++r) gj[r] = 0;
        int64_t u0, m;
        ROW(rowptr_t, j, E, u0, m, GATLIB_BAD_ROWPTR_T);
        for (int64_t u = u0; u < u0 + m; ++u) {
            const int64_t p = perm_t[u], i = col_t[u];
            CHECK_INDEX(p, E, GATLIB_BAD_PERM_T);
            CHECK_INDEX(i, T, GATLIB_BAD_COL_T);
            const int64_t e = perm[p];
            CHECK_INDEX(e, E, GATLIB_BAD_PERM);
            const REAL *xi = xd + i * HC, *ep = xe ? xe + p * HC : NULL;
            for (int64_t h = 0; h < H; ++h) {
                const REAL gh = g[e * H + h];
                const int64_t o = h * C;
#pragma omp simd
                for (int64_t c = 0; c < C; ++c) {
                    const REAL z = xj[o + c] + xi[o + c] + (ep ? ep[o + c] : 0);
                    gj[o + c] += gh * att[o + c] * (z > 0 ? 1 : slope);
                }
            }
        }
    }
    return GATLIB_OK;
}

#undef FN
#undef CAT
#undef CAT_
