/* writer.h: writes ".eng" model files (src/core/format.h, docs/FORMAT.md).
 * Part of the converter, not of the library: the engine only reads. */
#ifndef ENG_WRITER_H
#define ENG_WRITER_H

#include "format.h"

/* Tensors are copied in; save writes to a
 * temporary file beside path and renames it, so a failure never leaves a
 * partial output file. */
typedef struct eng__writer eng__writer;
eng__writer *eng__writer_new(void);
eng_status eng__writer_add(eng__writer *w, const char *name, eng__dtype dt, int ndim,
                           const uint64_t *shape, const void *data);
eng_status eng__writer_save(eng__writer *w, const char *meta_json, const char *path,
                            char *err, size_t errlen);
void eng__writer_free(eng__writer *w);

#endif
