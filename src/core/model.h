/* model.h: the loaded model (immutable, shared by threads) and the per-worker
 * context (scratch sized once), as every kind shares them; each kind keeps
 * its own state behind impl (kind.h). Internal. */
#ifndef ENG_MODEL_H
#define ENG_MODEL_H

#include "engine.h"
#include "format.h"
#include "kind.h"
#include "kernels.h"
#include "team.h"

/* Bytes of a context's error message. */
#define ENG__ERROR_LEN 512

/* "fp32", "tf32", "fp16", "bf16". */
const char *eng__precision_name(eng_precision p);

struct eng_model {
    eng__file file;
    const eng__kind *kind;
    void *impl;              /* the kind's model */
    eng_model_info info;     /* from kind->describe, once at load */
    const char *gemm_name;   /* eng_model_gemm_name(), owned by impl */
    int n_threads;
};

struct eng_ctx {
    const eng_model *model;
    const eng__kernels *kern;
    eng__team *team;         /* the threads this context computes with */
    char error[ENG__ERROR_LEN];
    void *impl;              /* the kind's context */
};

#endif
