/* tidectl's command table. Usage and --help are generated from it, so a command exists in the
 * help exactly when it exists. Handlers write to the streams they are given (tests capture them)
 * and return the process exit code: 0 success, 1 failure (bad input, nothing to do), 2 usage. */
#pragma once

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#define TIDECTL_EXIT_OK 0
#define TIDECTL_EXIT_FAIL 1
#define TIDECTL_EXIT_USAGE 2

/* Options every command takes, before its name or among its own options, as `virsh -c URI list`
 * or `git -C DIR status` do: --socket PATH, --help (-h), --version. */
struct tidectl_globals {
        const char *socket; /* tided's control socket */
};

/* getopt_long entries for the global options; put them at the end of a command's table, before
 * its { 0 } terminator, and read the table with tidectl_getopt(). */
#define TIDECTL_OPT_SOCKET 0x100
#define TIDECTL_OPT_VERSION 0x101
#define TIDECTL_GLOBAL_OPTIONS                                                                                  \
        { "socket", required_argument, NULL, TIDECTL_OPT_SOCKET }, { "help", no_argument, NULL, 'h' },          \
                { "version", no_argument, NULL, TIDECTL_OPT_VERSION }
/* What tidectl_getopt() returns when a global option printed what was asked (--help: the
 * command's help, --version): the command stops there with TIDECTL_EXIT_OK. */
#define TIDECTL_OPT_DONE 0x102

struct tidectl_command {
        const char *name;
        /* argv[0] is the command name; g holds the global options given before it, and the
         * command updates it with those given after. */
        int (*run)(int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err);
        const char *help; /* `tidectl help NAME`: usage, summary, options (from the manual page) */
};

/* Runs tidectl with its full argv. */
int tidectl_main(int argc, char **argv, FILE *out, FILE *err);

/* getopt_long over the options of command `cmd` ("policy" for `policy set`), handling the global
 * ones itself (--socket sets g->socket). Returns the next option of the command's own (or '?'
 * for an unknown one, as getopt does), -1 at the end, or TIDECTL_OPT_DONE. in_order stops at the
 * first argument that is not an option, for options between a command and its subcommand. */
int tidectl_getopt(int argc, char **argv, const struct option *options, bool in_order, const char *cmd,
                   struct tidectl_globals *g, FILE *out);

int cmd_plan(int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err);
int cmd_simulate(int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err);
int cmd_policy(int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err);
int cmd_stats(int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err);
int cmd_top(int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err);
