/* engine.c: build/engine, the command line: dispatches to the subcommands of
 * the table in cli.h.
 *
 *   build/engine COMMAND [OPTIONS] ...      (build/engine COMMAND --help)
 *   build/engine --help | help [COMMAND] | --version
 *
 * Exit codes: see cli.h (0 ok, 1 some items failed, 2 usage, 3 I/O, 4 model). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "engine.h"

static const struct {
    const char *name, *help;
    int (*run)(int argc, char **argv);
} commands[] = {
#define ENG_CLI_ENTRY(name, help) {#name, help, eng__cli_##name},
    ENG_CLI_COMMANDS(ENG_CLI_ENTRY)
#undef ENG_CLI_ENTRY
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fputs("usage: engine COMMAND [OPTIONS] ...   (engine COMMAND --help for its options)\n"
          "       engine --version\n"
          "commands:\n",
          f);
    for (int i = 0; i < N_COMMANDS; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s", commands[i].name);
        for (char *p = name; *p; p++)
            *p = *p == '_' ? '-' : *p;
        fprintf(f, "  %-10s %s\n", name, commands[i].help);
    }
    fputs("exit codes: 0 ok, 1 some items failed (their lines say why), 2 usage,\n"
          "            3 reading input or writing output failed, 4 model not loaded or unfit\n",
          f);
}

/* The command called name, where '-' stands for the table's '_'. */
static int find(const char *name)
{
    for (int i = 0; i < N_COMMANDS; i++) {
        const char *a = commands[i].name, *b = name;
        while (*a && (*a == *b || (*a == '_' && *b == '-')))
            a++, b++;
        if (!*a && !*b)
            return i;
    }
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return ENG_CLI_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        if (argc > 2 && !strcmp(argv[1], "help")) {
            int c = find(argv[2]);
            if (c < 0) {
                fprintf(stderr, "engine: unknown command %s\n", argv[2]);
                usage(stderr);
                return ENG_CLI_USAGE;
            }
            char *help_argv[] = {argv[2], "--help", NULL};
            return commands[c].run(2, help_argv);
        }
        usage(stdout);
        return ENG_CLI_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("engine %s\n", eng_version());
        return ENG_CLI_OK;
    }
    int c = find(argv[1]);
    if (c < 0) {
        fprintf(stderr, "engine: unknown command %s\n", argv[1]);
        usage(stderr);
        return ENG_CLI_USAGE;
    }
    return commands[c].run(argc - 1, argv + 1);
}
