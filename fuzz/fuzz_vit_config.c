/* The ViT / CLIP readers: a folder's config.json and preprocessor_config.json
 * as the converter reads them (tools/convert/vit_layout.c), beside the tiny
 * golden checkpoints, and a converted file's metadata as src/vit/vit.c reads
 * it at load. A model that loads embeds a 2x3 PNG (the fuzzed image recipe)
 * and, for CLIP, a prompt of ids (the fuzzed text tower's eos and positions).
 *
 * Input: one selector byte, then
 *   bit 1 clear: config.json, and after the first NUL byte (if any)
 *                preprocessor_config.json: the folder is converted, and
 *                loaded when that succeeds;
 *   bit 1 set:   the metadata JSON of a file holding the converted tensors
 *                of the tiny model: loaded.
 * Bit 0 picks the tiny model: CLIP (tests/golden/tiny/clip) or ViT
 * (tests/golden/tiny/vit-cls). Run from the repository root. */
#include <sys/stat.h>

#include "engine.h"
#include "format.h"
#include "fuzz_util.h"
#include "vit_layout.h"
#include "writer.h"

/* A 2x3 RGB PNG. */
static const unsigned char png_2x3[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x08, 0x02, 0x00, 0x00, 0x00, 0x36, 0x88, 0x49,
    0xd6, 0x00, 0x00, 0x00, 0x1b, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x60, 0x60, 0x60, 0xa8,
    0xa8, 0xa8, 0x60, 0xb0, 0xb1, 0xb1, 0xd9, 0xb2, 0x65, 0x0b, 0x88, 0xf9, 0xe1, 0xc3, 0x07, 0x00,
    0x3e, 0xa9, 0x08, 0x71, 0x5c, 0xf0, 0x7f, 0x67, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44,
    0xae, 0x42, 0x60, 0x82};

static const char *const tiny[2] = {"tests/golden/tiny/vit-cls", "tests/golden/tiny/clip"};

/* A model that loaded: a context, one image, one prompt. */
static void exercise(eng_model *m)
{
    eng_ctx_params p = eng_ctx_default_params();
    p.max_batch_images = 1;
    p.n_threads = 1;
    eng_ctx *c = NULL;
    if (eng_ctx_init(m, &p, &c) == ENG_OK) {
        eng_model_info info;
        eng_model_get_info(m, &info);
        float *out = malloc((size_t)(info.embed_size > 0 ? info.embed_size : 1) * sizeof *out);
        const void *data[1] = {png_2x3};
        const size_t size[1] = {sizeof png_2x3};
        if (!out) abort();
        eng_embed_image_data(c, data, size, 1, out, NULL);
        if (!strcmp(info.arch, "clip")) {
            static const int32_t ids[3] = {1, 2, 3};
            const eng_seq seq = {ids, 3};
            eng_embed_ids(c, &seq, 1, out, NULL);
        }
        free(out);
    }
    eng_ctx_free(c);
}

static void load(const char *path)
{
    eng_model *m = NULL;
    if (eng_model_load(path, NULL, &m) == ENG_OK)
        exercise(m);
    eng_model_free(m);
}

/* The tiny model's converted file, made once per process: its path. */
static const char *converted(int clip)
{
    static char path[2][160];
    if (!path[clip][0]) {
        char err[256];
        cv_vit_report r;
        snprintf(path[clip], sizeof path[clip], "%s/tiny%d.eng", fuzz_dir(), clip);
        if (cv_convert_vit(tiny[clip], NULL, path[clip], &r, err, sizeof err)) {
            fprintf(stderr, "fuzz_vit_config: %s: %s (run from the repository root)\n",
                    tiny[clip], err);
            abort();
        }
    }
    return path[clip];
}

/* The converted tensors of the tiny model with meta as the file's metadata. */
static void with_meta(int clip, const uint8_t *meta, size_t n)
{
    static eng__file f[2];
    static int open[2];
    char err[256];
    if (!open[clip]) {
        if (eng__file_open(&f[clip], converted(clip), err, sizeof err)) abort();
        open[clip] = 1;
    }
    char *json = malloc(n + 1);
    eng__writer *w = eng__writer_new();
    if (!json || !w) abort();
    memcpy(json, meta, n);
    json[n] = '\0';
    for (uint32_t i = 0; i < f[clip].n_tensors; i++) {
        const eng__file_tensor *t = &f[clip].dir[i];
        if (eng__writer_add(w, t->name, (eng__dtype)t->dtype, (int)t->ndim, t->shape,
                            eng__file_data(&f[clip], t)))
            abort();
    }
    char path[160];
    snprintf(path, sizeof path, "%s/meta.eng", fuzz_dir());
    /* A metadata string the writer refuses (not NUL-free) is no load. */
    if (eng__writer_save(w, json, path, err, sizeof err) == ENG_OK)
        load(path);
    eng__writer_free(w);
    free(json);
}

/* config.json and preprocessor_config.json beside the tiny checkpoint. */
static void folder(int clip, const uint8_t *data, size_t n)
{
    static char weights[2][160];
    const char *dir = fuzz_dir();
    char dst[160], err[256];
    if (!weights[clip][0]) {
        char src[160];
        snprintf(src, sizeof src, "%s/model.safetensors", tiny[clip]);
        FILE *in = fopen(src, "rb");
        if (!in) abort();
        static uint8_t buf[1 << 20];
        size_t got = fread(buf, 1, sizeof buf, in);
        fclose(in);
        snprintf(weights[clip], sizeof weights[clip], "w%d/model.safetensors", clip);
        snprintf(dst, sizeof dst, "%s/w%d", dir, clip);
        mkdir(dst, 0700);
        fuzz_write_file(weights[clip], buf, got);
    }
    const uint8_t *nul = memchr(data, 0, n);
    size_t cn = nul ? (size_t)(nul - data) : n;
    snprintf(dst, sizeof dst, "w%d/config.json", clip);
    fuzz_write_file(dst, data, cn);
    snprintf(dst, sizeof dst, "%s/w%d/preprocessor_config.json", dir, clip);
    if (nul) {
        snprintf(dst, sizeof dst, "w%d/preprocessor_config.json", clip);
        fuzz_write_file(dst, nul + 1, n - cn - 1);
    } else {
        unlink(dst);
    }
    char folder_path[160], out[160];
    snprintf(folder_path, sizeof folder_path, "%s/w%d", dir, clip);
    snprintf(out, sizeof out, "%s/conv.eng", dir);
    cv_vit_report r;
    if (cv_convert_vit(folder_path, NULL, out, &r, err, sizeof err) == ENG_OK)
        load(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const int clip = data[0] & 1;
    if (data[0] & 2)
        with_meta(clip, data + 1, size - 1);
    else
        folder(clip, data + 1, size - 1);
    return 0;
}
