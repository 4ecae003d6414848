/* test_outfile.c: the converter's output file (tools/convert/outfile.c),
 * issue 10 defect 3: `convert ... OUT` renamed its temporary file over OUT,
 * so OUT=/dev/null (as root) became a regular file, a symbolic link was
 * replaced instead of its target written, and an interrupted conversion left
 * its OUT.tmp-XXXXXX behind. */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outfile.h"
#include "testutil.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_outfile.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) != 0)
            rmdir(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static int temp_files_left(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".tmp-") != NULL;
    closedir(d);
    return n;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* The file's text, or "" when it cannot be read. */
static const char *text_of(const char *path)
{
    static char buf[64];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Writes text to path through an outfile and commits it. */
static eng_status write_through(const char *path, const char *text, char *err, size_t errlen)
{
    cv_outfile o;
    eng_status s = cv_outfile_open(&o, path, err, errlen);
    if (s != ENG_OK)
        return s;
    ck_assert_int_eq(write(o.fd, text, strlen(text)), (ssize_t)strlen(text));
    return cv_outfile_commit(&o, err, errlen);
}

START_TEST(new_and_replaced_files)
{
    char p[128], err[256];
    snprintf(p, sizeof p, "%s/out.eng", dir);
    ck_assert_int_eq(write_through(p, "one", err, sizeof err), ENG_OK);
    ck_assert_str_eq(text_of(p), "one");
    ck_assert_int_eq(write_through(p, "two", err, sizeof err), ENG_OK);
    ck_assert_str_eq(text_of(p), "two");
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0644);

    /* Abandoned: the old file stays and the temporary goes. */
    cv_outfile o;
    ck_assert_int_eq(cv_outfile_open(&o, p, err, sizeof err), ENG_OK);
    ck_assert_int_eq(write(o.fd, "partial", 7), 7);
    ck_assert_int_eq(temp_files_left(), 1);
    cv_outfile_abort(&o);
    ck_assert_str_eq(text_of(p), "two");
    ck_assert_int_eq(temp_files_left(), 0);
}
END_TEST

START_TEST(symbolic_links_followed)
{
    char target[128], link1[128], link2[128], err[256];
    snprintf(target, sizeof target, "%s/real.eng", dir);
    snprintf(link1, sizeof link1, "%s/link.eng", dir);
    snprintf(link2, sizeof link2, "%s/link2.eng", dir);
    put(target, "old");
    ck_assert_int_eq(symlink("real.eng", link1), 0);   /* relative to its folder */
    ck_assert_int_eq(symlink(link1, link2), 0);        /* a chain, absolute */
    ck_assert_int_eq(write_through(link2, "new", err, sizeof err), ENG_OK);
    struct stat st;
    ck_assert_int_eq(lstat(link1, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_int_eq(lstat(link2, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_str_eq(text_of(target), "new");

    /* A dangling link gets its target created. */
    unlink(target);
    ck_assert_int_eq(write_through(link1, "made", err, sizeof err), ENG_OK);
    ck_assert_int_eq(lstat(link1, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_str_eq(text_of(target), "made");

    /* A loop is an error, not a hang. */
    char loop[128];
    snprintf(loop, sizeof loop, "%s/loop", dir);
    ck_assert_int_eq(symlink("loop", loop), 0);
    ck_assert_int_eq(write_through(loop, "x", err, sizeof err), ENG_ERR_IO);
    ck_assert_int_eq(temp_files_left(), 0);
}
END_TEST

START_TEST(non_regular_targets_refused)
{
    char err[256], sub[128], link[128];
    struct stat before, after;
    ck_assert_int_eq(stat("/dev/null", &before), 0);
    ck_assert_int_eq(write_through("/dev/null", "x", err, sizeof err), ENG_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err, "/dev/null") && strstr(err, "not a regular file"), "%s", err);
    ck_assert_int_eq(stat("/dev/null", &after), 0);
    ck_assert(S_ISCHR(after.st_mode));
    ck_assert_uint_eq(before.st_ino, after.st_ino);

    /* Through a link too, and a directory. */
    snprintf(link, sizeof link, "%s/null.eng", dir);
    ck_assert_int_eq(symlink("/dev/null", link), 0);
    ck_assert_int_eq(write_through(link, "x", err, sizeof err), ENG_ERR_INVALID_ARG);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    ck_assert_int_eq(write_through(sub, "x", err, sizeof err), ENG_ERR_INVALID_ARG);

    /* A folder that does not exist: a clear error, nothing left. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no/such/out.eng", dir);
    ck_assert_int_eq(write_through(missing, "x", err, sizeof err), ENG_ERR_IO);
    ck_assert_msg(strstr(err, "temporary file") != NULL, "%s", err);
    ck_assert_int_eq(temp_files_left(), 0);
}
END_TEST

/* A conversion killed by SIGTERM or SIGINT (Ctrl-C) removes its temporary
 * file and still dies of the signal; the old output stays. And the handlers
 * are there only while a temporary file exists. */
START_TEST(signal_removes_temporary)
{
    static const int sigs[] = {SIGTERM, SIGINT};
    for (int k = 0; k < 2; k++) {
        char p[128];
        snprintf(p, sizeof p, "%s/out.eng", dir);
        put(p, "old");
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            /* As in a plain convert process: the default actions (Check's
             * own handlers would signal the whole process group). */
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            cv_outfile o;
            char err[256];
            if (cv_outfile_open(&o, p, err, sizeof err) != ENG_OK ||
                write(o.fd, "partial", 7) != 7)
                _exit(3);
            raise(sigs[k]);
            _exit(4);   /* not reached: the signal ends the process */
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == sigs[k],
                      "child status %d: it should have died of signal %d", status, sigs[k]);
        ck_assert_int_eq(temp_files_left(), 0);
        ck_assert_str_eq(text_of(p), "old");
    }
}
END_TEST

START_TEST(handlers_only_while_pending)
{
    char p[128], err[256];
    snprintf(p, sizeof p, "%s/out.eng", dir);
    struct sigaction before, during, after;
    sigaction(SIGTERM, NULL, &before);
    cv_outfile o;
    ck_assert_int_eq(cv_outfile_open(&o, p, err, sizeof err), ENG_OK);
    sigaction(SIGTERM, NULL, &during);
    ck_assert_ptr_ne((void *)during.sa_handler, (void *)before.sa_handler);
    cv_outfile_abort(&o);
    sigaction(SIGTERM, NULL, &after);
    ck_assert_ptr_eq((void *)after.sa_handler, (void *)before.sa_handler);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("outfile");
    TCase *tc = tcase_create("outfile");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, new_and_replaced_files);
    tcase_add_test(tc, symbolic_links_followed);
    tcase_add_test(tc, non_regular_targets_refused);
    tcase_add_test(tc, signal_removes_temporary);
    tcase_add_test(tc, handlers_only_while_pending);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
