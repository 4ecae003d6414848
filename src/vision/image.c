/* image.c: JPEG/PNG decoding to RGB and torchvision's ImageNet preprocessing
 * (see image.h for the contract). The resize is a transcription of Pillow's
 * ImagingResample for 8-bit images (bilinear or bicubic): coefficients in
 * double, normalised, then fixed point with 22 fraction bits (here); two
 * separable passes, horizontal first, each rounding and clamping to uint8
 * (the kernels' resize_h and resize_v). Only the pixels of the centre crop
 * are computed: every output pixel depends only on its own coefficients, so
 * this is exact, and it keeps absurd aspect ratios cheap. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* jpeglib.h needs stdio.h and stddef.h before it. */
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "image.h"
#include "kernels.h"

/* libjpeg may buffer a whole progressive image; cap what a hostile file can
 * make it allocate (100 MP x 3 components x 2 bytes fits). */
#define JPEG_MAX_MEMORY (1L << 30)
/* A progressive JPEG may hold thousands of tiny scans, each a full pass
 * over the coefficients (a known denial of service); real files have < 20. */
#define JPEG_MAX_SCANS 500
#define PIL_PRECISION_BITS 22   /* Pillow's fixed point for 8-bit resampling */

eng__image_spec eng__image_spec_imagenet(void)
{
    eng__image_spec s = {.resize = 256, .crop = 224, .mean = {0.485f, 0.456f, 0.406f},
                         .std = {0.229f, 0.224f, 0.225f}};
    return s;
}

void eng__rgb_image_free(eng__rgb_image *img)
{
    if (!img)
        return;
    free(img->rgb);
    img->rgb = NULL;
}

static int too_large(long long w, long long h)
{
    return w > ENG_IMAGE_MAX_SIDE || h > ENG_IMAGE_MAX_SIDE || w * h > ENG_IMAGE_MAX_PIXELS;
}

/* ---- JPEG ------------------------------------------------------------------ */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_fail(j_common_ptr c)
{
    jpeg_err *e = (jpeg_err *)(void *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jump, 1);
}

/* Warnings are silent (the default prints to stderr), except a premature end
 * of data: libjpeg would pad the image with grey, PIL refuses it as
 * truncated, and so do we. */
static void jpeg_message(j_common_ptr c, int level)
{
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF)
        jpeg_fail(c);
}

static void jpeg_progress(j_common_ptr c)
{
    j_decompress_ptr d = (j_decompress_ptr)(void *)c;
    if (c->is_decompressor && d->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_err *e = (jpeg_err *)(void *)c->err;
        snprintf(e->msg, sizeof e->msg, "more than %d progressive scans", JPEG_MAX_SCANS);
        longjmp(e->jump, 1);
    }
}

/* PIL's cmyk2rgb: each channel (255 - K) - ink * (255 - K) / 255, in its
 * rounding (MULDIV255). PIL reads every CMYK JPEG as inverted ("CMYK;I",
 * Adobe's convention), with or without Adobe's APP14 marker, and so do we;
 * libjpeg has already converted YCCK to CMYK. */
static void cmyk_to_rgb(uint8_t *dst, const uint8_t *src, int w)
{
    for (int x = 0; x < w; x++, src += 4, dst += 3) {
        int nk = src[3]; /* 255 - K, K being 255 - src[3] */
        for (int c = 0; c < 3; c++) {
            int ink = 255 - src[c];
            int t = ink * nk + 128;
            int v = nk - (((t >> 8) + t) >> 8);
            dst[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

static eng_status decode_jpeg(const uint8_t *buf, size_t len, eng__rgb_image *out, char *err,
                              size_t errlen)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_progress_mgr progress = { .progress_monitor = jpeg_progress };
    jpeg_err jerr;
    /* Written after setjmp and read after longjmp, hence volatile. */
    uint8_t *volatile rgb = NULL;
    uint8_t *volatile row = NULL;

    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_fail;
    jerr.pub.emit_message = jpeg_message;
    jerr.msg[0] = '\0';
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        snprintf(err, errlen, "corrupt JPEG: %s", jerr.msg);
        return ENG_ERR_FORMAT;
    }
    jpeg_create_decompress(&cinfo);
    cinfo.mem->max_memory_to_use = JPEG_MAX_MEMORY;
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    long long w = cinfo.image_width, h = cinfo.image_height;
    if (too_large(w, h)) {
        jpeg_destroy_decompress(&cinfo);
        snprintf(err, errlen, "JPEG is %lldx%lld, beyond the %dx%d / %lld-pixel limit", w, h,
                 ENG_IMAGE_MAX_SIDE, ENG_IMAGE_MAX_SIDE, ENG_IMAGE_MAX_PIXELS);
        return ENG_ERR_TOO_LONG;
    }
    int cmyk = 0;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo.out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo.out_color_space = JCS_CMYK;
        cmyk = 1;
        break;
    default:
        cinfo.out_color_space = JCS_RGB;
        break;
    }
    jpeg_start_decompress(&cinfo);
    int comps = cinfo.output_components;
    if (comps != (cmyk ? 4 : cinfo.out_color_space == JCS_GRAYSCALE ? 1 : 3)) {
        snprintf(jerr.msg, sizeof jerr.msg, "unexpected %d output components", comps);
        longjmp(jerr.jump, 1);
    }
    size_t stride = (size_t)cinfo.output_width * 3;
    rgb = malloc(stride * cinfo.output_height);
    row = malloc((size_t)cinfo.output_width * (size_t)comps);
    if (!rgb || !row) {
        snprintf(jerr.msg, sizeof jerr.msg, "out of memory");
        longjmp(jerr.jump, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *dst = rgb + stride * cinfo.output_scanline;
        JSAMPROW r = comps == 3 ? dst : row;
        if (jpeg_read_scanlines(&cinfo, &r, 1) != 1) {
            snprintf(jerr.msg, sizeof jerr.msg, "no scanline returned");
            longjmp(jerr.jump, 1);
        }
        if (comps == 1) {
            for (JDIMENSION x = 0; x < cinfo.output_width; x++)
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = row[x];
        } else if (comps == 4) {
            cmyk_to_rgb(dst, row, (int)cinfo.output_width);
        }
    }
    jpeg_finish_decompress(&cinfo);
    out->w = (int)cinfo.output_width;
    out->h = (int)cinfo.output_height;
    out->rgb = rgb;
    jpeg_destroy_decompress(&cinfo);
    free(row);
    return ENG_OK;
}

/* ---- PNG ------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t len, pos;
    char msg[256];
} png_src;

static void png_fail(png_structp png, png_const_charp msg)
{
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_quiet(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_read_mem(png_structp png, png_bytep dst, size_t n)
{
    png_src *s = png_get_io_ptr(png);
    if (n > s->len - s->pos)
        png_error(png, "truncated PNG");
    memcpy(dst, s->p + s->pos, n);
    s->pos += n;
}

static eng_status decode_png(const uint8_t *buf, size_t len, eng__rgb_image *out, char *err,
                             size_t errlen)
{
    png_src src = { .p = buf, .len = len };
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_fail, png_quiet);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile rgb = NULL;
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(err, errlen, "out of memory");
        return ENG_ERR_NOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(rgb);
        free(rows);
        snprintf(err, errlen, "corrupt PNG: %s", src.msg);
        return ENG_ERR_FORMAT;
    }
    /* Our own limits are checked below with a clearer status; libpng's only
     * has to let them through. */
    png_set_user_limits(png, ENG_IMAGE_MAX_SIDE * 4, ENG_IMAGE_MAX_SIDE * 4);
    png_set_read_fn(png, &src, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, color;
    png_get_IHDR(png, info, &w, &h, &depth, &color, NULL, NULL, NULL);
    if (too_large(w, h)) {
        png_destroy_read_struct(&png, &info, NULL);
        snprintf(err, errlen, "PNG is %ux%u, beyond the %dx%d / %lld-pixel limit", (unsigned)w,
                 (unsigned)h, ENG_IMAGE_MAX_SIDE, ENG_IMAGE_MAX_SIDE, ENG_IMAGE_MAX_PIXELS);
        return ENG_ERR_TOO_LONG;
    }
    /* Everything to 8-bit RGB the way PIL's convert("RGB") does. Alpha,
     * and the alpha libpng makes of a tRNS chunk (palette images), is
     * dropped. 16-bit samples keep their high byte, except 16-bit grey: PIL
     * opens it as "I;16", whose conversion clips the value to 255, so it is
     * read as is and clipped below. */
    const int gray16 = color == PNG_COLOR_TYPE_GRAY && depth == 16;
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16 && !gray16)
        png_set_strip_16(png);
    if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_strip_alpha(png);
    if ((color == PNG_COLOR_TYPE_GRAY && !gray16) || color == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * (gray16 ? 2 : 3))
        png_error(png, "unsupported pixel layout");
    rgb = malloc((size_t)w * 3 * h);
    rows = malloc(sizeof(png_bytep) * h);
    if (!rgb || !rows)
        png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = rgb + (size_t)w * 3 * y;
    png_read_image(png, rows);
    /* 16-bit grey, 2 bytes a pixel at the start of each 3-byte-a-pixel row:
     * widened in place from the right, so no sample is overwritten before it
     * is read. */
    for (png_uint_32 y = 0; gray16 && y < h; y++)
        for (png_uint_32 x = w; x-- > 0;) {
            uint8_t *p = rows[y];
            uint8_t v = p[2 * x] ? 255 : p[2 * x + 1];
            p[3 * x] = p[3 * x + 1] = p[3 * x + 2] = v;
        }
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    out->rgb = rgb;
    out->w = (int)w;
    out->h = (int)h;
    return ENG_OK;
}

eng_status eng__image_decode(const void *buf, size_t len, eng__rgb_image *out, char *err,
                             size_t errlen)
{
    static const uint8_t png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    const uint8_t *p = buf;
    out->rgb = NULL;
    out->w = out->h = 0;
    if (!buf || len == 0) {
        snprintf(err, errlen, "empty image");
        return ENG_ERR_FORMAT;
    }
    if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return decode_jpeg(p, len, out, err, errlen);
    if (len >= 8 && memcmp(p, png_sig, 8) == 0)
        return decode_png(p, len, out, err, errlen);
    snprintf(err, errlen, "not a JPEG or PNG image");
    return ENG_ERR_FORMAT;
}

/* ---- Resize, crop, normalise ------------------------------------------------ */

/* Pillow's bicubic filter (a = -0.5) and its support. */
static double bicubic(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double filter_support(eng__filter f)
{
    return f == ENG__FILTER_BICUBIC ? 2.0 : 1.0;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc (bilinear, support 1;
 * bicubic, support 2) for output positions [first, first + count) of a
 * resize in_size -> out_size. bounds[2i] is the first input index,
 * bounds[2i+1] the tap count; kk holds ksize fixed-point taps per output. */
static void resample_coeffs(eng__filter f, int in_size, int out_size, int first, int count,
                            int ksize, int *bounds, int32_t *kk, double *k)
{
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filter_support(f) * filterscale;
    for (int i = 0; i < count; i++) {
        double center = (first + i + 0.5) * scale;
        double ss = 1.0 / filterscale, ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        int xmax = (int)(center + support + 0.5);
        if (xmin < 0)
            xmin = 0;
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double arg = (x + xmin - center + 0.5) * ss;
            if (f == ENG__FILTER_BICUBIC) {
                k[x] = bicubic(arg);
            } else {
                double t = fabs(arg);
                k[x] = t < 1.0 ? 1.0 - t : 0.0;
            }
            ww += k[x];
        }
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? k[x] / ww : k[x]) : 0.0;
            kk[i * ksize + x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PIL_PRECISION_BITS)
                                                : 0.5 + v * (1 << PIL_PRECISION_BITS));
        }
        bounds[2 * i] = xmin;
        bounds[2 * i + 1] = xmax;
    }
}

static int ksize_for(eng__filter f, int in_size, int out_size)
{
    double scale = (double)in_size / out_size;
    return (int)ceil(filter_support(f) * (scale < 1.0 ? 1.0 : scale)) * 2 + 1;
}

/* Python's round() of d / 2 for d >= 0: halves go to the even neighbour. */
static int half_round_even(int d)
{
    int q = d / 2;
    return (d % 2 && q % 2) ? q + 1 : q;
}

eng_status eng__resize_plan(eng__resize *r, const eng__rgb_image *img, const eng__image_spec *spec,
                           char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    int w = img->w, h = img->h, crop = spec->crop;
    if (spec->resize < 0 || spec->resize > ENG_IMAGE_MAX_SIDE || crop < 1 || w < 1 || h < 1) {
        snprintf(err, errlen, "bad preprocessing spec (resize %d, crop %d) or empty image",
                 spec->resize, crop);
        return ENG_ERR_INVALID_ARG;
    }
    /* torchvision's _compute_resized_output_size: the long side is
     * int(resize * long / short), a truncated true division. */
    int nw = w, nh = h;
    if (spec->resize && spec->square) {
        nw = nh = spec->resize;
    } else if (spec->resize) {
        int s = w <= h ? w : h, l = w <= h ? h : w;
        int nl = (int)((double)spec->resize * l / s);
        nw = w <= h ? spec->resize : nl;
        nh = w <= h ? nl : spec->resize;
    }
    if (crop > nw || crop > nh) {
        snprintf(err, errlen, "crop %d is larger than the resized %dx%d image", crop, nw, nh);
        return ENG_ERR_INVALID_ARG;
    }
    int top = spec->crop_floor ? (nh - crop) / 2 : half_round_even(nh - crop);
    int left = spec->crop_floor ? (nw - crop) / 2 : half_round_even(nw - crop);
    int kx = ksize_for(spec->filter, w, nw), ky = ksize_for(spec->filter, h, nh);
    int kmax = kx > ky ? kx : ky;
    r->img = img;
    r->spec = spec;
    r->kx = kx;
    r->ky = ky;
    r->bx = malloc(sizeof(int) * 2 * (size_t)crop);
    r->by = malloc(sizeof(int) * 2 * (size_t)crop);
    r->kkx = malloc(sizeof(int32_t) * (size_t)kx * crop);
    r->kky = malloc(sizeof(int32_t) * (size_t)ky * crop);
    double *k = malloc(sizeof(double) * (size_t)kmax);
    if (r->bx && r->by && r->kkx && r->kky && k) {
        resample_coeffs(spec->filter, w, nw, left, crop, kx, r->bx, r->kkx, k);
        resample_coeffs(spec->filter, h, nh, top, crop, ky, r->by, r->kky, k);
        /* The horizontal pass covers only the source rows the vertical pass
         * reads. */
        r->y0 = r->by[0];
        r->rows = r->by[2 * (crop - 1)] + r->by[2 * (crop - 1) + 1] - r->y0;
        r->tmp = malloc((size_t)r->rows * crop * 3);
    }
    free(k);
    if (!r->tmp) {
        snprintf(err, errlen, "out of memory resizing a %dx%d image", w, h);
        eng__resize_free(r);
        return ENG_ERR_NOMEM;
    }
    /* ToTensor (v / 255) and Normalize in float32, in torchvision's order of
     * operations, or HF's rescale (v * factor in double, rounded to float). */
    for (int c = 0; c < 3; c++)
        for (int u = 0; u < 256; u++) {
            float v = spec->rescale ? (float)(u * spec->rescale) : (float)u / 255.0f;
            r->norm[c][u] = (v - spec->mean[c]) / spec->std[c];
        }
    return ENG_OK;
}

void eng__resize_rows(const eng__resize *r, int lo, int hi)
{
    const size_t w3 = (size_t)r->img->w * 3, crop3 = (size_t)r->spec->crop * 3;
    eng__kernels_get()->resize_h(r->img->rgb + (size_t)(r->y0 + lo) * w3, w3, hi - lo, r->img->w,
                                 r->bx, r->kkx, r->kx, r->tmp + (size_t)lo * crop3, crop3,
                                 r->spec->crop);
}

void eng__resize_finish(const eng__resize *r, float *chw, int lo, int hi)
{
    /* The vertical pass a piece of a row at a time (on the stack: members
     * run this concurrently), then ToTensor and Normalize through the plan's
     * table. */
    enum { PIECE = 3 * 256 };
    uint8_t u[PIECE];
    const eng__kernels *kern = eng__kernels_get();
    const int crop = r->spec->crop, ky = r->ky;
    const size_t plane = (size_t)crop * crop, crop3 = (size_t)crop * 3;
    const float *n0 = r->norm[0], *n1 = r->norm[1], *n2 = r->norm[2];
    for (int i = lo; i < hi; i++) {
        const uint8_t *s = r->tmp + (size_t)(r->by[2 * i] - r->y0) * crop3;
        for (size_t p0 = 0; p0 < crop3; p0 += PIECE) {
            const size_t len = crop3 - p0 < PIECE ? crop3 - p0 : PIECE;
            float *o0 = chw + (size_t)i * crop + p0 / 3, *o1 = o0 + plane, *o2 = o1 + plane;
            kern->resize_v(s + p0, crop3, r->by[2 * i + 1], r->kky + (size_t)i * ky, u, (int)len);
            for (size_t j = 0; j < len / 3; j++) {
                o0[j] = n0[u[3 * j]];
                o1[j] = n1[u[3 * j + 1]];
                o2[j] = n2[u[3 * j + 2]];
            }
        }
    }
}

void eng__resize_free(eng__resize *r)
{
    free(r->bx);
    free(r->by);
    free(r->kkx);
    free(r->kky);
    free(r->tmp);
    memset(r, 0, sizeof *r);
}

eng_status eng__image_preprocess(const eng__rgb_image *img, const eng__image_spec *spec,
                                 float *chw, char *err, size_t errlen)
{
    eng__resize r;
    eng_status st = eng__resize_plan(&r, img, spec, err, errlen);
    if (st == ENG_OK) {
        eng__resize_rows(&r, 0, r.rows);
        eng__resize_finish(&r, chw, 0, spec->crop);
        eng__resize_free(&r);
    }
    return st;
}

eng_status eng__image_load_mem(const void *buf, size_t len, const eng__image_spec *spec,
                               float *chw, char *err, size_t errlen)
{
    eng__image_spec def = eng__image_spec_imagenet();
    eng__rgb_image img;
    eng_status st = eng__image_decode(buf, len, &img, err, errlen);
    if (st == ENG_OK)
        st = eng__image_preprocess(&img, spec ? spec : &def, chw, err, errlen);
    eng__rgb_image_free(&img);
    return st;
}

eng_status eng__image_decode_file(const char *path, eng__rgb_image *out, char *err, size_t errlen)
{
    out->rgb = NULL;
    out->w = out->h = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        /* strerror_r (GNU form): images decode on several threads at once. */
        char why[128];
        snprintf(err, errlen, "cannot open %s: %s", path, strerror_r(errno, why, sizeof why));
        return ENG_ERR_IO;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    eng_status st = ENG_OK;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 1u << 16;
            uint8_t *nb = ncap <= ENG_IMAGE_MAX_FILE ? realloc(buf, ncap) : NULL;
            if (!nb) {
                snprintf(err, errlen, "%s: %s", path,
                         ncap > ENG_IMAGE_MAX_FILE ? "file larger than 256 MiB" : "out of memory");
                st = ncap > ENG_IMAGE_MAX_FILE ? ENG_ERR_TOO_LONG : ENG_ERR_NOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0) {
            if (ferror(fp)) {
                char why[128];
                snprintf(err, errlen, "cannot read %s: %s", path, strerror_r(errno, why, sizeof why));
                st = ENG_ERR_IO;
            }
            break;
        }
    }
    fclose(fp);
    if (st == ENG_OK)
        st = eng__image_decode(buf, len, out, err, errlen);
    free(buf);
    return st;
}

eng_status eng__image_load(const char *path, const eng__image_spec *spec, float *chw, char *err,
                           size_t errlen)
{
    eng__image_spec def = eng__image_spec_imagenet();
    eng__rgb_image img;
    eng_status st = eng__image_decode_file(path, &img, err, errlen);
    if (st == ENG_OK)
        st = eng__image_preprocess(&img, spec ? spec : &def, chw, err, errlen);
    eng__rgb_image_free(&img);
    return st;
}
