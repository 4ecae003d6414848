/* test_cnn.c: the ResNet path (src/vision/conv.c, src/vision/cnn.c, tools/convert/resnet.c).
 * Each layer against direct loops; small synthetic basic and bottleneck
 * networks, converted from torchvision-layout tensors with explicit
 * BatchNorm, against a scalar NCHW reference written here; batch results
 * against single-image results; and, when the shared data is present,
 * ResNet-18 on 100 images against torchvision's logits (ResNet-50 is
 * tests/test_resnet50.c). Layers are checked split among 1 to 7 members and
 * on every ISA's GEMM tile this CPU runs. */
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnn.h"
#include "cnn_testutil.h"
#include "conv.h"
#include "image.h"
#include "resnet.h"
#include "team.h"
#include "testutil.h"

/* Measured on AVX-512 (make test): a layer's worst error 7.8e-6 of its
 * largest output (Winograd's transforms round more than a direct sum; 3x3
 * convolutions of up to 576 terms), a synthetic net's logits 2.6e-7 relative
 * L2 against the double-precision reference. The tolerances leave about 4x
 * and 20x for other ISAs' summation orders. */
#define LAYER_TOL 3e-5        /* max abs error / max abs value, one layer */
#define NET_TOL 5e-6          /* relative L2 error of logits, synthetic nets */
/* Batch vs single vs split among members: exact, because every output is
 * summed in the same order whatever computes it (measured: 0). */
#define BATCH_TOL 0.0         /* relative L2, batch vs single */
#define BN_EPS 1e-5

static uint64_t rng = 88172645463325252ull;

static float frand(void)   /* uniform in [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1 << 23)) - 1.0);
}

static float *rand_array(size_t n, float scale, float offset)
{
    float *a = malloc(sizeof(float) * (n ? n : 1));
    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < n; i++)
        a[i] = offset + scale * frand();
    return a;
}

/* ---- Layers ----------------------------------------------------------------- */

/* Direct NHWC convolution from torch-layout weights wt[cout][cin][k][k]. */
static void direct_conv(const float *in, int n, int h, int w, int cin, const float *wt,
                        const float *b, int cout, int k, int stride, int pad, const float *res,
                        int relu, float *out)
{
    int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
    for (int img = 0; img < n; img++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int co = 0; co < cout; co++) {
                    double acc = b[co];
                    for (int ci = 0; ci < cin; ci++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                    continue;
                                acc += (double)in[(((size_t)img * h + iy) * w + ix) * cin + ci] *
                                       wt[(((size_t)co * cin + ci) * k + ky) * k + kx];
                            }
                    size_t o = (((size_t)img * oh + oy) * ow + ox) * cout + co;
                    if (res)
                        acc += res[o];
                    out[o] = (float)(relu && acc < 0 ? 0 : acc);
                }
}

/* A padded copy of the dense NHWC array src (NULL: the interior too is
 * filled), its border filled with fill. */
static eng__fmap padded(const float *src, int n, int h, int w, int c, int pad, unsigned char fill)
{
    eng__fmap f = { malloc(sizeof(float) * eng__fmap_floats(n, h, w, c, pad)), n, h, w, c, pad };
    ck_assert_ptr_nonnull(f.d);
    memset(f.d, fill, sizeof(float) * eng__fmap_floats(n, h, w, c, pad));
    for (int img = 0; src && img < n; img++)
        for (int y = 0; y < h; y++)
            memcpy(eng__fmap_at(&f, img, y, 0), src + (((size_t)img * h + y) * w) * c,
                   sizeof(float) * (size_t)w * c);
    return f;
}

/* Every border float of f is zero. */
static int border_is_zero(const eng__fmap *f)
{
    for (int img = 0; img < f->n; img++)
        for (int y = -f->pad; y < f->h + f->pad; y++)
            for (int x = -f->pad; x < f->w + f->pad; x++)
                if (y < 0 || y >= f->h || x < 0 || x >= f->w)
                    for (int ch = 0; ch < f->c; ch++)
                        if (eng__fmap_at(f, img, y, x)[ch] != 0.0f)
                            return 0;
    return 1;
}

static const struct {
    int k, stride, pad, cin, cout, h, w, n;
} conv_cases[] = {
    { 1, 1, 0, 5, 7, 6, 5, 2 },  { 1, 2, 0, 6, 8, 7, 7, 2 },    { 3, 1, 1, 4, 6, 9, 8, 2 },
    { 3, 2, 1, 5, 3, 9, 9, 3 },  { 7, 2, 3, 3, 8, 15, 13, 2 },  { 3, 1, 1, 16, 16, 4, 4, 1 },
    /* More than one panel group, a row wider than two tiles, all kernel rows
     * in one K block; K blocks of two kernel rows and of one. */
    { 3, 1, 1, 48, 80, 3, 15, 1 }, { 3, 2, 1, 200, 70, 5, 5, 2 }, { 3, 1, 1, 256, 20, 3, 4, 1 },
    /* For Winograd's algorithm (every 3x3, stride 1 case runs it too): one
     * pixel; odd edges (tiles past the map); a second group of 6 channels;
     * several blocks of tiles. */
    { 3, 1, 1, 3, 17, 1, 1, 1 }, { 3, 1, 1, 17, 70, 7, 5, 2 }, { 3, 1, 1, 200, 20, 15, 13, 2 },
};

/* Team sizes the layers are split for. */
static const int member_counts[] = { 1, 2, 3, 7 };

/* One conv run on a real team, its members taking units from one counter;
 * by Winograd's algorithm when c->wino is set, with the transforms of k and
 * scratch for every member. */
typedef struct {
    const eng__sgemm_kernels *sk;
    const eng__conv *c;
    const eng__fmap *in, *out, *res;
    int relu;
    eng__team_counter work;
    const eng__kernels *k;
    float *scratch;
    size_t scratch_floats;
} conv_run;

static void conv_member(void *arg, int tid, int nt)
{
    conv_run *cr = arg;
    if (cr->c->wino)
        eng__conv_winograd_forward(cr->sk, cr->k, cr->c, cr->in, cr->out, cr->res, cr->relu,
                                   cr->scratch, cr->scratch_floats, &cr->work, tid, nt);
    else
        eng__conv_forward(cr->sk, cr->c, cr->in, cr->out, cr->res, cr->relu, &cr->work, tid,
                          nt);
}

START_TEST(conv_matches_direct)
{
    int t = _i / 4, relu = _i & 1, with_res = (_i >> 1) & 1;
    int k = conv_cases[t].k, s = conv_cases[t].stride, p = conv_cases[t].pad;
    int cin = conv_cases[t].cin, cout = conv_cases[t].cout, h = conv_cases[t].h,
        w = conv_cases[t].w, n = conv_cases[t].n;
    int oh = eng__conv_out(h, k, s, p), ow = eng__conv_out(w, k, s, p);
    size_t K = (size_t)k * k * cin, outn = (size_t)n * oh * ow * cout;
    float *in = rand_array((size_t)n * h * w * cin, 1, 0);
    float *wt = rand_array(K * cout, 0.5f, 0), *b = rand_array((size_t)cout, 0.5f, 0);
    float *res = with_res ? rand_array(outn, 1, 0) : NULL;
    float *wg = malloc(sizeof(float) * K * cout);
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    wg[(((size_t)ky * k + kx) * cin + ci) * cout + co] =
                        wt[(((size_t)co * cin + ci) * k + ky) * k + kx];
    float *packed = aligned_alloc(64, eng__sgemm_packed_bytes((int)K, cout));
    eng__sgemm_pack(wg, (int)K, cout, packed);
    const eng__conv c = { k, k, s, p, cin, cout, wg, b, packed, NULL, 0 };
    /* 3x3, stride 1 convs run by Winograd's algorithm as well, with tiles
     * of 2 and of 4, whatever eng__conv_winograd_suits would say of their
     * size. */
    const int by_wino = k == 3 && s == 1 && p == 1;
    eng__conv cw[2] = { c, c };
    float *wino[2] = { NULL, NULL }, *scratch = NULL;
    const size_t scratch_floats = eng__conv_winograd_scratch(&c) * 7;
    for (int i = 0; by_wino && i < 2; i++) {
        cw[i].wino_m = 2 + 2 * i;
        cw[i].wino = wino[i] = aligned_alloc(64, eng__conv_winograd_bytes(&c, cw[i].wino_m));
        eng__conv_winograd_pack(&c, cw[i].wino_m, wino[i]);
    }
    if (by_wino)
        scratch = aligned_alloc(64, sizeof(float) * scratch_floats);
    float *ref = malloc(sizeof(float) * outn);
    direct_conv(in, n, h, w, cin, wt, b, cout, k, s, p, res, relu, ref);
    double scale = 0;
    for (size_t i = 0; i < outn; i++)
        scale = fmax(scale, fabs(ref[i]));
    /* The input's border wider than the conv's padding, the residual's of
     * another width, the output's full of garbage before. */
    eng__fmap x = padded(in, n, h, w, cin, p + 1, 0);
    eng__fmap r = padded(res, n, oh, ow, cout, 2, 0x7f);
    const size_t yn = eng__fmap_floats(n, oh, ow, cout, 1);
    float *first = malloc(sizeof(float) * yn);
    ck_assert_ptr_nonnull(first);
    /* Each ISA directly, then by Winograd's algorithm with tiles of 2 and 4. */
    for (int run = 0; run < (by_wino ? 9 : 3); run++) {
        const int variant = run / 3;
        const eng__isa isa = (eng__isa)(run % 3);
        const eng__sgemm_kernels *sk = eng__sgemm_for(isa);
        for (size_t m = 0; sk && m < sizeof member_counts / sizeof member_counts[0]; m++) {
            const int members = member_counts[m];
            eng__fmap y = padded(NULL, n, oh, ow, cout, 1, 0xff);
            eng__team *team;
            ck_assert(eng__team_create(&team, members) == ENG_OK);
            conv_run cr = { sk, variant ? &cw[variant - 1] : &c, &x, &y, res ? &r : NULL, relu,
                            { 0 },
                            eng__kernels_for(isa), scratch, scratch_floats };
            eng__team_counter_zero(&cr.work);
            eng__team_run(team, conv_member, &cr);
            eng__team_free(team);
            double worst = 0;
            for (int img = 0; img < n; img++)
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++)
                        for (int co = 0; co < cout; co++) {
                            float v = eng__fmap_at(&y, img, oy, ox)[co];
                            worst = fmax(worst, fabs((double)v -
                                                     ref[(((size_t)img * oh + oy) * ow + ox) * cout + co]));
                            ck_assert(!relu || v >= 0);
                        }
            ck_assert_msg(worst <= LAYER_TOL * scale,
                          "case %d (Winograd tile %d) isa %d members %d: error %g of %g", t,
                          2 * variant, (int)isa, members, worst, scale);
            ck_assert_msg(border_is_zero(&y), "case %d: border not zeroed", t);
            /* Every output is summed the same way whoever computes it. */
            if (m == 0)
                memcpy(first, y.d, sizeof(float) * yn);
            else
                ck_assert_msg(memcmp(first, y.d, sizeof(float) * yn) == 0,
                              "case %d isa %d: %d members differ from one", t, (int)isa, members);
            free(y.d);
        }
    }
    free(in), free(wt), free(b), free(res), free(wg), free(ref), free(packed), free(x.d),
        free(r.d), free(first), free(wino[0]), free(wino[1]), free(scratch);
}
END_TEST

/* One fused conv and pooling run on a real team. */
typedef struct {
    const eng__sgemm_kernels *sk;
    const eng__conv *c;
    const eng__fmap *in, *out;
    float *scratch;
    size_t scratch_floats;
    int relu;
    eng__team_counter work;
} pool_run;

static void pool_member(void *arg, int tid, int nt)
{
    pool_run *pr = arg;
    eng__conv_maxpool_forward(pr->sk, pr->c, pr->in, pr->out, pr->scratch, pr->scratch_floats,
                              pr->relu, &pr->work, tid, nt);
}

/* out = maxpool(conv(x)) by eng__conv_maxpool_forward on a team of nt, with
 * scratch for only scratch_members of them. */
static void conv_pool(const eng__sgemm_kernels *sk, const eng__conv *c, const eng__fmap *x,
                      const eng__fmap *out, int relu, int nt, int scratch_members)
{
    const size_t sf = eng__conv_maxpool_scratch(c, x) * (size_t)scratch_members;
    float *scratch = malloc(sizeof(float) * sf);
    ck_assert_ptr_nonnull(scratch);
    eng__team *team;
    ck_assert(eng__team_create(&team, nt) == ENG_OK);
    pool_run pr = { sk, c, x, out, scratch, sf, relu, { 0 } };
    eng__team_counter_zero(&pr.work);
    eng__team_run(team, pool_member, &pr);
    eng__team_free(team);
    free(scratch);
}

/* Asserts that y is the 3x3, stride 2, pad 1 max pooling of src's interior
 * (padding never wins), bit for bit, on a team of nt. */
static void check_pooled(const eng__fmap *src, const eng__fmap *y, int nt)
{
    for (int img = 0; img < y->n; img++)
        for (int oy = 0; oy < y->h; oy++)
            for (int ox = 0; ox < y->w; ox++)
                for (int ch = 0; ch < y->c; ch++) {
                    float m = -INFINITY;
                    for (int yy = oy * 2 - 1; yy <= oy * 2 + 1; yy++)
                        for (int xx = ox * 2 - 1; xx <= ox * 2 + 1; xx++)
                            if (yy >= 0 && yy < src->h && xx >= 0 && xx < src->w)
                                m = fmaxf(m, eng__fmap_at(src, img, yy, xx)[ch]);
                    ck_assert_msg(eng__fmap_at(y, img, oy, ox)[ch] == m,
                                  "members %d: (%d, %d, %d, %d) differs", nt, img, oy, ox, ch);
                }
}

START_TEST(pools_match_direct)
{
    /* 21 channels: the max pooling's blocks of 16 and a remainder; 13 rows:
     * bands and units of several sizes. The pooling runs after a 1x1
     * identity conv, which passes its input on exactly. */
    int n = 2, h = 13, w = 8, c = 21;
    int oh = eng__conv_out(h, 3, 2, 1), ow = eng__conv_out(w, 3, 2, 1);
    float *in = rand_array((size_t)n * h * w * c, 1, -2);   /* all negative: padding must lose */
    float avg[2 * 21], *ident = calloc((size_t)c * c, sizeof(float)), zero[21] = { 0 };
    for (int i = 0; i < c; i++)
        ident[i * c + i] = 1;
    float *packed = aligned_alloc(64, eng__sgemm_packed_bytes(c, c));
    eng__sgemm_pack(ident, c, c, packed);
    const eng__conv id = { 1, 1, 1, 0, c, c, ident, zero, packed, NULL, 0 };
    eng__fmap x = padded(in, n, h, w, c, 1, 0);
    for (size_t mi = 0; mi < sizeof member_counts / sizeof member_counts[0]; mi++) {
        const int nt = member_counts[mi];
        eng__fmap y = padded(NULL, n, oh, ow, c, 1, 0xff);
        /* Scratch for all members but one where there are several. */
        conv_pool(eng__sgemm_get(), &id, &x, &y, 0, nt, nt > 1 ? nt - 1 : 1);
        ck_assert(border_is_zero(&y));
        check_pooled(&x, &y, nt);
        free(y.d);
        memset(avg, 0xff, sizeof avg);
        for (int tid = 0; tid < nt; tid++)
            eng__global_avgpool(&x, avg, tid, nt);
        for (int img = 0; img < n; img++)
            for (int ch = 0; ch < c; ch++) {
                double s = 0;
                for (int p = 0; p < h * w; p++)
                    s += in[((size_t)img * h * w + p) * c + ch];
                ck_assert_double_eq_tol(avg[img * c + ch], s / (h * w), 1e-5);
            }
    }
    free(in), free(ident), free(packed);
    free(x.d);
}
END_TEST

/* The fused stem (7x7 stride 2 conv, ReLU, pooling) equals the pooling of
 * eng__conv_forward's output bit for bit, on every ISA and team size. */
START_TEST(conv_pool_matches_conv)
{
    const int n = 3, h = 37, w = 29, cin = 3, cout = 40, k = 7;
    const int ch = eng__conv_out(h, k, 2, 3), cw = eng__conv_out(w, k, 2, 3);
    const int oh = eng__conv_out(ch, 3, 2, 1), ow = eng__conv_out(cw, 3, 2, 1);
    const size_t K = (size_t)k * k * cin;
    float *in = rand_array((size_t)n * h * w * cin, 1, 0);
    float *wg = rand_array(K * cout, 0.5f, 0), *b = rand_array((size_t)cout, 0.5f, 0);
    float *packed = aligned_alloc(64, eng__sgemm_packed_bytes((int)K, cout));
    eng__sgemm_pack(wg, (int)K, cout, packed);
    const eng__conv c = { k, k, 2, 3, cin, cout, wg, b, packed, NULL, 0 };
    eng__fmap x = padded(in, n, h, w, cin, 3, 0);
    for (eng__isa isa = ENG_ISA_SCALAR; isa <= ENG_ISA_AVX512; isa++) {
        const eng__sgemm_kernels *sk = eng__sgemm_for(isa);
        if (!sk)
            continue;
        eng__fmap full = padded(NULL, n, ch, cw, cout, 0, 0);
        conv_run cr = { sk, &c, &x, &full, NULL, 1, { 0 }, NULL, NULL, 0 };
        eng__team_counter_zero(&cr.work);
        conv_member(&cr, 0, 1);
        for (size_t mi = 0; mi < sizeof member_counts / sizeof member_counts[0]; mi++) {
            const int nt = member_counts[mi];
            eng__fmap y = padded(NULL, n, oh, ow, cout, 1, 0xff);
            conv_pool(sk, &c, &x, &y, 1, nt, nt);
            ck_assert(border_is_zero(&y));
            check_pooled(&full, &y, nt);
            free(y.d);
        }
        free(full.d);
    }
    free(in), free(wg), free(b), free(packed), free(x.d);
}
END_TEST

/* ---- Synthetic networks -------------------------------------------------------- */

static void add_tensor(src_tensors *s, const char *name, int ndim, const int64_t *shape,
                       float scale, float offset)
{
    s->t = realloc(s->t, sizeof(src_tensor) * (size_t)(s->n + 1));
    src_tensor *t = &s->t[s->n++];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->dtype = SRC_F32;
    t->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= (size_t)(t->shape[i] = shape[i]);
    t->data = rand_array(numel, scale, offset);
    t->nbytes = numel * sizeof(float);
}

static void add_conv_bn(src_tensors *s, const char *conv, const char *bn, int cout, int cin, int k)
{
    char n[128];
    int64_t ws[4] = { cout, cin, k, k }, bs[1] = { cout };
    snprintf(n, sizeof n, "%s.weight", conv);
    add_tensor(s, n, 4, ws, (float)sqrt(3.0 / (cin * k * k)), 0);
    snprintf(n, sizeof n, "%s.weight", bn);
    add_tensor(s, n, 1, bs, 0.5f, 1.0f);
    snprintf(n, sizeof n, "%s.bias", bn);
    add_tensor(s, n, 1, bs, 0.1f, 0);
    snprintf(n, sizeof n, "%s.running_mean", bn);
    add_tensor(s, n, 1, bs, 0.1f, 0);
    snprintf(n, sizeof n, "%s.running_var", bn);
    add_tensor(s, n, 1, bs, 0.4f, 1.0f);
}

typedef struct {
    int bottleneck, layers[4], width, classes;
} net_shape;

/* A torchvision-named state dict of the given shape, random weights. */
static void build_net(src_tensors *s, const net_shape *ns)
{
    char a[96], b[96];
    int e = ns->bottleneck ? 4 : 1, cin = ns->width;
    memset(s, 0, sizeof *s);
    add_conv_bn(s, "conv1", "bn1", ns->width, 3, 7);
    for (int L = 0; L < 4; L++) {
        int planes = ns->width << L;
        for (int i = 0; i < ns->layers[L]; i++) {
            int stride = L > 0 && i == 0 ? 2 : 1;
            int nconv = ns->bottleneck ? 3 : 2;
            int ci[3] = { cin, planes, planes }, co[3] = { planes, planes, planes * e };
            int k[3] = { ns->bottleneck ? 1 : 3, 3, 1 };
            for (int c = 0; c < nconv; c++) {
                snprintf(a, sizeof a, "layer%d.%d.conv%d", L + 1, i, c + 1);
                snprintf(b, sizeof b, "layer%d.%d.bn%d", L + 1, i, c + 1);
                add_conv_bn(s, a, b, co[c], ci[c], k[c]);
            }
            if (stride != 1 || cin != planes * e) {
                snprintf(a, sizeof a, "layer%d.%d.downsample.0", L + 1, i);
                snprintf(b, sizeof b, "layer%d.%d.downsample.1", L + 1, i);
                add_conv_bn(s, a, b, planes * e, cin, 1);
            }
            cin = planes * e;
        }
    }
    int64_t fs[2] = { ns->classes, cin }, bs[1] = { ns->classes };
    add_tensor(s, "fc.weight", 2, fs, (float)sqrt(3.0 / cin), 0);
    add_tensor(s, "fc.bias", 1, bs, 0.1f, 0);
}

static const float *tdata(const src_tensors *s, const char *name, const char *field)
{
    char n[160];
    snprintf(n, sizeof n, "%s.%s", name, field);
    const src_tensor *t = src_find(s, n);
    ck_assert_msg(t != NULL, "%s missing", n);
    return t->data;
}

/* The scalar reference: NCHW conv + explicit BatchNorm (+ res) (+ ReLU).
 * x[cin][h][w] -> returns malloc'd y[cout][oh][ow]. */
static float *ref_conv_bn(const src_tensors *s, const char *conv, const char *bn, const float *x,
                          int cin, int h, int w, int stride, const float *res, int relu, int *cout,
                          int *oh, int *ow)
{
    char n[160];
    snprintf(n, sizeof n, "%s.weight", conv);
    const src_tensor *wt = src_find(s, n);
    ck_assert_ptr_nonnull(wt);
    int co_n = (int)wt->shape[0], k = (int)wt->shape[2], pad = k / 2;
    const float *W = wt->data, *g = tdata(s, bn, "weight"), *be = tdata(s, bn, "bias");
    const float *mu = tdata(s, bn, "running_mean"), *var = tdata(s, bn, "running_var");
    *oh = (h + 2 * pad - k) / stride + 1;
    *ow = (w + 2 * pad - k) / stride + 1;
    *cout = co_n;
    float *y = malloc(sizeof(float) * (size_t)co_n * *oh * *ow);
    for (int co = 0; co < co_n; co++)
        for (int oy = 0; oy < *oh; oy++)
            for (int ox = 0; ox < *ow; ox++) {
                double acc = 0;
                for (int ci = 0; ci < cin; ci++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                            if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                                acc += (double)x[((size_t)ci * h + iy) * w + ix] *
                                       W[(((size_t)co * cin + ci) * k + ky) * k + kx];
                        }
                acc = (acc - mu[co]) / sqrt((double)var[co] + BN_EPS) * g[co] + be[co];
                size_t o = ((size_t)co * *oh + oy) * *ow + ox;
                if (res)
                    acc += res[o];
                y[o] = (float)(relu && acc < 0 ? 0 : acc);
            }
    return y;
}

static void ref_forward(const src_tensors *s, const net_shape *ns, const float *img, int crop,
                        float *logits)
{
    int c, h, w, h2, w2, c2;
    float *x = ref_conv_bn(s, "conv1", "bn1", img, 3, crop, crop, 2, NULL, 1, &c, &h, &w);
    int ph = (h + 2 - 3) / 2 + 1, pw = (w + 2 - 3) / 2 + 1;
    float *p = malloc(sizeof(float) * (size_t)c * ph * pw);
    for (int ch = 0; ch < c; ch++)
        for (int oy = 0; oy < ph; oy++)
            for (int ox = 0; ox < pw; ox++) {
                float m = -INFINITY;
                for (int y = oy * 2 - 1; y <= oy * 2 + 1; y++)
                    for (int xx = ox * 2 - 1; xx <= ox * 2 + 1; xx++)
                        if (y >= 0 && y < h && xx >= 0 && xx < w)
                            m = fmaxf(m, x[((size_t)ch * h + y) * w + xx]);
                p[((size_t)ch * ph + oy) * pw + ox] = m;
            }
    free(x);
    x = p, h = ph, w = pw;
    char a[96], b[96];
    for (int L = 0; L < 4; L++)
        for (int i = 0; i < ns->layers[L]; i++) {
            int stride = L > 0 && i == 0 ? 2 : 1, nconv = ns->bottleneck ? 3 : 2;
            snprintf(a, sizeof a, "layer%d.%d.downsample.0", L + 1, i);
            snprintf(b, sizeof b, "layer%d.%d.downsample.1", L + 1, i);
            char wn[128];
            snprintf(wn, sizeof wn, "%s.weight", a);
            float *id = src_find(s, wn) ? ref_conv_bn(s, a, b, x, c, h, w, stride, NULL, 0, &c2,
                                                      &h2, &w2)
                                        : NULL;
            float *t = x;
            int tc = c, th = h, tw = w;
            for (int k = 0; k < nconv; k++) {
                snprintf(a, sizeof a, "layer%d.%d.conv%d", L + 1, i, k + 1);
                snprintf(b, sizeof b, "layer%d.%d.bn%d", L + 1, i, k + 1);
                int st = (ns->bottleneck ? k == 1 : k == 0) ? stride : 1;
                float *u = ref_conv_bn(s, a, b, t, tc, th, tw, st,
                                       k == nconv - 1 ? (id ? id : x) : NULL, 1, &tc, &th, &tw);
                if (t != x)
                    free(t);
                t = u;
            }
            free(id);
            free(x);
            x = t, c = tc, h = th, w = tw;
        }
    const float *fw = tdata(s, "fc", "weight"), *fb = tdata(s, "fc", "bias");
    for (int k = 0; k < ns->classes; k++) {
        double acc = fb[k];
        for (int ch = 0; ch < c; ch++) {
            double m = 0;
            for (int q = 0; q < h * w; q++)
                m += x[(size_t)ch * h * w + q];
            acc += m / (h * w) * fw[(size_t)k * c + ch];
        }
        logits[k] = (float)acc;
    }
    free(x);
}

static char tmpdir[64] = "/tmp/test_cnn.XXXXXX";   /* made by main() */

static const char *tmp_model(const char *name)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return path;
}

/* Loads a converted file: f, cnn. */
static void load(const char *path, eng__file *f, eng__cnn **cnn)
{
    char err[256];
    ck_assert_msg(eng__file_open(f, path, err, sizeof err) == ENG_OK, "%s", err);
    ck_assert_msg(eng__cnn_init(cnn, f, err, sizeof err) == ENG_OK, "%s", err);
}

static const net_shape synth[] = {
    { 0, { 1, 2, 1, 1 }, 4, 10 },   /* basic blocks, identity and projection shortcuts */
    { 1, { 2, 1, 1, 1 }, 4, 7 },    /* bottleneck blocks */
};

START_TEST(synthetic_net_matches_reference)
{
    const net_shape *ns = &synth[_i];
    src_tensors s;
    build_net(&s, ns);
    char err[256];
    const char *path = tmp_model(_i ? "bottleneck.eng" : "basic.eng");
    ck_assert_msg(convert_resnet_tensors(&s, NULL, NULL, 0, path, err, sizeof err) == ENG_OK,
                  "%s", err);
    eng__file f;
    eng__cnn *cnn;
    load(path, &f, &cnn);
    ck_assert_int_eq(eng__cnn_num_classes(cnn), ns->classes);
    ck_assert_ptr_null(eng__cnn_label(cnn, 0));
    int n = 3, crop = eng__cnn_image_spec(cnn)->crop, nc = ns->classes;
    size_t in = eng__cnn_input_floats(cnn);
    float *imgs = rand_array(in * n, 2, 0);
    float *ref = malloc(sizeof(float) * nc * n), *got = malloc(sizeof(float) * nc * n);
    float *one = malloc(sizeof(float) * nc * n), *split = malloc(sizeof(float) * nc * n);
    for (int i = 0; i < n; i++)
        ref_forward(&s, ns, imgs + in * i, crop, ref + nc * i);
    eng__cnn_ctx *c3, *c1, *c2;
    eng__team *t1, *t2;
    ck_assert(eng__team_create(&t1, 1) == ENG_OK && eng__team_create(&t2, 2) == ENG_OK);
    /* c2 is sized for one member and run on two: the second idles in the
     * layers that need scratch, with the same results. */
    ck_assert(eng__cnn_ctx_init(cnn, 3, 1, &c3, err, sizeof err) == ENG_OK);
    ck_assert(eng__cnn_ctx_init(cnn, 1, 2, &c1, err, sizeof err) == ENG_OK);
    ck_assert(eng__cnn_ctx_init(cnn, 2, 1, &c2, err, sizeof err) == ENG_OK);
    eng__cnn_forward(c3, t1, imgs, n, got);
    for (int i = 0; i < n; i++)
        eng__cnn_forward(c1, t2, imgs + in * i, 1, one + nc * i);
    eng__cnn_forward(c2, t2, imgs, n, split);   /* a batch of 2, then 1 */
    for (int i = 0; i < n; i++) {
        double e = rel_l2(got + nc * i, ref + nc * i, (size_t)nc);
        ck_assert_msg(e <= NET_TOL, "image %d: relative error %g", i, e);
        ck_assert_msg(rel_l2(one + nc * i, got + nc * i, (size_t)nc) <= BATCH_TOL, "single %d", i);
        ck_assert_msg(rel_l2(split + nc * i, got + nc * i, (size_t)nc) <= BATCH_TOL, "split %d", i);
    }
    eng__cnn_ctx_free(c1), eng__cnn_ctx_free(c2), eng__cnn_ctx_free(c3);
    eng__team_free(t1), eng__team_free(t2);
    eng__cnn_free(cnn);
    eng__file_close(&f);
    unlink(path);
    src_free(&s);
    free(imgs), free(ref), free(got), free(one), free(split);
}
END_TEST

START_TEST(converter_refuses_mismatches)
{
    net_shape ns = { 0, { 1, 1, 1, 1 }, 4, 5 };
    src_tensors s;
    build_net(&s, &ns);
    char err[256];
    const char *path = tmp_model("refused.eng");
    const char *labels[4] = { "a", "b", "c", "d" };
    ck_assert_int_eq(convert_resnet_tensors(&s, "resnet18", NULL, 0, path, err, sizeof err),
                     ENG_ERR_FORMAT);
    ck_assert_int_eq(convert_resnet_tensors(&s, "resnet9000", NULL, 0, path, err, sizeof err),
                     ENG_ERR_UNSUPPORTED);
    ck_assert_int_eq(convert_resnet_tensors(&s, NULL, labels, 4, path, err, sizeof err),
                     ENG_ERR_FORMAT);
    /* A BatchNorm vector of the wrong length. */
    src_tensor *t = (src_tensor *)src_find(&s, "layer2.0.bn1.running_var");
    t->shape[0] = 3;
    ck_assert_int_eq(convert_resnet_tensors(&s, NULL, NULL, 0, path, err, sizeof err),
                     ENG_ERR_FORMAT);
    ck_assert_int_ne(access(path, F_OK), 0);
    src_free(&s);
}
END_TEST

/* ---- Against torchvision ---------------------------------------------------------- */

static char **sorted_images(const char *dir, int *n);

START_TEST(resnet18_matches_torchvision)
{
    char pth[4096], cls[4096], refp[4096], dir[4096], err[512];
    const char *p = test_shared_path("models/resnet18-random/resnet18.pth");
    snprintf(pth, sizeof pth, "%s", p);   /* before the next call reuses p's buffer */
    snprintf(cls, sizeof cls, "%s", test_shared_path("data/imagenet-sample/imagenet_classes.txt"));
    snprintf(refp, sizeof refp, "%s",
             test_shared_path("data/imagenet-sample/resnet18-random.logits.jsonl"));
    snprintf(dir, sizeof dir, "%s", test_shared_path("data/imagenet-sample/images"));
    const char *path = tmp_model("resnet18.eng");
    ck_assert_msg(convert_resnet("resnet18", cls, pth, path, err, sizeof err) == ENG_OK, "%s", err);
    eng__file f;
    eng__cnn *cnn;
    load(path, &f, &cnn);
    ck_assert_str_eq(eng__cnn_label(cnn, 0), "tench");
    ck_assert_str_eq(eng__cnn_arch(cnn), "resnet18");
    int nref, nc;
    float *ref = test_read_jsonl_floats(refp, "logits", &nref, &nc);
    ck_assert_ptr_nonnull(ref);
    ck_assert_int_eq(nc, eng__cnn_num_classes(cnn));
    int nimg;
    char **names = sorted_images(dir, &nimg);
    ck_assert_int_eq(nimg, nref);
    size_t in = eng__cnn_input_floats(cnn);
    float *imgs = malloc(sizeof(float) * in * nimg), *got = malloc(sizeof(float) * nc * nimg);
    for (int i = 0; i < nimg; i++) {
        char fp[8192];
        snprintf(fp, sizeof fp, "%s/%s", dir, names[i]);
        ck_assert_msg(eng__image_load(fp, eng__cnn_image_spec(cnn), imgs + in * i, err,
                                      sizeof err) == ENG_OK, "%s", err);
    }
    eng__cnn_ctx *ctx;
    eng__team *team;
    ck_assert(eng__team_create(&team, 2) == ENG_OK);
    ck_assert(eng__cnn_ctx_init(cnn, 8, eng__team_size(team), &ctx, err, sizeof err) == ENG_OK);
    eng__cnn_forward(ctx, team, imgs, nimg, got);   /* 12 batches of 8 and one of 4 */
    for (int i = 0; i < nimg; i++)
        check_logits(names[i], got + (size_t)nc * i, ref + (size_t)nc * i, nc);
    eng__cnn_ctx_free(ctx);
    eng__team_free(team);
    eng__cnn_free(cnn);
    eng__file_close(&f);
    unlink(path);
    for (int i = 0; i < nimg; i++)
        free(names[i]);
    free(names), free(ref), free(imgs), free(got);
}
END_TEST

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The JPEG/PNG names of dir in byte order, as Python's sorted() gives. */
static char **sorted_images(const char *dir, int *n)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    char **v = NULL;
    int cnt = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || (strcasecmp(dot, ".jpeg") && strcasecmp(dot, ".jpg") && strcasecmp(dot, ".png")))
            continue;
        v = realloc(v, sizeof(char *) * (size_t)(cnt + 1));
        v[cnt++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(v, (size_t)cnt, sizeof(char *), cmp_str);
    *n = cnt;
    return v;
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    Suite *s = suite_create("cnn");
    TCase *t = tcase_create("layers");
    /* Check's default 4 s is too short for the largest cases under ASan on a
     * loaded machine (seen in make asan). */
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, conv_matches_direct, 0, 4 * (int)(sizeof conv_cases / sizeof conv_cases[0]));
    tcase_add_test(t, pools_match_direct);
    tcase_add_test(t, conv_pool_matches_conv);
    suite_add_tcase(s, t);
    t = tcase_create("synthetic");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, synthetic_net_matches_reference, 0, 2);
    tcase_add_test(t, converter_refuses_mismatches);
    suite_add_tcase(s, t);
    if (test_shared_path("models/resnet18-random/resnet18.pth") &&
        test_shared_path("data/imagenet-sample/images")) {
        t = tcase_create("torchvision");
        tcase_set_timeout(t, 600);
        tcase_add_test(t, resnet18_matches_torchvision);
        suite_add_tcase(s, t);
    } else {
        test_note_skip("resnet18 against torchvision: $ENGINE_SHARED (../shared) lacks "
                       "models/resnet18-random or data/imagenet-sample");
    }
    int rc = test_run_suite(s);
    rmdir(tmpdir);
    return rc;
}
