/* cuda_dispatch.c: the CPU side of the CUDA backend, the text kind's GPU path
 * (src/text/text_gpu.h): loading the backend (build/libengine-cuda.so, see
 * cuda_backend.h) the first time a CUDA context is asked for, describing a
 * loaded model to it (it must not see text.h), and turning a GPU failure into
 * per-item errors. The backend is found at $ENG_CUDA_BACKEND, else beside the
 * binary holding libengine (the program, or libengine.so), else on the
 * dynamic linker's path; without it a CUDA context fails with
 * ENG_ERR_NO_DEVICE and says why, and nothing of CUDA is ever mapped. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"
#include "error.h"
#include "model.h"
#include "sgemm.h"
#include "text.h"
#include "text_gpu.h"

#define BACKEND_NAME "libengine-cuda.so"

static struct {
    pthread_once_t once;
    const eng__gpu_backend *api;   /* NULL when it did not load */
    char why[512];                 /* why it did not */
} backend = {.once = PTHREAD_ONCE_INIT};

/* dlopen()s path, or records why not. */
static void *open_backend(const char *path)
{
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        snprintf(backend.why, sizeof backend.why,
                 "CUDA backend not loaded (%s; build it with the CUDA toolkit installed, or set "
                 "ENG_CUDA_BACKEND to its path)",
                 dlerror());
    return lib;
}

static void load_backend(void)
{
    const char *env = getenv("ENG_CUDA_BACKEND");
    void *lib = NULL;
    if (env && *env) {
        lib = open_backend(env);
    } else {
        Dl_info self;
        const char *slash;
        char path[4096];
        if (dladdr((void *)load_backend, &self) && self.dli_fname &&
            (slash = strrchr(self.dli_fname, '/')) &&
            snprintf(path, sizeof path, "%.*s/" BACKEND_NAME, (int)(slash - self.dli_fname),
                     self.dli_fname) < (int)sizeof path)
            lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!lib)
            lib = open_backend(BACKEND_NAME);
    }
    if (!lib)
        return;
    const eng__gpu_backend *api = dlsym(lib, "eng__cuda_backend");
    if (!api || api->abi != ENG__GPU_ABI) {
        snprintf(backend.why, sizeof backend.why,
                 "CUDA backend %s is not this engine's (%s)", env && *env ? env : BACKEND_NAME,
                 api ? "another interface version" : "no eng__cuda_backend");
        dlclose(lib);
        return;
    }
    backend.api = api;
}

/* The backend, or NULL with backend.why saying why. */
static const eng__gpu_backend *gpu(void)
{
    pthread_once(&backend.once, load_backend);
    return backend.api;
}

const char *eng_cuda_info(void)
{
    return gpu() ? gpu()->info() : backend.why;
}

_Static_assert(ENG_GPU_ACT_GELU == (int)ENG_ACT_GELU &&
                   ENG_GPU_ACT_GELU_TANH == (int)ENG_ACT_GELU_TANH &&
                   ENG_GPU_ACT_RELU == (int)ENG_ACT_RELU,
               "the backend takes eng__act values as they are");

/* The fp32 tensors of a linear layer (a bf16 file's widened by text.c's
 * text_prepare); 0 when it is stored in int8, which the GPU path does not
 * run. */
static int linear_src(const eng__linear *l, eng__gpu_linear_src *out)
{
    out->w = l->packed;
    out->b = l->b;
    return l->dtype != ENG_DT_I8 && l->packed && l->b;
}

eng_status eng__cuda_ctx_init(eng__text_ctx *c, const eng_ctx_params *p)
{
    if (!gpu())
        return eng__fail(ENG_ERR_NO_DEVICE, "CUDA device %d requested: %s", p->device_index,
                         backend.why);
    const eng__text_model *m = c->model;
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
        .unpack = eng__sgemm_unpack,
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
    eng_status s = gpu()->ctx_create(&src, p->device_index, p->precision, c->max_tokens, &g, err,
                                     sizeof err);
    free(ls);
    if (s)
        return eng__fail(s, "CUDA device %d, %s: %s", p->device_index,
                         eng__precision_name(p->precision), err);
    c->gpu = g;
    return ENG_OK;
}

void eng__cuda_ctx_free(eng__text_ctx *c)
{
    if (c->gpu) /* set only when the backend loaded */
        backend.api->ctx_destroy(c->gpu);
    c->gpu = NULL;
}

eng_status eng__cuda_encode_and_head(eng__text_ctx *c, int cn, int want_logits, float *out,
                                     float *probs, int *labels, eng_status *item_status,
                                     char *err, size_t errlen)
{
    eng_status s = backend.api->run(c->gpu, c->chunk_seqs, cn, want_logits, c->seq_index, out,
                                    want_logits ? probs : NULL, want_logits ? labels : NULL, err,
                                    errlen);
    if (s == ENG_OK)
        return ENG_OK;
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
