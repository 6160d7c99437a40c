#include <getopt.h>
#include <string.h>

#include "cli/client.h"
#include "cli/commands.h"
#include "common/macro.h"

#ifndef TIDE_VERSION
#define TIDE_VERSION "unknown"
#endif

static int cmd_help(int argc, char **argv, FILE *out, FILE *err);

static const struct tidectl_command commands[] = {
        { "plan", cmd_plan, "FILE.json [--settle] [--json] [--config FILE] [--max-ticks N]",
          "ask the engine what it would do for a host and VMs described in FILE.json",
          "  --settle         repeat decisions (assigned := target, one tick each) until nothing moves\n"
          "  --json           print JSON instead of a table\n"
          "  --config FILE    use tided's configuration FILE (default: built-in defaults)\n"
          "  --max-ticks N    give up settling after N ticks (default 100000)\n"
          "  The scenario format is in docs/POLICY.md; examples in docs/examples/.\n" },
        { "policy", cmd_policy,
          "set DOMAIN [--startup S] [--minimum S] [--maximum S] [--buffer P] [--weight W] [--static|--dynamic]\n"
          "                | show [DOMAIN] [--json] | clear DOMAIN",
          "set, show or clear a VM's dynamic-memory policy (stored in the domain's libvirt metadata)",
          "  set DOMAIN       create or change a policy; options not given keep their value (a new policy\n"
          "                   starts from startup = the domain's memory, minimum = 512MiB or less,\n"
          "                   maximum = all it can reach, buffer 20, weight 50, dynamic)\n"
          "    --startup S    memory at every (re)boot (sizes: 512MiB, 4G, 1.5GiB)\n"
          "    --minimum S    floor tide never goes below (>= 32MiB)\n"
          "    --maximum S    ceiling (above the boot size needs a virtio-mem device)\n"
          "    --buffer P     headroom over demand, percent (5-2000)\n"
          "    --weight W     share when the host is short (0-100; 0 is served last)\n"
          "    --static       keep the VM at startup; --dynamic: let tide move it\n"
          "  show [DOMAIN]    list policies (--json for JSON)\n"
          "  clear DOMAIN     stop managing the VM; its balloon is released to its boot size\n"
          "  --socket PATH    tided's control socket (default " CLIENT_SOCKET_DEFAULT ")\n"
          "  Changing policies needs root; reading them does not.\n" },
        { "stats", cmd_stats, "[DOMAIN] [--json] [--watch SECONDS]",
          "show each VM's memory: assigned, demand, pressure, status, target and why",
          "  --json           print JSON\n"
          "  --watch SECONDS  repeat every SECONDS until Ctrl-C\n"
          "  --socket PATH    tided's control socket (default " CLIENT_SOCKET_DEFAULT ")\n"
          "  Columns: PRESS% = demand / assigned; BUF% = configured buffer; STATUS ok (available\n"
          "  buffer > 80%), low (0-80%), warning (assigned < demand), unknown (no demand data).\n" },
        { "top", cmd_top, "[--socket PATH]", "live full-screen view, refreshed every second (q quits)",
          "  --socket PATH    tided's control socket (default " CLIENT_SOCKET_DEFAULT ")\n"
          "  --iterations N   stop after N screens\n" },
        { "help", cmd_help, "[COMMAND]", "show this help, or one command's options", NULL },
};

static void usage(FILE *f) {
        fprintf(f, "Usage: tidectl [--version] [--help] COMMAND [ARGS]\n\n"
                   "tide's operator tool: memory policies, balloon stats, what-if plans.\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %-6s %s\n         %s\n", commands[i].name, commands[i].args, commands[i].summary);
        fprintf(f, "\nRun 'tidectl help COMMAND' for a command's options.\n");
}

static const struct tidectl_command *find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].name, name))
                        return &commands[i];
        return NULL;
}

static int cmd_help(int argc, char **argv, FILE *out, FILE *err) {
        if (argc < 2) {
                usage(out);
                return TIDECTL_EXIT_OK;
        }
        const struct tidectl_command *c = find(argv[1]);
        if (!c) {
                fprintf(err, "tidectl: unknown command '%s'\n", argv[1]);
                return TIDECTL_EXIT_USAGE;
        }
        fprintf(out, "Usage: tidectl %s %s\n\n%s\n", c->name, c->args, c->summary);
        if (c->help)
                fprintf(out, "\n%s", c->help);
        return TIDECTL_EXIT_OK;
}

int tidectl_main(int argc, char **argv, FILE *out, FILE *err) {
        if (argc < 2) {
                usage(err);
                return TIDECTL_EXIT_USAGE;
        }
        if (streq(argv[1], "--help") || streq(argv[1], "-h")) {
                usage(out);
                return TIDECTL_EXIT_OK;
        }
        if (streq(argv[1], "--version")) {
                fprintf(out, "tidectl %s\n", TIDE_VERSION);
                return TIDECTL_EXIT_OK;
        }
        const struct tidectl_command *c = find(argv[1]);
        if (!c) {
                fprintf(err, "tidectl: unknown command '%s' (see 'tidectl --help')\n", argv[1]);
                return TIDECTL_EXIT_USAGE;
        }
        /* Each command parses its own options with getopt: start it afresh (glibc: optind 0). */
        optind = 0;
        opterr = 0;
        return c->run(argc - 1, argv + 1, out, err);
}
