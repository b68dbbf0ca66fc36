/* One hop of neighbour sampling over the CSR view of a graph (gatlib.loader.sampler): for each
 * frontier node, k of its in-edges, and the sources relabelled to local ids through one
 * node-indexed array, in a single pass.
 *
 * Inputs: rowptr [N + 1], col [E], perm [E] (the graph's target-sorted view: the in-edges of node
 * f at positions [rowptr[f], rowptr[f + 1]), their sources col[p] and caller edge ids perm[p]);
 * frontier [n] nodes; k the fanout (< 0: every in-edge); replace (k uniform draws among the
 * in-edges, none for a node without any) or not (min(k, deg) distinct in-edges, every k-subset
 * equally likely: Floyd's algorithm for k <= FLOYD_MAX, O(k^2) whatever the degree, else
 * selection sampling, O(deg)); seed for the random stream (splitmix64).
 *
 * local [N] holds the local id of every node reached so far (-1: none); count is the number of
 * local ids given. A source not reached gets the next id (in order of first appearance) and is
 * appended to new_nodes. Output, M entries, grouped by frontier node in order (positions
 * ascending within a node without replacement, in draw order with it): src_local, tgt = begin +
 * the frontier node's position, edge = perm[p].
 *
 * Returns the number of new nodes (>= 0), or a status: GATLIB_BAD_FRONTIER (a frontier node
 * outside [0, N)), GATLIB_BAD_ROWPTR, GATLIB_BAD_COL (a source outside [0, N)), GATLIB_BAD_PERM
 * (an edge id outside [0, E)), GATLIB_BAD_CAPACITY (the picks exceed M: the caller counted
 * M from the same rowptr, so only a graph changed meanwhile gets here). Nothing is written out of
 * bounds whatever the arrays hold; on an error the outputs are partly written. */

#define FLOYD_MAX 64

/* splitmix64: a 64-bit state advanced by a constant, mixed on output. */
static inline uint64_t sample_next(uint64_t *state) {
    return mix64(*state += 0x9E3779B97F4A7C15ULL);
}

/* Uniform in [0, n) for n >= 1 (multiply-shift: bias below n / 2^64). */
static inline int64_t sample_below(uint64_t *state, int64_t n) {
    return (int64_t)(((unsigned __int128)sample_next(state) * (uint64_t)n) >> 64);
}

int64_t gatlib_sample_hop(const int64_t *rowptr, const int64_t *col, const int64_t *perm,
                          int64_t N, int64_t E, const int64_t *frontier, int64_t n, int64_t k,
                          int replace, int64_t seed, int64_t begin, int64_t *local,
                          int64_t count, int64_t M, int64_t *src_local, int64_t *tgt,
                          int64_t *edge, int64_t *new_nodes) {
    uint64_t state = (uint64_t)seed;
    int64_t m = 0, fresh = 0;
    int64_t picks[FLOYD_MAX];
    for (int64_t i = 0; i < n; ++i) {
        const int64_t f = frontier[i];
        int64_t p0, d, want;
        CHECK_INDEX(f, N, GATLIB_BAD_FRONTIER);
        ROW(rowptr, f, E, p0, d, GATLIB_BAD_ROWPTR);
        want = k < 0 ? d : replace ? (d > 0 ? k : 0) : (d < k ? d : k);
        if (UNLIKELY(want > M - m)) return GATLIB_BAD_CAPACITY;
        int64_t *const out = edge + m;       /* the chosen positions first, ids below */
        if (k < 0 || (!replace && d <= k)) {
            for (int64_t t = 0; t < d; ++t) out[t] = p0 + t;
        } else if (replace) {
            for (int64_t t = 0; t < want; ++t) out[t] = p0 + sample_below(&state, d);
        } else if (k <= FLOYD_MAX) {
            /* Floyd: for j = d - k .. d - 1 draw t in [0, j]; keep t, or j if t is kept. */
            for (int64_t s = 0; s < k; ++s) {
                const int64_t j = d - k + s;
                int64_t t = sample_below(&state, j + 1), seen = 0;
                for (int64_t u = 0; u < s; ++u) seen |= picks[u] == t;
                t = seen ? j : t;
                /* insertion into the sorted picks */
                int64_t u = s;
                while (u > 0 && picks[u - 1] > t) {
                    picks[u] = picks[u - 1];
                    --u;
                }
                picks[u] = t;
            }
            for (int64_t s = 0; s < k; ++s) out[s] = p0 + picks[s];
        } else {
            /* Selection sampling: position t is taken with probability needed / left. */
            int64_t needed = k;
            for (int64_t t = 0; t < d && needed > 0; ++t)
                if (sample_below(&state, d - t) < needed) out[k - needed--] = p0 + t;
        }
        for (int64_t t = 0; t < want; ++t) {
            const int64_t p = out[t];
            int64_t j, e;
            READ_EDGE(col, perm, p, N, E, j, e);
            int64_t id = local[j];
            if (id < 0) {
                id = local[j] = count++;
                new_nodes[fresh++] = j;
            }
            src_local[m + t] = id;
            tgt[m + t] = begin + i;
            out[t] = e;
        }
        m += want;
    }
    if (UNLIKELY(m != M)) return GATLIB_BAD_CAPACITY;
    return fresh;
}
