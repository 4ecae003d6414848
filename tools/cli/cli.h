/* cli.h: the engine command line's subcommand table, exit codes and the
 * helpers its subcommands share (option values, bounded line input, JSON
 * output).
 *
 * A subcommand is one line in ENG_CLI_COMMANDS and one function
 *     int eng__cli_<name>(int argc, char **argv)
 * (a '_' in the name is a '-' on the command line: zero_shot is zero-shot)
 * in its own file under tools/cli/: argv[0] is the subcommand's name, the
 * options may come in any position (GNU getopt_long permutes them; "--" ends
 * them), "--help" prints its usage on stdout and returns ENG_CLI_OK, and the
 * return value is one of the exit codes below. */
#ifndef ENG_CLI_H
#define ENG_CLI_H

#include <stddef.h>
#include <stdio.h>

/* Exit codes of build/engine (README, "Command line", lists them too). */
#define ENG_CLI_OK 0           /* every item succeeded */
#define ENG_CLI_ITEMS_FAILED 1 /* some items failed; each failed line says why */
#define ENG_CLI_USAGE 2        /* bad command line */
#define ENG_CLI_IO 3           /* reading the input or writing the output failed */
#define ENG_CLI_MODEL 4        /* the model could not be loaded or does not fit the command */

#define ENG_CLI_COMMANDS(X)                                                                  \
    X(tokenize, "print the token ids of each text (one per stdin line)")                    \
    X(classify, "classify each text or image (one per stdin line, or image paths as args)") \
    X(embed, "print the pooled embedding of each text (or image: ViT, CLIP)")              \
    X(zero_shot, "zero-shot image classification with CLIP: top-5 of a label set per image") \
    X(serve, "HTTP server: TEI and KServe v2 routes, Prometheus metrics (tools/serve/)")    \
    X(worker, "Redis Streams worker: serve a model from a stream (docs/REDIS.md)")          \
    X(submit, "Redis Streams client: submit lines to a worker's stream, print answers")

#define ENG_CLI_DECLARE(name, help) int eng__cli_##name(int argc, char **argv);
ENG_CLI_COMMANDS(ENG_CLI_DECLARE)
#undef ENG_CLI_DECLARE

/* Parses a decimal integer in [lo, hi] into *out; 0 when s is not one. */
int eng__cli_parse_int(const char *s, long lo, long hi, long *out);

/* Reads one line of at most max bytes (the '\n', and a '\r' before it, are
 * removed; NUL bytes are dropped, as Hugging Face's normalizer drops them) into
 * *buf, growing it as needed. Returns 1 for a line (*too_long set when it was
 * longer than max: its rest is read and discarded), 0 at the end of input, -1
 * when reading failed or memory ran out (errno says why). */
int eng__cli_read_line(FILE *f, char **buf, size_t *cap, size_t max, size_t *len, int *too_long);

/* JSON output on f. A string is always emitted as valid JSON: invalid UTF-8
 * becomes U+FFFD, one per byte that does not start a valid sequence. */
void eng__json_string(FILE *f, const char *s);
/* Floats as %.8g (round-trips float); the caller has checked them finite. */
void eng__json_floats(FILE *f, const float *v, int n);
/* 1 when all n floats are finite. */
int eng__all_finite(const float *v, int n);

#endif
