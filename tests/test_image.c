/* test_image.c: image decoding and preprocessing (src/vision/image.c). Preprocessing
 * against torchvision + PIL (tests/golden/preprocess.jsonl, made by
 * make_preprocess_golden.py; needs $ENGINE_SHARED for the images); PNG colour
 * types decoded to the exact pixels written; JPEGs made here in every colour
 * space; hostile input: truncation at every length, byte-flipping fuzz,
 * random bytes, empty input and headers declaring huge images; and every
 * ISA's resize kernels against the scalar twin, bit for bit. */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
/* After stdio.h and stddef.h, which jpeglib.h needs. */
#include <jpeglib.h>
#include <png.h>

#include "image.h"
#include "kernels.h"
#include "testutil.h"

#define SUM_TOL 1e-6          /* relative, float64 sum of a preprocessed tensor */
#define JPEG_MEAN_TOL 4.0     /* mean abs pixel error of a quality-95 JPEG */
#define FUZZ_ROUNDS 300
#define GAP 7                 /* guard bytes after each row a resize kernel writes */
#define GUARD 0xa5

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

/* ---- Writers for the inputs ------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} membuf;

static void png_write_mem(png_structp png, png_bytep d, size_t n)
{
    membuf *m = png_get_io_ptr(png);
    if (m->len + n > m->cap) {
        m->cap = (m->len + n) * 2;
        m->p = realloc(m->p, m->cap);
    }
    memcpy(m->p + m->len, d, n);
    m->len += n;
}

static void png_flush_mem(png_structp png)
{
    (void)png;
}

/* A PNG of w x h from rows of raw samples (already in the colour type's
 * layout); palette (3 bytes each) for palette images. */
static membuf make_png(int w, int h, int color, int depth, int interlace, const uint8_t *raw,
                       size_t row_bytes, const uint8_t *palette, int n_palette)
{
    membuf m = { 0 };
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert(png && info && !setjmp(png_jmpbuf(png)));
    png_set_write_fn(png, &m, png_write_mem, png_flush_mem);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette)
        png_set_PLTE(png, info, (png_const_colorp)(const void *)palette, n_palette);
    png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)h);
    for (int y = 0; y < h; y++)
        rows[y] = (png_bytep)(raw + row_bytes * (size_t)y);
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return m;
}

/* A JPEG of w x h with `comps` samples a pixel in colour space cs. */
static membuf make_jpeg(int w, int h, J_COLOR_SPACE cs, int comps, const uint8_t *px)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    unsigned char *out = NULL;
    unsigned long len = 0;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = (JSAMPROW)(px + (size_t)c.next_scanline * w * comps);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    membuf m = { out, len, len };
    return m;
}

/* A smooth test pattern, so JPEG's loss stays small. */
static uint8_t *pattern(int w, int h, int comps)
{
    uint8_t *p = malloc((size_t)w * h * comps);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comps; c++)
                p[((size_t)y * w + x) * comps + c] = (uint8_t)((x * 2 + y * 2 + c * 40) % 256);
    return p;
}

static void expect_rgb(const eng__rgb_image *img, int w, int h, const uint8_t *rgb)
{
    ck_assert_int_eq(img->w, w);
    ck_assert_int_eq(img->h, h);
    ck_assert_msg(memcmp(img->rgb, rgb, (size_t)w * h * 3) == 0, "pixels differ");
}

/* ---- PNG colour types --------------------------------------------------------- */

START_TEST(png_colour_types)
{
    int w = 13, h = 7;
    char err[256];
    uint8_t *rgb = pattern(w, h, 3), *rgba = pattern(w, h, 4), *gray = pattern(w, h, 1);
    uint8_t *expect = malloc((size_t)w * h * 3), *raw = malloc((size_t)w * h * 8);
    eng__rgb_image img;
    membuf m;

    for (int il = 0; il < 2; il++) {   /* plain and Adam7-interlaced RGB */
        m = make_png(w, h, PNG_COLOR_TYPE_RGB, 8, il, rgb, (size_t)w * 3, NULL, 0);
        ck_assert_msg(eng__image_decode(m.p, m.len, &img, err, sizeof err) == ENG_OK, "%s", err);
        expect_rgb(&img, w, h, rgb);
        eng__rgb_image_free(&img);
        free(m.p);
    }
    /* RGBA: alpha dropped, not composited (PIL's convert("RGB")). */
    for (int i = 0; i < w * h; i++)
        memcpy(expect + 3 * i, rgba + 4 * i, 3);
    m = make_png(w, h, PNG_COLOR_TYPE_RGBA, 8, 0, rgba, (size_t)w * 4, NULL, 0);
    ck_assert(eng__image_decode(m.p, m.len, &img, err, sizeof err) == ENG_OK);
    expect_rgb(&img, w, h, expect);
    eng__rgb_image_free(&img);
    free(m.p);
    /* Gray and gray+alpha: replicated. */
    for (int i = 0; i < w * h; i++)
        expect[3 * i] = expect[3 * i + 1] = expect[3 * i + 2] = gray[i];
    m = make_png(w, h, PNG_COLOR_TYPE_GRAY, 8, 0, gray, (size_t)w, NULL, 0);
    ck_assert(eng__image_decode(m.p, m.len, &img, err, sizeof err) == ENG_OK);
    expect_rgb(&img, w, h, expect);
    eng__rgb_image_free(&img);
    free(m.p);
    for (int i = 0; i < w * h; i++)
        raw[2 * i] = gray[i], raw[2 * i + 1] = (uint8_t)i;
    m = make_png(w, h, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, raw, (size_t)w * 2, NULL, 0);
    ck_assert(eng__image_decode(m.p, m.len, &img, err, sizeof err) == ENG_OK);
    expect_rgb(&img, w, h, expect);
    eng__rgb_image_free(&img);
    free(m.p);
    /* 16-bit gray, big-endian samples: clipped to 255 as PIL's "I;16" to
     * "RGB" conversion does (a zero high byte keeps the low one). */
    for (int i = 0; i < w * h; i++) {
        raw[2 * i] = i % 3 ? gray[i] : 0, raw[2 * i + 1] = (uint8_t)(0xab ^ i);
        expect[3 * i] = expect[3 * i + 1] = expect[3 * i + 2] = raw[2 * i] ? 255 : raw[2 * i + 1];
    }
    m = make_png(w, h, PNG_COLOR_TYPE_GRAY, 16, 0, raw, (size_t)w * 2, NULL, 0);
    ck_assert(eng__image_decode(m.p, m.len, &img, err, sizeof err) == ENG_OK);
    expect_rgb(&img, w, h, expect);
    eng__rgb_image_free(&img);
    free(m.p);
    /* 16-bit RGBA. */
    for (int i = 0; i < w * h * 4; i++)
        raw[2 * i] = rgba[i], raw[2 * i + 1] = 0x77;
    for (int i = 0; i < w * h; i++)
        memcpy(expect + 3 * i, rgba + 4 * i, 3);
    m = make_png(w, h, PNG_COLOR_TYPE_RGBA, 16, 0, raw, (size_t)w * 8, NULL, 0);
    ck_assert(eng__image_decode(m.p, m.len, &img, err, sizeof err) == ENG_OK);
    expect_rgb(&img, w, h, expect);
    eng__rgb_image_free(&img);
    free(m.p);
    /* 4-bit palette: looked up. */
    uint8_t pal[16 * 3];
    for (int i = 0; i < 48; i++)
        pal[i] = (uint8_t)(i * 37 + 11);
    size_t rb = (size_t)(w + 1) / 2;
    memset(raw, 0, rb * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int v = (x + 3 * y) % 16;
            raw[y * rb + x / 2] |= (uint8_t)(x % 2 ? v : v << 4);
            memcpy(expect + 3 * (y * w + x), pal + 3 * v, 3);
        }
    m = make_png(w, h, PNG_COLOR_TYPE_PALETTE, 4, 0, raw, rb, pal, 16);
    ck_assert(eng__image_decode(m.p, m.len, &img, err, sizeof err) == ENG_OK);
    expect_rgb(&img, w, h, expect);
    eng__rgb_image_free(&img);
    free(m.p);
    /* 1-bit gray: 0 and 255. */
    rb = (size_t)(w + 7) / 8;
    memset(raw, 0, rb * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int v = (x ^ y) & 1;
            raw[y * rb + x / 8] |= (uint8_t)(v << (7 - x % 8));
            memset(expect + 3 * (y * w + x), v ? 255 : 0, 3);
        }
    m = make_png(w, h, PNG_COLOR_TYPE_GRAY, 1, 0, raw, rb, NULL, 0);
    ck_assert(eng__image_decode(m.p, m.len, &img, err, sizeof err) == ENG_OK);
    expect_rgb(&img, w, h, expect);
    eng__rgb_image_free(&img);
    free(m.p);
    free(rgb), free(rgba), free(gray), free(expect), free(raw);
}
END_TEST

/* ---- JPEG colour spaces --------------------------------------------------------- */

START_TEST(jpeg_colour_spaces)
{
    int w = 40, h = 24;
    char err[256];
    eng__rgb_image img;
    uint8_t *rgb = pattern(w, h, 3), *gray = pattern(w, h, 1), *cmyk = pattern(w, h, 4);

    membuf m = make_jpeg(w, h, JCS_RGB, 3, rgb);
    ck_assert_msg(eng__image_decode(m.p, m.len, &img, err, sizeof err) == ENG_OK, "%s", err);
    ck_assert(img.w == w && img.h == h);
    double e = 0;
    for (int i = 0; i < w * h * 3; i++)
        e += fabs((double)img.rgb[i] - rgb[i]);
    ck_assert_msg(e / (w * h * 3) < JPEG_MEAN_TOL, "mean error %g", e / (w * h * 3));
    eng__rgb_image_free(&img);
    free(m.p);

    m = make_jpeg(w, h, JCS_GRAYSCALE, 1, gray);
    ck_assert(eng__image_decode(m.p, m.len, &img, err, sizeof err) == ENG_OK);
    for (int i = 0; i < w * h; i++) {
        ck_assert(img.rgb[3 * i] == img.rgb[3 * i + 1] && img.rgb[3 * i] == img.rgb[3 * i + 2]);
        ck_assert_int_le(abs(img.rgb[3 * i] - gray[i]), 16);
    }
    eng__rgb_image_free(&img);
    free(m.p);

    /* libjpeg marks CMYK files with Adobe's APP14, whose convention is
     * inverted ink: C = 255 - stored. Then R = (255 - K) - C (255 - K) / 255,
     * PIL's formula. */
    m = make_jpeg(w, h, JCS_CMYK, 4, cmyk);
    ck_assert(eng__image_decode(m.p, m.len, &img, err, sizeof err) == ENG_OK);
    e = 0;
    for (int i = 0; i < w * h; i++)
        for (int c = 0; c < 3; c++) {
            double nk = cmyk[4 * i + 3];
            e += fabs(img.rgb[3 * i + c] - (nk - (255 - cmyk[4 * i + c]) * nk / 255));
        }
    ck_assert_msg(e / (w * h * 3) < JPEG_MEAN_TOL, "CMYK mean error %g", e / (w * h * 3));
    eng__rgb_image_free(&img);
    free(m.p);
    free(rgb), free(gray), free(cmyk);
}
END_TEST

/* ---- Hostile input ------------------------------------------------------------- */

static eng_status decode_status(const uint8_t *p, size_t len)
{
    char err[256];
    eng__rgb_image img;
    eng_status st = eng__image_decode(p, len, &img, err, sizeof err);
    ck_assert(st != ENG_OK || (img.rgb && img.w > 0 && img.h > 0));
    ck_assert(st == ENG_OK || (img.rgb == NULL && err[0]));
    eng__rgb_image_free(&img);
    return st;
}

static membuf sample_png(void)
{
    uint8_t *rgb = pattern(37, 29, 3);
    membuf m = make_png(37, 29, PNG_COLOR_TYPE_RGB, 8, 0, rgb, 37 * 3, NULL, 0);
    free(rgb);
    return m;
}

static membuf sample_jpeg(int progressive)
{
    uint8_t *rgb = pattern(37, 29, 3);
    membuf m = make_jpeg(37, 29, JCS_RGB, 3, rgb);
    free(rgb);
    if (!progressive)
        return m;
    /* Re-encode progressively through jpegtran's route: decode and write again. */
    struct jpeg_decompress_struct d;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e1, e2;
    d.err = jpeg_std_error(&e1);
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, m.p, (unsigned long)m.len);
    jpeg_read_header(&d, TRUE);
    jvirt_barray_ptr *coefs = jpeg_read_coefficients(&d);
    c.err = jpeg_std_error(&e2);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long len = 0;
    jpeg_mem_dest(&c, &out, &len);
    jpeg_copy_critical_parameters(&d, &c);
    jpeg_simple_progression(&c);
    jpeg_write_coefficients(&c, coefs);
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    free(m.p);
    membuf p = { out, len, len };
    return p;
}

/* The layouts Pillow decodes its own way (palette + tRNS, 16-bit grey, CMYK
 * JPEG with and without Adobe's marker, ...): every pixel exactly as Debian's
 * python3-pil gives it (tests/golden/make_pil_golden.py). Exact, because both
 * sides use the same libjpeg and libpng and PIL's integer conversions. */
START_TEST(decode_matches_pillow)
{
    char *text = test_read_file("tests/golden/pil/expected.jsonl", NULL);
    ck_assert_msg(text != NULL, "run from the repository root");
    int n;
    char **lines = test_split_lines(text, &n);
    ck_assert_int_ge(n, 6);
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_Parse(lines[i]);
        ck_assert_ptr_nonnull(o);
        const char *name = cJSON_GetObjectItem(o, "file")->valuestring;
        const char *hex = cJSON_GetObjectItem(o, "rgb")->valuestring;
        int w = cJSON_GetObjectItem(o, "w")->valueint, h = cJSON_GetObjectItem(o, "h")->valueint;
        char path[256], err[256];
        snprintf(path, sizeof path, "tests/golden/pil/%s", name);
        size_t len;
        uint8_t *data = (uint8_t *)test_read_file(path, &len);
        ck_assert_msg(data != NULL, "%s", path);
        eng__rgb_image img;
        ck_assert_msg(eng__image_decode(data, len, &img, err, sizeof err) == ENG_OK, "%s: %s",
                      name, err);
        ck_assert_int_eq(img.w, w);
        ck_assert_int_eq(img.h, h);
        ck_assert_uint_eq(strlen(hex), (size_t)w * h * 6);
        for (int k = 0; k < w * h * 3; k++) {
            unsigned v;
            ck_assert(sscanf(hex + 2 * k, "%2x", &v) == 1);
            ck_assert_msg(img.rgb[k] == v, "%s: byte %d (pixel %d) is %d, Pillow gives %u", name,
                          k, k / 3, img.rgb[k], v);
        }
        eng__rgb_image_free(&img);
        free(data);
        cJSON_Delete(o);
    }
    free(lines);
    free(text);
}
END_TEST

START_TEST(truncated_at_every_length)
{
    membuf files[3] = { sample_png(), sample_jpeg(0), sample_jpeg(1) };
    for (int f = 0; f < 3; f++) {
        ck_assert_int_eq(decode_status(files[f].p, files[f].len), ENG_OK);
        /* The PNG's last 12 bytes are the IEND chunk, which a reader that
         * has all its pixels need not see; every shorter prefix must fail. */
        size_t must_fail = f == 0 ? files[f].len - 12 : files[f].len;
        for (size_t n = 0; n < must_fail; n++) {
            uint8_t *copy = malloc(n ? n : 1);   /* exact size: overreads trip ASan */
            memcpy(copy, files[f].p, n);
            ck_assert_msg(decode_status(copy, n) == ENG_ERR_FORMAT, "file %d cut at %zu of %zu",
                          f, n, files[f].len);
            free(copy);
        }
        free(files[f].p);
    }
}
END_TEST

START_TEST(fuzzed_bytes_never_crash)
{
    membuf files[3] = { sample_png(), sample_jpeg(0), sample_jpeg(1) };
    int failed = 0;
    for (int f = 0; f < 3; f++) {
        uint8_t *copy = malloc(files[f].len);
        for (int r = 0; r < FUZZ_ROUNDS; r++) {
            memcpy(copy, files[f].p, files[f].len);
            int flips = 1 + (int)(rnd() % 8);
            for (int k = 0; k < flips; k++)
                copy[rnd() % files[f].len] = (uint8_t)rnd();
            eng_status st = decode_status(copy, files[f].len);
            ck_assert(st == ENG_OK || st == ENG_ERR_FORMAT || st == ENG_ERR_TOO_LONG);
            failed += st != ENG_OK;
        }
        free(copy);
        free(files[f].p);
    }
    ck_assert_int_gt(failed, 0);   /* the fuzz did reach the error paths */
    /* Random bytes behind each signature, and with none. */
    static const uint8_t sig[3][8] = { { 0xff, 0xd8, 0xff }, { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' },
                                       { 'G', 'I', 'F', '8' } };
    uint8_t buf[512];
    for (int r = 0; r < FUZZ_ROUNDS; r++) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (uint8_t)rnd();
        memcpy(buf, sig[r % 3], 8);
        ck_assert_int_eq(decode_status(buf, 8 + rnd() % (sizeof buf - 8)), ENG_ERR_FORMAT);
    }
}
END_TEST

START_TEST(empty_and_unknown_input)
{
    char err[256];
    eng__rgb_image img;
    float chw[3];
    ck_assert_int_eq(eng__image_decode(NULL, 0, &img, err, sizeof err), ENG_ERR_FORMAT);
    ck_assert_int_eq(eng__image_decode("", 0, &img, err, sizeof err), ENG_ERR_FORMAT);
    ck_assert_int_eq(eng__image_decode("GIF89a", 6, &img, err, sizeof err), ENG_ERR_FORMAT);
    ck_assert_int_eq(eng__image_load("/nonexistent/x.jpg", NULL, chw, err, sizeof err), ENG_ERR_IO);
}
END_TEST

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

START_TEST(huge_dimensions_refused)
{
    static const uint32_t dims[3][2] = { { 20000, 10 }, { 10, 20000 }, { 12000, 12000 } };
    for (int i = 0; i < 3; i++) {
        /* PNG: rewrite IHDR's width and height and its CRC. */
        membuf m = sample_png();
        put_be32(m.p + 16, dims[i][0]);
        put_be32(m.p + 20, dims[i][1]);
        put_be32(m.p + 29, (uint32_t)crc32(0, m.p + 12, 17));
        ck_assert_int_eq(decode_status(m.p, m.len), ENG_ERR_TOO_LONG);
        free(m.p);
        /* JPEG: rewrite the SOF0 frame's height and width (16 bits each). */
        m = sample_jpeg(0);
        size_t at = 2;
        while (at + 9 < m.len && !(m.p[at] == 0xff && m.p[at + 1] == 0xc0))
            at += 2 + (size_t)(m.p[at + 2] << 8 | m.p[at + 3]);
        ck_assert(at + 9 < m.len);
        uint32_t jw = dims[i][0] > 65535 ? 65535 : dims[i][0];
        m.p[at + 5] = (uint8_t)(dims[i][1] >> 8), m.p[at + 6] = (uint8_t)dims[i][1];
        m.p[at + 7] = (uint8_t)(jw >> 8), m.p[at + 8] = (uint8_t)jw;
        ck_assert_int_eq(decode_status(m.p, m.len), ENG_ERR_TOO_LONG);
        free(m.p);
    }
}
END_TEST

/* ---- Preprocessing -------------------------------------------------------------- */

START_TEST(preprocess_matches_torchvision)
{
    const char *dir = test_shared_path("data/imagenet-sample/images");
    char dirbuf[4096], err[256];
    snprintf(dirbuf, sizeof dirbuf, "%s", dir);
    char *text = test_read_file("tests/golden/preprocess.jsonl", NULL);
    ck_assert_msg(text != NULL, "run from the repository root");
    int nl;
    char **lines = test_split_lines(text, &nl);
    ck_assert_int_eq(nl, 4);
    float *chw = malloc(sizeof(float) * 3 * 224 * 224);
    for (int i = 0; i < nl; i++) {
        cJSON *j = cJSON_Parse(lines[i]);
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(j, "file");
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dirbuf, file->valuestring);
        ck_assert_msg(eng__image_load(path, NULL, chw, err, sizeof err) == ENG_OK, "%s", err);
        double sum = 0, ref = cJSON_GetObjectItemCaseSensitive(j, "sum")->valuedouble;
        for (int k = 0; k < 3 * 224 * 224; k++)
            sum += chw[k];
        ck_assert_msg(fabs(sum - ref) <= SUM_TOL * fabs(ref) + 1e-6, "%s: sum %.9g, reference %.9g",
                      file->valuestring, sum, ref);
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(j, "samples"))
        {
            int idx = cJSON_GetArrayItem(s, 0)->valueint;
            float v = (float)cJSON_GetArrayItem(s, 1)->valuedouble;
            ck_assert_msg(chw[idx] == v, "%s[%d] = %.9g, reference %.9g", file->valuestring, idx,
                          chw[idx], v);
        }
        cJSON_Delete(j);
    }
    free(chw), free(lines), free(text);
}
END_TEST

START_TEST(preprocess_odd_shapes)
{
    char err[256];
    eng__image_spec spec = eng__image_spec_imagenet();
    float *chw = malloc(sizeof(float) * 3 * 224 * 224);
    /* A 2 x 5000 sliver resizes to 256 x 640000, of which only the crop is
     * computed; and a 224 x 224 image, resized up to 256 first. */
    static const int shapes[2][2] = { { 2, 5000 }, { 224, 224 } };
    for (int i = 0; i < 2; i++) {
        eng__rgb_image img = { pattern(shapes[i][0], shapes[i][1], 3), shapes[i][0], shapes[i][1] };
        ck_assert_msg(eng__image_preprocess(&img, &spec, chw, err, sizeof err) == ENG_OK, "%s", err);
        for (int k = 0; k < 3 * 224 * 224; k++)
            ck_assert(isfinite(chw[k]) && chw[k] > -3 && chw[k] < 3);
        eng__rgb_image_free(&img);
    }
    /* No resize and a crop larger than the image. */
    spec.resize = 0;
    eng__rgb_image img = { pattern(100, 300, 3), 100, 300 };
    ck_assert_int_eq(eng__image_preprocess(&img, &spec, chw, err, sizeof err), ENG_ERR_INVALID_ARG);
    eng__rgb_image_free(&img);
    free(chw);
}
END_TEST

/* The resize in steps, its rows shared unevenly and done out of order as
 * a team's members may (vit.c at batch 1), gives eng__image_preprocess's
 * pixels bit for bit: bicubic and bilinear, down and up. */
START_TEST(preprocess_in_shares)
{
    char err[256];
    eng__image_spec spec = eng__image_spec_imagenet();
    const size_t F = 3 * 224 * 224;
    float *whole = malloc(sizeof(float) * F), *shared = malloc(sizeof(float) * F);
    static const int shapes[2][2] = { { 640, 480 }, { 200, 230 } };
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < 2; i++) {
            spec.filter = f ? ENG__FILTER_BICUBIC : ENG__FILTER_BILINEAR;
            eng__rgb_image img = { pattern(shapes[i][0], shapes[i][1], 3), shapes[i][0],
                                   shapes[i][1] };
            ck_assert_msg(eng__image_preprocess(&img, &spec, whole, err, sizeof err) == ENG_OK,
                          "%s", err);
            eng__resize r;
            ck_assert_msg(eng__resize_plan(&r, &img, &spec, err, sizeof err) == ENG_OK, "%s", err);
            const int cut = r.rows / 3, out = 224 / 3;
            memset(shared, 0, sizeof(float) * F);
            eng__resize_rows(&r, cut, r.rows);
            eng__resize_rows(&r, 0, cut);
            eng__resize_finish(&r, shared, out, 224);
            eng__resize_finish(&r, shared, 0, out);
            eng__resize_free(&r);
            ck_assert(memcmp(whole, shared, sizeof(float) * F) == 0);
            eng__rgb_image_free(&img);
        }
    free(whole);
    free(shared);
}
END_TEST

/* ---- Resize kernels ------------------------------------------------------------ */

/* n random bytes in a buffer of exactly n, so ASan sees a read past it. */
static uint8_t *random_bytes(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
    return p;
}

/* Rows of `len` bytes at stride len + GAP, the gaps (and the end) GUARD. */
static uint8_t *guarded_rows(int rows, size_t len)
{
    uint8_t *p = malloc((size_t)rows * (len + GAP) + GAP);
    ck_assert_ptr_nonnull(p);
    memset(p, GUARD, (size_t)rows * (len + GAP) + GAP);
    return p;
}

static void expect_guards(const uint8_t *p, int rows, size_t len, const char *what)
{
    for (int r = 0; r <= rows; r++)
        for (size_t g = 0; g < GAP; g++)
            ck_assert_msg(p[(size_t)r * (len + GAP) + (r < rows ? len : 0) + g] == GUARD,
                          "%s wrote past row %d", what, r);
}

/* Both passes of one plan on ISA k and on the scalar twin s: the horizontal
 * pass over all r->rows, then every output row of the vertical pass, bit for
 * bit, writing nothing past the rows. */
static void expect_same_passes(const eng__kernels *k, const eng__kernels *s, const eng__resize *r,
                               const char *what)
{
    const int w = r->img->w, crop = r->spec->crop;
    const size_t len = (size_t)crop * 3, ld = len + GAP, w3 = (size_t)w * 3;
    const uint8_t *src = r->img->rgb + (size_t)r->y0 * w3;
    uint8_t *hs = guarded_rows(r->rows, len), *hk = guarded_rows(r->rows, len);
    s->resize_h(src, w3, r->rows, w, r->bx, r->kkx, r->kx, hs, ld, crop);
    k->resize_h(src, w3, r->rows, w, r->bx, r->kkx, r->kx, hk, ld, crop);
    expect_guards(hk, r->rows, len, what);
    ck_assert_msg(memcmp(hs, hk, (size_t)r->rows * ld) == 0, "%s: horizontal pass differs", what);
    uint8_t *vs = guarded_rows(1, len), *vk = guarded_rows(1, len);
    for (int i = 0; i < crop; i++) {
        const uint8_t *col = hs + (size_t)(r->by[2 * i] - r->y0) * ld;
        const int32_t *kk = r->kky + (size_t)i * r->ky;
        s->resize_v(col, ld, r->by[2 * i + 1], kk, vs, (int)len);
        k->resize_v(col, ld, r->by[2 * i + 1], kk, vk, (int)len);
        expect_guards(vk, 1, len, what);
        ck_assert_msg(memcmp(vs, vk, len) == 0, "%s: vertical pass differs at row %d", what, i);
    }
    free(hs), free(hk), free(vs), free(vk);
}

/* Pillow's taps (eng__resize_plan's) on random images: both filters, both
 * resize modes, widths 1 to 67 at scales from 20x down to 3x up with crops
 * from 1 pixel to the resized side, and downscales with hundreds of taps. */
START_TEST(resize_kernels_pillow_taps)
{
    const eng__kernels *k = eng__kernels_for((eng__isa)_i), *s = eng__kernels_for(ENG_ISA_SCALAR);
    if (!k) {
        printf("skip: resize kernels: this CPU cannot run %s\n", eng__isa_str((eng__isa)_i));
        return;
    }
    static const double scales[] = { 1.0 / 20, 1.0 / 7.3, 1.0 / 2, 1.0 / 1.01, 1.0, 1.5, 3.0 };
    static const int big[][3] = { { 1500, 1200, 6 }, { 2000, 30, 3 }, { 7, 1900, 2 } };
    const int n_scales = (int)(sizeof scales / sizeof scales[0]);
    const int n_big = (int)(sizeof big / sizeof big[0]);
    char err[256], what[160];
    for (int f = 0; f < 2; f++)
        for (int sq = 0; sq < 2; sq++)
            for (int c = 0; c < 67 + n_big; c++) {
                const int w = c < 67 ? c + 1 : big[c - 67][0];
                const int h = c < 67 ? 1 + (w * 7 + 3) % 80 : big[c - 67][1];
                const int short_side = w < h ? w : h;
                int resize = c < 67 ? (int)lround(short_side * scales[c % n_scales]) : big[c - 67][2];
                resize = resize < 1 ? 1 : resize;
                eng__image_spec spec = eng__image_spec_imagenet();
                spec.filter = f ? ENG__FILTER_BICUBIC : ENG__FILTER_BILINEAR;
                spec.square = sq;
                spec.resize = resize;
                spec.crop = 1 + c % resize;
                eng__rgb_image img = { random_bytes((size_t)w * h * 3), w, h };
                eng__resize r;
                ck_assert_msg(eng__resize_plan(&r, &img, &spec, err, sizeof err) == ENG_OK, "%s",
                              err);
                snprintf(what, sizeof what, "%s %s%s %dx%d -> %d crop %d (%d x %d taps)",
                         eng__isa_str(k->isa), f ? "bicubic" : "bilinear", sq ? " square" : "", w,
                         h, resize, spec.crop, r.kx, r.ky);
                expect_same_passes(k, s, &r, what);
                eng__resize_free(&r);
                eng__rgb_image_free(&img);
            }
}
END_TEST

/* Random taps over the whole int32 range: the sums wrap, and every ISA's
 * wrap the same way (any row count, output width, tap count, start). */
START_TEST(resize_kernels_wrapping_taps)
{
    const eng__kernels *k = eng__kernels_for((eng__isa)_i), *s = eng__kernels_for(ENG_ISA_SCALAR);
    if (!k) {
        printf("skip: resize kernels: this CPU cannot run %s\n", eng__isa_str((eng__isa)_i));
        return;
    }
    for (int round = 0; round < 300; round++) {
        const int w = 1 + (int)(rnd() % 67), rows = 1 + (int)(rnd() % 9);
        const int out = 1 + (int)(rnd() % 40), ksize = 1 + (int)(rnd() % (unsigned)w);
        uint8_t *src = random_bytes((size_t)rows * w * 3);
        int *bounds = malloc(sizeof(int) * 2 * (size_t)out);
        int32_t *taps = malloc(sizeof(int32_t) * (size_t)out * ksize);
        for (int j = 0; j < out; j++) {
            bounds[2 * j] = (int)(rnd() % (unsigned)w);
            const int most = w - bounds[2 * j] < ksize ? w - bounds[2 * j] : ksize;
            bounds[2 * j + 1] = 1 + (int)(rnd() % (unsigned)most);
        }
        for (int t = 0; t < out * ksize; t++)
            taps[t] = (int32_t)rnd();
        const size_t len = (size_t)out * 3;
        uint8_t *hs = guarded_rows(rows, len), *hk = guarded_rows(rows, len);
        s->resize_h(src, (size_t)w * 3, rows, w, bounds, taps, ksize, hs, len + GAP, out);
        k->resize_h(src, (size_t)w * 3, rows, w, bounds, taps, ksize, hk, len + GAP, out);
        expect_guards(hk, rows, len, "resize_h");
        ck_assert_msg(memcmp(hs, hk, (size_t)rows * (len + GAP)) == 0,
                      "%s resize_h differs: w %d rows %d out %d ksize %d", eng__isa_str(k->isa),
                      w, rows, out, ksize);
        /* The vertical pass down the first 1 to `rows` of the same rows. */
        const int n = 1 + (int)(rnd() % (unsigned)rows), vlen = 1 + (int)(rnd() % (unsigned)(w * 3));
        int32_t vtaps[9];
        for (int t = 0; t < n; t++)
            vtaps[t] = (int32_t)rnd();
        uint8_t *vs = guarded_rows(1, (size_t)vlen), *vk = guarded_rows(1, (size_t)vlen);
        s->resize_v(src, (size_t)w * 3, n, vtaps, vs, vlen);
        k->resize_v(src, (size_t)w * 3, n, vtaps, vk, vlen);
        expect_guards(vk, 1, (size_t)vlen, "resize_v");
        ck_assert_msg(memcmp(vs, vk, (size_t)vlen) == 0, "%s resize_v differs: n %d len %d",
                      eng__isa_str(k->isa), n, vlen);
        free(src), free(bounds), free(taps), free(hs), free(hk), free(vs), free(vk);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("image");
    TCase *t = tcase_create("decode");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, png_colour_types);
    tcase_add_test(t, jpeg_colour_spaces);
    tcase_add_test(t, decode_matches_pillow);
    tcase_add_test(t, truncated_at_every_length);
    tcase_add_test(t, fuzzed_bytes_never_crash);
    tcase_add_test(t, empty_and_unknown_input);
    tcase_add_test(t, huge_dimensions_refused);
    suite_add_tcase(s, t);
    t = tcase_create("preprocess");
    if (test_shared_path("data/imagenet-sample/images"))
        tcase_add_test(t, preprocess_matches_torchvision);
    else
        test_note_skip("preprocessing against torchvision: $ENGINE_SHARED (../shared) lacks "
                       "data/imagenet-sample");
    tcase_add_test(t, preprocess_odd_shapes);
    tcase_add_test(t, preprocess_in_shares);
    suite_add_tcase(s, t);
    t = tcase_create("resize kernels");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, resize_kernels_pillow_taps, ENG_ISA_AVX2, ENG_ISA_AVX512 + 1);
    tcase_add_loop_test(t, resize_kernels_wrapping_taps, ENG_ISA_AVX2, ENG_ISA_AVX512 + 1);
    suite_add_tcase(s, t);
    return test_run_suite(s);
}
