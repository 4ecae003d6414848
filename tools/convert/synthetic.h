/* synthetic.h: models of standard shapes with seeded random weights, for
 * benchmarks and tests on machines without downloaded checkpoints. */
#ifndef CV_SYNTHETIC_H
#define CV_SYNTHETIC_H

#include <stddef.h>
#include <stdint.h>

#include "bert_layout.h"
#include "hf_config.h"

typedef struct {
    uint64_t seed;            /* same seed, same weights */
    int no_head;              /* an encoder without a classifier */
    const char *vocab_path;   /* a vocab.txt, or NULL for a generated vocabulary */
} cv_synth_opts;

/* The shape names cv_synthetic knows, NULL-terminated. */
extern const char *const cv_synth_names[];

/* Writes synthetic model `name` to out, the encoder's linear layers stored as
 * weight_dtype ("fp32" or "int8"; NULL is "fp32"; see cv_convert_hf_as). On
 * success c describes it (free it with cv_config_free); on failure nothing is
 * left at out and c is empty. */
eng_status cv_synthetic_as(const char *name, const cv_synth_opts *o, const char *weight_dtype,
                           const char *out, cv_config *c, cv_report *r, char *err, size_t errlen);

/* cv_synthetic_as with fp32 weights. */
eng_status cv_synthetic(const char *name, const cv_synth_opts *o, const char *out, cv_config *c,
                        cv_report *r, char *err, size_t errlen);

#endif
