/* cuda_bench.c: forward-pass throughput of one context on fixed-shape
 * batches of random token ids, for comparing the CUDA backend with the CPU
 * and with PyTorch (bench/gpu.sh):
 *
 *   build/cuda-bench MODEL [--device cpu|cuda] [--precision fp32|tf32|fp16|bf16]
 *                    [--batch 128] [--seq 128] [--iters 20]
 *
 * Every sequence is [CLS] + (seq - 2) ids drawn from [1000, vocab) + [SEP];
 * the context's token budget is batch x seq, so one call is one pass. Prints
 * the mean milliseconds per batch and sequences per second, after 3 warm-up
 * batches (which include any one-time weight upload). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "engine.h"

int main(int argc, char **argv)
{
    static const char *const precs[] = {"fp32", "tf32", "fp16", "bf16"};
    int batch = 128, seq = 128, iters = 20;
    eng_ctx_params cp = eng_ctx_default_params();
    if (argc < 2) {
        fprintf(stderr, "usage: cuda-bench MODEL [--device cpu|cuda] [--precision P] "
                        "[--batch N] [--seq N] [--iters N]\n");
        return 2;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        if (!strcmp(o, "--device"))
            cp.device = !strcmp(v, "cuda") ? ENG_DEVICE_CUDA : ENG_DEVICE_CPU;
        else if (!strcmp(o, "--precision"))
            for (int p = 0; p < 4; p++)
                cp.precision = !strcmp(v, precs[p]) ? (eng_precision)p : cp.precision;
        else if (!strcmp(o, "--batch"))
            batch = atoi(v);
        else if (!strcmp(o, "--seq"))
            seq = atoi(v);
        else if (!strcmp(o, "--iters"))
            iters = atoi(v);
    }
    eng_model *m = NULL;
    eng_ctx *ctx = NULL;
    if (eng_model_load(argv[1], NULL, &m)) {
        fprintf(stderr, "cuda-bench: %s\n", eng_last_error());
        return 1;
    }
    eng_model_info info;
    eng_model_get_info(m, &info);
    if (batch < 1 || iters < 1 || seq < 2 || seq > info.max_positions || info.vocab_size <= 1000) {
        fprintf(stderr, "cuda-bench: bad --batch/--seq/--iters for this model\n");
        eng_model_free(m);
        return 2;
    }
    cp.max_batch_tokens = batch * seq;
    if (cp.device == ENG_DEVICE_CUDA)
        fprintf(stderr, "cuda-bench: %s\n", eng_cuda_info());
    if (eng_ctx_init(m, &cp, &ctx)) {
        fprintf(stderr, "cuda-bench: %s\n", eng_last_error());
        eng_model_free(m);
        return 1;
    }
    const int width = info.n_labels > 0 ? info.n_labels : info.hidden;
    int32_t *ids = malloc(sizeof *ids * (size_t)batch * seq);
    eng_seq *seqs = malloc(sizeof *seqs * (size_t)batch);
    float *out = malloc(sizeof *out * (size_t)batch * width);
    int rc = !ids || !seqs || !out;
    srand(1);
    for (int b = 0; !rc && b < batch; b++) {
        int32_t *s = ids + (size_t)b * seq;
        s[0] = 101;
        for (int t = 1; t < seq - 1; t++)
            s[t] = 1000 + rand() % (info.vocab_size - 1000);
        s[seq - 1] = 102;
        seqs[b] = (eng_seq){s, seq};
    }
    double t0 = 0.0;
    for (int it = 0; !rc && it < iters + 3; it++) {
        if (it == 3)
            t0 = bench_now_s();
        eng_status s = info.n_labels > 0 ? eng_classify_ids(ctx, seqs, batch, out, NULL, NULL, NULL)
                                         : eng_embed_ids(ctx, seqs, batch, out, NULL);
        if (s) {
            fprintf(stderr, "cuda-bench: %s\n", eng_ctx_last_error(ctx));
            rc = 1;
        }
    }
    if (!rc) {
        double ms = (bench_now_s() - t0) * 1e3 / iters;
        printf("%s %s batch %d x %d: %.2f ms/batch, %.0f sequences/s\n",
               cp.device == ENG_DEVICE_CUDA ? "cuda" : "cpu", precs[cp.precision], batch, seq, ms,
               batch * 1e3 / ms);
    }
    free(ids);
    free(seqs);
    free(out);
    eng_ctx_free(ctx);
    eng_model_free(m);
    return rc;
}
