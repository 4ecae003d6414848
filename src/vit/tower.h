/* tower.h: the pre-LN transformer encoder that ViT, CLIP's vision tower and
 * CLIP's text tower share (tower.c):
 *     h = h + Out(Attention(LN1(h)))     (causal for CLIP's text tower)
 *     h = h + FC2(act(FC1(LN2(h))))
 * over sequences packed back to back with no padding, as src/text/forward.c
 * packs them: attention runs per sequence and head, the linear layers once
 * over all rows. The final layernorm and the poolings belong to the caller.
 *
 * Tensors of a tower with prefix P, layer i (linear layers as
 * src/text/linear.h binds them, [in, out], fp32/bf16/int8):
 *   P.l<i>.ln1.g/.b [H], P.l<i>.qkv [H -> 3H] (q | k | v), P.l<i>.out [H -> H],
 *   P.l<i>.ln2.g/.b [H], P.l<i>.fc1 [H -> F], P.l<i>.fc2 [F -> H]. Internal. */
#ifndef ENG_TOWER_H
#define ENG_TOWER_H

#include "bgemm.h"
#include "engine.h"
#include "format.h"
#include "kernels.h"
#include "linear.h"
#include "team.h"

typedef struct {
    const float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
    eng__linear qkv, out, fc1, fc2;
} eng__tower_layer;

typedef struct {
    int hidden, heads, inter, layers;
    int causal; /* CLIP's text tower: token i sees tokens <= i */
    float eps;
    eng__act act;
    eng__tower_layer *layer; /* [layers], owned */
} eng__tower;

/* Binds the layers of t (hidden, heads, inter, layers set) from f under
 * prefix. ENG_ERR_FORMAT with err for a missing or mis-shaped tensor. */
eng_status eng__tower_bind(eng__tower *t, const eng__file *f, const char *prefix, char *err,
                           size_t errlen);
/* bf16 (or fp32) forms of every linear layer (eng__linear_prepare). */
eng_status eng__tower_prepare(eng__tower *t, int bf16, char *err, size_t errlen);
void eng__tower_release(eng__tower *t); /* the layers and what prepare made */

/* A context's scratch for one tower: up to max_rows packed rows, sequences
 * of up to max_seq tokens, team of members threads; extra (may be NULL) is a
 * linear layer run on it too (eng__tower_linear: the patch embedding). */
typedef struct {
    int max_rows, max_seq, members;
    float *h;    /* [rows, H]: the residual stream, input and output */
    float *tmp;  /* [rows, H] */
    float *x;    /* [rows, H]: layernormed rows */
    float *qkv;  /* [rows, 3H] */
    float *attn; /* [rows, H] */
    float *ffn;  /* [rows, F] */
    float *att;  /* [members][att_floats], 64-byte aligned shares */
    size_t att_floats;
    void *lin; /* [members][lin_bytes] or NULL */
    size_t lin_bytes;
} eng__tower_scratch;

eng_status eng__tower_scratch_init(eng__tower_scratch *s, const eng__tower *t,
                                   const eng__linear *extra, int max_rows, int max_seq, int members,
                                   int bf16);
void eng__tower_scratch_free(eng__tower_scratch *s);

/* One run of the layers on a team, over T rows of s->h holding n sequences
 * (sequence j: rows [off[j], off[j] + len[j])). */
typedef struct {
    const eng__tower *t;
    eng__tower_scratch *s;
    eng__team *team;
    const eng__kernels *k;
    const eng__bgemm_kernels *bk; /* bf16 contexts; NULL for fp32 */
    int T, n;
    const int *off, *len;
    int by_cols; /* set by eng__tower_job_plan */
} eng__tower_job;

/* Decides how the members share the linear layers: by columns when T is too
 * small to give each member enough rows (src/text/forward.c says why). */
void eng__tower_job_plan(eng__tower_job *j, int members);

/* Member tid's part of every layer, called by all members of the team inside
 * one eng__team_run, as the member's last step: it starts with a barrier, so
 * s->h may have been written by other members just before, and leaves the
 * final barrier to the run's end. */
void eng__tower_member(const eng__tower_job *j, int tid, int nt);

/* A linear layer run by a member: its rows [lo, hi) of the T, or (by_cols)
 * its share of the columns of all T rows followed by a barrier. X is [T, K],
 * Y and res [T, N]. For the steps around the tower (patch embedding). */
void eng__tower_linear(const eng__tower_job *j, const eng__linear *l, const float *X, float *Y,
                       const float *res, eng__act act, int tid, int nt);

#endif
