/* image.h: image files to network input. Decodes JPEG (libjpeg-turbo) and PNG
 * (libpng) to 8-bit RGB, then applies torchvision's ImageNet recipe on PIL
 * images bit for bit: Resize(resize) with PIL's antialiased bilinear filter,
 * CenterCrop(crop), ToTensor, Normalize(mean, std); or Hugging Face's
 * ViTImageProcessor / CLIPImageProcessor recipes (bicubic, fixed size, their
 * crop and rescale arithmetic), likewise bit for bit with Pillow.
 *
 * Colour handling follows PIL's convert("RGB"): grayscale is replicated,
 * palettes are looked up, alpha is dropped (not composited), CMYK/YCCK JPEGs
 * use PIL's cmyk2rgb formula (Adobe files are inverted first, as PIL does).
 * One documented difference: 16-bit PNGs keep their high byte, where PIL
 * clips 16-bit grayscale values to 255.
 *
 * Hostile input never crashes or exits: libjpeg and libpng errors return
 * through setjmp/longjmp into ENG_ERR_FORMAT with the library's message;
 * images larger than the limits below fail with ENG_ERR_TOO_LONG before any
 * pixel buffer is allocated. */
#ifndef ENG_IMAGE_H
#define ENG_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#define ENG_IMAGE_MAX_SIDE 16384
#define ENG_IMAGE_MAX_PIXELS 100000000LL
#define ENG_IMAGE_MAX_FILE (256u << 20)   /* bytes read by eng__image_load */

/* Pillow's resampling filters (its numbering is BILINEAR = 2, BICUBIC = 3). */
typedef enum { ENG__FILTER_BILINEAR = 0, ENG__FILTER_BICUBIC = 1 } eng__filter;

/* The preprocessing recipe, stored in the model's metadata ("image"). The
 * fields after std are zero for torchvision's recipe; Hugging Face's image
 * processors (ViTImageProcessor, CLIPImageProcessor) set them. */
typedef struct {
    int resize;        /* shorter side after resizing (square: both sides); 0 = no resize */
    int crop;          /* edge of the square centre crop, <= resize */
    float mean[3];     /* per RGB channel, on the [0,1] scale */
    float std[3];
    eng__filter filter;   /* PIL's bilinear (antialiased) or bicubic (a = -0.5, antialiased) */
    int square;        /* resize to resize x resize whatever the aspect ratio
                          (HF size {height, width}) */
    int crop_floor;    /* centre crop at floor((side - crop) / 2), as HF's
                          center_crop does; 0: torchvision's round half to even */
    double rescale;    /* 0: v / 255 in float (torchvision's ToTensor); else
                          float(v * rescale) computed in double, as HF's rescale */
} eng__image_spec;

/* resize 256, crop 224, ImageNet mean (0.485, 0.456, 0.406) and std
 * (0.229, 0.224, 0.225): what every torchvision classifier expects. */
eng__image_spec eng__image_spec_imagenet(void);

/* 8-bit RGB, interleaved, rows of 3 * w bytes; rgb is malloc'd. */
typedef struct {
    uint8_t *rgb;
    int w, h;
} eng__rgb_image;

/* Decodes a JPEG or PNG held in buf[0..len) (sniffed from the signature).
 * ENG_ERR_FORMAT: not an image we read, corrupt or truncated;
 * ENG_ERR_TOO_LONG: beyond ENG_IMAGE_MAX_SIDE / ENG_IMAGE_MAX_PIXELS;
 * ENG_ERR_NOMEM. On failure out->rgb is NULL. */
eng_status eng__image_decode(const void *buf, size_t len, eng__rgb_image *out, char *err,
                             size_t errlen);
void eng__rgb_image_free(eng__rgb_image *img);   /* NULL rgb is fine */

/* Decodes the file at path (ENG_ERR_IO when it cannot be read). */
eng_status eng__image_decode_file(const char *path, eng__rgb_image *out, char *err,
                                  size_t errlen);

/* chw[3][crop][crop] = normalised centre crop of img resized as PIL does.
 * ENG_ERR_INVALID_ARG for a bad spec; ENG_ERR_TOO_LONG when the resized
 * image would be absurdly long (aspect ratios beyond 1:ENG_IMAGE_MAX_SIDE). */
eng_status eng__image_preprocess(const eng__rgb_image *img, const eng__image_spec *spec,
                                 float *chw, char *err, size_t errlen);

/* eng__image_preprocess in steps, so a team can share one image's rows:
 * plan (checks the spec, computes the coefficients, allocates; the errors
 * above), then the horizontal pass's rows [lo, hi) of r->rows, then (after
 * every horizontal row is done) the output rows [lo, hi) of the crop, then
 * free. Each row's pixels are the same whichever member computes it. */
typedef struct {
    const eng__rgb_image *img;
    const eng__image_spec *spec;
    int kx, ky;      /* taps per output column, per output row */
    int *bx, *by;    /* [crop][2]: first source column / row and tap count */
    int32_t *kkx, *kky; /* [crop][kx], [crop][ky]: fixed-point taps */
    int y0, rows;    /* the source rows the crop reads: [y0, y0 + rows) */
    uint8_t *tmp;    /* [rows][crop][3]: the horizontal pass's output */
    float norm[3][256]; /* per channel, a uint8 value normalised */
} eng__resize;
eng_status eng__resize_plan(eng__resize *r, const eng__rgb_image *img, const eng__image_spec *spec,
                            char *err, size_t errlen);
void eng__resize_rows(const eng__resize *r, int lo, int hi);
void eng__resize_finish(const eng__resize *r, float *chw, int lo, int hi);
void eng__resize_free(eng__resize *r); /* a zeroed or failed plan is fine */

/* Decode + preprocess, from memory or from a file. spec NULL = ImageNet. */
eng_status eng__image_load_mem(const void *buf, size_t len, const eng__image_spec *spec,
                               float *chw, char *err, size_t errlen);
eng_status eng__image_load(const char *path, const eng__image_spec *spec, float *chw,
                           char *err, size_t errlen);

#endif
