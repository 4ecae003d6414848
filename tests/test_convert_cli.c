/* test_convert_cli.c: the `convert` command line (tools/convert/main.c) as
 * people type it, issue 10's "Smaller:" items: a usage error says what is
 * wrong (no bare usage) and exits 2, a failed conversion exits 1, --help
 * anywhere prints the usage with the exit codes and exits 0, --seed -1 is
 * refused instead of wrapping to 2^64-1, a checkpoint file given as a model
 * folder suggests --arch, OUT=/dev/null is refused. Runs build/convert. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char dir[64];

/* Runs convert with args (NULL-terminated); returns its exit status and its
 * stdout and stderr, each in a static buffer. */
static char out_text[8192], err_text[8192];

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
}

static int run(const char *const *args)
{
    char o[128], e[128];
    snprintf(o, sizeof o, "%s/stdout", dir);
    snprintf(e, sizeof e, "%s/stderr", dir);
    const char *argv[16] = {test_build_path("convert")};
    int n = 1;
    for (; args[n - 1]; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    slurp(o, out_text, sizeof out_text);
    slurp(e, err_text, sizeof err_text);
    return WEXITSTATUS(status);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_convert_cli.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(usage_errors_say_why)
{
    char pth[128], eng[128];
    snprintf(pth, sizeof pth, "%s/model.pth", dir);
    snprintf(eng, sizeof eng, "%s/out.eng", dir);
    FILE *f = fopen(pth, "w");
    fclose(f);
    const struct { const char *args[8]; const char *want; } cases[] = {
        {{pth, eng}, "add --arch"},
        {{"--arch", "resnet18", "--dtype", "int8", pth, eng}, "fp32 weights only"},
        {{"--synthetic", "tiny", "--seed", "-1", eng}, "not '-1'"},
        {{"--synthetic", "tiny", "--seed", "18446744073709551616", eng}, "--seed"},
        {{"--dtype"}, "--dtype needs a value"},
        {{"--dtype", "fp16", dir, eng}, "--dtype"},
        {{"--bogus", dir, eng}, "unknown option --bogus"},
        {{dir, eng, "extra"}, "too many file arguments"},
        {{"--labels", pth, dir, eng}, "--labels applies to --arch"},
        {{"--seed", "3", dir, eng}, "apply to --synthetic only"},
        {{"--arch", "resnet18", "--synthetic", "tiny", eng}, "cannot be combined"},
        {{"--synthetic", "tiny"}, "no OUT_FILE"},
        {{NULL}, "no input"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(run(cases[i].args), 2);
        ck_assert_msg(strstr(err_text, cases[i].want) != NULL, "case %zu: wanted '%s' in '%s'", i,
                      cases[i].want, err_text);
        ck_assert_msg(strstr(err_text, "usage:") == NULL, "case %zu: bare usage: %s", i, err_text);
        ck_assert_int_ne(access(eng, F_OK), 0);
    }
}
END_TEST

START_TEST(help_anywhere_and_exit_codes)
{
    const char *const a[] = {"--help", NULL}, *const b[] = {dir, "x.eng", "-h", NULL};
    ck_assert_int_eq(run(a), 0);
    ck_assert_ptr_nonnull(strstr(out_text, "usage: convert"));
    ck_assert_ptr_nonnull(strstr(out_text, "Exit status: 0 converted, 1 conversion failed, 2 usage"));
    ck_assert_str_eq(err_text, "");
    ck_assert_int_eq(run(b), 0);
    ck_assert_ptr_nonnull(strstr(out_text, "usage: convert"));

    /* A failed conversion: 1, one line. */
    const char *const c[] = {"/nonexistent/model", "x.eng", NULL};
    ck_assert_int_eq(run(c), 1);
    ck_assert_ptr_nonnull(strstr(err_text, "/nonexistent/model"));
    ck_assert_ptr_eq(strchr(err_text, '\n'), err_text + strlen(err_text) - 1);
}
END_TEST

/* Options after the files, a synthetic model to a symbolic link (its target
 * written), and /dev/null refused (defect 3). */
START_TEST(outputs)
{
    char eng[128], link[128];
    snprintf(eng, sizeof eng, "%s/real.eng", dir);
    snprintf(link, sizeof link, "%s/link.eng", dir);
    ck_assert_int_eq(symlink("real.eng", link), 0);
    const char *const a[] = {link, "--synthetic", "tiny", "--seed", "7", NULL};
    ck_assert_msg(run(a) == 0, "%s", err_text);
    struct stat st;
    ck_assert_int_eq(lstat(link, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_int_eq(stat(eng, &st), 0);
    ck_assert(S_ISREG(st.st_mode) && st.st_size > 0);

    const char *const b[] = {"--synthetic", "tiny", "/dev/null", NULL};
    ck_assert_int_eq(run(b), 1);
    ck_assert_msg(strstr(err_text, "not a regular file") != NULL, "%s", err_text);
    ck_assert_int_eq(stat("/dev/null", &st), 0);
    ck_assert(S_ISCHR(st.st_mode));
}
END_TEST

int main(void)
{
    struct stat st;
    if (stat(test_build_path("convert"), &st) != 0) {
        printf("skip: %s not built\n", test_build_path("convert"));
        return TEST_SKIP;
    }
    Suite *s = suite_create("convert_cli");
    TCase *tc = tcase_create("convert_cli");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, usage_errors_say_why);
    tcase_add_test(tc, help_anywhere_and_exit_codes);
    tcase_add_test(tc, outputs);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
