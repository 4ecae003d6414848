/* engine.c: the command line, build/engine.
 *
 *   build/engine tokenize|classify|embed MODEL_FILE [--batch N] [--threads N]
 *                [--device cpu|cuda] [--precision fp32|tf32|fp16|bf16] [IMAGE...]
 *
 * Reads one text (or, for an image model, one image path) per line on stdin
 * and writes one JSON object per line on stdout, in input order:
 * {"ids":[...]}, {"label":..,"score":..,"logits":[...]}, {"embedding":[...]}
 * or, for images, {"file":..,"label":..,"score":..,"top5":[...],"logits":[...]}.
 * Image paths may also be given as arguments. A line that fails gives
 * {"error":"..."} and the rest go on. Lines are batched internally (--batch,
 * default 32). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "redis_common.h"

static void usage(FILE *f)
{
    fprintf(
        f, "usage: engine tokenize|classify|embed MODEL_FILE [--batch N] [--threads N]\n"
           "              [--device cpu|cuda] [--precision fp32|tf32|fp16|bf16] [IMAGE...]\n"
           "       engine worker|submit --help   (Redis worker and client)\n"
           "  reads one text (image models: one image path) per line on stdin, or the\n"
           "  image paths given as arguments; writes one JSON object per line\n");
}

static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void json_floats(const float *v, int n)
{
    putchar('[');
    for (int i = 0; i < n; i++) {
        if (i)
            putchar(',');
        if (isfinite(v[i]))
            printf("%.8g", (double)v[i]);
        else
            fputs("null", stdout);
    }
    putchar(']');
}

static void print_error(eng_status s, const char *detail)
{
    fputs("{\"error\":", stdout);
    json_string(detail && *detail ? detail : eng_status_str(s));
    puts("}");
}

typedef enum { CMD_TOKENIZE, CMD_CLASSIFY, CMD_EMBED } command;

/* {"file":..,"label":..,"score":..,"top5":[{"label":..,"score":..},...],"logits":[...]} */
static void print_image_result(const eng_model *model, const char *file, const float *logits,
                               const float *probs, int n_labels)
{
    int top[5] = {0}, k = n_labels < 5 ? n_labels : 5;
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n_labels; i++) {
            int taken = 0;
            for (int q = 0; q < j; q++)
                taken |= top[q] == i;
            if (!taken && (best < 0 || logits[i] > logits[best]))
                best = i;
        }
        top[j] = best;
    }
    const char *label = eng_model_label(model, top[0]);
    fputs("{\"file\":", stdout);
    json_string(file);
    fputs(",\"label\":", stdout);
    json_string(label ? label : "");
    printf(",\"score\":%.8g,\"top5\":[", (double)probs[top[0]]);
    for (int j = 0; j < k; j++) {
        label = eng_model_label(model, top[j]);
        printf("%s{\"index\":%d,\"label\":", j ? "," : "", top[j]);
        json_string(label ? label : "");
        printf(",\"score\":%.8g}", (double)probs[top[j]]);
    }
    fputs("],\"logits\":", stdout);
    json_floats(logits, n_labels);
    puts("}");
}

static void run_image_batch(const eng_model *model, eng_ctx *ctx, const eng_model_info *info,
                            char **paths, int n, float *out, float *probs, eng_status *status)
{
    eng_classify_images(ctx, (const char *const *)paths, n, out, probs, NULL, status);
    int first_failure = 1;
    for (int i = 0; i < n; i++) {
        if (status[i]) {
            /* The context keeps the reason of the batch's first failure. */
            fputs("{\"file\":", stdout);
            json_string(paths[i]);
            fputs(",\"error\":", stdout);
            json_string(first_failure ? eng_ctx_last_error(ctx) : eng_status_str(status[i]));
            puts("}");
            first_failure = 0;
        } else
            print_image_result(model, paths[i], out + (size_t)i * info->n_labels,
                               probs + (size_t)i * info->n_labels, info->n_labels);
    }
}

/* Runs one batch of n lines and prints n JSON lines. */
static void run_batch(command cmd, const eng_model *model, eng_ctx *ctx, const eng_model_info *info,
                      char **lines, int n, float *out, float *probs, int *labels,
                      eng_status *status, int32_t *ids)
{
    if (info->input == ENG_INPUT_IMAGE) {
        run_image_batch(model, ctx, info, lines, n, out, probs, status);
        return;
    }
    if (cmd == CMD_TOKENIZE) {
        for (int i = 0; i < n; i++) {
            int n_ids = 0;
            eng_status s = eng_tokenize(model, lines[i], strlen(lines[i]), ids, info->max_positions,
                                        &n_ids, NULL);
            if (s) {
                print_error(s, s == ENG_ERR_UTF8 ? "invalid UTF-8" : eng_last_error());
                continue;
            }
            fputs("{\"ids\":[", stdout);
            for (int k = 0; k < n_ids; k++)
                printf(k ? ",%d" : "%d", (int)ids[k]);
            puts("]}");
        }
        return;
    }
    const char *const *texts = (const char *const *)lines;
    if (cmd == CMD_CLASSIFY)
        eng_classify(ctx, texts, n, out, probs, labels, status);
    else
        eng_embed(ctx, texts, n, out, status);
    int width = cmd == CMD_CLASSIFY ? info->n_labels : info->hidden;
    for (int i = 0; i < n; i++) {
        if (status[i]) {
            print_error(status[i], status[i] == ENG_ERR_UTF8 ? "invalid UTF-8" : NULL);
            continue;
        }
        if (cmd == CMD_CLASSIFY) {
            fputs("{\"label\":", stdout);
            json_string(eng_model_label(model, labels[i]));
            printf(",\"score\":%.8g,\"logits\":", (double)probs[(size_t)i * width + labels[i]]);
        } else {
            fputs("{\"embedding\":", stdout);
        }
        json_floats(out + (size_t)i * width, width);
        puts("}");
    }
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return 0;
    *out = (int)v;
    return 1;
}

int main(int argc, char **argv)
{
    /* The Redis worker and client (tools/serve/, docs/REDIS.md). */
    if (argc >= 2 && !strcmp(argv[1], "worker"))
        return eng__cli_worker(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "submit"))
        return eng__cli_submit(argc - 1, argv + 1);
    if (argc < 3) {
        usage(stderr);
        return 2;
    }
    command cmd;
    if (!strcmp(argv[1], "tokenize"))
        cmd = CMD_TOKENIZE;
    else if (!strcmp(argv[1], "classify"))
        cmd = CMD_CLASSIFY;
    else if (!strcmp(argv[1], "embed"))
        cmd = CMD_EMBED;
    else {
        usage(stderr);
        return 2;
    }
    int batch = 32, first_image_arg = argc;
    eng_model_params mp = eng_model_default_params();
    eng_ctx_params cp = eng_ctx_default_params();
    static const char *const precisions[] = {"fp32", "tf32", "fp16", "bf16"};
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc && parse_int(argv[i + 1], 1, 65536, &batch))
            i++;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc &&
                 parse_int(argv[i + 1], 1, 1024, &mp.n_threads))
            i++;
        else if (!strcmp(argv[i], "--device") && i + 1 < argc &&
                 (!strcmp(argv[i + 1], "cpu") || !strcmp(argv[i + 1], "cuda")))
            cp.device = !strcmp(argv[++i], "cuda") ? ENG_DEVICE_CUDA : ENG_DEVICE_CPU;
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
            int p = 0;
            while (p < 4 && strcmp(argv[i + 1], precisions[p]))
                p++;
            if (p == 4) {
                fprintf(stderr, "engine: unknown precision %s\n", argv[i + 1]);
                return 2;
            }
            cp.precision = (eng_precision)p;
            i++;
        } else if (argv[i][0] != '-' && first_image_arg == argc)
            first_image_arg = i;
        else if (argv[i][0] == '-' || first_image_arg == argc) {
            fprintf(stderr, "engine: bad option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    eng_model *model = NULL;
    eng_ctx *ctx = NULL;
    if (eng_model_load(argv[2], &mp, &model)) {
        fprintf(stderr, "engine: %s\n", eng_last_error());
        return 1;
    }
    eng_model_info info;
    eng_model_get_info(model, &info);
    if (info.input == ENG_INPUT_IMAGE && cmd != CMD_CLASSIFY) {
        fprintf(stderr, "engine: %s is an image model: only classify applies\n", argv[2]);
        eng_model_free(model);
        return 1;
    }
    if (info.input != ENG_INPUT_IMAGE && first_image_arg < argc) {
        fprintf(stderr, "engine: unexpected argument %s (texts come on stdin)\n",
                argv[first_image_arg]);
        eng_model_free(model);
        return 2;
    }
    if (cmd == CMD_CLASSIFY && info.n_labels == 0) {
        fprintf(stderr, "engine: %s has no classifier head; use embed\n", argv[2]);
        eng_model_free(model);
        return 1;
    }
    if (cmd != CMD_TOKENIZE && eng_ctx_init(model, &cp, &ctx)) {
        fprintf(stderr, "engine: %s\n", eng_last_error());
        eng_model_free(model);
        return 1;
    }
    int width = info.n_labels > info.hidden ? info.n_labels : info.hidden;
    char **lines = calloc((size_t)batch, sizeof *lines);
    size_t *caps = calloc((size_t)batch, sizeof *caps);
    float *out = malloc((size_t)batch * width * sizeof *out);
    float *probs = malloc((size_t)batch * width * sizeof *probs);
    int *labels = malloc((size_t)batch * sizeof *labels);
    eng_status *status = malloc((size_t)batch * sizeof *status);
    int32_t *ids = malloc((size_t)info.max_positions * sizeof *ids);
    int rc = 0;
    if (!lines || !caps || !out || !probs || !labels || !status || !ids) {
        fprintf(stderr, "engine: out of memory\n");
        rc = 1;
    }
    int n = 0;
    /* Image paths given as arguments are read instead of stdin. */
    int next_arg = first_image_arg;
    while (!rc) {
        ssize_t len;
        if (first_image_arg < argc) {
            len = -1;
            if (next_arg < argc) {
                free(lines[n]);
                lines[n] = strdup(argv[next_arg++]);
                caps[n] = lines[n] ? strlen(lines[n]) + 1 : 0;
                len = lines[n] ? (ssize_t)strlen(lines[n]) : -1;
            }
        } else {
            len = getline(&lines[n], &caps[n], stdin);
        }
        if (len >= 0) {
            if (len > 0 && lines[n][len - 1] == '\n')
                lines[n][--len] = '\0';
            if (len > 0 && lines[n][len - 1] == '\r')
                lines[n][--len] = '\0';
            n++;
        }
        if (n == batch || (len < 0 && n > 0)) {
            run_batch(cmd, model, ctx, &info, lines, n, out, probs, labels, status, ids);
            n = 0;
        }
        if (len < 0)
            break;
    }
    for (int i = 0; lines && i < batch; i++)
        free(lines[i]);
    free(lines);
    free(caps);
    free(out);
    free(probs);
    free(labels);
    free(status);
    free(ids);
    eng_ctx_free(ctx);
    eng_model_free(model);
    return rc;
}
