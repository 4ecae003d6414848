/* error.h: the per-thread last-error message behind eng_last_error(), and
 * formatting a reason into a caller's buffer. */
#ifndef ENG_ERROR_H
#define ENG_ERROR_H

#include "engine.h"

/* The library's short spelling of eng_last_error_set() (engine.h). */
#define eng__fail eng_last_error_set

/* Formats a one-line reason into err (when err and errlen allow) and returns
 * s: the converter and file reader report errors through caller buffers. */
eng_status eng__errf(eng_status s, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
