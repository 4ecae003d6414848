/* outfile.c: the converter's output file (outfile.h). */
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

/* Temporary files that exist right now, for the signal handler. A slot is
 * set and cleared with the signals blocked, so the handler never sees a
 * half-written pointer; the strings stay valid while their slot is set. */
#define MAX_PENDING 8
static const char *volatile pending[MAX_PENDING];
static const int cleanup_signals[] = {SIGINT, SIGTERM, SIGHUP};
static struct sigaction previous[3];
static int n_pending;

static void remove_pending(int sig)
{
    for (int i = 0; i < MAX_PENDING; i++)
        if (pending[i])
            unlink(pending[i]);   /* async-signal-safe */
    /* Then whatever the signal would have done without us (by default: end
     * the process with that signal, so the parent sees why). */
    for (int i = 0; i < 3; i++)
        if (cleanup_signals[i] == sig)
            sigaction(sig, &previous[i], NULL);
    raise(sig);
}

static void block_signals(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < 3; i++)
        sigaddset(&set, cleanup_signals[i]);
    sigprocmask(SIG_BLOCK, &set, old);
}

/* The handlers are in place only while a temporary file exists, and the
 * host program's own ones are put back after. Called with the signals
 * blocked. */
static void pending_set(int slot, const char *tmp)
{
    if (tmp && n_pending++ == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = remove_pending;
        sigemptyset(&sa.sa_mask);
        for (int i = 0; i < 3; i++)
            sigaction(cleanup_signals[i], &sa, &previous[i]);
    }
    pending[slot] = tmp;
    if (!tmp && --n_pending == 0)
        for (int i = 0; i < 3; i++)
            sigaction(cleanup_signals[i], &previous[i], NULL);
}

/* The file path finally names: symbolic links followed one by one (a
 * relative link is relative to its own folder), the last one allowed to
 * dangle. malloc'd, NULL with errno set on failure. */
static char *resolve(const char *path)
{
    char *cur = strdup(path);
    for (int hops = 0; cur; hops++) {
        struct stat st;
        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode))
            return cur;   /* not there (to be created) or not a link */
        if (hops == 40) {
            free(cur);
            errno = ELOOP;
            return NULL;
        }
        char link[PATH_MAX];
        ssize_t n = readlink(cur, link, sizeof link - 1);
        if (n < 0) {
            free(cur);
            return NULL;
        }
        link[n] = '\0';
        const char *slash = strrchr(cur, '/');
        size_t dlen = link[0] == '/' || !slash ? 0 : (size_t)(slash - cur) + 1;
        char *next = malloc(dlen + (size_t)n + 1);
        if (next) {
            memcpy(next, cur, dlen);
            memcpy(next + dlen, link, (size_t)n + 1);
        }
        free(cur);
        cur = next;
    }
    errno = ENOMEM;
    return NULL;
}

eng_status cv_outfile_open(cv_outfile *o, const char *path, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->slot = -1;
    o->target = resolve(path);
    if (!o->target)
        return eng__errf(errno == ENOMEM ? ENG_ERR_NOMEM : ENG_ERR_IO, err, errlen,
                         "cannot write %s: %s", path, strerror(errno));
    struct stat st;
    if (stat(o->target, &st) == 0 && !S_ISREG(st.st_mode)) {
        eng_status s = eng__errf(ENG_ERR_INVALID_ARG, err, errlen,
                                 "refusing to replace %s: it is not a regular file", o->target);
        free(o->target);
        o->target = NULL;
        return s;
    }
    size_t n = strlen(o->target) + sizeof ".tmp-XXXXXX";
    o->tmp = malloc(n);
    if (!o->tmp) {
        free(o->target);
        return eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory");
    }
    snprintf(o->tmp, n, "%s.tmp-XXXXXX", o->target);
    sigset_t old;
    block_signals(&old);
    int free_slot = -1, e = 0;
    for (int i = 0; i < MAX_PENDING && free_slot < 0; i++)
        if (!pending[i])
            free_slot = i;
    if (free_slot >= 0 && (o->fd = mkstemp(o->tmp)) >= 0) {
        o->slot = free_slot;
        pending_set(o->slot, o->tmp);
    } else {
        e = free_slot < 0 ? EMFILE : errno;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (o->fd < 0 || fchmod(o->fd, 0644) != 0) {
        if (!e)
            e = errno;
        eng_status s = eng__errf(ENG_ERR_IO, err, errlen, "cannot create a temporary file beside "
                                 "%s: %s", o->target, strerror(e));
        cv_outfile_abort(o);
        return s;
    }
    return ENG_OK;
}

/* Closes and forgets the temporary file (removing it first when asked). */
static void finish(cv_outfile *o, int remove)
{
    if (o->fd >= 0)
        close(o->fd);
    sigset_t old;
    block_signals(&old);
    if (remove && o->slot >= 0)
        unlink(o->tmp);
    if (o->slot >= 0)
        pending_set(o->slot, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    free(o->tmp);
    free(o->target);
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->slot = -1;
}

eng_status cv_outfile_commit(cv_outfile *o, char *err, size_t errlen)
{
    const char *step = "write";
    int bad = fsync(o->fd) != 0;
    if (!bad) {
        step = "close";
        bad = close(o->fd) != 0;
        o->fd = -1;
    }
    if (!bad) {
        step = "rename to";
        bad = rename(o->tmp, o->target) != 0;
    }
    eng_status s = ENG_OK;
    if (bad)
        s = eng__errf(ENG_ERR_IO, err, errlen, "cannot %s %s: %s", step, o->target,
                      strerror(errno));
    finish(o, bad);
    return s;
}

void cv_outfile_abort(cv_outfile *o)
{
    finish(o, 1);
}
