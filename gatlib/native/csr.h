/* The CSR view of a graph (gatlib.graph.GraphCSR's seven arrays) by two counting sorts, O(E + N).
 *
 * The edges are (src[e], dst[e]) for e < E; with loops != 0 the edges with src == dst are left out
 * and one loop (i, i) per node i < L follows the kept ones, as GraphCSR.with_self_loops() defines
 * the graph the attention layers use. The result's caller order is the kept edges in their order,
 * then the loops; keep[] receives the ids of the kept edges.
 *
 * Output (E' edges, T targets, S sources): rowptr [T + 1], col [E'], row [E'], perm [E'] (the
 * target-sorted order, stable: edges keep the caller's order within a target), rowptr_t [S + 1],
 * col_t [E'], perm_t [E'] (the source-sorted order of the target-sorted edges, stable). cnt is
 * scratch of max(S, T) + 1 entries.
 *
 * Returns the number of edges E', or -1 - e for the first edge e with an index out of range
 * (nothing else is then written but scratch), or -1 - E for a loop count L above S or T: the
 * caller checks the ranges before, this is the kernel's own guard.
 */
int64_t gatlib_build_csr(const int64_t *src, const int64_t *dst, int64_t E, int64_t S, int64_t T,
                         int loops, int64_t L, int64_t *rowptr, int64_t *col, int64_t *row,
                         int64_t *perm, int64_t *rowptr_t, int64_t *col_t, int64_t *perm_t,
                         int64_t *keep, int64_t *cnt) {
    if (loops && (L < 0 || L > S || L > T)) return -1 - E;   /* no loop (i, i) beyond a side */
    int64_t kept = 0;
    for (int64_t e = 0; e < E; ++e) {
        if (src[e] < 0 || src[e] >= S || dst[e] < 0 || dst[e] >= T) return -1 - e;
        if (!loops || src[e] != dst[e]) keep[kept++] = e;
    }
    if (!loops) L = 0;
    const int64_t M = kept + L;
    /* Targets: count, offsets, place in the caller's order. */
    for (int64_t i = 0; i <= T; ++i) rowptr[i] = 0;
    for (int64_t r = 0; r < kept; ++r) rowptr[dst[keep[r]] + 1]++;
    for (int64_t i = 0; i < L; ++i) rowptr[i + 1]++;
    for (int64_t i = 0; i < T; ++i) rowptr[i + 1] += rowptr[i];
    for (int64_t i = 0; i < T; ++i) cnt[i] = rowptr[i];
    for (int64_t r = 0; r < M; ++r) {
        const int64_t s = r < kept ? src[keep[r]] : r - kept;
        const int64_t d = r < kept ? dst[keep[r]] : r - kept;
        const int64_t p = cnt[d]++;
        perm[p] = r;
        col[p] = s;
        row[p] = d;
    }
    /* Sources: the same over the target-sorted edges. */
    for (int64_t j = 0; j <= S; ++j) rowptr_t[j] = 0;
    for (int64_t p = 0; p < M; ++p) rowptr_t[col[p] + 1]++;
    for (int64_t j = 0; j < S; ++j) rowptr_t[j + 1] += rowptr_t[j];
    for (int64_t j = 0; j < S; ++j) cnt[j] = rowptr_t[j];
    for (int64_t p = 0; p < M; ++p) {
        const int64_t q = cnt[col[p]]++;
        perm_t[q] = p;
        col_t[q] = row[p];
    }
    return M;
}
