/* tidectl's command table. Usage and --help are generated from it, so a command exists in the
 * help exactly when it exists. Handlers write to the streams they are given (tests capture them)
 * and return the process exit code: 0 success, 1 failure (bad input, nothing to do), 2 usage. */
#pragma once

#include <stdio.h>

#define TIDECTL_EXIT_OK 0
#define TIDECTL_EXIT_FAIL 1
#define TIDECTL_EXIT_USAGE 2

struct tidectl_command {
        const char *name;
        int (*run)(int argc, char **argv, FILE *out, FILE *err); /* argv[0] is the command name */
        const char *args;    /* one-line synopsis of the arguments */
        const char *summary; /* what it does, one line */
        const char *help;    /* options, one per line, shown by `tidectl help NAME` */
};

/* Runs tidectl with its full argv. */
int tidectl_main(int argc, char **argv, FILE *out, FILE *err);

int cmd_plan(int argc, char **argv, FILE *out, FILE *err);
int cmd_policy(int argc, char **argv, FILE *out, FILE *err);
int cmd_stats(int argc, char **argv, FILE *out, FILE *err);
int cmd_top(int argc, char **argv, FILE *out, FILE *err);
