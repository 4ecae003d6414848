/* error.c: status strings (from the X-macro list in engine.h) and the
 * per-thread last-error message. */
#include <stdarg.h>
#include <stdio.h>

#include "engine.h"
#include "error.h"

static _Thread_local char last_error[512];

const char *eng_status_str(eng_status s)
{
    static const char *const text[] = {
#define ENG_X_TEXT(name, str) str,
        ENG_STATUS_LIST(ENG_X_TEXT)
#undef ENG_X_TEXT
    };
    if ((unsigned)s >= (unsigned)ENG__STATUS_COUNT)
        return "unknown status";
    return text[s];
}

const char *eng_last_error(void)
{
    return last_error;
}

eng_status eng__fail(eng_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

eng_status eng__errf(eng_status s, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return s;
}
