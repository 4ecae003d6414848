/* tokjson_bench.c: build/tokjson-bench, the speed of the tokenizer.json
 * interpreter (the one tokenizer interface of src/text/tokenizer.h, as the
 * text kind calls it), one thread; bench/tokenize.sh runs it beside Hugging
 * Face's tokenizers library (bench/tokenize_peer.mjs) on the same texts.
 *
 *   tokjson-bench TEXTS TOKENIZER.json... [--seconds S] [--reps R]
 *       texts/s of each tokenizer over the lines of TEXTS: the median of R
 *       runs of S seconds each.
 *   ... --model MODEL.eng [--batch 32] [--threads N]
 *       also the share of tokenization in a batch: the first tokenizer's
 *       time for BATCH texts against eng_embed_ids on their ids (cut to the
 *       model's positions), the forward pass on N threads.
 * Prints one JSON object per line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "engine.h"
#include "tokenizer.h"

#define MAX_IDS 512

int main(int argc, char **argv)
{
    const char *texts_path = NULL, *model_path = NULL, *toks[16];
    int n_toks = 0, batch = 32, threads = 1, reps = 5;
    double seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!texts_path) texts_path = argv[i];
        else if (n_toks < 16) toks[n_toks++] = argv[i];
    }
    if (!texts_path || !n_toks || reps < 1 || reps > 99 || batch < 1) {
        fprintf(stderr, "usage: tokjson-bench TEXTS TOKENIZER.json... [--seconds S] [--reps R] "
                        "[--model M.eng --batch B --threads N]\n");
        return 2;
    }
    size_t tlen;
    char *texts = bench_read_file(texts_path, &tlen);
    if (!texts) {
        fprintf(stderr, "tokjson-bench: cannot read %s\n", texts_path);
        return 1;
    }
    /* Lines; '\n' only separates them. */
    int n_texts = 0, cap = 1024;
    const char **line = malloc((size_t)cap * sizeof *line);
    size_t *llen = malloc((size_t)cap * sizeof *llen);
    for (char *p = texts; p < texts + tlen;) {
        char *nl = memchr(p, '\n', (size_t)(texts + tlen - p));
        if (!nl) nl = texts + tlen;
        if (n_texts == cap) {
            cap *= 2;
            line = realloc(line, (size_t)cap * sizeof *line);
            llen = realloc(llen, (size_t)cap * sizeof *llen);
        }
        line[n_texts] = p;
        llen[n_texts++] = (size_t)(nl - p);
        p = nl + 1;
    }
    static int32_t ids[MAX_IDS];
    double first_us = 0;
    eng__tokenizer *first = NULL;
    for (int k = 0; k < n_toks; k++) {
        size_t jlen;
        char *json = bench_read_file(toks[k], &jlen), err[512];
        eng__tokenizer *tok;
        if (!json || eng__tokenizer_init_json(&tok, json, jlen, MAX_IDS, err, sizeof err) != ENG_OK) {
            fprintf(stderr, "tokjson-bench: %s: %s\n", toks[k], json ? err : "cannot read");
            return 1;
        }
        free(json);
        double runs[99];
        for (int r = 0; r < reps; r++) {
            long done = 0;
            double t0 = bench_now_s(), t;
            do {
                for (int i = 0; i < n_texts; i++) {
                    int n, tr;
                    eng__tokenize(tok, line[i], llen[i], MAX_IDS, ids, MAX_IDS, &n, &tr);
                }
                done += n_texts;
            } while ((t = bench_now_s() - t0) < seconds);
            runs[r] = done / t;
        }
        qsort(runs, (size_t)reps, sizeof *runs, bench_cmp_double);
        double med = runs[reps / 2];
        printf("{\"tokenizer\":\"%s\",\"texts\":%d,\"threads\":1,\"texts_per_s\":%.0f,\"us_per_text\":%.2f}\n",
               toks[k], n_texts, med, 1e6 / med);
        if (k == 0) {
            first = tok;
            first_us = 1e6 / med;
        } else {
            eng__tokenizer_free(tok);
        }
    }
    if (model_path) {
        eng_model *m;
        eng_ctx *ctx;
        eng_model_params mp = eng_model_default_params();
        eng_ctx_params cp = eng_ctx_default_params();
        cp.n_threads = threads;
        if (eng_model_load(model_path, &mp, &m) != ENG_OK || eng_ctx_init(m, &cp, &ctx) != ENG_OK) {
            fprintf(stderr, "tokjson-bench: %s: %s\n", model_path, eng_last_error());
            return 1;
        }
        eng_model_info info;
        eng_model_get_info(m, &info);
        int maxpos = info.max_positions < MAX_IDS ? info.max_positions : MAX_IDS;
        int32_t *bids = malloc((size_t)batch * MAX_IDS * sizeof *bids);
        eng_seq *seqs = malloc((size_t)batch * sizeof *seqs);
        float *out = malloc((size_t)batch * (size_t)info.hidden * sizeof *out);
        double runs[99];
        for (int r = 0; r < reps; r++) {
            long batches = 0;
            double t0 = bench_now_s(), t;
            do {
                for (int b = 0; b < batch; b++) {
                    int i = (int)((batches * batch + b) % n_texts), n, tr;
                    eng__tokenize(first, line[i], llen[i], maxpos, bids + (size_t)b * MAX_IDS, MAX_IDS, &n, &tr);
                    seqs[b] = (eng_seq){bids + (size_t)b * MAX_IDS, n};
                }
                if (eng_embed_ids(ctx, seqs, batch, out, NULL) != ENG_OK) {
                    fprintf(stderr, "tokjson-bench: %s\n", eng_ctx_last_error(ctx));
                    return 1;
                }
                batches++;
            } while ((t = bench_now_s() - t0) < seconds);
            runs[r] = t / batches * 1e3;
        }
        qsort(runs, (size_t)reps, sizeof *runs, bench_cmp_double);
        double batch_ms = runs[reps / 2], tok_ms = first_us * batch * 1e-3;
        printf("{\"model\":\"%s\",\"batch\":%d,\"threads\":%d,\"batch_ms\":%.2f,\"tokenize_ms\":%.3f,"
               "\"tokenize_share\":%.4f}\n",
               model_path, batch, threads, batch_ms, tok_ms, tok_ms / batch_ms);
        free(bids);
        free(seqs);
        free(out);
        eng_ctx_free(ctx);
        eng_model_free(m);
    }
    eng__tokenizer_free(first);
    free(line);
    free(llen);
    free(texts);
    return 0;
}
