/* winograd_vec.h: the vector Winograd transforms, shared by winograd_avx2.c
 * and winograd_avx512.c: each defines these, includes this file and names
 * its entry points with WINO_ENTRY_POINTS(isa):
 *   VEC            the register type;  LANES  floats per register;
 *   MASK, MASK_FOR(rem)  a lane mask, and the one for a tail of rem < LANES;
 *   ALL            the mask of every lane;
 *   LOAD(p, k), STORE(p, k, v)  masked load (zero in clear lanes, memory
 *                  there never touched) and store;
 *   ADD, SUB, MUL, SET1, RELU.
 * The arithmetic, its order included, is winograd_scalar.c's, so results
 * are bit for bit the scalar ones (contract in kernels.h). The channels go
 * LANES at a time, the tail under a mask. */
#ifndef ENG_WINOGRAD_VEC_H
#define ENG_WINOGRAD_VEC_H

/* The 1-D transforms: t[k * ts] from d[k * ds]. */
static inline void in2_1d(const VEC *d, int ds, VEC *t, int ts)
{
    const VEC d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds];
    t[0] = SUB(d0, d2);
    t[ts] = ADD(d1, d2);
    t[2 * ts] = SUB(d2, d1);
    t[3 * ts] = SUB(d1, d3);
}

static inline void in4_1d(const VEC *d, int ds, VEC *t, int ts)
{
    const VEC d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds],
              d5 = d[5 * ds];
    const VEC two = SET1(2.0f), four = SET1(4.0f), five = SET1(5.0f);
    const VEC e = SUB(d4, d2), f = SUB(d3, d1);
    t[0] = ADD(SUB(MUL(four, d0), MUL(five, d2)), d4);
    t[ts] = SUB(ADD(d3, d4), MUL(four, ADD(d1, d2)));
    t[2 * ts] = ADD(SUB(d4, d3), MUL(four, SUB(d1, d2)));
    t[3 * ts] = ADD(e, MUL(two, f));
    t[4 * ts] = SUB(e, MUL(two, f));
    t[5 * ts] = ADD(SUB(MUL(four, d1), MUL(five, d3)), d5);
}

static inline void out2_1d(const VEC *m, int ms, VEC *y, int ys)
{
    const VEC m0 = m[0], m1 = m[ms], m2 = m[2 * ms], m3 = m[3 * ms];
    y[0] = ADD(ADD(m0, m1), m2);
    y[ys] = SUB(SUB(m1, m2), m3);
}

static inline void out4_1d(const VEC *m, int ms, VEC *y, int ys)
{
    const VEC m0 = m[0], m1 = m[ms], m2 = m[2 * ms], m3 = m[3 * ms], m4 = m[4 * ms],
              m5 = m[5 * ms];
    const VEC a = ADD(m1, m2), b = SUB(m1, m2), c = ADD(m3, m4), e = SUB(m3, m4);
    y[0] = ADD(ADD(m0, a), c);
    y[ys] = ADD(b, MUL(SET1(2.0f), e));
    y[2 * ys] = ADD(a, MUL(SET1(4.0f), c));
    y[3 * ys] = ADD(ADD(b, MUL(SET1(8.0f), e)), m5);
}

/* v = B^T d B for patches of edge A (4 or 6), LANES channels at a time.
 * Always inlined with a constant A, so the loops unroll. */
static inline __attribute__((always_inline)) void
wino_input(const int A, const float *const *d, int c, float *v, size_t vs)
{
    for (int ch = 0; ch < c; ch += LANES) {
        const MASK k = c - ch >= LANES ? ALL : MASK_FOR(c - ch);
        VEC p[36], t[36];
        for (int x = 0; x < A * A; x++)
            p[x] = LOAD(d[x] + ch, k);
        for (int j = 0; j < A; j++)
            A == 4 ? in2_1d(p + j, A, t + j, A) : in4_1d(p + j, A, t + j, A);
        for (int i = 0; i < A; i++)
            A == 4 ? in2_1d(t + A * i, 1, p + A * i, 1) : in4_1d(t + A * i, 1, p + A * i, 1);
        for (int x = 0; x < A * A; x++)
            STORE(v + (size_t)x * vs + ch, k, p[x]);
    }
}

/* y = A^T m A (edge A to A - 2) and the epilogue, LANES channels at a time. */
static inline __attribute__((always_inline)) void
wino_output(const int A, const float *m, size_t ms, int c, const float *bias,
            const float *const *res, float *const *y, int relu)
{
    const int O = A - 2;
    for (int ch = 0; ch < c; ch += LANES) {
        const MASK k = c - ch >= LANES ? ALL : MASK_FOR(c - ch);
        VEC p[36], t[24], u[16];
        for (int x = 0; x < A * A; x++)
            p[x] = LOAD(m + (size_t)x * ms + ch, k);
        for (int j = 0; j < A; j++)
            A == 4 ? out2_1d(p + j, A, t + j, A) : out4_1d(p + j, A, t + j, A);
        for (int i = 0; i < O; i++)
            A == 4 ? out2_1d(t + A * i, 1, u + O * i, 1) : out4_1d(t + A * i, 1, u + O * i, 1);
        const VEC b = LOAD(bias + ch, k);
        for (int q = 0; q < O * O; q++) {
            if (!y[q])
                continue;
            VEC r = ADD(u[q], b);
            if (res)
                r = ADD(r, LOAD(res[q] + ch, k));
            STORE(y[q] + ch, k, relu ? RELU(r) : r);
        }
    }
}

/* The four entry points of kernels_isa.h for one ISA, each the body above
 * with its patch edge. */
#define WINO_ENTRY_POINTS(isa)                                                              \
    void eng__wino2_input_##isa(const float *const *d, int c, float *v, size_t vs)        \
    {                                                                                       \
        wino_input(4, d, c, v, vs);                                                         \
    }                                                                                       \
    void eng__wino4_input_##isa(const float *const *d, int c, float *v, size_t vs)        \
    {                                                                                       \
        wino_input(6, d, c, v, vs);                                                         \
    }                                                                                       \
    void eng__wino2_output_##isa(const float *m, size_t ms, int c, const float *bias,      \
                                 const float *const *res, float *const *y, int relu)       \
    {                                                                                       \
        wino_output(4, m, ms, c, bias, res, y, relu);                                       \
    }                                                                                       \
    void eng__wino4_output_##isa(const float *m, size_t ms, int c, const float *bias,      \
                                 const float *const *res, float *const *y, int relu)       \
    {                                                                                       \
        wino_output(6, m, ms, c, bias, res, y, relu);                                       \
    }

#endif
