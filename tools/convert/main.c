/* main.c: the `convert` command line: an HF model folder, or a synthetic
 * model, to one .eng file (encoder linear weights fp32 or int8), with a short
 * summary or a one-line refusal. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bert_layout.h"
#include "hf_config.h"
#include "resnet.h"
#include "synthetic.h"
#include "vit_layout.h"

/* Exit codes, as --help documents them. */
enum { EXIT_FAILED = 1, EXIT_USAGE = 2 };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: convert [--dtype fp32|bf16|int8] HF_DIR OUT_FILE\n"
            "       convert --synthetic NAME [--seed N] [--no-head] [--vocab FILE]"
            " [--dtype fp32|bf16|int8]"
            " OUT_FILE\n"
            "       convert --arch resnet18|resnet34|resnet50 [--labels CLASSES.txt] WEIGHTS.pth"
            " OUT_FILE\n"
            "Options may come in any order, before or after the files.\n"
            "--dtype int8 stores the encoder's linear weights as int8, bf16 as bf16 (half the\n"
            "bytes; contexts of --precision bf16 run them as stored) (default fp32).\n"
            "--arch converts a torchvision ResNet checkpoint (state dict), BatchNorm folded;\n"
            "--labels names its classes, one a line.\n"
            "--seed N (0 to 2^64-1, default 1) picks a synthetic model's weights.\n"
            "OUT_FILE is replaced only when the conversion succeeds; a symbolic link's target is\n"
            "written; a device or folder is refused.\n"
            "Exit status: 0 converted, 1 conversion failed, 2 usage error.\n"
            "NAME is one of:");
    for (int i = 0; cv_synth_names[i]; i++)
        fprintf(f, " %s", cv_synth_names[i]);
    fprintf(f, "\n");
}

/* A usage error: one line saying what is wrong, then where to look. */
__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "convert: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nrun 'convert --help' for usage\n");
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    const char *synthetic = NULL, *in = NULL, *out = NULL;
    cv_synth_opts o = {1, 0, NULL};
    const char *weights = "fp32", *arch = NULL, *labels = NULL;
    int seed_given = 0;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        static const char *const with_value[] = {"--synthetic", "--dtype", "--arch", "--labels",
                                                 "--vocab", "--seed", NULL};
        int takes_value = 0;
        for (int k = 0; with_value[k]; k++)
            takes_value |= strcmp(a, with_value[k]) == 0;
        if (takes_value && i + 1 >= argc)
            return usage_error("%s needs a value", a);
        if (strcmp(a, "--synthetic") == 0) {
            synthetic = argv[++i];
        } else if (strcmp(a, "--dtype") == 0) {
            weights = argv[++i];
            char err[128];
            if (cv_weights_check(weights, err, sizeof err) != ENG_OK)
                return usage_error("--dtype: %s", err);
        } else if (strcmp(a, "--arch") == 0) {
            arch = argv[++i];
        } else if (strcmp(a, "--labels") == 0) {
            labels = argv[++i];
        } else if (strcmp(a, "--vocab") == 0) {
            o.vocab_path = argv[++i];
        } else if (strcmp(a, "--seed") == 0) {
            /* strtoull takes "-1" as 2^64-1: digits only. */
            const char *v = argv[++i];
            char *end;
            errno = 0;
            o.seed = strtoull(v, &end, 10);
            if (!isdigit((unsigned char)v[0]) || errno || *end)
                return usage_error("--seed wants an integer from 0 to 2^64-1, not '%s'", v);
            seed_given = 1;
        } else if (strcmp(a, "--no-head") == 0) {
            o.no_head = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option %s", a);
        } else if (!synthetic && !in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            return usage_error("too many file arguments ('%s')", a);
        }
    }
    /* A --synthetic given after the input took the first file as input. */
    if (synthetic && in && !out) {
        out = in;
        in = NULL;
    }
    if (synthetic && in)
        return usage_error("--synthetic makes a model: it takes no input (got '%s')", in);
    if (!synthetic && (o.vocab_path || o.no_head || seed_given))
        return usage_error("--seed, --vocab and --no-head apply to --synthetic only");
    if (labels && !arch)
        return usage_error("--labels applies to --arch (image models) only");
    if (arch && synthetic)
        return usage_error("--arch converts a checkpoint; it cannot be combined with --synthetic");
    if (arch && strcmp(weights, "fp32") != 0)
        return usage_error("--dtype %s: image models are converted with fp32 weights only",
                           weights);
    if (!synthetic && !in)
        return usage_error("no input given (an HF model folder, or --synthetic NAME)");
    if (!out)
        return usage_error("no OUT_FILE given");
    struct stat st;
    if (!synthetic && !arch && stat(in, &st) == 0 && !S_ISDIR(st.st_mode))
        return usage_error("%s is a file, not a Hugging Face model folder; for a torchvision "
                           "ResNet checkpoint add --arch resnet18|resnet34|resnet50", in);

    char err[512];
    if (!synthetic && !arch && cv_is_vit_folder(in)) {
        cv_vit_report vr;
        if (cv_convert_vit(in, weights, out, &vr, err, sizeof err) != ENG_OK) {
            fprintf(stderr, "convert: %s\n", err);
            return EXIT_FAILED;
        }
        printf("converted %s -> %s\n  %s, %d tensors, encoder weights %s\n", in, out,
               vr.clip ? "CLIPModel (vision and text towers)" : "ViT", vr.n_tensors, weights);
        return 0;
    }
    if (arch) {
        if (convert_resnet(arch, labels, in, out, err, sizeof err) != ENG_OK) {
            fprintf(stderr, "convert: %s\n", err);
            return EXIT_FAILED;
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
        return EXIT_FAILED;
    }
    printf("converted %s -> %s\n", c.source, out);
    printf("  arch %s, %d layers, hidden %d, %d heads, ffn %d, %d positions", c.arch, c.layers,
           c.hidden, c.heads, c.intermediate, c.max_positions);
    if (c.position_offset)
        printf(" (from row %d)", c.position_offset);
    printf(", act %s\n", c.act);
    if (c.no_tokenizer)
        printf("  no tokenizer: the model takes token ids (%d embeddings), head %s, %d labels",
               c.vocab_size, c.head, c.n_labels);
    else
        printf("  vocab %d tokens (%d embeddings), head %s, %d labels",
               c.tok_json ? c.tok_json_vocab : c.n_vocab, c.vocab_size, c.head, c.n_labels);
    for (int i = 0; i < c.n_labels && i < 8; i++)
        printf("%s%s", i ? "," : " [", c.labels[i]);
    printf("%s\n", c.n_labels > 8 ? ",...]" : c.n_labels ? "]" : "");
    printf("  pooling %s%s, %d tensors, %llu bytes\n", c.pooling, c.normalize ? " + normalize" : "",
           r.n_tensors, (unsigned long long)r.bytes);
    if (c.tok_pipeline[0])
        printf("  tokenizer.json (%s): %s\n", c.tok_json ? "embedded, interpreter" : "WordPiece fast path",
               c.tok_pipeline);
    printf("  weights %s%s\n", c.weights,
           strcmp(c.weights, "fp32") != 0
               ? " (encoder linear layers; embeddings, LayerNorms, biases and head fp32)"
               : "");
    cv_config_free(&c);
    return 0;
}
