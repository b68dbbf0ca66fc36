/* GATv2's score, written once for a floating type REAL (included twice by gatlib_native.c):
 *
 *   score[e, h] = sum_c att[h, c] * LeakyReLU(xs[j, h, c] + xd[i, h, c] + xe[p, h, c])
 *
 * for the edge e = perm[p] (caller's order) at target-sorted position p, from source j = col[p]
 * to target i; xe (edge features already projected, [E, H, C] in the target-sorted order) is
 * optional. The activations are recomputed where needed and never stored: the forward pass
 * writes [E, H] scores, the backward pass one pass over targets (d xd, d att, d xe) and one over
 * sources (d xs, over the source-sorted order), each writing its rows whole. The derivative of
 * the LeakyReLU is 1 where its input is > 0 and the slope elsewhere, as torch's.
 */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUFFIX)

void FN(gatv2_score_forward)(int64_t T, int64_t H, int64_t C, const int64_t *restrict rowptr,
                             const int64_t *restrict col, const int64_t *restrict perm,
                             const REAL *restrict xs, const REAL *restrict xd,
                             const REAL *restrict xe, const REAL *restrict att, REAL slope,
                             REAL *restrict score) {
    const int64_t HC = H * C;
    for (int64_t i = 0; i < T; ++i) {
        const REAL *xi = xd + i * HC;
        for (int64_t p = rowptr[i]; p < rowptr[i + 1]; ++p) {
            const REAL *xj = xs + col[p] * HC, *ep = xe ? xe + p * HC : NULL;
            const int64_t e = perm[p];
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
}

/* d xd [T, H, C], d att [H, C] and d xe [E, H, C] (sorted order; NULL without edge features)
 * from the scores' gradient g [E, H] (caller's order). */
void FN(gatv2_score_backward_targets)(int64_t T, int64_t H, int64_t C,
                                      const int64_t *restrict rowptr,
                                      const int64_t *restrict col,
                                      const int64_t *restrict perm, const REAL *restrict xs,
                                      const REAL *restrict xd, const REAL *restrict xe,
                                      const REAL *restrict att, REAL slope,
                                      const REAL *restrict g, REAL *restrict g_xd,
                                      REAL *restrict g_att, REAL *restrict g_xe) {
    const int64_t HC = H * C;
    for (int64_t r = 0; r < HC; ++r) g_att[r] = 0;
    for (int64_t i = 0; i < T; ++i) {
        const REAL *xi = xd + i * HC;
        REAL *gi = g_xd + i * HC;
        for (int64_t r = 0; r < HC; ++r) gi[r] = 0;
        for (int64_t p = rowptr[i]; p < rowptr[i + 1]; ++p) {
            const REAL *xj = xs + col[p] * HC, *ep = xe ? xe + p * HC : NULL;
            REAL *gep = g_xe ? g_xe + p * HC : NULL;
            const int64_t e = perm[p];
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
}

/* d xs [S, H, C] over the source-sorted order (rowptr_t, col_t = each edge's target, perm_t =
 * its target-sorted position). */
void FN(gatv2_score_backward_sources)(int64_t S, int64_t H, int64_t C,
                                      const int64_t *restrict rowptr_t,
                                      const int64_t *restrict col_t,
                                      const int64_t *restrict perm_t,
                                      const int64_t *restrict perm, const REAL *restrict xs,
                                      const REAL *restrict xd, const REAL *restrict xe,
                                      const REAL *restrict att, REAL slope,
                                      const REAL *restrict g, REAL *restrict g_xs) {
    const int64_t HC = H * C;
    for (int64_t j = 0; j < S; ++j) {
        const REAL *xj = xs + j * HC;
        REAL *gj = g_xs + j * HC;
        for (int64_t r = 0; r < HC; ++r) gj[r] = 0;
        for (int64_t u = rowptr_t[j]; u < rowptr_t[j + 1]; ++u) {
            const int64_t p = perm_t[u], e = perm[p];
            const REAL *xi = xd + col_t[u] * HC, *ep = xe ? xe + p * HC : NULL;
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
}

#undef FN
#undef CAT
#undef CAT_
