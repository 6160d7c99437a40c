#include <getopt.h>
#include <stdbool.h>
#include <string.h>

#include "cli/client.h"
#include "cli/commands.h"
#include "common/macro.h"
#include "tidectl.8.h" /* generated: TIDECTL_HELP, TIDECTL_HELP_<COMMAND> */

#ifndef TIDE_VERSION
#define TIDE_VERSION "unknown"
#endif

static int cmd_help(int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err);

/* What each command's `tidectl help NAME` says, and `tidectl --help`, come from the manual page
 * (docs/man/tidectl.8.scd, its COMMANDS section, through tools/scd2help): one source. */
static const struct tidectl_command commands[] = {
        { "plan", cmd_plan, TIDECTL_HELP_PLAN },
        { "simulate", cmd_simulate, TIDECTL_HELP_SIMULATE },
        { "policy", cmd_policy, TIDECTL_HELP_POLICY },
        { "stats", cmd_stats, TIDECTL_HELP_STATS },
        { "top", cmd_top, TIDECTL_HELP_TOP },
        { "help", cmd_help, TIDECTL_HELP_HELP },
};

/* Every command the page describes is in the table, and no other: the page's list, counted. */
#define TIDECTL_COUNT_ONE(name, text) +1
_Static_assert(ELEMENTSOF(commands) == 0 TIDECTL_HELP_FOR_EACH_COMMAND(TIDECTL_COUNT_ONE),
               "cli/commands.c and docs/man/tidectl.8.scd list different commands");

static void usage(FILE *f) {
        fputs(TIDECTL_HELP, f);
}

static const struct tidectl_command *find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].name, name))
                        return &commands[i];
        return NULL;
}

static void command_help(const struct tidectl_command *c, FILE *out) {
        fputs(c->help, out);
}

static int cmd_help(int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err) {
        static const struct option options[] = { TIDECTL_GLOBAL_OPTIONS, { 0 } };
        int o;
        while ((o = tidectl_getopt(argc, argv, options, false, "help", g, out)) != -1) {
                if (o == TIDECTL_OPT_DONE)
                        return TIDECTL_EXIT_OK;
                fprintf(err, "tidectl help: unknown or incomplete option '%s'\n", argv[optind - 1]);
                return TIDECTL_EXIT_USAGE;
        }
        if (optind >= argc) {
                usage(out);
                return TIDECTL_EXIT_OK;
        }
        const struct tidectl_command *c = find(argv[optind]);
        if (!c) {
                fprintf(err, "tidectl: unknown command '%s'\n", argv[optind]);
                return TIDECTL_EXIT_USAGE;
        }
        command_help(c, out);
        return TIDECTL_EXIT_OK;
}

int tidectl_getopt(int argc, char **argv, const struct option *options, bool in_order, const char *cmd,
                   struct tidectl_globals *g, FILE *out) {
        for (;;) {
                int c = getopt_long(argc, argv, in_order ? "+h" : "h", options, NULL);
                switch (c) {
                case TIDECTL_OPT_SOCKET:
                        if (!*optarg)
                                return '?'; /* --socket= names no socket */
                        g->socket = optarg;
                        continue;
                case 'h': {
                        const struct tidectl_command *cc = find(cmd);
                        if (cc)
                                command_help(cc, out);
                        else
                                usage(out);
                        return TIDECTL_OPT_DONE;
                }
                case TIDECTL_OPT_VERSION:
                        fprintf(out, "tidectl %s\n", TIDE_VERSION);
                        return TIDECTL_OPT_DONE;
                default:
                        return c;
                }
        }
}

int tidectl_main(int argc, char **argv, FILE *out, FILE *err) {
        static const struct option globals[] = { TIDECTL_GLOBAL_OPTIONS, { 0 } };
        struct tidectl_globals g = { .socket = CLIENT_SOCKET_DEFAULT };
        bool help = false;
        int c;

        /* Global options before the command; '+' stops at the command's name, whose own options
         * its handler reads. */
        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+h", globals, NULL)) != -1) {
                if (c == TIDECTL_OPT_SOCKET && *optarg)
                        g.socket = optarg;
                else if (c == 'h')
                        help = true;
                else if (c == TIDECTL_OPT_VERSION) {
                        fprintf(out, "tidectl %s\n", TIDE_VERSION);
                        return TIDECTL_EXIT_OK;
                } else {
                        fprintf(err, "tidectl: unknown or incomplete option '%s' (global options: --socket PATH, "
                                     "--help, --version)\n",
                                argv[optind - 1]);
                        return TIDECTL_EXIT_USAGE;
                }
        }
        int i = optind;
        if (i >= argc) {
                usage(help ? out : err);
                return help ? TIDECTL_EXIT_OK : TIDECTL_EXIT_USAGE;
        }
        const struct tidectl_command *cmd = find(argv[i]);
        if (!cmd) {
                fprintf(err, "tidectl: unknown command '%s' (see 'tidectl --help')\n", argv[i]);
                return TIDECTL_EXIT_USAGE;
        }
        if (help) { /* `tidectl --help stats` is `tidectl help stats`, as in git */
                command_help(cmd, out);
                return TIDECTL_EXIT_OK;
        }
        /* Each command parses its own options with getopt: start it afresh (glibc: optind 0). */
        optind = 0;
        return cmd->run(argc - i, argv + i, &g, out, err);
}
