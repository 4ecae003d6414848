/* error.h: the per-thread last-error message behind eng_last_error(). */
#ifndef ENG_ERROR_H
#define ENG_ERROR_H

#include "engine.h"

/* Formats the message, stores it for eng_last_error() and returns s. */
eng_status eng__fail(eng_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
