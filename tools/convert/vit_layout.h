/* vit_layout.h: Hugging Face ViT and CLIPModel folders to .eng files for src/vit
 * (layout in src/vit/vit.h). */
#ifndef CV_VIT_LAYOUT_H
#define CV_VIT_LAYOUT_H

#include <stddef.h>

#include "engine.h"

typedef struct {
    int clip; /* a CLIPModel, else a ViT */
    int n_tensors;
} cv_vit_report;

/* Whether dir's config.json names model_type "vit" or "clip". */
int cv_is_vit_folder(const char *dir);

/* Converts dir to out, the encoder layers' linear weights stored as weights
 * ("fp32", "bf16", "int8"; NULL = "fp32"). ENG_OK, or an error with a
 * one-line reason in err and nothing left at out. */
eng_status cv_convert_vit(const char *dir, const char *weights, const char *out, cv_vit_report *r,
                          char *err, size_t errlen);

#endif
