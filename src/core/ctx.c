/* ctx.c: a context's whole lifetime (the parts every kind shares: device
 * check, thread team, error buffer; the kind sizes its own scratch once), and
 * the batch entry points, which check their arguments and hand the batch to
 * the model's kind (kind.h). Also the library-wide queries. */
#include <stdlib.h>

#include "bgemm.h"
#include "error.h"
#include "model.h"

#define ENG__STR(x) #x
#define ENG__VERSION_STR(a, b, c) ENG__STR(a) "." ENG__STR(b) "." ENG__STR(c)

const char *eng_version(void)
{
    return ENG__VERSION_STR(ENG_VERSION_MAJOR, ENG_VERSION_MINOR, ENG_VERSION_PATCH);
}

const char *eng_isa_name(void)
{
    return eng__isa_str(eng__kernels_get()->isa);
}

const char *eng__precision_name(eng_precision p)
{
    static const char *const names[] = {"fp32", "tf32", "fp16", "bf16"};
    return (unsigned)p <= ENG_PREC_BF16 ? names[p] : "unknown";
}

/* The device parameters, before anything is allocated: unknown values are
 * ENG_ERR_INVALID_ARG; a CPU context with a precision other than fp32 (or
 * bf16, for a kind with cpu_bf16 on a CPU with a bf16 unit), and a
 * CUDA context for a kind that runs on the CPU only, ENG_ERR_UNSUPPORTED. */
static eng_status check_device(const eng_model *m, const eng_ctx_params *p)
{
    if (p->device != ENG_DEVICE_CPU && p->device != ENG_DEVICE_CUDA)
        return eng__fail(ENG_ERR_INVALID_ARG, "unknown device %d", (int)p->device);
    if ((unsigned)p->precision > ENG_PREC_BF16)
        return eng__fail(ENG_ERR_INVALID_ARG, "unknown precision %d", (int)p->precision);
    if (p->device == ENG_DEVICE_CPU) {
        /* bf16 runs on kernels/bgemm.h's units, for the kinds that say so. */
        if (p->precision == ENG_PREC_BF16 && !m->kind->cpu_bf16)
            return eng__fail(ENG_ERR_UNSUPPORTED,
                             "precision bf16 on the CPU is for transformers; %s runs in fp32",
                             m->info.arch);
        if (p->precision == ENG_PREC_BF16 && !eng__bgemm_get())
            return eng__fail(ENG_ERR_UNSUPPORTED,
                             "precision bf16 needs AVX-512 (AMX-BF16, AVX512-BF16 or "
                             "AVX-512F), which this CPU (or ENG_ISA=%s) lacks",
                             eng_isa_name());
        if (p->precision != ENG_PREC_FP32 && p->precision != ENG_PREC_BF16)
            return eng__fail(ENG_ERR_UNSUPPORTED,
                             "precision %s needs the CUDA device; the CPU computes in fp32 or bf16",
                             eng__precision_name(p->precision));
        return ENG_OK;
    }
    if (p->device_index < 0)
        return eng__fail(ENG_ERR_INVALID_ARG, "CUDA device index %d is negative", p->device_index);
    if (!m->kind->cuda)
        return eng__fail(ENG_ERR_UNSUPPORTED, "%s (a %s model) runs on the CPU only",
                         m->info.arch, m->kind->name);
    return ENG_OK;
}

eng_ctx_params eng_ctx_default_params(void)
{
    eng_ctx_params p = {.max_batch_tokens = 0};
    return p;
}

eng_status eng_ctx_init(const eng_model *m, const eng_ctx_params *params, eng_ctx **out)
{
    if (!out)
        return eng__fail(ENG_ERR_INVALID_ARG, "eng_ctx_init: out is NULL");
    *out = NULL;
    if (!m)
        return eng__fail(ENG_ERR_INVALID_ARG, "eng_ctx_init: model is NULL");
    eng_ctx_params p = params ? *params : eng_ctx_default_params();
    int nt = p.n_threads > 0 ? p.n_threads : m->n_threads;
    eng_status s = check_device(m, &p);
    if (s)
        return s;
    if (nt > 1024)
        return eng__fail(ENG_ERR_INVALID_ARG, "n_threads %d is too large", nt);
    eng_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return eng__fail(ENG_ERR_NOMEM, "out of memory");
    c->model = m;
    c->kern = eng__kernels_get();
    if (!(s = eng__team_create(&c->team, nt)))
        s = m->kind->ctx_create(c, &p);
    if (s) {
        /* A kind reports through c->error; the CUDA backend, which has no
         * context yet, through eng_last_error(), which then stays. */
        if (c->error[0])
            eng__fail(s, "%s", c->error);
        else if (s == ENG_ERR_NOMEM)
            eng__fail(s, "out of memory");
        eng_ctx_free(c);
        return s;
    }
    *out = c;
    return ENG_OK;
}

void eng_ctx_free(eng_ctx *c)
{
    if (!c)
        return;
    c->model->kind->ctx_free(c);
    eng__team_free(c->team);
    free(c);
}

const char *eng_ctx_last_error(const eng_ctx *c)
{
    return c ? c->error : "no context";
}

const char *eng_ctx_item_error(const eng_ctx *c, int i)
{
    return c && c->model->kind->item_error ? c->model->kind->item_error(c, i) : NULL;
}

/* The shared part of every batch entry point: have_inputs says whether the
 * batch's input arrays are given. */
static eng_status run(eng_ctx *c, const char *fn, const eng__batch *b, int have_inputs)
{
    if (!c)
        return ENG_ERR_INVALID_ARG;
    if (b->n < 0 || (b->n > 0 && (!have_inputs || !b->out)))
        return eng__errf(ENG_ERR_INVALID_ARG, c->error, sizeof c->error, "%s: NULL argument", fn);
    return c->model->kind->run(c, b);
}

eng_status eng_classify_ids(eng_ctx *c, const eng_seq *seqs, int n, float *logits, float *probs,
                            int *labels, eng_status *item_status)
{
    eng__batch b = {.input = ENG__IN_IDS, .task = ENG_TASK_CLASSIFY, .n = n, .seqs = seqs,
                    .out = logits, .probs = probs, .labels = labels, .item_status = item_status};
    return run(c, "eng_classify_ids", &b, seqs != NULL);
}

eng_status eng_embed_ids(eng_ctx *c, const eng_seq *seqs, int n, float *out,
                         eng_status *item_status)
{
    eng__batch b = {.input = ENG__IN_IDS, .task = ENG_TASK_EMBED, .n = n, .seqs = seqs,
                    .out = out, .item_status = item_status};
    return run(c, "eng_embed_ids", &b, seqs != NULL);
}

eng_status eng_classify(eng_ctx *c, const char *const *texts, int n, float *logits, float *probs,
                        int *labels, eng_status *item_status)
{
    eng__batch b = {.input = ENG__IN_TEXTS, .task = ENG_TASK_CLASSIFY, .n = n, .texts = texts,
                    .out = logits, .probs = probs, .labels = labels, .item_status = item_status};
    return run(c, "eng_classify", &b, texts != NULL);
}

eng_status eng_embed(eng_ctx *c, const char *const *texts, int n, float *out,
                     eng_status *item_status)
{
    eng__batch b = {.input = ENG__IN_TEXTS, .task = ENG_TASK_EMBED, .n = n, .texts = texts,
                    .out = out, .item_status = item_status};
    return run(c, "eng_embed", &b, texts != NULL);
}

eng_status eng_classify_images(eng_ctx *c, const char *const *paths, int n, float *logits,
                               float *probs, int *labels, eng_status *item_status)
{
    eng__batch b = {.input = ENG__IN_IMAGE_PATHS, .task = ENG_TASK_CLASSIFY, .n = n,
                    .paths = paths, .out = logits, .probs = probs, .labels = labels,
                    .item_status = item_status};
    return run(c, "eng_classify_images", &b, paths != NULL);
}

eng_status eng_embed_images(eng_ctx *c, const char *const *paths, int n, float *out,
                            eng_status *item_status)
{
    eng__batch b = {.input = ENG__IN_IMAGE_PATHS, .task = ENG_TASK_EMBED, .n = n, .paths = paths,
                    .out = out, .item_status = item_status};
    return run(c, "eng_embed_images", &b, paths != NULL);
}

eng_status eng_embed_image_data(eng_ctx *c, const void *const *data, const size_t *size, int n,
                                float *out, eng_status *item_status)
{
    eng__batch b = {.input = ENG__IN_IMAGE_DATA, .task = ENG_TASK_EMBED, .n = n, .data = data,
                    .size = size, .out = out, .item_status = item_status};
    return run(c, "eng_embed_image_data", &b, data && size);
}

eng_status eng_classify_image_data(eng_ctx *c, const void *const *data, const size_t *size, int n,
                                   float *logits, float *probs, int *labels,
                                   eng_status *item_status)
{
    eng__batch b = {.input = ENG__IN_IMAGE_DATA, .task = ENG_TASK_CLASSIFY, .n = n, .data = data,
                    .size = size, .out = logits, .probs = probs, .labels = labels,
                    .item_status = item_status};
    return run(c, "eng_classify_image_data", &b, data && size);
}
