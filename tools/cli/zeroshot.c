/* zeroshot.c: the zero-shot subcommand (CLIP).
 *
 *   engine zero-shot MODEL_FILE --labels LABELS.txt [--template T] [--ids IDS.jsonl] IMAGE...
 *
 * One label a line in LABELS.txt; each label's prompt is the template with
 * "{}" replaced by it (default "a photo of a {}"), tokenized by the model, or
 * given already tokenized by --ids (one JSON array of token ids a line, one
 * line per label, e.g. from ../shared/reference/tokenize.mjs). Prints one
 * JSON object per image, in argument order: {"file":..,"label":..,"score":..,
 * "top5":[{"index":..,"label":..,"score":..},...],"probs":[...]}, or
 * {"file":..,"error":..}. The label embeddings are computed once (the
 * library caches them; eng_zero_shot_images). Exit codes: cli.h. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine.h"

#define DEFAULT_BATCH 32
#define MAX_LABELS 100000
#define MAX_LINE (1L << 16)

static void usage(FILE *f)
{
    fputs("usage: engine zero-shot [OPTIONS] MODEL_FILE --labels FILE IMAGE...\n"
          "  classifies each image among the labels of FILE (one a line) with a CLIP model;\n"
          "  writes one JSON object per image on stdout, the top 5 labels first\n"
          "options (in any position; -- ends them):\n"
          "  --labels FILE         the class names, one a line (required)\n"
          "  --template T          each label's prompt, \"{}\" replaced by the label\n"
          "                        (default \"a photo of a {}\")\n"
          "  --ids FILE            the prompts already tokenized: one JSON array of token ids a\n"
          "                        line, one line per label (instead of the model's tokenizer)\n"
          "  --batch N             images run together (1-4096, default 32)\n"
          "  --threads N           compute threads (1-1024, default: the machine's cores)\n"
          "  -h, --help            this text\n"
          "exit codes: 0 ok, 1 some items failed (their lines say why), 2 usage,\n"
          "            3 reading input or writing output failed, 4 model not loaded or unfit\n",
          f);
}

static int try_help(void)
{
    fprintf(stderr, "engine zero-shot: see engine zero-shot --help\n");
    return ENG_CLI_USAGE;
}

/* The non-empty lines of path, malloc'd; -1 when it cannot be read. */
static int read_lines(const char *path, char ***out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *buf = NULL, **v = NULL;
    size_t cap = 0, len;
    int n = 0, too_long, got;
    while ((got = eng__cli_read_line(f, &buf, &cap, MAX_LINE, &len, &too_long)) > 0 &&
           n < MAX_LABELS) {
        if (!len)
            continue;
        char **nv = realloc(v, (size_t)(n + 1) * sizeof *v);
        if (!nv || !(nv[n] = strdup(buf))) {
            v = nv ? nv : v;
            got = -1;
            break;
        }
        v = nv;
        n++;
    }
    free(buf);
    fclose(f);
    if (got < 0) {
        for (int i = 0; i < n; i++)
            free(v[i]);
        free(v);
        return -1;
    }
    *out = v;
    return n;
}

/* "[49406, 320, 1125, 49407]" to ids; the count, or -1 when it holds none
 * or a non-number. */
static int parse_ids(const char *s, int32_t **out)
{
    int n = 0, cap = 0;
    int32_t *v = NULL;
    for (const char *p = s; *p;) {
        if (*p == '[' || *p == ']' || *p == ',' || *p == ' ' || *p == '\t') {
            p++;
            continue;
        }
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX) {
            free(v);
            return -1;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            int32_t *nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        v[n++] = (int32_t)x;
        p = end;
    }
    if (!n) {
        free(v);
        return -1;
    }
    *out = v;
    return n;
}

static void print_result(const char *file, const char *const *labels, int L, const float *p)
{
    int top[5], k = L < 5 ? L : 5;
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < L; i++) {
            int taken = 0;
            for (int q = 0; q < j; q++)
                taken |= top[q] == i;
            if (!taken && (best < 0 || p[i] > p[best]))
                best = i;
        }
        top[j] = best;
    }
    fputs("{\"file\":", stdout);
    eng__json_string(stdout, file);
    fputs(",\"label\":", stdout);
    eng__json_string(stdout, labels[top[0]]);
    printf(",\"score\":%.8g,\"top5\":[", (double)p[top[0]]);
    for (int j = 0; j < k; j++) {
        printf("%s{\"index\":%d,\"label\":", j ? "," : "", top[j]);
        eng__json_string(stdout, labels[top[j]]);
        printf(",\"score\":%.8g}", (double)p[top[j]]);
    }
    fputs("],\"probs\":", stdout);
    eng__json_floats(stdout, p, L);
    fputs("}\n", stdout);
}

int eng__cli_zero_shot(int argc, char **argv)
{
    static const struct option long_opts[] = {
        {"labels", required_argument, NULL, 'l'},
        {"template", required_argument, NULL, 'T'},
        {"ids", required_argument, NULL, 'i'},
        {"batch", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *labels_path = NULL, *ids_path = NULL, *templ = NULL;
    long batch = DEFAULT_BATCH, v;
    eng_model_params mp = eng_model_default_params();
    optind = 1;
    opterr = 0;
    for (int o; (o = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1;) {
        switch (o) {
        case 'h':
            usage(stdout);
            return ENG_CLI_OK;
        case 'l':
            labels_path = optarg;
            break;
        case 'T':
            templ = optarg;
            break;
        case 'i':
            ids_path = optarg;
            break;
        case 'b':
            if (!eng__cli_parse_int(optarg, 1, 4096, &batch)) {
                fprintf(stderr, "engine zero-shot: bad value for --batch: %s\n", optarg);
                return try_help();
            }
            break;
        case 't':
            if (!eng__cli_parse_int(optarg, 1, 1024, &v)) {
                fprintf(stderr, "engine zero-shot: bad value for --threads: %s\n", optarg);
                return try_help();
            }
            mp.n_threads = (int)v;
            break;
        case ':':
            fprintf(stderr, "engine zero-shot: %s needs a value\n", argv[optind - 1]);
            return try_help();
        default:
            fprintf(stderr, "engine zero-shot: unknown option %s\n", argv[optind - 1]);
            return try_help();
        }
    }
    if (optind >= argc || !labels_path) {
        fprintf(stderr, "engine zero-shot: %s\n",
                optind >= argc ? "no MODEL_FILE given" : "no --labels FILE given");
        return try_help();
    }
    const char *path = argv[optind++];
    char **images = argv + optind;
    const int n_images = argc - optind;
    if (!n_images) {
        fprintf(stderr, "engine zero-shot: no IMAGE given\n");
        return try_help();
    }

    char **labels = NULL, **id_lines = NULL;
    int L = read_lines(labels_path, &labels), n_id_lines = 0, rc = ENG_CLI_OK;
    if (L <= 0) {
        fprintf(stderr, "engine zero-shot: %s: %s\n", labels_path,
                L < 0 ? strerror(errno) : "no labels in it");
        return L < 0 ? ENG_CLI_IO : ENG_CLI_USAGE;
    }
    eng_seq *seqs = NULL;
    if (ids_path) {
        n_id_lines = read_lines(ids_path, &id_lines);
        if (n_id_lines != L) {
            fprintf(stderr, "engine zero-shot: %s: %s\n", ids_path,
                    n_id_lines < 0 ? strerror(errno) : "not one line of ids per label");
            rc = n_id_lines < 0 ? ENG_CLI_IO : ENG_CLI_USAGE;
        }
        seqs = rc ? NULL : calloc((size_t)L, sizeof *seqs);
        for (int i = 0; seqs && i < L && !rc; i++) {
            int32_t *ids;
            int n = parse_ids(id_lines[i], &ids);
            if (n < 0) {
                fprintf(stderr, "engine zero-shot: %s line %d is not a JSON array of ids\n",
                        ids_path, i + 1);
                rc = ENG_CLI_USAGE;
            } else {
                seqs[i] = (eng_seq){ids, n};
            }
        }
    }
    eng_model *model = NULL;
    eng_ctx *ctx = NULL;
    if (!rc && eng_model_load(path, &mp, &model)) {
        fprintf(stderr, "engine zero-shot: %s\n", eng_last_error());
        rc = ENG_CLI_MODEL;
    }
    eng_ctx_params cp = eng_ctx_default_params();
    cp.max_batch_images = (int)batch;
    if (!rc && eng_ctx_init(model, &cp, &ctx)) {
        fprintf(stderr, "engine zero-shot: %s\n", eng_last_error());
        rc = ENG_CLI_MODEL;
    }
    float *probs = malloc((size_t)batch * L * sizeof *probs);
    eng_status *st = malloc((size_t)batch * sizeof *st);
    if (!rc && (!probs || !st)) {
        fprintf(stderr, "engine zero-shot: out of memory\n");
        rc = ENG_CLI_IO;
    }
    eng_label_set ls = {(const char *const *)labels, L, templ, seqs};
    /* No images: only the label embeddings, so a failure there (no
     * tokenizer, a bad id) is reported once, as the model's. */
    if (!rc && eng_zero_shot_images(ctx, &ls, NULL, 0, NULL, NULL, NULL)) {
        fprintf(stderr, "engine zero-shot: %s\n", eng_ctx_last_error(ctx));
        rc = ENG_CLI_MODEL;
    }
    int any_failed = 0;
    for (int base = 0; !rc && base < n_images; base += (int)batch) {
        const int n = n_images - base < batch ? n_images - base : (int)batch;
        eng_zero_shot_images(ctx, &ls, (const char *const *)images + base, n, probs, NULL, st);
        for (int i = 0; i < n; i++) {
            if (st[i]) {
                const char *why = eng_ctx_item_error(ctx, i);
                fputs("{\"file\":", stdout);
                eng__json_string(stdout, images[base + i]);
                fputs(",\"error\":", stdout);
                eng__json_string(stdout, why ? why : eng_status_str(st[i]));
                fputs("}\n", stdout);
                any_failed = 1;
            } else {
                print_result(images[base + i], (const char *const *)labels, L,
                             probs + (size_t)i * L);
            }
        }
    }
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "engine zero-shot: writing the output: %s\n", strerror(errno));
        rc = rc ? rc : ENG_CLI_IO;
    }
    for (int i = 0; i < L; i++)
        free(labels[i]);
    free(labels);
    for (int i = 0; id_lines && i < n_id_lines; i++)
        free(id_lines[i]);
    free(id_lines);
    for (int i = 0; seqs && i < L; i++)
        free((void *)seqs[i].ids);
    free(seqs);
    free(probs);
    free(st);
    eng_ctx_free(ctx);
    eng_model_free(model);
    return rc ? rc : any_failed ? ENG_CLI_ITEMS_FAILED : ENG_CLI_OK;
}
