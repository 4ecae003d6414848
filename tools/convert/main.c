/* main.c: the `convert` command line: an HF model folder, or a synthetic
 * model, to one .eng file (encoder linear weights fp32 or int8), with a short
 * summary or a one-line refusal. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert_layout.h"
#include "hf_config.h"
#include "resnet.h"
#include "synthetic.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: convert [--dtype fp32|bf16|int8] HF_DIR OUT_FILE\n"
            "       convert --synthetic NAME [--seed N] [--no-head] [--vocab FILE]"
            " [--dtype fp32|bf16|int8]"
            " OUT_FILE\n"
            "       convert --arch resnet18|resnet34|resnet50 [--labels CLASSES.txt] WEIGHTS.pth"
            " OUT_FILE\n"
            "--dtype int8 stores the encoder's linear weights as int8, bf16 as bf16 (half the\n"
            "bytes; contexts of --precision bf16 run them as stored) (default fp32).\n"
            "--arch converts a torchvision ResNet checkpoint (state dict), BatchNorm folded;\n"
            "--labels names its classes, one a line.\n"
            "NAME is one of:");
    for (int i = 0; cv_synth_names[i]; i++)
        fprintf(f, " %s", cv_synth_names[i]);
    fprintf(f, "\n");
}

int main(int argc, char **argv)
{
    const char *synthetic = NULL, *in = NULL, *out = NULL;
    cv_synth_opts o = {1, 0, NULL};
    const char *weights = "fp32", *arch = NULL, *labels = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--synthetic") == 0 && has_value) {
            synthetic = argv[++i];
        } else if (strcmp(a, "--dtype") == 0 && has_value) {
            weights = argv[++i];
            char err[128];
            if (cv_weights_check(weights, err, sizeof err) != ENG_OK) {
                fprintf(stderr, "convert: --dtype: %s\n", err);
                return 2;
            }
        } else if (strcmp(a, "--arch") == 0 && has_value) {
            arch = argv[++i];
        } else if (strcmp(a, "--labels") == 0 && has_value) {
            labels = argv[++i];
        } else if (strcmp(a, "--vocab") == 0 && has_value) {
            o.vocab_path = argv[++i];
        } else if (strcmp(a, "--seed") == 0 && has_value) {
            char *end;
            errno = 0;
            o.seed = strtoull(argv[++i], &end, 10);
            if (errno || *end || end == argv[i]) {
                fprintf(stderr, "convert: --seed wants a non-negative integer, not '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--no-head") == 0) {
            o.no_head = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "convert: unknown or incomplete option %s\n", a);
            usage(stderr);
            return 2;
        } else if (!synthetic && !in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!out || (!synthetic && !in) ||
        (!synthetic && (o.vocab_path || o.no_head || o.seed != 1))) {
        usage(stderr);
        return 2;
    }

    char err[512];
    if (arch || labels) {
        /* Image models: only the weights file, the output and the labels apply. */
        if (!arch || synthetic || strcmp(weights, "fp32") != 0) {
            usage(stderr);
            return 2;
        }
        if (convert_resnet(arch, labels, in, out, err, sizeof err) != ENG_OK) {
            fprintf(stderr, "convert: %s\n", err);
            return 1;
        }
        printf("converted %s -> %s\n  arch %s, BatchNorm folded, labels %s\n", in, out, arch,
               labels ? labels : "none");
        return 0;
    }

    cv_config c;
    cv_report r;
    eng_status s = synthetic ? cv_synthetic_as(synthetic, &o, weights, out, &c, &r, err, sizeof err)
                             : cv_convert_hf_as(in, weights, out, &c, &r, err, sizeof err);
    if (s != ENG_OK) {
        fprintf(stderr, "convert: %s\n", err);
        return 1;
    }
    printf("converted %s -> %s\n", c.source, out);
    printf("  arch %s, %d layers, hidden %d, %d heads, ffn %d, %d positions, act %s\n", c.arch,
           c.layers, c.hidden, c.heads, c.intermediate, c.max_positions, c.act);
    printf("  vocab %d tokens (%d embeddings), head %s, %d labels", c.n_vocab, c.vocab_size, c.head,
           c.n_labels);
    for (int i = 0; i < c.n_labels && i < 8; i++)
        printf("%s%s", i ? "," : " [", c.labels[i]);
    printf("%s\n", c.n_labels > 8 ? ",...]" : c.n_labels ? "]" : "");
    printf("  pooling %s%s, %d tensors, %llu bytes\n", c.pooling, c.normalize ? " + normalize" : "",
           r.n_tensors, (unsigned long long)r.bytes);
    printf("  weights %s%s\n", c.weights,
           strcmp(c.weights, "fp32") != 0
               ? " (encoder linear layers; embeddings, LayerNorms, biases and head fp32)"
               : "");
    cv_config_free(&c);
    return 0;
}
