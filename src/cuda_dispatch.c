/* cuda_dispatch.c: the CPU side of the CUDA backend: checking a context's
 * device parameters, describing a loaded model to src/cuda/ (which must not
 * see model.h), and turning a GPU failure into per-item errors. Compiled in
 * every build; only with ENG_HAVE_CUDA (the Makefile sets it when nvcc is
 * found) does it call the backend, otherwise a CUDA context is refused with
 * ENG_ERR_NO_DEVICE and "built without CUDA". */
#include <stdlib.h>
#include <string.h>

#include "bgemm.h"
#include "cuda_dispatch.h"
#include "error.h"
#include "model.h"
#ifdef ENG_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

#define NO_CUDA "built without CUDA (nvcc was not found at build time, or CUDA=0 was given)"

static const char *precision_name(eng_precision p)
{
    static const char *const names[] = {"fp32", "tf32", "fp16", "bf16"};
    return (unsigned)p <= ENG_PREC_BF16 ? names[p] : "unknown";
}

eng_status eng__device_check(const eng_model *m, const eng_ctx_params *p)
{
    if (p->device != ENG_DEVICE_CPU && p->device != ENG_DEVICE_CUDA)
        return eng__fail(ENG_ERR_INVALID_ARG, "unknown device %d", (int)p->device);
    if ((unsigned)p->precision > ENG_PREC_BF16)
        return eng__fail(ENG_ERR_INVALID_ARG, "unknown precision %d", (int)p->precision);
    if (p->device == ENG_DEVICE_CPU) {
        /* bf16 runs on kernels/bgemm.h's units, for the text models. */
        if (p->precision == ENG_PREC_BF16 && m->cnn)
            return eng__fail(ENG_ERR_UNSUPPORTED,
                             "precision bf16 on the CPU is for text models; %s runs in fp32",
                             m->arch);
        if (p->precision == ENG_PREC_BF16 && !eng__bgemm_get())
            return eng__fail(ENG_ERR_UNSUPPORTED,
                             "precision bf16 needs AMX-BF16 or AVX512-BF16, which this CPU (or "
                             "ENG_ISA=%s) lacks",
                             eng_isa_name());
        if (p->precision != ENG_PREC_FP32 && p->precision != ENG_PREC_BF16)
            return eng__fail(ENG_ERR_UNSUPPORTED,
                             "precision %s needs the CUDA device; the CPU computes in fp32 or bf16",
                             precision_name(p->precision));
        return ENG_OK;
    }
    if (p->device_index < 0)
        return eng__fail(ENG_ERR_INVALID_ARG, "CUDA device index %d is negative", p->device_index);
    if (m->cnn)
        return eng__fail(ENG_ERR_UNSUPPORTED,
                         "%s is an image model: image models run on the CPU only", m->arch);
    return ENG_OK;
}

const char *eng_cuda_info(void)
{
#ifdef ENG_HAVE_CUDA
    return eng__gpu_info();
#else
    return NO_CUDA;
#endif
}

#ifdef ENG_HAVE_CUDA
_Static_assert(ENG_GPU_ACT_GELU == (int)ENG_ACT_GELU &&
                   ENG_GPU_ACT_GELU_TANH == (int)ENG_ACT_GELU_TANH &&
                   ENG_GPU_ACT_RELU == (int)ENG_ACT_RELU,
               "the backend takes eng__act values as they are");

/* The fp32 tensors of a linear layer (a bf16 file's widened by
 * eng__model_prepare); 0 when it is stored in int8, which the GPU path does
 * not run. */
static int linear_src(const eng__linear *l, eng__gpu_linear_src *out)
{
    out->w = l->packed;
    out->b = l->b;
    return l->dtype != ENG_DT_I8 && l->packed && l->b;
}

eng_status eng__cuda_ctx_init(eng_ctx *c, const eng_ctx_params *p)
{
    const eng_model *m = c->model;
    eng__gpu_layer_src *ls = calloc((size_t)m->layers, sizeof *ls);
    if (!ls)
        return eng__fail(ENG_ERR_NOMEM, "out of memory");
    int f32 = 1;
    for (int i = 0; i < m->layers; i++) {
        const eng__layer *L = &m->layer[i];
        f32 &= linear_src(&L->qkv, &ls[i].qkv) & linear_src(&L->attn_out, &ls[i].attn_out) &
               linear_src(&L->ffn_in, &ls[i].ffn_in) & linear_src(&L->ffn_out, &ls[i].ffn_out);
        ls[i].ln1_g = L->ln1_g;
        ls[i].ln1_b = L->ln1_b;
        ls[i].ln2_g = L->ln2_g;
        ls[i].ln2_b = L->ln2_b;
    }
    eng__gpu_model_src src = {
        .key = m,
        .hidden = m->hidden,
        .layers = m->layers,
        .heads = m->heads,
        .intermediate = m->intermediate,
        .max_positions = m->max_positions,
        .vocab_size = m->vocab_size,
        .n_labels = m->n_labels,
        .act = (int)m->act,
        .ln_eps = m->ln_eps,
        .head = m->head == ENG_HEAD_BERT_POOLER ? ENG_GPU_HEAD_BERT_POOLER
                : m->head == ENG_HEAD_DISTILBERT ? ENG_GPU_HEAD_DISTILBERT
                                                 : ENG_GPU_HEAD_NONE,
        .pool_cls = m->pooling == ENG_POOL_CLS,
        .normalize = m->normalize,
        .word_emb = m->word_emb,
        .pos_emb = m->pos_emb,
        .emb_ln_g = m->emb_ln_g,
        .emb_ln_b = m->emb_ln_b,
        .layer = ls,
    };
    if (m->head != ENG_HEAD_NONE)
        f32 &= linear_src(&m->head_dense, &src.head_dense) &
               linear_src(&m->head_out, &src.head_out);
    if (!f32) {
        free(ls);
        return eng__fail(ENG_ERR_UNSUPPORTED,
                         "this model has int8 weights, which the CUDA path does not run; "
                         "convert it with fp32 weights");
    }
    char err[400] = "";
    eng__gpu_ctx *g = NULL;
    eng_status s = eng__gpu_ctx_create(&src, p->device_index, p->precision, c->max_tokens, &g, err,
                                       sizeof err);
    free(ls);
    if (s)
        return eng__fail(s, "CUDA device %d, %s: %s", p->device_index,
                         precision_name(p->precision), err);
    c->gpu = g;
    return ENG_OK;
}

void eng__cuda_ctx_free(eng_ctx *c)
{
    eng__gpu_ctx_destroy(c->gpu);
    c->gpu = NULL;
}
#else
eng_status eng__cuda_ctx_init(eng_ctx *c, const eng_ctx_params *p)
{
    return eng__fail(ENG_ERR_NO_DEVICE, "CUDA device %d requested, but this library was " NO_CUDA,
                     p->device_index);
}

void eng__cuda_ctx_free(eng_ctx *c)
{
    c->gpu = NULL; /* never set in this build */
}
#endif

eng_status eng__cuda_encode_and_head(eng_ctx *c, int cn, int want_logits, float *out, float *probs,
                                     int *labels, eng_status *item_status, char *err,
                                     size_t errlen)
{
#ifdef ENG_HAVE_CUDA
    eng_status s = eng__gpu_run(c->gpu, c->chunk_seqs, cn, want_logits, c->seq_index, out,
                                want_logits ? probs : NULL, want_logits ? labels : NULL, err,
                                errlen);
    if (s == ENG_OK)
        return ENG_OK;
#else
    eng_status s = eng__errf(ENG_ERR_NO_DEVICE, err, errlen, NO_CUDA);
#endif
    const size_t width = (size_t)(want_logits ? c->model->n_labels : c->model->hidden);
    for (int j = 0; j < cn; j++) {
        const size_t i = (size_t)c->seq_index[j];
        memset(out + i * width, 0, width * sizeof *out);
        if (probs)
            memset(probs + i * width, 0, width * sizeof *probs);
        if (labels)
            labels[i] = -1;
        if (item_status)
            item_status[i] = s;
    }
    return s;
}
