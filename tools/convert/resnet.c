/* resnet.c: lays out a torchvision ResNet for src/vision/cnn.c (the tensor names and
 * metadata are documented in src/vision/cnn.h). Every BatchNorm (eval mode, eps
 * 1e-5) is folded into the convolution before it:
 *     s = gamma / sqrt(running_var + eps)
 *     w'[ky][kx][ci][co] = w[co][ci][ky][kx] * s[co]
 *     b'[co] = beta[co] - running_mean[co] * s[co]   (+ s[co] * conv bias)
 * in double precision, and stored in the im2col GEMM's [K][cout] order; the
 * classifier is transposed to [features][classes]. */
#include "resnet.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "writer.h"
#include "image.h"

#define BN_EPS 1e-5
#define MAX_LABELS 100000
#define LABEL_MAX 1024   /* bytes per line of the labels file */

static const struct {
    const char *name;
    int bottleneck;
    int layers[4];
} known[] = {
    { "resnet18", 0, { 2, 2, 2, 2 } },  { "resnet34", 0, { 3, 4, 6, 3 } },
    { "resnet50", 1, { 3, 4, 6, 3 } },  { "resnet101", 1, { 3, 4, 23, 3 } },
    { "resnet152", 1, { 3, 8, 36, 3 } },
};

/* One conversion: the first error sticks, so a run of steps is checked once. */
typedef struct {
    const src_tensors *s;
    eng__writer *w;
    eng_status st;
    char *err;
    size_t errlen;
} job;

static void fail(job *j, eng_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(job *j, eng_status s, const char *fmt, ...)
{
    if (j->st != ENG_OK)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err, j->errlen, fmt, ap);
    va_end(ap);
    j->st = s;
}

/* A float copy of tensor name with the expected shape (dims < 0 match any),
 * or NULL with the job failed. */
static float *get(job *j, const char *name, int ndim, const int64_t *shape)
{
    if (j->st != ENG_OK)
        return NULL;
    const src_tensor *t = src_find(j->s, name);
    if (!t) {
        fail(j, ENG_ERR_FORMAT, "checkpoint has no tensor %s", name);
        return NULL;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = shape[i] < 0 || t->shape[i] == shape[i];
    if (!ok) {
        fail(j, ENG_ERR_FORMAT, "tensor %s has an unexpected shape", name);
        return NULL;
    }
    float *f;
    j->st = src_to_f32(t, &f, j->err, j->errlen);
    return f;
}

static void add(job *j, const char *name, int ndim, const uint64_t *shape, const float *data)
{
    if (j->st == ENG_OK && eng__writer_add(j->w, name, ENG_DT_F32, ndim, shape, data) != ENG_OK)
        fail(j, ENG_ERR_NOMEM, "cannot add tensor %s", name);
}

/* Folds conv `conv` ("<conv>.weight", optional "<conv>.bias") with BatchNorm
 * `bn` and adds "<dst>.w" [k][k][cin][cout] and "<dst>.b" [cout]. */
static void fold(job *j, const char *conv, const char *bn, const char *dst, int cin, int cout, int k)
{
    char n[256];
    int64_t ws[4] = { cout, cin, k, k }, cs[1] = { cout };
    snprintf(n, sizeof n, "%s.weight", conv);
    float *w = get(j, n, 4, ws);
    snprintf(n, sizeof n, "%s.bias", conv);
    float *cb = src_find(j->s, n) ? get(j, n, 1, cs) : NULL;
    float *p[4];
    static const char *const bn_names[4] = { "weight", "bias", "running_mean", "running_var" };
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "%s.%s", bn, bn_names[i]);
        p[i] = get(j, n, 1, cs);
    }
    size_t K = (size_t)k * k * cin;
    float *ow = j->st == ENG_OK ? malloc(sizeof(float) * K * cout) : NULL;
    float *ob = j->st == ENG_OK ? malloc(sizeof(float) * cout) : NULL;
    if (j->st == ENG_OK && (!ow || !ob))
        fail(j, ENG_ERR_NOMEM, "out of memory folding %s", conv);
    if (j->st == ENG_OK) {
        for (int co = 0; co < cout; co++) {
            double s = p[0][co] / sqrt((double)p[3][co] + BN_EPS);
            ob[co] = (float)(p[1][co] - p[2][co] * s + (cb ? cb[co] * s : 0.0));
            for (int ci = 0; ci < cin; ci++)
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++)
                        ow[(((size_t)ky * k + kx) * cin + ci) * cout + co] =
                            (float)(w[(((size_t)co * cin + ci) * k + ky) * k + kx] * s);
        }
        uint64_t os[4] = { (uint64_t)k, (uint64_t)k, (uint64_t)cin, (uint64_t)cout };
        snprintf(n, sizeof n, "%s.w", dst);
        add(j, n, 4, os, ow);
        snprintf(n, sizeof n, "%s.b", dst);
        add(j, n, 1, os + 3, ob);
    }
    free(w);
    free(cb);
    for (int i = 0; i < 4; i++)
        free(p[i]);
    free(ow);
    free(ob);
}

/* Whether the checkpoint has "layer<layer>.<blk>.<conv>.weight". */
static int has(const src_tensors *s, int layer, int blk, const char *conv)
{
    char n[128];
    snprintf(n, sizeof n, "layer%d.%d.%s.weight", layer, blk, conv);
    return src_find(s, n) != NULL;
}

static char *meta_json(const char *arch, int bottleneck, const int layers[4], int width,
                       int classes, const char *const *labels)
{
    eng__image_spec spec = eng__image_spec_imagenet();
    /* torchvision's constants in the file, not their float32 roundings. */
    static const double mean[3] = { 0.485, 0.456, 0.406 }, stdv[3] = { 0.229, 0.224, 0.225 };
    cJSON *m = cJSON_CreateObject(), *rn = cJSON_CreateObject(), *img = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "format", "eng");
    cJSON_AddStringToObject(m, "kind", "cnn");
    cJSON_AddStringToObject(m, "arch", arch);
    cJSON_AddStringToObject(rn, "block", bottleneck ? "bottleneck" : "basic");
    cJSON_AddItemToObject(rn, "layers", cJSON_CreateIntArray(layers, 4));
    cJSON_AddNumberToObject(rn, "width", width);
    cJSON_AddItemToObject(m, "resnet", rn);
    cJSON_AddNumberToObject(m, "num_classes", classes);
    if (labels)
        cJSON_AddItemToObject(m, "labels", cJSON_CreateStringArray(labels, classes));
    cJSON_AddNumberToObject(img, "resize", spec.resize);
    cJSON_AddNumberToObject(img, "crop", spec.crop);
    cJSON_AddItemToObject(img, "mean", cJSON_CreateDoubleArray(mean, 3));
    cJSON_AddItemToObject(img, "std", cJSON_CreateDoubleArray(stdv, 3));
    cJSON_AddItemToObject(m, "image", img);
    char *s = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    return s;
}

eng_status convert_resnet_tensors(const src_tensors *s, const char *arch,
                                  const char *const *labels, int n_labels, const char *out,
                                  char *err, size_t errlen)
{
    job j = { .s = s, .w = eng__writer_new(), .err = err, .errlen = errlen };
    if (!j.w)
        fail(&j, ENG_ERR_NOMEM, "out of memory");

    /* The structure, read from the names and shapes. */
    const src_tensor *stem = src_find(s, "conv1.weight"), *fc = src_find(s, "fc.weight");
    int bottleneck = has(s, 1, 0, "conv3"), layers[4] = { 0 };
    for (int L = 0; L < 4; L++)
        while (layers[L] < 1000 && has(s, L + 1, layers[L], "conv1"))
            layers[L]++;
    if (!stem || stem->ndim != 4 || !fc || fc->ndim != 2 || !layers[0] || !layers[1] ||
        !layers[2] || !layers[3] || stem->shape[0] < 1 || stem->shape[0] > 1024 ||
        fc->shape[0] < 1 || fc->shape[0] > MAX_LABELS)
        fail(&j, ENG_ERR_FORMAT, "not a torchvision ResNet state dict (conv1, layer1-4, fc)");
    int width = j.st == ENG_OK ? (int)stem->shape[0] : 0;
    int classes = j.st == ENG_OK ? (int)fc->shape[0] : 0;
    if (arch && j.st == ENG_OK) {
        size_t k = 0;
        while (k < sizeof known / sizeof known[0] && strcmp(known[k].name, arch) != 0)
            k++;
        if (k == sizeof known / sizeof known[0])
            fail(&j, ENG_ERR_UNSUPPORTED, "unknown arch %s (resnet18/34/50/101/152)", arch);
        else if (known[k].bottleneck != bottleneck || width != 64 ||
                 memcmp(known[k].layers, layers, sizeof layers) != 0)
            fail(&j, ENG_ERR_FORMAT,
                 "checkpoint is a %s ResNet with blocks %d-%d-%d-%d and width %d, not %s",
                 bottleneck ? "bottleneck" : "basic", layers[0], layers[1], layers[2],
                 layers[3], width, arch);
    }
    if (labels && n_labels != classes && j.st == ENG_OK)
        fail(&j, ENG_ERR_FORMAT, "%d labels for %d classes", n_labels, classes);

    fold(&j, "conv1", "bn1", "conv1", 3, width, 7);
    int cin = width, expansion = bottleneck ? 4 : 1;
    char a[96], b[96], d[96];
    for (int L = 0; L < 4 && j.st == ENG_OK; L++) {
        int planes = width << L;
        for (int i = 0; i < layers[L]; i++) {
            int cout = planes * expansion;
            int ci[3] = { cin, planes, planes }, co[3] = { planes, planes, cout };
            int k[3] = { bottleneck ? 1 : 3, 3, 1 };
            for (int c = 0; c < (bottleneck ? 3 : 2); c++) {
                snprintf(a, sizeof a, "layer%d.%d.conv%d", L + 1, i, c + 1);
                snprintf(b, sizeof b, "layer%d.%d.bn%d", L + 1, i, c + 1);
                fold(&j, a, b, a, ci[c], co[c], k[c]);
            }
            int stride = (L > 0 && i == 0) ? 2 : 1;
            if (stride != 1 || cin != cout) {
                snprintf(a, sizeof a, "layer%d.%d.downsample.0", L + 1, i);
                snprintf(b, sizeof b, "layer%d.%d.downsample.1", L + 1, i);
                snprintf(d, sizeof d, "layer%d.%d.downsample", L + 1, i);
                fold(&j, a, b, d, cin, cout, 1);
            }
            cin = cout;
        }
    }

    int64_t fs[2] = { classes, cin }, bs[1] = { classes };
    float *fw = get(&j, "fc.weight", 2, fs), *fb = get(&j, "fc.bias", 1, bs);
    float *fwt = j.st == ENG_OK ? malloc(sizeof(float) * (size_t)cin * classes) : NULL;
    if (j.st == ENG_OK && !fwt)
        fail(&j, ENG_ERR_NOMEM, "out of memory");
    if (j.st == ENG_OK) {
        for (int c = 0; c < classes; c++)
            for (int f = 0; f < cin; f++)
                fwt[(size_t)f * classes + c] = fw[(size_t)c * cin + f];
        uint64_t ts[2] = { (uint64_t)cin, (uint64_t)classes };
        add(&j, "fc.w", 2, ts, fwt);
        add(&j, "fc.b", 1, ts + 1, fb);
    }
    free(fw);
    free(fb);
    free(fwt);

    if (j.st == ENG_OK) {
        char *meta = meta_json(arch ? arch : "resnet", bottleneck, layers, width, classes, labels);
        if (!meta)
            fail(&j, ENG_ERR_NOMEM, "out of memory");
        else
            j.st = eng__writer_save(j.w, meta, out, err, errlen);
        free(meta);
    }
    eng__writer_free(j.w);
    return j.st;
}

/* Lines of path (trailing CR/LF dropped; a final empty line ignored). */
static eng_status read_labels(const char *path, char ***out, int *n, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open labels file %s", path);
        return ENG_ERR_IO;
    }
    char line[LABEL_MAX];
    char **v = NULL;
    int cnt = 0;
    eng_status st = ENG_OK;
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        if (line[len] == '\0' && !feof(f)) {
            snprintf(err, errlen, "%s: line %d is longer than %d bytes", path, cnt + 1, LABEL_MAX);
            st = ENG_ERR_FORMAT;
            break;
        }
        line[len] = '\0';
        char **nv = cnt < MAX_LABELS ? realloc(v, sizeof(char *) * (size_t)(cnt + 1)) : NULL;
        if (!nv || !(nv[cnt] = strdup(line))) {
            v = nv ? nv : v;
            snprintf(err, errlen, "%s: too many labels or out of memory", path);
            st = ENG_ERR_FORMAT;
            break;
        }
        v = nv;
        cnt++;
    }
    if (st == ENG_OK && ferror(f)) {
        snprintf(err, errlen, "cannot read labels file %s", path);
        st = ENG_ERR_IO;
    } else if (st == ENG_OK && cnt == 0) {
        /* An empty file would otherwise pass for "no labels given". */
        snprintf(err, errlen, "labels file %s is empty (one class name a line)", path);
        st = ENG_ERR_FORMAT;
    }
    fclose(f);
    if (st != ENG_OK) {
        for (int i = 0; i < cnt; i++)
            free(v[i]);
        free(v);
        return st;
    }
    *out = v;
    *n = cnt;
    return ENG_OK;
}

eng_status convert_resnet(const char *arch, const char *labels_path, const char *weights,
                          const char *out, char *err, size_t errlen)
{
    char **labels = NULL;
    int n_labels = 0;
    src_tensors s = { 0 };
    eng_status st = labels_path ? read_labels(labels_path, &labels, &n_labels, err, errlen) : ENG_OK;
    if (st == ENG_OK)
        st = src_load_torch_zip(weights, &s, err, errlen);
    if (st == ENG_OK)
        st = convert_resnet_tensors(&s, arch, (const char *const *)labels, labels ? n_labels : 0,
                                    out, err, errlen);
    src_free(&s);
    for (int i = 0; i < n_labels; i++)
        free(labels[i]);
    free(labels);
    return st;
}
