/* infer.c: the tokenize, classify and embed subcommands.
 *
 *   engine tokenize|classify|embed [OPTIONS] MODEL_FILE [IMAGE...]
 *
 * Reads one text (or, for an image model, one image path) per line on stdin,
 * or the image paths given as arguments, and writes one JSON object per line
 * on stdout, in input order: {"ids":[...]}, {"label":..,"score":..,
 * "logits":[...]}, {"embedding":[...]} or, for images, {"file":..,"label":..,
 * "score":..,"top5":[...],"logits":[...]} ({"file":..,"embedding":[...]} from
 * embed on an image model: ViT, CLIP). A line that fails gives
 * {"error":"..."} (images: {"file":..,"error":"..."}) with its own reason and
 * the rest go on. Lines are batched internally (--batch). A line is at most
 * --max-line-bytes long (a longer one fails alone), so no input makes the
 * process grow without bound; NUL bytes in a line are dropped, as Hugging
 * Face's tokenizers drop them. Exit codes: cli.h. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine.h"

typedef enum { CMD_TOKENIZE, CMD_CLASSIFY, CMD_EMBED } command;

#define DEFAULT_BATCH 32
#define DEFAULT_MAX_LINE (1L << 20) /* 1 MiB: far above 512 tokens of any text */

static void usage(FILE *f, const char *name)
{
    fprintf(f,
            "usage: engine %s [OPTIONS] MODEL_FILE%s\n"
            "  reads one %s per line on stdin%s;\n"
            "  writes one JSON object per line on stdout\n"
            "options (in any position; -- ends them):\n"
            "  --batch N             lines run together (1-65536, default %d)\n"
            "  --threads N           compute threads (1-1024, default: the machine's cores)\n"
            "  --device cpu|cuda     where the model runs (default cpu)\n"
            "  --precision fp32|tf32|fp16|bf16   arithmetic (default fp32; the CPU runs fp32 or bf16)\n"
            "  --max-line-bytes N    longest input line (default %ld); a longer one fails alone\n"
            "  --images              the arguments are images (image models take them anyway)\n"
            "  -h, --help            this text\n"
            "exit codes: 0 ok, 1 some items failed (their lines say why), 2 usage,\n"
            "            3 reading input or writing output failed, 4 model not loaded or unfit\n",
            name, strcmp(name, "tokenize") ? " [IMAGE...]" : "",
            strcmp(name, "tokenize") ? "text (image model: image path)" : "text",
            strcmp(name, "tokenize") ? ",\n  or the image paths given as arguments" : "",
            DEFAULT_BATCH, DEFAULT_MAX_LINE);
}

static int try_help(const char *name)
{
    fprintf(stderr, "engine %s: see engine %s --help\n", name, name);
    return ENG_CLI_USAGE;
}

typedef struct {
    command cmd;
    const eng_model *model;
    eng_ctx *ctx;
    eng_model_info info;
    float *out, *probs;
    int *labels;
    eng_status *status;
    int32_t *ids;
    const char **run; /* [batch]: the lines of a batch that run */
    int *at;          /* [batch]: the line each of them is */
} runner;

static void print_error(const char *file, const char *reason)
{
    fputc('{', stdout);
    if (file) {
        fputs("\"file\":", stdout);
        eng__json_string(stdout, file);
        fputc(',', stdout);
    }
    fputs("\"error\":", stdout);
    eng__json_string(stdout, reason);
    fputs("}\n", stdout);
}

static const char *NON_FINITE = "the output is not finite (NaN or Inf): the model file may be corrupt";

/* {"file":..,"label":..,"score":..,"top5":[{"index":..,"label":..,"score":..},...],"logits":[...]} */
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
    eng__json_string(stdout, file);
    fputs(",\"label\":", stdout);
    eng__json_string(stdout, label ? label : "");
    printf(",\"score\":%.8g,\"top5\":[", (double)probs[top[0]]);
    for (int j = 0; j < k; j++) {
        label = eng_model_label(model, top[j]);
        printf("%s{\"index\":%d,\"label\":", j ? "," : "", top[j]);
        eng__json_string(stdout, label ? label : "");
        printf(",\"score\":%.8g}", (double)probs[top[j]]);
    }
    fputs("],\"logits\":", stdout);
    eng__json_floats(stdout, logits, n_labels);
    fputs("}\n", stdout);
}

/* Runs n lines (a line with a reason[i] already failed, for that reason) and
 * prints n JSON lines; returns how many failed. */
static int run_batch(runner *r, char **lines, const char **reason, int n)
{
    const int C = r->info.n_labels;
    int failed = 0;
    /* The lines that were read whole run; the others keep their reason. */
    const char **run = r->run;
    int *at = r->at, m = 0;
    for (int i = 0; i < n; i++)
        if (!reason[i]) {
            at[m] = i;
            run[m++] = lines[i];
        }
    if (r->info.input == ENG_INPUT_IMAGE && r->cmd == CMD_EMBED)
        eng_embed_images(r->ctx, run, m, r->out, r->status);
    else if (r->info.input == ENG_INPUT_IMAGE)
        eng_classify_images(r->ctx, run, m, r->out, r->probs, NULL, r->status);
    else if (r->cmd == CMD_CLASSIFY)
        eng_classify(r->ctx, run, m, r->out, r->probs, r->labels, r->status);
    else if (r->cmd == CMD_EMBED)
        eng_embed(r->ctx, run, m, r->out, r->status);
    for (int i = 0, j = 0; i < n; i++) {
        int k = j < m && at[j] == i ? j++ : -1;
        const char *file = r->info.input == ENG_INPUT_IMAGE ? lines[i] : NULL;
        if (k < 0) {
            print_error(file, reason[i]);
            failed++;
            continue;
        }
        if (r->cmd == CMD_TOKENIZE) {
            int n_ids = 0;
            eng_status s = eng_tokenize(r->model, run[k], strlen(run[k]), r->ids,
                                        r->info.max_positions, &n_ids, NULL);
            if (s) {
                /* Invalid UTF-8 is the status alone; the rest have details. */
                print_error(NULL, s == ENG_ERR_UTF8 ? eng_status_str(s) : eng_last_error());
                failed++;
                continue;
            }
            fputs("{\"ids\":[", stdout);
            for (int q = 0; q < n_ids; q++)
                printf(q ? ",%d" : "%d", (int)r->ids[q]);
            fputs("]}\n", stdout);
            continue;
        }
        int width = r->cmd == CMD_EMBED ? r->info.embed_size : C;
        const float *row = r->out + (size_t)k * width;
        if (r->status[k]) {
            const char *why = eng_ctx_item_error(r->ctx, k);
            print_error(file, why ? why : eng_status_str(r->status[k]));
            failed++;
        } else if (!eng__all_finite(row, width)) {
            print_error(file, NON_FINITE);
            failed++;
        } else if (file && r->cmd == CMD_CLASSIFY) {
            print_image_result(r->model, file, row, r->probs + (size_t)k * C, C);
        } else if (r->cmd == CMD_CLASSIFY) {
            fputs("{\"label\":", stdout);
            const char *label = eng_model_label(r->model, r->labels[k]);
            eng__json_string(stdout, label ? label : "");
            printf(",\"score\":%.8g,\"logits\":", (double)r->probs[(size_t)k * C + r->labels[k]]);
            eng__json_floats(stdout, row, width);
            fputs("}\n", stdout);
        } else {
            if (file) {
                fputs("{\"file\":", stdout);
                eng__json_string(stdout, file);
                fputc(',', stdout);
            } else {
                fputc('{', stdout);
            }
            fputs("\"embedding\":", stdout);
            eng__json_floats(stdout, row, width);
            fputs("}\n", stdout);
        }
    }
    return failed;
}

/* Whether a text model carries a tokenizer: one converted without (a
 * RoBERTa-family folder without tokenizer.json) takes token ids only, which
 * this command line does not read. */
static int has_tokenizer(const eng_model *m)
{
    int32_t ids[8];
    int n;
    return eng_tokenize(m, "a", 1, ids, 8, &n, NULL) != ENG_ERR_UNSUPPORTED;
}

static int run_command(command cmd, int argc, char **argv)
{
    static const struct option long_opts[] = {
        {"batch", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'},
        {"device", required_argument, NULL, 'd'},
        {"precision", required_argument, NULL, 'p'},
        {"max-line-bytes", required_argument, NULL, 'm'},
        {"images", no_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const precisions[] = {"fp32", "tf32", "fp16", "bf16"};
    const char *name = argv[0];
    long batch = DEFAULT_BATCH, max_line = DEFAULT_MAX_LINE, v;
    int images = 0;
    eng_model_params mp = eng_model_default_params();
    eng_ctx_params cp = eng_ctx_default_params();
    optind = 1;
    opterr = 0;
    for (int o; (o = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1;) {
        const char *bad = NULL;
        switch (o) {
        case 'h':
            usage(stdout, name);
            return ENG_CLI_OK;
        case 'b':
            if (!eng__cli_parse_int(optarg, 1, 65536, &batch))
                bad = "--batch";
            break;
        case 't':
            if (eng__cli_parse_int(optarg, 1, 1024, &v))
                mp.n_threads = (int)v;
            else
                bad = "--threads";
            break;
        case 'd':
            if (!strcmp(optarg, "cpu") || !strcmp(optarg, "cuda"))
                cp.device = !strcmp(optarg, "cuda") ? ENG_DEVICE_CUDA : ENG_DEVICE_CPU;
            else
                bad = "--device";
            break;
        case 'p': {
            int p = 0;
            while (p < 4 && strcmp(optarg, precisions[p]))
                p++;
            if (p == 4)
                bad = "--precision";
            else
                cp.precision = (eng_precision)p;
            break;
        }
        case 'i':
            images = 1;
            break;
        case 'm':
            /* At least 1 byte; at most 1 GiB, so a line buffer stays allocatable. */
            if (!eng__cli_parse_int(optarg, 1, 1L << 30, &max_line))
                bad = "--max-line-bytes";
            break;
        case ':':
            fprintf(stderr, "engine %s: %s needs a value\n", name, argv[optind - 1]);
            return try_help(name);
        default:
            fprintf(stderr, "engine %s: unknown option %s\n", name, argv[optind - 1]);
            return try_help(name);
        }
        if (bad) {
            fprintf(stderr, "engine %s: bad value for %s: %s\n", name, bad, optarg);
            return try_help(name);
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "engine %s: no MODEL_FILE given\n", name);
        return try_help(name);
    }
    const char *path = argv[optind++];
    char **image_args = argv + optind;
    const int n_image_args = argc - optind;

    runner r = {.cmd = cmd};
    eng_model *model = NULL;
    if (eng_model_load(path, &mp, &model)) {
        fprintf(stderr, "engine %s: %s\n", name, eng_last_error());
        return ENG_CLI_MODEL;
    }
    r.model = model;
    eng_model_get_info(model, &r.info);
    int rc = ENG_CLI_OK;
    if (r.info.input == ENG_INPUT_IMAGE && (cmd == CMD_TOKENIZE || (cmd == CMD_EMBED &&
                                                                     !r.info.embed_size))) {
        fprintf(stderr, "engine %s: %s is an image model that %s\n", name, path,
                r.info.embed_size ? "classifies or embeds" : "only classifies");
        rc = ENG_CLI_MODEL;
    } else if (r.info.input != ENG_INPUT_IMAGE && images) {
        fprintf(stderr, "engine %s: --images: %s is not an image model\n", name, path);
        rc = ENG_CLI_MODEL;
    } else if (r.info.input != ENG_INPUT_IMAGE && n_image_args > 0) {
        fprintf(stderr, "engine %s: unexpected argument %s (texts come on stdin)\n", name,
                image_args[0]);
        rc = ENG_CLI_USAGE;
    } else if (r.info.input == ENG_INPUT_TEXT && !has_tokenizer(model)) {
        fprintf(stderr,
                "engine %s: %s has no tokenizer: it takes token ids (eng_classify_ids, "
                "eng_embed_ids), not text lines\n",
                name, path);
        rc = ENG_CLI_MODEL;
    } else if (cmd == CMD_CLASSIFY && r.info.n_labels == 0) {
        fprintf(stderr, "engine %s: %s has no classifier head; use embed\n", name, path);
        rc = ENG_CLI_MODEL;
    } else if (cmd != CMD_TOKENIZE) {
        /* One pass per batch, so every failed image keeps its own reason. */
        cp.max_batch_images = (int)batch;
        if (eng_ctx_init(model, &cp, &r.ctx)) {
            fprintf(stderr, "engine %s: %s\n", name, eng_last_error());
            rc = ENG_CLI_MODEL;
        }
    }
    int width = r.info.n_labels > r.info.embed_size ? r.info.n_labels : r.info.embed_size;
    char **lines = calloc((size_t)batch, sizeof *lines);
    size_t *caps = calloc((size_t)batch, sizeof *caps);
    const char **reason = calloc((size_t)batch, sizeof *reason);
    r.out = malloc((size_t)batch * width * sizeof *r.out);
    r.probs = malloc((size_t)batch * width * sizeof *r.probs);
    r.labels = malloc((size_t)batch * sizeof *r.labels);
    r.status = malloc((size_t)batch * sizeof *r.status);
    r.run = malloc((size_t)batch * sizeof *r.run);
    r.at = malloc((size_t)batch * sizeof *r.at);
    r.ids = malloc((size_t)(r.info.max_positions > 0 ? r.info.max_positions : 1) * sizeof *r.ids);
    if (!rc && (!lines || !caps || !reason || !r.out || !r.probs || !r.labels || !r.status ||
                !r.run || !r.at || !r.ids)) {
        fprintf(stderr, "engine %s: out of memory\n", name);
        rc = ENG_CLI_IO;
    }
    char too_long_msg[64];
    snprintf(too_long_msg, sizeof too_long_msg, "line longer than %ld bytes", max_line);
    int n = 0, next_arg = 0, any_failed = 0;
    while (!rc) {
        int got;
        size_t len = 0;
        int too_long = 0;
        if (n_image_args > 0) {
            got = next_arg < n_image_args;
            if (got) {
                free(lines[n]);
                lines[n] = strdup(image_args[next_arg++]);
                caps[n] = 0;
                if (!lines[n]) {
                    errno = ENOMEM;
                    got = -1;
                }
            }
        } else {
            got = eng__cli_read_line(stdin, &lines[n], &caps[n], (size_t)max_line, &len,
                                     &too_long);
        }
        if (got < 0) {
            fprintf(stderr, "engine %s: reading the input: %s\n", name, strerror(errno));
            rc = ENG_CLI_IO;
        }
        if (got > 0)
            reason[n++] = too_long ? too_long_msg : NULL;
        /* On a read error the lines already read still get their answers. */
        if (n == batch || (got <= 0 && n > 0)) {
            any_failed |= run_batch(&r, lines, reason, n) > 0;
            n = 0;
            if (ferror(stdout))
                break;
        }
        if (got <= 0)
            break;
    }
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "engine %s: writing the output: %s\n", name, strerror(errno));
        rc = ENG_CLI_IO;
    }
    for (int i = 0; lines && i < batch; i++)
        free(lines[i]);
    free(lines);
    free(caps);
    free(reason);
    free(r.out);
    free(r.probs);
    free(r.labels);
    free(r.status);
    free(r.ids);
    free(r.run);
    free(r.at);
    eng_ctx_free(r.ctx);
    eng_model_free(model);
    return rc ? rc : any_failed ? ENG_CLI_ITEMS_FAILED : ENG_CLI_OK;
}

int eng__cli_tokenize(int argc, char **argv)
{
    return run_command(CMD_TOKENIZE, argc, argv);
}

int eng__cli_classify(int argc, char **argv)
{
    return run_command(CMD_CLASSIFY, argc, argv);
}

int eng__cli_embed(int argc, char **argv)
{
    return run_command(CMD_EMBED, argc, argv);
}
