/* tidectl commands that talk to tided: policy, stats, top. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/commands.h"
#include "common/macro.h"
#include "common/units.h"
#include "policy/policy.h"

#define WATCH_MAX_SECONDS 3600

static const char *str(json_object *o, const char *key) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !v)
                return NULL;
        return json_object_get_string(v);
}

static bool has(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && v;
}

static int64_t num(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && v ? json_object_get_int64(v) : 0;
}

static double dbl(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && v ? json_object_get_double(v) : NAN;
}

static const char *size_or_dash(json_object *o, const char *key, char buf[static SIZE_FORMAT_MAX]) {
        if (!has(o, key))
                return "-";
        return size_format_human((uint64_t) num(o, key), buf);
}

static int request(const char *sock, json_object *req, json_object **ret, FILE *err) {
        char msg[1024];
        int r = client_request(sock, req, ret, msg, sizeof(msg));
        json_object_put(req);
        if (r < 0) {
                fprintf(err, "tidectl: %s\n", msg);
                return TIDECTL_EXIT_FAIL;
        }
        return TIDECTL_EXIT_OK;
}

static json_object *new_request(const char *cmd, const char *domain) {
        json_object *req = json_object_new_object();
        json_object_object_add(req, "cmd", json_object_new_string(cmd));
        if (domain)
                json_object_object_add(req, "domain", json_object_new_string(domain));
        return req;
}

/* ---- policy ---- */

static int parse_size_opt(const char *opt, const char *arg, json_object *req, const char *key, FILE *err) {
        uint64_t kib;
        const char *e = NULL;
        if (size_parse(arg, &kib, &e) < 0) {
                fprintf(err, "tidectl policy set: --%s: '%s': %s\n", opt, arg, e);
                return -EINVAL;
        }
        json_object_object_add(req, key, json_object_new_int64((int64_t) kib));
        return 0;
}

static int parse_uint_opt(const char *opt, const char *arg, unsigned lo, unsigned hi, json_object *req,
                          const char *key, FILE *err) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(arg, &end, 10);
        if (errno || end == arg || *end || arg[0] == '-' || v < lo || v > hi) {
                fprintf(err, "tidectl policy set: --%s: '%s' is not a whole number %u-%u\n", opt, arg, lo, hi);
                return -EINVAL;
        }
        json_object_object_add(req, key, json_object_new_int((int) v));
        return 0;
}

static int policy_set(int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err) {
        static const struct option options[] = {
                { "startup", required_argument, NULL, 's' }, { "minimum", required_argument, NULL, 'm' },
                { "maximum", required_argument, NULL, 'M' }, { "buffer", required_argument, NULL, 'b' },
                { "weight", required_argument, NULL, 'w' },  { "static", no_argument, NULL, 'S' },
                { "dynamic", no_argument, NULL, 'D' },       { "latency-sensitive", no_argument, NULL, 'L' },
                { "packable", no_argument, NULL, 'P' },      TIDECTL_GLOBAL_OPTIONS,
                { 0 },
        };
        json_object *req = new_request("policy-set", NULL), *reply = NULL;
        int c, r = 0;

        /* No change option at all is fine: tided applies the defaults for this domain. */
        while ((c = tidectl_getopt(argc, argv, options, false, "policy", g, out)) != -1) {
                switch (c) {
                case TIDECTL_OPT_DONE:
                        json_object_put(req);
                        return TIDECTL_EXIT_OK;
                case 's':
                        r = parse_size_opt("startup", optarg, req, "startup_kib", err);
                        break;
                case 'm':
                        r = parse_size_opt("minimum", optarg, req, "minimum_kib", err);
                        break;
                case 'M':
                        r = parse_size_opt("maximum", optarg, req, "maximum_kib", err);
                        break;
                case 'b':
                        r = parse_uint_opt("buffer", optarg, POLICY_BUFFER_MIN, POLICY_BUFFER_MAX, req, "buffer", err);
                        break;
                case 'w':
                        r = parse_uint_opt("weight", optarg, 0, POLICY_WEIGHT_MAX, req, "weight", err);
                        break;
                case 'S':
                case 'D':
                        json_object_object_add(req, "dynamic", json_object_new_boolean(c == 'D'));
                        break;
                case 'L':
                case 'P':
                        json_object_object_add(req, "latency_sensitive", json_object_new_boolean(c == 'L'));
                        break;
                default:
                        fprintf(err, "tidectl policy set: unknown or incomplete option '%s' (see 'tidectl help "
                                     "policy')\n",
                                argv[optind - 1]);
                        r = -EINVAL;
                }
                if (r < 0) {
                        json_object_put(req);
                        return TIDECTL_EXIT_USAGE;
                }
        }
        if (argc - optind != 1) {
                fprintf(err, "tidectl policy set: expected one DOMAIN\n");
                json_object_put(req);
                return TIDECTL_EXIT_USAGE;
        }
        json_object_object_add(req, "domain", json_object_new_string(argv[optind]));
        r = request(g->socket, req, &reply, err);
        if (r != TIDECTL_EXIT_OK)
                return r;
        fprintf(out, "%s: policy set; %s\n", argv[optind], str(reply, "note") ? str(reply, "note") : "");
        json_object_put(reply);
        return TIDECTL_EXIT_OK;
}

static void print_policy_table(json_object *domains, FILE *out) {
        char a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX], c[SIZE_FORMAT_MAX];
        fprintf(out, "%-20s  %-9s  %9s  %9s  %9s  %6s  %6s  %-7s  %-8s  %s\n", "NAME", "MANAGED", "STARTUP",
                "MINIMUM", "MAXIMUM", "BUFFER", "WEIGHT", "MEMORY", "PARKING", "PENDING");
        for (size_t i = 0; i < json_object_array_length(domains); i++) {
                json_object *d = json_object_array_get_idx(domains, i);
                bool managed = json_object_get_boolean(json_object_object_get(d, "managed"));
                if (!managed) {
                        fprintf(out, "%-20s  %-9s\n", str(d, "name"), "no");
                        continue;
                }
                fprintf(out, "%-20s  %-9s  %9s  %9s  %9s  %5" PRId64 "%%  %6" PRId64 "  %-7s  %-8s  %s\n", str(d, "name"),
                        "yes", size_or_dash(d, "startup_kib", a), size_or_dash(d, "minimum_kib", b),
                        size_or_dash(d, "maximum_kib", c), num(d, "buffer_pct"), num(d, "weight"),
                        json_object_get_boolean(json_object_object_get(d, "dynamic")) ? "dynamic" : "static",
                        /* A latency-sensitive VM is never packed onto fewer cores. */
                        json_object_get_boolean(json_object_object_get(d, "latency_sensitive")) ? "never" : "packable",
                        str(d, "pending") && *str(d, "pending") ? str(d, "pending") : "-");
        }
}

static int policy_show_clear(bool show, int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                TIDECTL_GLOBAL_OPTIONS,
                { 0 },
        };
        bool json = false;
        int c;

        while ((c = tidectl_getopt(argc, argv, options, false, "policy", g, out)) != -1) {
                if (c == TIDECTL_OPT_DONE)
                        return TIDECTL_EXIT_OK;
                if (c == 'j' && show)
                        json = true;
                else {
                        fprintf(err, "tidectl policy %s: unknown option '%s'\n", show ? "show" : "clear",
                                argv[optind - 1]);
                        return TIDECTL_EXIT_USAGE;
                }
        }
        int nargs = argc - optind;
        if ((show && nargs > 1) || (!show && nargs != 1)) {
                fprintf(err, "tidectl policy %s: expected %s\n", show ? "show" : "clear",
                        show ? "at most one DOMAIN" : "one DOMAIN");
                return TIDECTL_EXIT_USAGE;
        }
        const char *domain = nargs ? argv[optind] : NULL;
        json_object *reply = NULL;
        int r = request(g->socket, new_request(show ? "policy-show" : "policy-clear", domain), &reply, err);
        if (r != TIDECTL_EXIT_OK)
                return r;
        if (!show)
                fprintf(out, "%s: policy cleared; %s\n", domain, str(reply, "note") ? str(reply, "note") : "");
        else if (json) {
                json_object *arr = json_object_new_array(), *domains = json_object_object_get(reply, "domains");
                static const char *keys[] = { "name", "uuid", "managed", "startup_kib", "minimum_kib", "maximum_kib",
                                              "buffer_pct", "weight", "dynamic", "latency_sensitive", "pending" };
                for (size_t i = 0; i < json_object_array_length(domains); i++) {
                        json_object *d = json_object_array_get_idx(domains, i), *o = json_object_new_object();
                        for (size_t k = 0; k < ELEMENTSOF(keys); k++)
                                json_object_object_add(o, keys[k], json_object_get(json_object_object_get(d, keys[k])));
                        json_object_array_add(arr, o);
                }
                json_object *root = json_object_new_object();
                json_object_object_add(root, "policies", arr);
                fprintf(out, "%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED));
                json_object_put(root);
        } else
                print_policy_table(json_object_object_get(reply, "domains"), out);
        json_object_put(reply);
        return TIDECTL_EXIT_OK;
}

int cmd_policy(int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err) {
        /* Global options may also stand between `policy` and its subcommand ('+': stop at it). */
        static const struct option options[] = { TIDECTL_GLOBAL_OPTIONS, { 0 } };
        int c;
        while ((c = tidectl_getopt(argc, argv, options, true, "policy", g, out)) != -1) {
                if (c == TIDECTL_OPT_DONE)
                        return TIDECTL_EXIT_OK;
                fprintf(err, "tidectl policy: unknown or incomplete option '%s'\n", argv[optind - 1]);
                return TIDECTL_EXIT_USAGE;
        }
        argc -= optind - 1;
        argv += optind - 1;
        if (argc < 2) {
                fprintf(err, "tidectl policy: expected set, show or clear (see 'tidectl help policy')\n");
                return TIDECTL_EXIT_USAGE;
        }
        /* getopt restarts for the subcommand's own options. */
        optind = 0;
        if (streq(argv[1], "set"))
                return policy_set(argc - 1, argv + 1, g, out, err);
        if (streq(argv[1], "show"))
                return policy_show_clear(true, argc - 1, argv + 1, g, out, err);
        if (streq(argv[1], "clear"))
                return policy_show_clear(false, argc - 1, argv + 1, g, out, err);
        fprintf(err, "tidectl policy: unknown subcommand '%s' (set, show, clear)\n", argv[1]);
        return TIDECTL_EXIT_USAGE;
}

/* ---- stats and top ---- */

/* A share 0..1 as "42%", "-" when not measured. */
static const char *pct_or_dash(json_object *o, const char *key, char buf[static 16]) {
        double v = dbl(o, key);
        if (isnan(v))
                return "-";
        snprintf(buf, 16, "%.0f%%", 100 * v);
        return buf;
}

/* What parking is worth (stats' host.parking.measured): the episode under way, the ended ones,
 * each parked CPU and the unparked ones on average. */
static void print_parking_measured(json_object *mz, FILE *out) {
        json_object *e = json_object_object_get(mz, "episode"), *n = json_object_object_get(mz, "episodes"),
                    *cpus = json_object_object_get(mz, "cpus");
        char rapl[48] = "", b1[16], b2[16], b3[16];
        if (!json_object_get_boolean(json_object_object_get(mz, "has_deep_state")))
                fprintf(out, "  worth: nothing on this host: its CPUs have no deep idle state to reach\n");
        else if (e) {
                if (has(e, "rapl_watts_saved"))
                        snprintf(rapl, sizeof(rapl), "; RAPL: host %.1f W less", dbl(e, "rapl_watts_saved"));
                fprintf(out, "  worth, this episode: %s; deep idle %.0f%% of idle time before, %.0f%% now; estimated %.2f W saved%s\n",
                        str(e, "verdict"), 100 * dbl(e, "deep_before"), 100 * dbl(e, "deep_during"),
                        dbl(e, "watts_saved"), rapl);
        }
        json_object *last = json_object_object_get(mz, "last_episode");
        char lastbuf[96] = "";
        if (last)
                snprintf(lastbuf, sizeof(lastbuf), "; the last: %.0f s, %s, %.2f W", dbl(last, "seconds"),
                         str(last, "verdict") ? str(last, "verdict") : "?", dbl(last, "watts_saved"));
        fprintf(out, "  episodes: %" PRId64 " paid, %" PRId64 " did not pay, %" PRId64 " too short to say; %.0f J saved (estimated)%s%s\n",
                num(n, "paid"), num(n, "did_not_pay"), num(n, "unknown"), dbl(mz, "joules_saved"), lastbuf,
                json_object_get_boolean(json_object_object_get(mz, "never_pays")) ? "; parking does not pay here" : "");
        double sum[3] = { 0 };
        unsigned unparked = 0;
        for (size_t i = 0; cpus && i < json_object_array_length(cpus); i++) {
                json_object *c = json_object_array_get_idx(cpus, i);
                if (json_object_get_boolean(json_object_object_get(c, "parked"))) {
                        fprintf(out, "  cpu %" PRId64 " parked: busy %s, idle %s, deep idle %s\n", num(c, "cpu"),
                                pct_or_dash(c, "busy", b1), pct_or_dash(c, "idle", b2), pct_or_dash(c, "deep", b3));
                        continue;
                }
                if (isnan(dbl(c, "idle")))
                        continue;
                sum[0] += isnan(dbl(c, "busy")) ? 0 : dbl(c, "busy");
                sum[1] += dbl(c, "idle");
                sum[2] += dbl(c, "deep");
                unparked++;
        }
        if (unparked)
                fprintf(out, "  %u unparked CPU%s on average: busy %.0f%%, idle %.0f%%, deep idle %.0f%%\n", unparked,
                        unparked == 1 ? "" : "s", 100 * sum[0] / unparked, 100 * sum[1] / unparked,
                        100 * sum[2] / unparked);
}

static void print_host_line(json_object *host, FILE *out) {
        char a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX], c[SIZE_FORMAT_MAX], d[SIZE_FORMAT_MAX], e[SIZE_FORMAT_MAX],
                f[SIZE_FORMAT_MAX], paging[96] = "";
        int64_t files = num(host, "paging_files"), unfunded = num(host, "unfunded_kib");
        if (files > 0 || unfunded > 0)
                snprintf(paging, sizeof(paging), "; Smart Paging: %" PRId64 " file%s%s%s", files, files == 1 ? "" : "s",
                         unfunded > 0 ? ", starts short by " : "",
                         unfunded > 0 ? size_format_human((uint64_t) unfunded, f) : "");
        fprintf(out, "host: memory %s, available %s, VMs hold %s, capacity for VMs %s (reserve %s)%s%s%s\n",
                size_or_dash(host, "total_kib", a), size_or_dash(host, "available_kib", b),
                size_or_dash(host, "assigned_kib", c), size_or_dash(host, "capacity_kib", d),
                size_format_human((uint64_t) num(host, "reserve_kib"), e),
                json_object_get_boolean(json_object_object_get(host, "overcommitted")) ? "; OVERCOMMITTED" : "",
                json_object_get_boolean(json_object_object_get(host, "short")) ? "; short: shared by weight" : "",
                paging);
        json_object *p = json_object_object_get(host, "parking");
        if (p)
                fprintf(out, "parking: CPUs %s parked, %" PRId64 " unparked for a load of %.2f CPUs (%s)\n",
                        str(p, "parked") ? str(p, "parked") : "none", num(p, "unparked_cpus"),
                        json_object_get_double(json_object_object_get(p, "load_cpus")),
                        str(p, "reason") ? str(p, "reason") : "");
        if (p && has(p, "measured"))
                print_parking_measured(json_object_object_get(p, "measured"), out);
}

static void print_stats_table(json_object *domains, FILE *out) {
        char a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX], c[SIZE_FORMAT_MAX], m1[SIZE_FORMAT_MAX], m2[SIZE_FORMAT_MAX],
                m3[SIZE_FORMAT_MAX], range[3 * SIZE_FORMAT_MAX + 4], press[16], buf[16];
        int w = 4;
        for (size_t i = 0; i < json_object_array_length(domains); i++) {
                int len = (int) strlen(str(json_object_array_get_idx(domains, i), "name"));
                w = len > w ? len : w;
        }
        fprintf(out, "%-*s  %-7s  %9s  %9s  %6s  %4s  %-9s  %9s  %-22s  %-12s  %s\n", w, "NAME", "STATE", "ASSIGNED",
                "DEMAND", "PRESS%", "BUF%", "STATUS", "TARGET", "MIN/STARTUP/MAX", "AGENT", "REASON");
        for (size_t i = 0; i < json_object_array_length(domains); i++) {
                json_object *d = json_object_array_get_idx(domains, i);
                bool managed = json_object_get_boolean(json_object_object_get(d, "managed"));
                bool active = json_object_get_boolean(json_object_object_get(d, "active"));
                double p = dbl(d, "pressure_pct");
                snprintf(press, sizeof(press), isnan(p) ? "-" : "%.0f", p);
                if (managed) {
                        snprintf(buf, sizeof(buf), "%" PRId64, num(d, "buffer_pct"));
                        snprintf(range, sizeof(range), "%s/%s/%s", size_or_dash(d, "minimum_kib", m1),
                                 size_or_dash(d, "startup_kib", m2), size_or_dash(d, "maximum_kib", m3));
                } else {
                        snprintf(buf, sizeof(buf), "-");
                        snprintf(range, sizeof(range), "-");
                }
                const char *reason = str(d, "reason");
                /* The agent column says whose numbers these are and whether the guest misbehaved. */
                char agent[96];
                const char *st = str(d, "agent") ? str(d, "agent") : "none";
                int64_t bad = num(d, "agent_rejected") + num(d, "agent_rate_dropped");
                int64_t age = has(d, "agent_report_age_ms") ? num(d, "agent_report_age_ms") : -1;
                char agestr[32] = "";
                if (age >= 2000) /* a fresh report is the normal case; only a late one is news */
                        snprintf(agestr, sizeof(agestr), " %" PRId64 "s", age / 1000);
                if (bad > 0)
                        snprintf(agent, sizeof(agent), "%s%s(%" PRId64 " bad)", st, agestr, bad);
                else
                        snprintf(agent, sizeof(agent), "%s%s", st, agestr);
                /* A paging file is news worth the reason column's front: its size and use. */
                char paging[2 * SIZE_FORMAT_MAX + 32] = "";
                if (num(d, "paging_kib") > 0)
                        snprintf(paging, sizeof(paging), "paging file %s (%s used); ", size_or_dash(d, "paging_kib", m1),
                                 size_or_dash(d, "paging_used_kib", m2));
                fprintf(out, "%-*s  %-7s  %9s  %9s  %6s  %4s  %-9s  %9s  %-22s  %-12s  %s%s\n", w, str(d, "name"),
                        active ? "running" : "off", active ? size_or_dash(d, "assigned_kib", a) : "-",
                        size_or_dash(d, "demand_kib", b), press, buf, str(d, "status"), size_or_dash(d, "target_kib", c),
                        range, agent, paging, reason && *reason ? reason : "-");
        }
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
        interrupted = 1;
}

static int parse_seconds(const char *cmd, const char *arg, unsigned *ret, FILE *err) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(arg, &end, 10);
        if (errno || end == arg || *end || arg[0] == '-' || v < 1 || v > WATCH_MAX_SECONDS) {
                fprintf(err, "tidectl %s: '%s' is not a number of seconds (1-%d)\n", cmd, arg, WATCH_MAX_SECONDS);
                return -EINVAL;
        }
        *ret = (unsigned) v;
        return 0;
}

int cmd_stats(int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "watch", required_argument, NULL, 'w' },
                TIDECTL_GLOBAL_OPTIONS,
                { 0 },
        };
        bool json = false;
        unsigned watch = 0;
        int c;

        while ((c = tidectl_getopt(argc, argv, options, false, "stats", g, out)) != -1) {
                if (c == TIDECTL_OPT_DONE)
                        return TIDECTL_EXIT_OK;
                if (c == 'j')
                        json = true;
                else if (c == 'w') {
                        if (parse_seconds("stats --watch", optarg, &watch, err) < 0)
                                return TIDECTL_EXIT_USAGE;
                } else {
                        fprintf(err, "tidectl stats: unknown or incomplete option '%s'\n", argv[optind - 1]);
                        return TIDECTL_EXIT_USAGE;
                }
        }
        if (argc - optind > 1) {
                fprintf(err, "tidectl stats: expected at most one DOMAIN\n");
                return TIDECTL_EXIT_USAGE;
        }
        const char *domain = argc > optind ? argv[optind] : NULL;

        if (watch)
                signal(SIGINT, on_sigint);
        for (;;) {
                json_object *reply = NULL;
                int r = request(g->socket, new_request("stats", domain), &reply, err);
                if (r != TIDECTL_EXIT_OK)
                        return r;
                if (json) {
                        json_object *root = json_object_new_object();
                        json_object_object_add(root, "host", json_object_get(json_object_object_get(reply, "host")));
                        json_object_object_add(root, "domains",
                                               json_object_get(json_object_object_get(reply, "domains")));
                        fprintf(out, "%s\n",
                                json_object_to_json_string_ext(root, watch ? JSON_C_TO_STRING_PLAIN
                                                                           : JSON_C_TO_STRING_PRETTY |
                                                                                     JSON_C_TO_STRING_SPACED));
                        json_object_put(root);
                } else {
                        print_host_line(json_object_object_get(reply, "host"), out);
                        print_stats_table(json_object_object_get(reply, "domains"), out);
                        if (watch)
                                fputc('\n', out);
                }
                fflush(out);
                json_object_put(reply);
                if (!watch)
                        return TIDECTL_EXIT_OK;
                for (unsigned s = 0; s < watch * 10 && !interrupted; s++)
                        poll(NULL, 0, 100);
                if (interrupted)
                        return TIDECTL_EXIT_OK;
        }
}

int cmd_top(int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err) {
        static const struct option options[] = {
                { "iterations", required_argument, NULL, 'n' },
                TIDECTL_GLOBAL_OPTIONS,
                { 0 },
        };
        unsigned iterations = 0;
        struct termios saved, raw;
        bool tty = isatty(STDIN_FILENO);
        int c, r = TIDECTL_EXIT_OK;

        while ((c = tidectl_getopt(argc, argv, options, false, "top", g, out)) != -1) {
                if (c == TIDECTL_OPT_DONE)
                        return TIDECTL_EXIT_OK;
                if (c == 'n') {
                        if (parse_seconds("top --iterations", optarg, &iterations, err) < 0)
                                return TIDECTL_EXIT_USAGE;
                } else {
                        fprintf(err, "tidectl top: unknown or incomplete option '%s'\n", argv[optind - 1]);
                        return TIDECTL_EXIT_USAGE;
                }
        }
        if (argc > optind) {
                fprintf(err, "tidectl top: takes no arguments\n");
                return TIDECTL_EXIT_USAGE;
        }
        /* 'q' quits without Enter: the terminal goes non-canonical while top runs. */
        if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
                raw = saved;
                raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
                tcsetattr(STDIN_FILENO, TCSANOW, &raw);
        } else
                tty = false;
        signal(SIGINT, on_sigint);

        for (unsigned n = 0; !interrupted && (!iterations || n < iterations); n++) {
                json_object *reply = NULL;
                r = request(g->socket, new_request("stats", NULL), &reply, err);
                if (r != TIDECTL_EXIT_OK)
                        break;
                json_object *host = json_object_object_get(reply, "host");
                fprintf(out, "\033[H\033[2J"); /* home + clear: the whole screen is redrawn */
                fprintf(out, "tidectl top - tick %" PRId64 " (%.1f ms)   q: quit\n", num(host, "ticks"),
                        (double) num(host, "tick_usec") / 1000.0);
                print_host_line(host, out);
                fputc('\n', out);
                print_stats_table(json_object_object_get(reply, "domains"), out);
                fflush(out);
                json_object_put(reply);

                struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
                if (poll(&p, tty ? 1 : 0, 1000) > 0) {
                        char ch;
                        if (read(STDIN_FILENO, &ch, 1) == 1 && (ch == 'q' || ch == 'Q'))
                                break;
                }
        }
        if (tty)
                tcsetattr(STDIN_FILENO, TCSANOW, &saved);
        return r;
}
