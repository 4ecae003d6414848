/* writer.h: the ".eng" file writer of tools/convert (the engine only reads
 * them: src/format.h). Tensors are copied in; save writes to a temporary
 * file beside the target and renames it (outfile.h), so a failure or an
 * interruption never leaves a partial output file. */
#ifndef CV_WRITER_H
#define CV_WRITER_H

#include "format.h"

typedef struct eng__writer eng__writer;
eng__writer *eng__writer_new(void);
/* ENG_ERR_INVALID_ARG (a bad name, shape or dtype) or ENG_ERR_NOMEM; the
 * first failure is also reported again by save. */
eng_status eng__writer_add(eng__writer *w, const char *name, eng__dtype dt, int ndim,
                           const uint64_t *shape, const void *data);
eng_status eng__writer_save(eng__writer *w, const char *meta_json, const char *path,
                            char *err, size_t errlen);
void eng__writer_free(eng__writer *w);

#endif
