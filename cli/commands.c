#include <getopt.h>
#include <stdbool.h>
#include <string.h>

#include "cli/client.h"
#include "cli/commands.h"
#include "common/macro.h"

#ifndef TIDE_VERSION
#define TIDE_VERSION "unknown"
#endif

static int cmd_help(int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err);

static const struct tidectl_command commands[] = {
        { "plan", cmd_plan, "FILE.json [--settle] [--json] [--config FILE] [--max-ticks N]",
          "ask the engine what it would do for a host and VMs described in FILE.json",
          "  --settle         run tided's ticks on a simulated host until nothing moves\n"
          "  --json           print JSON instead of a table\n"
          "  --config FILE    use tided's configuration FILE (default: built-in defaults)\n"
          "  --max-ticks N    give up settling after N ticks (default 100000)\n"
          "  The scenario format is in docs/POLICY.md; examples in docs/examples/.\n" },
        { "simulate", cmd_simulate,
          "[SCENARIO.json] [--trace FILE.csv[.gz]] [--hours H] [--vms N] [--hold] [--policies LIST] [--json] [--csv DIR]\n"
          "                [--plot FILE] [--find-host] [--seed N] [--full-loop]\n"
          "       tidectl simulate --parking --trace FILE [--hours H] [--vms N] [--hold] [--seed N] [--json]\n"
          "                [--cores N] [--smt N] [--nodes N]",
          "boot storms and real traces: tide against Hyper-V, MOM, Proxmox, static sizing and the oracle;\n"
          "                   with --parking, core parking: none, tide and an intel-lpmd-like rule",
          "  SCENARIO.json    hosts, VM groups (policy, boot and demand profiles), events (restart,\n"
          "                   staggered-start, host-failure), duration; format in docs/SIMULATOR.md\n"
          "  --trace FILE     VMs from a trace (vm,t_s,cores,cpu_pct,mem_provisioned_kib,mem_used_kib;\n"
          "                   gzip or plain): startup = maximum = provisioned, demand = used\n"
          "  --hours H        only the first H hours\n"
          "  --policies LIST  comma-separated: tide, hyperv, swap-anytime, mom, proxmox, static,\n"
          "                   oracle (default all)\n"
          "  --json           print JSON instead of a table\n"
          "  --find-host      also find, per policy, the smallest host memory (to 1 GiB) with warning\n"
          "                   time <= 0.1% of VM-seconds and no guest OOM\n"
          "  --seed N         seed of the random-walk demands (same seed, same numbers)\n"
          "  --hold           hold each trace sample until the next instead of interpolating\n"
          "  --vms N          N VMs from the trace: its VMs in turn, copy k of each 61 s x k later\n"
          "  --full-loop      step every VM every tick (tide's settled VMs otherwise sleep; the\n"
          "                   numbers are the same, this checks it and is slower)\n"
          "  --csv DIR        per policy, DIR/POLICY.csv: one row per tick (VMs running, booted, in\n"
          "                   warning; summed demand and assigned; paging)\n"
          "  --plot FILE      draw FILE.svg or FILE.png (gnuplot): demand vs assigned, and the boot timeline\n"
          "  --parking        core parking instead of memory: the trace's cores x cpu_pct as CPU demand,\n"
          "                   second by second (--seed: its variation), on a host of --cores N cores\n"
          "                   (default: a CPU per 4 vCPUs) of --smt N threads (default 2) on --nodes N\n"
          "                   NUMA nodes (default: 32 cores each); energy, cores parked, demand above\n"
          "                   the unparked CPUs, reversals (docs/SIMULATOR.md \"Core parking\")\n" },
        { "policy", cmd_policy,
          "set DOMAIN [--startup S] [--minimum S] [--maximum S] [--buffer P] [--weight W] [--static|--dynamic]\n"
          "                [--latency-sensitive|--packable] | show [DOMAIN] [--json] | clear DOMAIN",
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
          "    --latency-sensitive  core parking never packs its vCPUs; --packable: it may (default)\n"
          "  show [DOMAIN]    list policies (--json for JSON)\n"
          "  clear DOMAIN     stop managing the VM; its balloon is released to its boot size\n"
          "  Changing policies needs root; reading them does not.\n" },
        { "stats", cmd_stats, "[DOMAIN] [--json] [--watch SECONDS]",
          "show each VM's memory: assigned, demand, pressure, status, target and why",
          "  --json           print JSON\n"
          "  --watch SECONDS  repeat every SECONDS until Ctrl-C\n"
          "  Columns: PRESS% = demand / assigned; BUF% = configured buffer; STATUS ok (available\n"
          "  buffer > 80%), low (0-80%), warning (assigned < demand), unknown (no demand data).\n" },
        { "top", cmd_top, "[--iterations N]", "live full-screen view, refreshed every second (q quits)",
          "  --iterations N   stop after N screens\n" },
        { "help", cmd_help, "[COMMAND]", "show this help, or one command's options", NULL },
};

#define GLOBAL_HELP                                                                                          \
        "Global options (before or after the command):\n"                                                  \
        "  --socket PATH    tided's control socket (default " CLIENT_SOCKET_DEFAULT ")\n"                      \
        "  --help, -h       this help, or the command's when one is given\n"                                  \
        "  --version        tidectl's version\n"

static void usage(FILE *f) {
        fprintf(f, "Usage: tidectl [GLOBAL OPTIONS] COMMAND [ARGS]\n\n"
                   "tide's operator tool: memory policies, balloon stats, what-if plans.\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %-6s %s\n         %s\n", commands[i].name, commands[i].args, commands[i].summary);
        fprintf(f, "\n" GLOBAL_HELP "\nRun 'tidectl help COMMAND' for a command's options.\n");
}

static const struct tidectl_command *find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].name, name))
                        return &commands[i];
        return NULL;
}

static void command_help(const struct tidectl_command *c, FILE *out) {
        fprintf(out, "Usage: tidectl %s %s\n\n%s\n", c->name, c->args, c->summary);
        if (c->help)
                fprintf(out, "\n%s", c->help);
        fprintf(out, "\n" GLOBAL_HELP);
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
