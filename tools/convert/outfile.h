/* outfile.h: writing the converter's output file safely. The bytes go to a
 * temporary file beside the real target, which replaces the target by
 * rename only once complete, so a failed or interrupted conversion leaves
 * the old file (or none) and no partial one:
 *   - OUT that is a symbolic link: the file it points to is replaced (a
 *     dangling link gets its target created); the link stays a link;
 *   - OUT that exists and is not a regular file (/dev/null, a directory, a
 *     FIFO) is refused: renaming over it would replace a device with a file;
 *   - the temporary file is removed on failure, and on SIGINT, SIGTERM or
 *     SIGHUP (the handler removes it, then the signal does what it would
 *     have done).
 * For one process converting one file at a time (the handlers keep a small
 * fixed list of pending temporary files). */
#ifndef CV_OUTFILE_H
#define CV_OUTFILE_H

#include <stddef.h>

#include "engine.h"

typedef struct {
    int fd;          /* the temporary file, open for writing */
    char *target;    /* the file that will be replaced (symbolic links followed) */
    char *tmp;       /* "<target>.tmp-XXXXXX" */
    int slot;        /* in the signal handler's list */
} cv_outfile;

/* Resolves path and creates the temporary file (mode 0644). On failure
 * returns ENG_ERR_IO (or ENG_ERR_INVALID_ARG for a non-regular target,
 * ENG_ERR_NOMEM) with a one-line reason naming the path, and nothing to
 * clean up. */
eng_status cv_outfile_open(cv_outfile *o, const char *path, char *err, size_t errlen);

/* Flushes the temporary file to disk and renames it over the target. On
 * failure the temporary file is removed and the target left as it was.
 * Either way o is finished. */
eng_status cv_outfile_commit(cv_outfile *o, char *err, size_t errlen);

/* Removes the temporary file; the target is left as it was. */
void cv_outfile_abort(cv_outfile *o);

#endif
