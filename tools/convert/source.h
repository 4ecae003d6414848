/* source.h: tensors read from a Hugging Face or torchvision checkpoint, before
 * they are laid out for the engine. Both readers (safetensors.c, torch_zip.c)
 * produce this: every tensor contiguous (row-major) in its source dtype, owned. */
#ifndef ENG_SOURCE_H
#define ENG_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

typedef enum { SRC_F32, SRC_F16, SRC_BF16, SRC_I64, SRC_I32, SRC_I8, SRC_U8, SRC_BOOL, SRC_F64 } src_dtype;

typedef struct {
    char *name;
    src_dtype dtype;
    int ndim;
    int64_t shape[8];
    void *data;        /* contiguous, malloc'd */
    size_t nbytes;
} src_tensor;

typedef struct {
    src_tensor *t;
    int n;
} src_tensors;

/* Readers: on failure return ENG_ERR_IO/ENG_ERR_FORMAT/ENG_ERR_UNSUPPORTED with
 * a one-line reason in err, and leave *out empty. */
eng_status src_load_safetensors(const char *path, src_tensors *out, char *err, size_t errlen);
eng_status src_load_torch_zip(const char *path, src_tensors *out, char *err, size_t errlen);

const src_tensor *src_find(const src_tensors *s, const char *name);
int64_t src_numel(const src_tensor *t);
/* A new malloc'd float copy of a floating-point tensor (F32/F16/BF16/F64) in
 * *out. Refuses other dtypes (ENG_ERR_UNSUPPORTED) and any NaN or infinity,
 * F64 values beyond float's range included (ENG_ERR_FORMAT): a non-finite
 * weight poisons every output it reaches, so no model is written with one. */
eng_status src_to_f32(const src_tensor *t, float **out, char *err, size_t errlen);
void src_free(src_tensors *s);

#endif
