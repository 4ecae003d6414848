/* test_cli.c: build/engine (and infer-bench's failure accounting) as people run it, as a subprocess (tools/cli/):
 * options in any position, --help on every subcommand, the documented exit
 * codes (cli.h), bounded lines, read and write errors, NUL bytes, valid JSON
 * for any bytes. The model is a synthetic one made by build/convert, so the
 * test needs nothing from $ENGINE_SHARED. Image inputs: test_cli_image.c. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "testutil.h"

static char tmpdir[] = "/tmp/test_cli_XXXXXX";
static char model[256], out_path[300];

/* Runs `sh -c cmd` with stdout into out_path; returns its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st), "%s: did not exit", cmd);
    return WEXITSTATUS(st);
}

static const char *engine(void)
{
    static char path[512];
    snprintf(path, sizeof path, "%s", test_build_path("engine"));
    return path;
}

/* The output of the last command (static, NUL-terminated). */
static const char *output(void)
{
    static char *text;
    free(text);
    text = test_read_file(out_path, NULL);
    ck_assert_ptr_nonnull(text);
    return text;
}

START_TEST(options_in_any_position)
{
    ck_assert_int_eq(sh("printf 'good movie\\nbad\\n' | %s classify --batch 1 --threads 1 %s > %s",
                        engine(), model, out_path),
                     0);
    char *first = strdup(output());
    ck_assert_int_eq(sh("printf 'good movie\\nbad\\n' | %s classify %s --threads 1 --batch 1 > %s",
                        engine(), model, out_path),
                     0);
    ck_assert_str_eq(output(), first);
    ck_assert_ptr_nonnull(strstr(first, "\"logits\""));
    /* "--" ends the options: what follows is the model path. */
    ck_assert_int_eq(sh("echo x | %s tokenize -- %s > %s", engine(), model, out_path), 0);
    free(first);
}
END_TEST

START_TEST(help_everywhere)
{
    static const char *const cmds[] = {"tokenize", "classify", "embed"};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(sh("%s %s --help > %s", engine(), cmds[i], out_path), 0);
        char want[64];
        snprintf(want, sizeof want, "usage: engine %s", cmds[i]);
        ck_assert_ptr_nonnull(strstr(output(), want));
        ck_assert_ptr_nonnull(strstr(output(), "exit codes"));
        /* --help wins wherever it stands, even after the model. */
        ck_assert_int_eq(sh("%s %s %s -h > %s", engine(), cmds[i], model, out_path), 0);
        ck_assert_ptr_nonnull(strstr(output(), want));
    }
    ck_assert_int_eq(sh("%s --help > %s", engine(), out_path), 0);
    ck_assert_ptr_nonnull(strstr(output(), "classify"));
    ck_assert_int_eq(sh("%s help embed > %s", engine(), out_path), 0);
    ck_assert_ptr_nonnull(strstr(output(), "usage: engine embed"));
}
END_TEST

START_TEST(exit_codes)
{
    ck_assert_int_eq(sh("%s > %s 2>&1", engine(), out_path), 2);
    ck_assert_int_eq(sh("%s frobnicate %s > %s 2>&1", engine(), model, out_path), 2);
    ck_assert_int_eq(sh("%s classify --bogus %s < /dev/null > %s 2>&1", engine(), model, out_path), 2);
    ck_assert_int_eq(sh("%s classify %s --batch 0 < /dev/null > %s 2>&1", engine(), model, out_path), 2);
    ck_assert_int_eq(sh("%s classify %s --batch < /dev/null > %s 2>&1", engine(), model, out_path), 2);
    ck_assert_int_eq(sh("%s classify < /dev/null > %s 2>&1", engine(), out_path), 2);
    /* A text model takes no file arguments. */
    ck_assert_int_eq(sh("%s classify %s extra < /dev/null > %s 2>&1", engine(), model, out_path), 2);
    ck_assert_int_eq(sh("%s classify %s/absent.eng < /dev/null > %s 2>&1", engine(), tmpdir,
                        out_path),
                     4);
    /* The reason is the system's. */
    ck_assert_ptr_nonnull(strstr(output(), "No such file or directory"));
    ck_assert_int_eq(sh("%s embed %s < /dev/null > %s", engine(), model, out_path), 0);
    ck_assert_str_eq(output(), "");
}
END_TEST

START_TEST(input_and_output_errors)
{
    /* A directory as stdin: the read fails, which is an error, not an end. */
    ck_assert_int_eq(sh("%s classify %s < %s > %s 2>&1", engine(), model, tmpdir, out_path), 3);
    ck_assert_ptr_nonnull(strstr(output(), "Is a directory"));
    /* A full disk on stdout. */
    ck_assert_int_eq(sh("echo good | %s classify %s > /dev/full 2> %s", engine(), model, out_path),
                     3);
    ck_assert_ptr_nonnull(strstr(output(), "No space left on device"));
}
END_TEST

START_TEST(bounded_lines)
{
    /* 5000 zero bytes, then two normal lines: the long line fails alone (NULs
     * count toward the bound: it is on the bytes read) and memory stays
     * bounded; the others go on; the exit code says an item failed. */
    ck_assert_int_eq(sh("{ head -c 5000 /dev/zero; printf '\\ngood\\nbad\\n'; } | "
                        "%s tokenize %s --max-line-bytes 1000 > %s",
                        engine(), model, out_path),
                     1);
    const char *o = output();
    ck_assert_ptr_nonnull(strstr(o, "{\"error\":\"line longer than 1000 bytes\"}\n{\"ids\":["));
    int lines = 0;
    for (const char *p = o; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, 3);
    /* Every line failing is a failure too. */
    ck_assert_int_eq(sh("printf '\\377\\n\\376\\n' | %s classify %s > %s", engine(), model,
                        out_path),
                     1);
    ck_assert_str_eq(output(), "{\"error\":\"invalid UTF-8 in input text\"}\n"
                               "{\"error\":\"invalid UTF-8 in input text\"}\n");
}
END_TEST

START_TEST(nul_bytes_are_dropped)
{
    /* Hugging Face's normalizer drops NUL and keeps the rest of the text. */
    ck_assert_int_eq(sh("printf 'good\\000bad movie\\n' | %s tokenize %s > %s", engine(), model,
                        out_path),
                     0);
    char *with_nul = strdup(output());
    ck_assert_int_eq(sh("printf 'goodbad movie\\n' | %s tokenize %s > %s", engine(), model,
                        out_path),
                     0);
    ck_assert_str_eq(with_nul, output());
    /* [CLS] good... movie [SEP]: more than the three ids of a cut line. */
    int commas = 0;
    for (const char *p = with_nul; *p; p++)
        commas += *p == ',';
    ck_assert_int_ge(commas, 3);
    free(with_nul);
}
END_TEST

/* eng__json_string on bytes: the JSON text it writes for s. */
static char *json_of(const char *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    eng__json_string(f, s);
    ck_assert_int_eq(fclose(f), 0);
    return buf;
}

START_TEST(json_is_valid_for_any_bytes)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain \"q\" \\ \t", "\"plain \\\"q\\\" \\\\ \\u0009\""},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
        {"x\xffy", "\"x\\ufffdy\""},                     /* never valid */
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},                 /* overlong '/' */
        {"\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""},      /* overlong, 3 bytes */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},      /* a surrogate */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* above U+10FFFF */
        {"\xe2\x82", "\"\\ufffd\\ufffd\""},                 /* cut short at the end */
        {"\xe2\x82x", "\"\\ufffd\\ufffdx\""},              /* cut short by ASCII */
        {"\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""},      /* U+10FFFF itself */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = json_of(cases[i].in);
        ck_assert_msg(!strcmp(got, cases[i].out), "case %zu: %s, want %s", i, got, cases[i].out);
        free(got);
    }
}
END_TEST

START_TEST(line_reader)
{
    /* CRLF and LF endings, a NUL dropped, a line over the bound, no final newline. */
    static const char in[] = "ab\r\nc\0d\n0123456789\nlast";
    FILE *f = fmemopen((void *)in, sizeof in - 1, "r");
    ck_assert_ptr_nonnull(f);
    char *buf = NULL;
    size_t cap = 0, len = 0;
    int too_long = 0;
    ck_assert_int_eq(eng__cli_read_line(f, &buf, &cap, 8, &len, &too_long), 1);
    ck_assert_str_eq(buf, "ab");
    ck_assert_int_eq(too_long, 0);
    ck_assert_int_eq(eng__cli_read_line(f, &buf, &cap, 8, &len, &too_long), 1);
    ck_assert_str_eq(buf, "cd");
    ck_assert_uint_eq(len, 2);
    ck_assert_int_eq(eng__cli_read_line(f, &buf, &cap, 8, &len, &too_long), 1);
    ck_assert_int_eq(too_long, 1);
    ck_assert_uint_le(cap, 9); /* the bound plus the NUL: no more was allocated */
    ck_assert_int_eq(eng__cli_read_line(f, &buf, &cap, 8, &len, &too_long), 1);
    ck_assert_str_eq(buf, "last");
    ck_assert_int_eq(too_long, 0);
    ck_assert_int_eq(eng__cli_read_line(f, &buf, &cap, 8, &len, &too_long), 0);
    fclose(f);
    free(buf);
}
END_TEST

START_TEST(bench_counts_failures)
{
    /* infer-bench on input where every text is invalid UTF-8: no throughput,
     * every request in the failed column, and the run is an error. */
    ck_assert_int_eq(sh("printf '\\377\\n\\376\\n' > %s/bad.txt && %s --model %s --input %s/bad.txt "
                        "--mode batch --duration 0.1 --threads 1 > %s 2>/dev/null",
                        tmpdir, test_build_path("infer-bench"), model, tmpdir, out_path),
                     1);
    const char *o = output();
    ck_assert_ptr_nonnull(strstr(o, "failed\n"));
    unsigned long long failed = 0;
    double rps = -1;
    const char *row = strstr(o, "\nbatch ");
    ck_assert_ptr_nonnull(row);
    ck_assert_int_eq(sscanf(row, " batch %*d %*d %lf %*f %*f %*f %*f %*f %*u %llu", &rps, &failed),
                     2);
    ck_assert(rps == 0.0);
    ck_assert_uint_ge(failed, 2);
}
END_TEST

int main(void)
{
    if (access(engine(), X_OK) != 0) {
        printf("test_cli: %s not built (make builds it)\n", engine());
        return 1;
    }
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(model, sizeof model, "%s/tiny.eng", tmpdir);
    snprintf(out_path, sizeof out_path, "%s/out", tmpdir);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --synthetic tiny %s > /dev/null", test_build_path("convert"),
             model);
    if (system(cmd) != 0) {
        printf("test_cli: %s failed\n", cmd);
        return 1;
    }
    Suite *s = suite_create("cli");
    TCase *t = tcase_create("cli");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, options_in_any_position);
    tcase_add_test(t, help_everywhere);
    tcase_add_test(t, exit_codes);
    tcase_add_test(t, input_and_output_errors);
    tcase_add_test(t, bounded_lines);
    tcase_add_test(t, nul_bytes_are_dropped);
    tcase_add_test(t, bench_counts_failures);
    tcase_add_test(t, json_is_valid_for_any_bytes);
    tcase_add_test(t, line_reader);
    suite_add_tcase(s, t);
    int rc = test_run_suite(s);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        printf("test_cli: could not remove %s\n", tmpdir);
    return rc;
}
