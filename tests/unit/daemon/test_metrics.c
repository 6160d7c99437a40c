/* The Prometheus endpoint: the exposition text rendered from a snapshot, and the HTTP server
 * that serves it, spoken to over a plain socket the way a scraper does. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/macro.h"
#include "daemon/metrics.h"
#include "daemon/snapshot.h"

#define UUID0 "6f1c2a5e-0000-4000-8000-000000000001"
#define UUID1 "6f1c2a5e-0000-4000-8000-000000000002"

/* A managed domain whose name needs every escape but the newline, and an unmanaged one whose
 * name has the newline. */
static struct snapshot_domain domains[2];

static struct snapshot sample(void) {
        struct snapshot s = { 0 };

        memset(domains, 0, sizeof(domains));

        strcpy(domains[0].uuid, UUID0);
        strcpy(domains[0].name, "web \"blue\"\\prod");
        domains[0].managed = true;
        domains[0].active = true;
        domains[0].dynamic = true;
        domains[0].assigned_kib = 2 * KIB_PER_GIB;
        domains[0].has_demand = true;
        domains[0].demand_kib = 1 * KIB_PER_GIB;
        domains[0].target_kib = 1280 * KIB_PER_MIB;
        domains[0].pressure_pct = 50.0;
        domains[0].available_buffer_pct = 412.5;
        domains[0].status = "ok";
        domains[0].minimum_kib = 512 * KIB_PER_MIB;
        domains[0].startup_kib = 2 * KIB_PER_GIB;
        domains[0].maximum_kib = 4 * KIB_PER_GIB;
        domains[0].buffer_pct = 20;
        domains[0].weight = 50;
        domains[0].agent = "connected";
        domains[0].balloon = "inactive";
        domains[0].balloon_actions = 7;
        domains[0].guest_oom_deflates = 2;
        domains[0].rss_kib = 2150000;
        domains[0].paging_kib = 524288;
        domains[0].paging_used_kib = 102400;
        domains[0].paging = "releasing";

        strcpy(domains[1].uuid, UUID1);
        strcpy(domains[1].name, "legacy\nbox");
        domains[1].managed = false;
        domains[1].active = true;
        domains[1].assigned_kib = 1 * KIB_PER_GIB;
        domains[1].status = "unmanaged";
        domains[1].agent = "none";
        domains[1].balloon = "ok";
        domains[1].balloon_actions = 3; /* not shown: tide does not act on unmanaged domains */
        domains[1].rss_kib = 1100000;
        domains[1].paging = "none"; /* not shown: Smart Paging is for managed domains */

        s.host.total_kib = 16 * KIB_PER_GIB;
        s.host.available_kib = 8 * KIB_PER_GIB;
        s.host.usable_kib = 15 * KIB_PER_GIB;
        s.host.reserve_kib = 1 * KIB_PER_GIB;
        s.host.capacity_kib = 14 * KIB_PER_GIB;
        s.host.assigned_kib = 3 * KIB_PER_GIB;
        s.host.target_kib = 1280 * KIB_PER_MIB;
        s.host.short_host = false;
        s.host.overcommitted = true;
        s.host.tick_usec = 1234;
        s.host.ticks = 42;
        s.host.paging_files = 1;
        s.host.unfunded_kib = 65536;
        s.host.uptime_usec = 42 * USEC_PER_SEC + 500;
        s.host.libvirt_connected = true;
        s.host.libvirt_disconnects = 2;

        s.domains = domains;
        s.n_domains = 2;
        return s;
}

#define L0 "domain=\"web \\\"blue\\\"\\\\prod\",uuid=\"" UUID0 "\""
#define L1 "domain=\"legacy\\nbox\",uuid=\"" UUID1 "\""

static const char expected_sample[] =
        "# HELP tide_domain_assigned_bytes Memory the domain holds now (balloon actual plus plugged virtio-mem).\n"
        "# TYPE tide_domain_assigned_bytes gauge\n"
        "tide_domain_assigned_bytes{" L0 "} 2147483648\n"
        "tide_domain_assigned_bytes{" L1 "} 1073741824\n"
        "# HELP tide_domain_demand_bytes Memory the guest needs now, without buffer.\n"
        "# TYPE tide_domain_demand_bytes gauge\n"
        "tide_domain_demand_bytes{" L0 "} 1073741824\n"
        "# HELP tide_domain_target_bytes Memory tide is moving the domain to.\n"
        "# TYPE tide_domain_target_bytes gauge\n"
        "tide_domain_target_bytes{" L0 "} 1342177280\n"
        "# HELP tide_domain_minimum_bytes Policy minimum: the floor after boot.\n"
        "# TYPE tide_domain_minimum_bytes gauge\n"
        "tide_domain_minimum_bytes{" L0 "} 536870912\n"
        "# HELP tide_domain_maximum_bytes Policy maximum: the ceiling.\n"
        "# TYPE tide_domain_maximum_bytes gauge\n"
        "tide_domain_maximum_bytes{" L0 "} 4294967296\n"
        "# HELP tide_domain_startup_bytes Policy startup: memory the domain gets at every (re)boot.\n"
        "# TYPE tide_domain_startup_bytes gauge\n"
        "tide_domain_startup_bytes{" L0 "} 2147483648\n"
        "# HELP tide_domain_pressure_percent Demand / assigned x 100.\n"
        "# TYPE tide_domain_pressure_percent gauge\n"
        "tide_domain_pressure_percent{" L0 "} 50\n"
        "# HELP tide_domain_available_buffer_percent (assigned - demand) / (demand x buffer / 100) x 100; "
        "negative when assigned < demand.\n"
        "# TYPE tide_domain_available_buffer_percent gauge\n"
        "tide_domain_available_buffer_percent{" L0 "} 412.5\n"
        "# HELP tide_domain_status Memory status: 1 for the current one, 0 for the others.\n"
        "# TYPE tide_domain_status gauge\n"
        "tide_domain_status{" L0 ",status=\"ok\"} 1\n"
        "tide_domain_status{" L0 ",status=\"low\"} 0\n"
        "tide_domain_status{" L0 ",status=\"warning\"} 0\n"
        "tide_domain_status{" L0 ",status=\"unknown\"} 0\n"
        "tide_domain_status{" L0 ",status=\"paging\"} 0\n"
        "# HELP tide_domain_managed 1 when the domain has a tide policy, 0 when tide leaves it alone.\n"
        "# TYPE tide_domain_managed gauge\n"
        "tide_domain_managed{" L0 "} 1\n"
        "tide_domain_managed{" L1 "} 0\n"
        "# HELP tide_domain_active 1 when the domain is running, 0 when it is shut off.\n"
        "# TYPE tide_domain_active gauge\n"
        "tide_domain_active{" L0 "} 1\n"
        "tide_domain_active{" L1 "} 1\n"
        "# HELP tide_domain_balloon_actions_total Balloon and virtio-mem changes tided made since it started.\n"
        "# TYPE tide_domain_balloon_actions_total counter\n"
        "tide_domain_balloon_actions_total{" L0 "} 7\n"
        "# HELP tide_domain_guest_oom_deflates_total Samples in which the balloon rose above tided's target on the guest's side (with deflate-on-oom: the guest ran out of memory).\n"
        "# TYPE tide_domain_guest_oom_deflates_total counter\n"
        "tide_domain_guest_oom_deflates_total{" L0 "} 2\n"
        "# HELP tide_domain_balloon_state Balloon progress: 1 for the current state, 0 for the others.\n"
        "# TYPE tide_domain_balloon_state gauge\n"
        "tide_domain_balloon_state{" L0 ",state=\"ok\"} 0\n"
        "tide_domain_balloon_state{" L0 ",state=\"inactive\"} 1\n"
        "tide_domain_balloon_state{" L0 ",state=\"uncooperative\"} 0\n"
        "# HELP tide_domain_rss_bytes Resident memory of the domain's QEMU process on the host.\n"
        "# TYPE tide_domain_rss_bytes gauge\n"
        "tide_domain_rss_bytes{" L0 "} 2201600000\n"
        "tide_domain_rss_bytes{" L1 "} 1126400000\n"
        "# HELP tide_domain_paging_bytes Size of the domain's Smart Paging file while it has one, else 0.\n"
        "# TYPE tide_domain_paging_bytes gauge\n"
        "tide_domain_paging_bytes{" L0 "} 536870912\n"
        "# HELP tide_domain_paging_used_bytes How much of the domain's Smart Paging file is in use (/proc/swaps).\n"
        "# TYPE tide_domain_paging_used_bytes gauge\n"
        "tide_domain_paging_used_bytes{" L0 "} 104857600\n"
        "# HELP tide_domain_paging_state Smart Paging: 1 for the current phase (releasing: its file is being "
        "switched off or waits its turn; failed: it should have paged and could not), 0 for the others.\n"
        "# TYPE tide_domain_paging_state gauge\n"
        "tide_domain_paging_state{" L0 ",state=\"none\"} 0\n"
        "tide_domain_paging_state{" L0 ",state=\"paging\"} 0\n"
        "tide_domain_paging_state{" L0 ",state=\"releasing\"} 1\n"
        "tide_domain_paging_state{" L0 ",state=\"failed\"} 0\n"
        "# HELP tide_domain_agent_state tide-agent channel: 1 for the current state, 0 for the others.\n"
        "# TYPE tide_domain_agent_state gauge\n"
        "tide_domain_agent_state{" L0 ",state=\"none\"} 0\n"
        "tide_domain_agent_state{" L0 ",state=\"disconnected\"} 0\n"
        "tide_domain_agent_state{" L0 ",state=\"waiting\"} 0\n"
        "tide_domain_agent_state{" L0 ",state=\"connected\"} 1\n"
        "tide_domain_agent_state{" L0 ",state=\"gone\"} 0\n"
        "# HELP tide_domain_agent_rejected_total tide-agent messages rejected (malformed, oversized, out of range, "
        "contradicting the host).\n"
        "# TYPE tide_domain_agent_rejected_total counter\n"
        "tide_domain_agent_rejected_total{" L0 "} 0\n"
        "# HELP tide_domain_agent_rate_dropped_total tide-agent messages dropped over the rate limit (5 a second).\n"
        "# TYPE tide_domain_agent_rate_dropped_total counter\n"
        "tide_domain_agent_rate_dropped_total{" L0 "} 0\n"
        "# HELP tide_domain_demand_from_agent 1 when this tick's demand came from tide-agent, 0 when from balloon "
        "statistics.\n"
        "# TYPE tide_domain_demand_from_agent gauge\n"
        "tide_domain_demand_from_agent{" L0 "} 0\n"
        "# HELP tide_host_memory_total_bytes Host MemTotal.\n"
        "# TYPE tide_host_memory_total_bytes gauge\n"
        "tide_host_memory_total_bytes 17179869184\n"
        "# HELP tide_host_memory_available_bytes Host MemAvailable.\n"
        "# TYPE tide_host_memory_available_bytes gauge\n"
        "tide_host_memory_available_bytes 8589934592\n"
        "# HELP tide_host_capacity_bytes Memory domains may hold: host usable minus reserve.\n"
        "# TYPE tide_host_capacity_bytes gauge\n"
        "tide_host_capacity_bytes 15032385536\n"
        "# HELP tide_host_reserve_bytes Memory kept for the host itself.\n"
        "# TYPE tide_host_reserve_bytes gauge\n"
        "tide_host_reserve_bytes 1073741824\n"
        "# HELP tide_host_assigned_bytes Memory the domains hold now, summed.\n"
        "# TYPE tide_host_assigned_bytes gauge\n"
        "tide_host_assigned_bytes 3221225472\n"
        "# HELP tide_host_target_bytes Targets of the managed domains, summed.\n"
        "# TYPE tide_host_target_bytes gauge\n"
        "tide_host_target_bytes 1342177280\n"
        "# HELP tide_host_short 1 when what the domains desire does not fit and weights decide.\n"
        "# TYPE tide_host_short gauge\n"
        "tide_host_short 0\n"
        "# HELP tide_host_overcommitted 1 when even the domains' minimums do not fit.\n"
        "# TYPE tide_host_overcommitted gauge\n"
        "tide_host_overcommitted 1\n"
        "# HELP tide_paging_files Smart Paging files on (or being switched off).\n"
        "# TYPE tide_paging_files gauge\n"
        "tide_paging_files 1\n"
        "# HELP tide_cpu_parked CPUs core parking keeps the floating VMs off now.\n"
        "# TYPE tide_cpu_parked gauge\n"
        "tide_cpu_parked 0\n"
        "# HELP tide_parking_reversals_total Unparks that undid a park (load rose after one).\n"
        "# TYPE tide_parking_reversals_total counter\n"
        "tide_parking_reversals_total 0\n"
        "# HELP tide_host_unfunded_bytes Startup memory of starting domains that neither RAM nor a Smart Paging "
        "file covers.\n"
        "# TYPE tide_host_unfunded_bytes gauge\n"
        "tide_host_unfunded_bytes 67108864\n"
        "# HELP tide_tick_duration_seconds How long the last tick took.\n"
        "# TYPE tide_tick_duration_seconds gauge\n"
        "tide_tick_duration_seconds 0.001234\n"
        "# HELP tide_ticks_total Ticks since tided started.\n"
        "# TYPE tide_ticks_total counter\n"
        "tide_ticks_total 42\n"
        "# HELP tide_uptime_seconds Time since tided started.\n"
        "# TYPE tide_uptime_seconds gauge\n"
        "tide_uptime_seconds 42.000500\n"
        "# HELP tide_libvirt_connected 1 while tided is connected to libvirt; 0 while it waits for it (every VM held where it is).\n"
        "# TYPE tide_libvirt_connected gauge\n"
        "tide_libvirt_connected 1\n"
        "# HELP tide_libvirt_disconnects_total Times tided lost its libvirt connection since it started.\n"
        "# TYPE tide_libvirt_disconnects_total counter\n"
        "tide_libvirt_disconnects_total 2\n";

static char *render(const struct snapshot *s) {
        char *text = NULL;
        size_t len = 0;
        int r = metrics_render(s, &text, &len);

        cr_assert_eq(r, 0, "metrics_render() = %d", r);
        cr_assert_not_null(text);
        cr_assert_eq(len, strlen(text), "ret_len %zu, strlen %zu", len, strlen(text));
        return text;
}

/* ---- a checker for the text exposition format 0.0.4 ------------------------------------- */

static bool is_name_start(char c, bool colon) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}

static bool is_name_char(char c, bool colon) {
        return is_name_start(c, colon) || (c >= '0' && c <= '9');
}

/* Length of the metric (colon = true) or label name at p, 0 if none. */
static size_t name_len(const char *p, bool colon) {
        size_t n = 0;

        if (!is_name_start(p[0], colon))
                return 0;
        while (is_name_char(p[n], colon))
                n++;
        return n;
}

static bool is_float(const char *p, size_t n) {
        char buf[64];
        char *end;

        if (n == 0 || n >= sizeof(buf))
                return false;
        memcpy(buf, p, n);
        buf[n] = '\0';
        if (streq(buf, "NaN") || streq(buf, "+Inf") || streq(buf, "-Inf"))
                return true;
        /* strtod would also take "inf", "nan", hex floats and leading blanks. The format allows
         * more than one blank between tokens, but tide prints exactly one and never the other
         * spellings, so the checker is stricter than the format here. */
        if (strpbrk(buf, "iInNxX \t"))
                return false;
        strtod(buf, &end);
        return *end == '\0';
}

#define MAX_FAMILIES 64
#define MAX_SERIES 1024

/* NULL when `text` is valid, else a static description of the first problem (line number in
 * *ret_line). Checks the line syntax, that HELP then TYPE open each family once, that samples
 * belong to the family opened last (families never interleave), and that no series repeats. */
static const char *exposition_error(const char *text, int *ret_line) {
        static char why[512];
        char families[MAX_FAMILIES][128];
        char *series[MAX_SERIES];
        size_t n_families = 0, n_series = 0;
        const char *current = NULL, *p = text, *result = NULL;
        char help_name[128] = "";
        int line = 0;

        if (!*text || text[strlen(text) - 1] != '\n') {
                *ret_line = 0;
                return "text does not end with a newline";
        }

        while (*p && !result) {
                const char *eol = strchr(p, '\n');
                size_t len = (size_t) (eol - p), n;

                line++;
                if (len == 0) {
                        result = "empty line";
                } else if (strncmp(p, "# HELP ", 7) == 0) {
                        n = name_len(p + 7, true);
                        if (n == 0 || n >= sizeof(help_name) || p[7 + n] != ' ')
                                result = "HELP without a metric name and text";
                        else {
                                memcpy(help_name, p + 7, n);
                                help_name[n] = '\0';
                        }
                } else if (strncmp(p, "# TYPE ", 7) == 0) {
                        const char *type;

                        n = name_len(p + 7, true);
                        type = p + 7 + n + 1;
                        if (n == 0 || n >= sizeof(families[0]) || p[7 + n] != ' ')
                                result = "TYPE without a metric name";
                        else if (!((eol - type == 7 && strncmp(type, "counter", 7) == 0) ||
                                   (eol - type == 5 && strncmp(type, "gauge", 5) == 0) ||
                                   (eol - type == 7 && strncmp(type, "untyped", 7) == 0)))
                                result = "TYPE is not counter, gauge or untyped";
                        else if (strlen(help_name) != n || strncmp(help_name, p + 7, n) != 0)
                                result = "TYPE not preceded by the HELP of the same metric";
                        else {
                                for (size_t i = 0; i < n_families; i++)
                                        if (strlen(families[i]) == n && strncmp(families[i], p + 7, n) == 0)
                                                result = "family declared twice (families interleave)";
                                if (!result && n_families == MAX_FAMILIES)
                                        result = "too many families for the checker";
                                if (!result) {
                                        memcpy(families[n_families], p + 7, n);
                                        families[n_families][n] = '\0';
                                        current = families[n_families++];
                                }
                        }
                } else if (p[0] == '#') {
                        result = "comment other than HELP or TYPE";
                } else {
                        const char *q = p, *value;

                        n = name_len(q, true);
                        if (n == 0)
                                result = "sample does not start with a metric name";
                        else if (!current || strlen(current) != n || strncmp(current, q, n) != 0)
                                result = "sample outside its family (no TYPE, or another family's)";
                        q += n;
                        if (!result && *q == '{') {
                                q++;
                                while (!result && *q != '}') {
                                        n = name_len(q, false);
                                        if (n == 0 || q[n] != '=' || q[n + 1] != '"') {
                                                result = "label is not name=\"value\"";
                                                break;
                                        }
                                        q += n + 2;
                                        while (q < eol && *q != '"') {
                                                if (*q == '\\') {
                                                        if (q[1] != '\\' && q[1] != '"' && q[1] != 'n') {
                                                                result = "label value has an unknown escape";
                                                                break;
                                                        }
                                                        q++;
                                                }
                                                q++;
                                        }
                                        if (result)
                                                break;
                                        if (q >= eol) {
                                                result = "unterminated label value";
                                                break;
                                        }
                                        q++;
                                        if (*q == ',')
                                                q++;
                                        else if (*q != '}')
                                                result = "labels not separated by ','";
                                }
                                if (!result)
                                        q++;
                        }
                        if (!result && *q != ' ')
                                result = "no single space before the value";
                        value = q + 1;
                        if (!result && !is_float(value, (size_t) (eol - value)))
                                result = "value is not a float (or a timestamp follows)";
                        if (!result) {
                                for (size_t i = 0; i < n_series; i++)
                                        if (strlen(series[i]) == (size_t) (value - 1 - p) &&
                                            strncmp(series[i], p, (size_t) (value - 1 - p)) == 0)
                                                result = "series repeated";
                                if (!result && n_series == MAX_SERIES)
                                        result = "too many series for the checker";
                                if (!result)
                                        series[n_series++] = strndup(p, (size_t) (value - 1 - p));
                        }
                }
                p = eol + 1;
        }

        for (size_t i = 0; i < n_series; i++)
                free(series[i]);
        *ret_line = line;
        if (result) {
                snprintf(why, sizeof(why), "%s", result);
                return why;
        }
        return NULL;
}

static void assert_valid_exposition(const char *text) {
        int line = 0;
        const char *why = exposition_error(text, &line);

        cr_assert_null(why, "invalid exposition at line %d: %s\n%s", line, why, text);
}

Test(exposition_checker, rejects_malformed_text) {
        static const char *const bad[] = {
                "x 1",                                                  /* no final newline */
                "x 1\n",                                                /* no TYPE */
                "# HELP x h\n# TYPE x gauge\nx{a=\"1\"}  1\n",          /* two spaces */
                "# HELP x h\n# TYPE x gauge\nx{a=\"1} 1\n",             /* unterminated */
                "# HELP x h\n# TYPE x gauge\nx{a=\"\\t\"} 1\n",         /* bad escape */
                "# HELP x h\n# TYPE x gauge\nx{a=1} 1\n",               /* unquoted */
                "# HELP x h\n# TYPE x gauge\nx{0a=\"1\"} 1\n",          /* label name */
                "# HELP x h\n# TYPE x gauge\nx 1,5\n",                  /* decimal comma */
                "# HELP x h\n# TYPE x gauge\nx 1 1700000000\n",         /* timestamp */
                "# HELP x h\n# TYPE x gauge\nx 1\nx 2\n",               /* repeated series */
                "# HELP x h\n# TYPE x gauge\ny 1\n",                    /* wrong family */
                "# HELP x h\n# TYPE x gauge\nx 1\n# HELP y h\n# TYPE y gauge\ny 1\n"
                "# HELP x h\n# TYPE x gauge\nx{a=\"b\"} 1\n",           /* interleaved */
                "# HELP x h\n# TYPE x histogramm\nx 1\n",               /* type */
                "# HELP x h\n# TYPE y gauge\ny 1\n",                    /* HELP of another */
                "# HELP x h\n# TYPE x gauge\n\nx 1\n",                  /* empty line */
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int line;

                cr_expect_not_null(exposition_error(bad[i], &line), "accepted: %s", bad[i]);
        }
        assert_valid_exposition("# HELP x h\n# TYPE x gauge\nx{a=\"\\\\\\\"\\n\",b=\"\"} -1.5e+20\nx NaN\n");
}

/* ---- rendering ---------------------------------------------------------------------------- */

Test(metrics_render, renders_every_family_in_order_with_escaped_labels) {
        struct snapshot s = sample();
        _cleanup_free_ char *text = render(&s);

        cr_assert_str_eq(text, expected_sample);
}

Test(metrics_render, output_is_valid_exposition_syntax) {
        struct snapshot s = sample();
        _cleanup_free_ char *text = render(&s);

        assert_valid_exposition(text);
}

Test(metrics_render, shows_what_parking_is_worth_per_cpu_only_while_it_is_measured) {
        struct snapshot s = sample();
        struct snapshot_cpu cpus[] = { { .cpu = 0, .busy = 0.25, .idle = 0.75, .deep = 0.5 },
                                       { .cpu = 1, .parked = true, .busy = 0, .idle = 0.99, .deep = 0.97 },
                                       { .cpu = 2, .busy = -1, .idle = -1, .deep = -1 } };
        _cleanup_free_ char *off = render(&s);
        cr_expect_null(strstr(off, "tide_cpu_idle_residency"), "not measured: not shown");
        s.host.parking_on = s.host.parking_measured = true;
        s.cpus = cpus;
        s.n_cpus = ELEMENTSOF(cpus);
        s.host.parking_watts_saved = 2.5;
        s.host.parking_joules_saved = 900;
        s.host.parking_episodes_paid = 2;
        s.host.parking_episodes_not_paid = 1;
        _cleanup_free_ char *text = render(&s);
        assert_valid_exposition(text);
        cr_expect_not_null(strstr(text, "tide_cpu_idle_residency{cpu=\"1\",state=\"deep\"} 0.97\n"), "%s", text);
        cr_expect_not_null(strstr(text, "tide_cpu_idle_residency{cpu=\"0\",state=\"idle\"} 0.75\n"));
        cr_expect_null(strstr(text, "cpu=\"2\""), "a CPU not measured has no sample");
        cr_expect_not_null(strstr(text, "\ntide_parking_watts_saved_estimate 2.5\n"));
        cr_expect_not_null(strstr(text, "\ntide_parking_joules_saved_estimate 900\n"));
        cr_expect_not_null(strstr(text, "tide_parking_episodes_total{verdict=\"paid\"} 2\n"));
        cr_expect_not_null(strstr(text, "\ntide_parking_pays 1\n"));
}

Test(metrics_render, shows_an_unmanaged_domain_by_assigned_managed_active_and_rss_only) {
        struct snapshot s = sample();
        _cleanup_free_ char *text = render(&s);
        size_t n = 0;

        for (const char *p = strstr(text, L1); p; p = strstr(p + 1, L1))
                n++;
        cr_assert_eq(n, 4, "unmanaged domain has %zu series, expected 4:\n%s", n, text);
        cr_assert_not_null(strstr(text, "tide_domain_assigned_bytes{" L1 "} 1073741824\n"));
        cr_assert_not_null(strstr(text, "tide_domain_managed{" L1 "} 0\n"));
        cr_assert_not_null(strstr(text, "tide_domain_active{" L1 "} 1\n"));
        cr_assert_not_null(strstr(text, "tide_domain_rss_bytes{" L1 "} 1126400000\n"));
}

Test(metrics_render, leaves_out_demand_and_what_derives_from_it_without_demand) {
        struct snapshot s = sample();
        _cleanup_free_ char *text = NULL;

        domains[0].has_demand = false;
        domains[0].status = "unknown";
        text = render(&s);

        cr_assert_null(strstr(text, "tide_domain_demand_bytes"), "%s", text);
        cr_assert_null(strstr(text, "tide_domain_pressure_percent"), "%s", text);
        cr_assert_null(strstr(text, "tide_domain_available_buffer_percent"), "%s", text);
        cr_assert_not_null(strstr(text, "tide_domain_target_bytes{" L0 "} 1342177280\n"));
        cr_assert_not_null(strstr(text, "tide_domain_status{" L0 ",status=\"unknown\"} 1\n"));
        assert_valid_exposition(text);
}

Test(metrics_render, counts_a_status_outside_the_set_as_unknown) {
        struct snapshot s = sample();
        _cleanup_free_ char *text = NULL;

        domains[0].status = "parked"; /* a status a later tide may add */
        text = render(&s);

        cr_assert_not_null(strstr(text, "tide_domain_status{" L0 ",status=\"ok\"} 0\n"
                                        "tide_domain_status{" L0 ",status=\"low\"} 0\n"
                                        "tide_domain_status{" L0 ",status=\"warning\"} 0\n"
                                        "tide_domain_status{" L0 ",status=\"unknown\"} 1\n"
                                        "tide_domain_status{" L0 ",status=\"paging\"} 0\n"),
                           "%s", text);

        free(text);
        domains[0].status = NULL;
        text = render(&s);
        cr_assert_not_null(strstr(text, "tide_domain_status{" L0 ",status=\"unknown\"} 1\n"), "%s", text);
}

Test(metrics_render, tells_a_shut_off_managed_domain_from_an_unknown_status_by_active) {
        struct snapshot s = sample();
        _cleanup_free_ char *text = NULL;

        domains[0].active = false;
        domains[0].status = "off"; /* what manager.c sets; not a metrics status */
        text = render(&s);

        cr_assert_not_null(strstr(text, "tide_domain_status{" L0 ",status=\"unknown\"} 1\n"), "%s", text);
        cr_assert_not_null(strstr(text, "tide_domain_active{" L0 "} 0\n"), "%s", text);
        cr_assert_not_null(strstr(text, "tide_domain_active{" L1 "} 1\n"), "%s", text);
        assert_valid_exposition(text);
}

Test(metrics_render, shows_every_smart_paging_phase_and_leaves_out_an_unknown_one) {
        static const char *const phases[] = { "none", "paging", "releasing", "failed" };
        struct snapshot s = sample();

        for (size_t i = 0; i < ELEMENTSOF(phases); i++) {
                _cleanup_free_ char *text = NULL;
                char line[256];

                domains[0].paging = phases[i];
                text = render(&s);
                for (size_t j = 0; j < ELEMENTSOF(phases); j++) {
                        snprintf(line, sizeof(line), "tide_domain_paging_state{" L0 ",state=\"%s\"} %d\n", phases[j],
                                 i == j);
                        cr_expect_not_null(strstr(text, line), "%s missing:\n%s", line, text);
                }
                cr_expect_null(strstr(text, "tide_domain_paging_state{" L1), "unmanaged: no paging state");
        }

        for (size_t i = 0; i < 2; i++) {
                _cleanup_free_ char *text = NULL;

                domains[0].paging = i == 0 ? NULL : "swapping"; /* not known: no sample, no family */
                text = render(&s);
                cr_expect_null(strstr(text, "tide_domain_paging_state"), "%s", text);
                cr_expect_not_null(strstr(text, "tide_domain_paging_bytes{" L0 "} 536870912\n"));
                assert_valid_exposition(text);
        }
}

Test(metrics_render, leaves_out_balloon_state_when_it_is_not_known) {
        struct snapshot s = sample();
        _cleanup_free_ char *text = NULL;

        domains[0].balloon = NULL;
        text = render(&s);

        cr_assert_null(strstr(text, "tide_domain_balloon_state"), "%s", text);
        cr_assert_not_null(strstr(text, "tide_domain_balloon_actions_total{" L0 "} 7\n"));
        assert_valid_exposition(text);
}

Test(metrics_render, replaces_invalid_utf8_in_names_and_keeps_valid_utf8) {
        struct snapshot s = sample();
        _cleanup_free_ char *text = NULL;

        /* "é" stays; a lone continuation byte, a truncated sequence, an overlong '/' and a
         * surrogate each become U+FFFD. */
        strcpy(domains[0].name, "caf\xC3\xA9-\x80-\xE2\x82-\xC0\xAF-\xED\xA0\x80");
        text = render(&s);

        cr_assert_not_null(strstr(text, "tide_domain_managed{domain=\"caf\xC3\xA9-\xEF\xBF\xBD-\xEF\xBF\xBD\xEF\xBF\xBD-"
                                        "\xEF\xBF\xBD\xEF\xBF\xBD-\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\",uuid=\"" UUID0
                                        "\"} 1\n"),
                           "%s", text);
        assert_valid_exposition(text);
}

Test(metrics_render, reads_a_name_without_nul_only_up_to_its_field) {
        static const char after[] = "\",uuid=\"" UUID0 "\"} 1\n";
        struct snapshot s = sample();
        _cleanup_free_ char *text = NULL;
        const char *p;
        size_t n = 0;

        memset(domains[0].name, 'a', sizeof(domains[0].name));
        text = render(&s);

        p = strstr(text, "tide_domain_managed{domain=\"");
        cr_assert_not_null(p);
        p += strlen("tide_domain_managed{domain=\"");
        while (p[n] == 'a')
                n++;
        cr_assert_eq(n, sizeof(domains[0].name), "%zu 'a's", n);
        cr_assert_eq(strncmp(p + n, after, strlen(after)), 0, "%.60s", p + n);
        assert_valid_exposition(text);
}

Test(metrics_render, prints_doubles_shortest_and_special_values_by_name) {
        struct snapshot s = sample();
        _cleanup_free_ char *text = NULL;

        domains[0].pressure_pct = 100.0 / 3.0;
        domains[0].available_buffer_pct = -0.1;
        text = render(&s);
        cr_assert_not_null(strstr(text, "tide_domain_pressure_percent{" L0 "} 33.333333333333336\n"), "%s", text);
        cr_assert_not_null(strstr(text, "tide_domain_available_buffer_percent{" L0 "} -0.1\n"), "%s", text);
        free(text);

        domains[0].pressure_pct = NAN;
        domains[0].available_buffer_pct = -INFINITY;
        text = render(&s);
        cr_assert_not_null(strstr(text, "tide_domain_pressure_percent{" L0 "} NaN\n"), "%s", text);
        cr_assert_not_null(strstr(text, "tide_domain_available_buffer_percent{" L0 "} -Inf\n"), "%s", text);
        assert_valid_exposition(text);
        free(text);

        domains[0].available_buffer_pct = INFINITY;
        text = render(&s);
        cr_assert_not_null(strstr(text, "tide_domain_available_buffer_percent{" L0 "} +Inf\n"), "%s", text);
}

Test(metrics_render, prints_sizes_beyond_64_bit_bytes_as_floats) {
        struct snapshot s = sample();
        _cleanup_free_ char *text = NULL;

        domains[0].rss_kib = UINT64_MAX;
        text = render(&s);

        cr_assert_not_null(strstr(text, "tide_domain_rss_bytes{" L0 "} 1.8889465931478581e+22\n"), "%s", text);
        assert_valid_exposition(text);
}

Test(metrics_render, renders_only_host_families_without_domains) {
        struct snapshot s = sample();
        _cleanup_free_ char *text = NULL;

        s.domains = NULL;
        s.n_domains = 0;
        text = render(&s);

        cr_assert_null(strstr(text, "tide_domain_"), "%s", text);
        cr_assert_eq(strncmp(text, "# HELP tide_host_memory_total_bytes ", 36), 0, "%s", text);
        cr_assert_str_eq(text, strstr(expected_sample, "# HELP tide_host_memory_total_bytes "));
        assert_valid_exposition(text);
}

Test(metrics_render, refuses_bad_arguments_and_leaves_ret_untouched) {
        struct snapshot s = sample();
        char *text = (char *) "untouched";
        size_t len = 12345;

        cr_assert_eq(metrics_render(NULL, &text, &len), -EINVAL);
        cr_assert_eq(metrics_render(&s, NULL, &len), -EINVAL);
        cr_assert_eq(metrics_render(&s, &text, NULL), -EINVAL);
        s.domains = NULL;
        cr_assert_eq(metrics_render(&s, &text, &len), -EINVAL);
        cr_assert_str_eq(text, "untouched");
        cr_assert_eq(len, 12345);
}

/* ---- a host showing every feature: the exposition tests/contrib/check-dashboards.py reads --- */

/* A domain row as tided publishes it for a running managed VM; each case below changes what
 * its story needs. */
static struct snapshot_domain managed_row(const char *name, unsigned n, uint64_t assigned_mib, uint64_t demand_mib,
                                          const char *status) {
        struct snapshot_domain d = { 0 };

        snprintf(d.uuid, sizeof(d.uuid), "6f1c2a5e-0000-4000-8000-0000000001%02u", n);
        snprintf(d.name, sizeof(d.name), "%s", name);
        d.managed = d.active = d.dynamic = true;
        d.assigned_kib = assigned_mib * KIB_PER_MIB;
        d.has_demand = demand_mib > 0;
        d.demand_kib = demand_mib * KIB_PER_MIB;
        d.target_kib = d.assigned_kib;
        d.pressure_pct = d.has_demand ? (double) demand_mib / (double) assigned_mib * 100.0 : 0;
        d.available_buffer_pct =
                d.has_demand ? ((double) assigned_mib - (double) demand_mib) / ((double) demand_mib * 0.2) * 100.0 : 0;
        d.status = status;
        d.minimum_kib = 512 * KIB_PER_MIB;
        d.startup_kib = 1 * KIB_PER_GIB;
        d.maximum_kib = 4 * KIB_PER_GIB;
        d.buffer_pct = 20;
        d.weight = 50;
        d.agent = "connected";
        d.agent_demand = true;
        d.agent_report_age_ms = 400;
        d.balloon = "ok";
        d.balloon_actions = 12;
        d.rss_kib = d.assigned_kib + 180 * KIB_PER_MIB;
        d.paging = "none";
        return d;
}

/* Every domain family, every value of every enum label, parking on and measured. */
static struct snapshot every_feature(struct snapshot_domain *d, size_t *n, struct snapshot_cpu *cpus, size_t n_cpus) {
        struct snapshot s = { 0 };
        size_t i = 0;

        d[i++] = managed_row("web", 1, 1228, 1000, "ok");
        d[i] = managed_row("db", 2, 2048, 2300, "warning");  /* short of its demand */
        d[i].target_kib = 2760 * KIB_PER_MIB;
        d[i++].guest_oom_deflates = 3;
        d[i] = managed_row("batch", 3, 1100, 1000, "low");   /* its balloon does not move; its agent lies */
        d[i].target_kib = 900 * KIB_PER_MIB;
        d[i].balloon = "uncooperative";
        d[i].agent_demand = false;
        d[i].agent_rejected = 17;
        d[i].agent_rate_dropped = 240;
        snprintf(d[i++].agent_error, sizeof(d[0].agent_error),
                 "reports 3000000 KiB in use but QEMU has only 1300000 KiB resident");
        d[i] = managed_row("build-7", 4, 640, 900, "paging"); /* rebooted on a short host */
        d[i].paging = "paging";
        d[i].paging_kib = 416 * KIB_PER_MIB;
        d[i++].paging_used_kib = 230 * KIB_PER_MIB;
        d[i] = managed_row("build-8", 5, 1024, 700, "paging"); /* came down; its file waits its turn */
        d[i].paging = "releasing";
        d[i].paging_kib = 288 * KIB_PER_MIB;
        d[i++].paging_used_kib = 12 * KIB_PER_MIB;
        d[i] = managed_row("ci-runner", 6, 1024, 0, "unknown"); /* booting short: no file could be made */
        d[i].paging = "failed";
        d[i].balloon = "inactive";
        d[i].agent = "waiting";
        d[i++].agent_demand = false;
        d[i] = managed_row("qa \"sandbox\"", 7, 800, 0, "unknown"); /* its agent went away */
        d[i].agent = "gone";
        d[i++].agent_demand = false;
        d[i] = managed_row("mail", 8, 1536, 1200, "ok");      /* no agent: balloon statistics */
        d[i].agent = "disconnected";
        d[i++].agent_demand = false;
        d[i] = managed_row("old-app", 9, 700, 500, "ok");     /* no agent channel at all */
        d[i].agent = "none";
        d[i++].agent_demand = false;
        d[i] = managed_row("reporting", 10, 1024, 0, "off");  /* shut off */
        d[i].active = false;
        d[i].agent = "none";
        d[i].rss_kib = 0;
        d[i++].agent_demand = false;
        d[i] = managed_row("legacy", 11, 2048, 0, "unmanaged");
        d[i].managed = false;
        d[i].status = "unmanaged";
        d[i++].agent = "none";

        s.host = (struct snapshot_host){
                .total_kib = 32 * KIB_PER_GIB,
                .available_kib = 9 * KIB_PER_GIB,
                .usable_kib = 30 * KIB_PER_GIB,
                .reserve_kib = 1536 * KIB_PER_MIB,
                .capacity_kib = 28 * KIB_PER_GIB,
                .assigned_kib = 12 * KIB_PER_GIB,
                .target_kib = 11 * KIB_PER_GIB,
                .short_host = true,
                .overcommitted = true,
                .paging_files = 2,
                .unfunded_kib = 256 * KIB_PER_MIB,
                .tick_usec = 2350,
                .ticks = 86400,
                .uptime_usec = 86400 * USEC_PER_SEC + 120000,
                .parking_on = true,
                .parking_reason = "load fits fewer cores",
                .parked_cpus = 2,
                .unparked_cpus = 2,
                .parking_needed_cpus = 1,
                .parking_reversals = 3,
                .parking_load_cpus = 0.6,
                .parking_measured = true,
                .parking_has_deep = true,
                .parking_verdict = "paid",
                .parking_deep_before = 0.2,
                .parking_deep_during = 0.9,
                .parking_watts_saved = 5.5,
                .parking_joules_saved = 12400,
                .parking_episodes_paid = 4,
                .parking_episodes_not_paid = 1,
                .parking_episodes_unknown = 2,
        };
        snprintf(s.host.parked, sizeof(s.host.parked), "2-3");
        for (size_t c = 0; c < n_cpus; c++)
                cpus[c] = (struct snapshot_cpu){ .cpu = (unsigned) c, .parked = c >= 2, .busy = c >= 2 ? 0.01 : 0.3,
                                                 .idle = c >= 2 ? 0.99 : 0.7, .deep = c >= 2 ? 0.95 : 0.2 };
        s.domains = d;
        s.n_domains = *n = i;
        s.cpus = cpus;
        s.n_cpus = n_cpus;
        return s;
}

/* The families daemon/metrics.c can render: its table rows ({ "tide_x", "gauge", ...) and the
 * families it writes by hand ("# TYPE tide_x ..."). Read from the source (the tests run from the
 * source root), so a family added there and not shown by every_feature() fails here. */
static size_t families_in_source(char names[][128], size_t max) {
        _cleanup_free_ char *src = NULL;
        size_t len = 0, n = 0;
        FILE *f = fopen("daemon/metrics.c", "re");

        cr_assert_not_null(f, "daemon/metrics.c: %m (run from the source root)");
        cr_assert_gt(getdelim(&src, &len, '\0', f), 0);
        fclose(f);
        for (const char *p = src; (p = strstr(p, "tide_")); p++) {
                size_t l = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
                bool row = p[-1] == '"' && p[-2] == ' ' && p[-3] == '{' && p[l] == '"';
                bool typed = p - src >= 7 && strncmp(p - 7, "# TYPE ", 7) == 0;

                if (!row && !typed)
                        continue;
                cr_assert_lt(l, 128);
                bool seen = false;
                for (size_t i = 0; i < n; i++)
                        seen |= strlen(names[i]) == l && strncmp(names[i], p, l) == 0;
                if (seen)
                        continue;
                cr_assert_lt(n, max, "more families than %zu", max);
                memcpy(names[n], p, l);
                names[n++][l] = '\0';
        }
        return n;
}

Test(metrics_exposition, shows_every_family_and_every_state_and_writes_it_for_the_dashboard_check) {
        struct snapshot_domain d[16];
        struct snapshot_cpu cpus[4];
        size_t n_domains = 0, n_families;
        struct snapshot s = every_feature(d, &n_domains, cpus, ELEMENTSOF(cpus));
        _cleanup_free_ char *text = render(&s);
        char families[64][128], needle[192];
        const char *out = getenv("TIDE_METRICS_EXPOSITION");
        static const char *const states[] = {
                "status=\"ok\"} 1",         "status=\"low\"} 1",          "status=\"warning\"} 1",
                "status=\"unknown\"} 1",    "status=\"paging\"} 1",       "balloon_state{domain=\"batch\"",
                "state=\"inactive\"} 1",    "state=\"uncooperative\"} 1", "paging_state{domain=\"build-7\"",
                "state=\"releasing\"} 1",   "state=\"failed\"} 1",        "state=\"connected\"} 1",
                "state=\"waiting\"} 1",     "state=\"gone\"} 1",          "state=\"disconnected\"} 1",
                "state=\"none\"} 1",        "tide_domain_active{domain=\"reporting\"",
                "verdict=\"did_not_pay\"}", "tide_cpu_idle_residency{cpu=\"3\",state=\"deep\"} 0.95\n",
        };

        assert_valid_exposition(text);
        cr_assert_eq(n_domains, 11);

        n_families = families_in_source(families, ELEMENTSOF(families));
        cr_assert_gt(n_families, 30, "only %zu families found in daemon/metrics.c", n_families);
        for (size_t i = 0; i < n_families; i++) {
                snprintf(needle, sizeof(needle), "\n# TYPE %s ", families[i]);
                cr_expect_not_null(strstr(text, needle), "family %s (daemon/metrics.c) not shown: extend every_feature()",
                                   families[i]);
        }
        for (size_t i = 0; i < ELEMENTSOF(states); i++)
                cr_expect_not_null(strstr(text, states[i]), "no %s in:\n%s", states[i], text);

        /* ctest's fixture for tests/contrib/check-dashboards.py sets where it goes. */
        if (out && *out) {
                FILE *f = fopen(out, "we");

                cr_assert_not_null(f, "%s: %m", out);
                cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text), "%s: %m", out);
                cr_assert_eq(fclose(f), 0, "%s: %m", out);
        }
}

/* ---- snapshot ----------------------------------------------------------------------------- */

Test(snapshot, done_empties_and_accepts_null) {
        struct snapshot s = { .domains = calloc(2, sizeof(struct snapshot_domain)), .n_domains = 2 };

        cr_assert_not_null(s.domains);
        snapshot_done(&s);
        cr_assert_null(s.domains);
        cr_assert_eq(s.n_domains, 0);
        snapshot_done(&s);
        snapshot_done(NULL);
}

/* ---- the server --------------------------------------------------------------------------- */

struct reply {
        int status;
        char *head; /* status line and headers, owned */
        char *body; /* points into head's allocation */
        size_t body_len;
};

static void reply_done(struct reply *r) {
        free(r->head);
        memset(r, 0, sizeof(*r));
}

static int connect_to(int family, int port) {
        struct sockaddr_storage sa = { 0 };
        socklen_t len;
        struct timeval tv = { .tv_sec = 5 };
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
        if (family == AF_INET) {
                struct sockaddr_in *sin = (struct sockaddr_in *) &sa;

                sin->sin_family = AF_INET;
                sin->sin_port = htons((uint16_t) port);
                sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                len = sizeof(*sin);
        } else {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &sa;

                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons((uint16_t) port);
                sin6->sin6_addr = in6addr_loopback;
                len = sizeof(*sin6);
        }
        /* A server that never answers fails the test instead of hanging it. */
        cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        cr_assert_eq(connect(fd, (struct sockaddr *) &sa, len), 0, "connect to port %d: %s", port, strerror(errno));
        return fd;
}

/* Sends `request` as is and reads until the server closes (HTTP/1.0: one request per
 * connection). */
static struct reply http_family(int family, int port, const char *request) {
        struct reply r = { 0 };
        size_t size = 4096, len = 0;
        char *buf = malloc(size), *sep;
        int fd = connect_to(family, port);

        cr_assert_not_null(buf);
        cr_assert_eq(write(fd, request, strlen(request)), (ssize_t) strlen(request));
        for (;;) {
                ssize_t n;

                if (len + 1 == size) {
                        size *= 2;
                        buf = realloc(buf, size);
                        cr_assert_not_null(buf);
                }
                n = read(fd, buf + len, size - 1 - len);
                cr_assert_geq(n, 0, "read: %s", strerror(errno));
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        close(fd);
        buf[len] = '\0';

        cr_assert_eq(strncmp(buf, "HTTP/1.", 7), 0, "not an HTTP reply: %s", buf);
        r.status = atoi(buf + 9);
        sep = strstr(buf, "\r\n\r\n");
        cr_assert_not_null(sep, "no end of headers: %s", buf);
        sep[2] = '\0'; /* head keeps its last CRLF, for header lookups */
        r.head = buf;
        r.body = sep + 4;
        r.body_len = len - (size_t) (r.body - buf);
        return r;
}

static struct reply http(int port, const char *request) {
        return http_family(AF_INET, port, request);
}

static bool has_header(const struct reply *r, const char *line) {
        char needle[256];

        snprintf(needle, sizeof(needle), "\r\n%s\r\n", line);
        return strcasestr(r->head, needle) != NULL;
}

static struct metrics_server *start(const char *address) {
        struct metrics_server *server = NULL;
        char err[256] = "";
        int r = metrics_server_start(address, &server, err, sizeof(err));

        cr_assert_eq(r, 0, "metrics_server_start(%s) = %d: %s", address, r, err);
        cr_assert_not_null(server);
        cr_assert_gt(metrics_server_port(server), 0);
        return server;
}

#define GET_METRICS "GET /metrics HTTP/1.0\r\n\r\n"

Test(metrics_server, answers_503_before_the_first_publish) {
        struct metrics_server *server = start("127.0.0.1:0");
        struct reply r = http(metrics_server_port(server), GET_METRICS);

        cr_assert_eq(r.status, 503, "%s", r.head);
        cr_assert_str_eq(r.body, "no tick yet\n");
        reply_done(&r);
        server = metrics_server_stop(server);
        cr_assert_null(server);
}

Test(metrics_server, serves_the_published_text) {
        struct metrics_server *server = start("127.0.0.1:0");
        struct snapshot s = sample();
        struct reply r;

        cr_assert_eq(metrics_publish(server, &s), 0);
        r = http(metrics_server_port(server), GET_METRICS);

        cr_assert_eq(r.status, 200, "%s", r.head);
        cr_assert(has_header(&r, "Content-Type: text/plain; version=0.0.4; charset=utf-8"), "%s", r.head);
        cr_assert_not_null(strstr(r.body, "\ntide_ticks_total 42\n"), "%s", r.body);
        cr_assert_eq(r.body_len, strlen(expected_sample));
        cr_assert_str_eq(r.body, expected_sample);
        reply_done(&r);
        metrics_server_stop(server);
}

Test(metrics_server, serves_the_latest_publish) {
        struct metrics_server *server = start("127.0.0.1:0");
        struct snapshot s = sample();
        struct reply r;

        cr_assert_eq(metrics_publish(server, &s), 0);
        s.host.ticks = 43;
        cr_assert_eq(metrics_publish(server, &s), 0);
        r = http(metrics_server_port(server), GET_METRICS);

        cr_assert_eq(r.status, 200);
        cr_assert_not_null(strstr(r.body, "\ntide_ticks_total 43\n"), "%s", r.body);
        reply_done(&r);
        metrics_server_stop(server);
}

Test(metrics_server, answers_head_without_a_body) {
        struct metrics_server *server = start("127.0.0.1:0");
        struct snapshot s = sample();
        struct reply r;

        cr_assert_eq(metrics_publish(server, &s), 0);
        r = http(metrics_server_port(server), "HEAD /metrics HTTP/1.0\r\n\r\n");

        cr_assert_eq(r.status, 200, "%s", r.head);
        cr_assert(has_header(&r, "Content-Type: text/plain; version=0.0.4; charset=utf-8"), "%s", r.head);
        cr_assert_eq(r.body_len, 0);
        reply_done(&r);
        metrics_server_stop(server);
}

Test(metrics_server, answers_404_for_other_paths) {
        struct metrics_server *server = start("127.0.0.1:0");
        struct snapshot s = sample();
        static const char *const requests[] = {
                "GET / HTTP/1.0\r\n\r\n",
                "GET /metric HTTP/1.0\r\n\r\n",
                "GET /metrics/ HTTP/1.0\r\n\r\n",
                "GET /metricsx HTTP/1.0\r\n\r\n",
        };

        cr_assert_eq(metrics_publish(server, &s), 0);
        for (size_t i = 0; i < ELEMENTSOF(requests); i++) {
                struct reply r = http(metrics_server_port(server), requests[i]);

                cr_assert_eq(r.status, 404, "%s -> %s", requests[i], r.head);
                reply_done(&r);
        }
        metrics_server_stop(server);
}

Test(metrics_server, answers_405_with_allow_for_other_methods) {
        struct metrics_server *server = start("127.0.0.1:0");
        static const char *const requests[] = {
                "POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
                "PUT /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
                "DELETE /metrics HTTP/1.0\r\n\r\n",
        };

        for (size_t i = 0; i < ELEMENTSOF(requests); i++) {
                struct reply r = http(metrics_server_port(server), requests[i]);

                cr_assert_eq(r.status, 405, "%s -> %s", requests[i], r.head);
                cr_assert(has_header(&r, "Allow: GET, HEAD"), "%s", r.head);
                reply_done(&r);
        }
        metrics_server_stop(server);
}

/* Reads exactly one reply (it must have a Content-Length) from a connection that stays open,
 * into buf; returns its status. */
static int read_one_reply(int fd, char *buf, size_t size) {
        size_t len = 0, want = 0;
        const char *sep = NULL, *cl;

        for (;;) {
                ssize_t n = read(fd, buf + len, size - 1 - len);

                cr_assert_gt(n, 0, "connection closed or timed out after %zu bytes", len);
                len += (size_t) n;
                buf[len] = '\0';
                if (!sep && (sep = strstr(buf, "\r\n\r\n"))) {
                        cl = strcasestr(buf, "\r\nContent-Length: ");
                        cr_assert(cl && cl < sep, "no Content-Length: %s", buf);
                        want = (size_t) (sep + 4 - buf) + strtoul(cl + 18, NULL, 10);
                        cr_assert_lt(want, size);
                }
                if (sep && len >= want)
                        break;
        }
        cr_assert_eq(len, want, "more than one reply");
        return atoi(buf + 9);
}

Test(metrics_server, keeps_the_connection_open_between_scrapes) {
        static const char request[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        struct metrics_server *server = start("127.0.0.1:0");
        struct snapshot s = sample();
        char buf[16384];
        int fd;

        cr_assert_eq(metrics_publish(server, &s), 0);
        fd = connect_to(AF_INET, metrics_server_port(server));

        cr_assert_eq(write(fd, request, strlen(request)), (ssize_t) strlen(request));
        cr_assert_eq(read_one_reply(fd, buf, sizeof(buf)), 200, "%s", buf);
        cr_assert_not_null(strstr(buf, "\ntide_ticks_total 42\n"), "%s", buf);

        s.host.ticks = 43;
        cr_assert_eq(metrics_publish(server, &s), 0);
        cr_assert_eq(write(fd, request, strlen(request)), (ssize_t) strlen(request));
        cr_assert_eq(read_one_reply(fd, buf, sizeof(buf)), 200, "%s", buf);
        cr_assert_not_null(strstr(buf, "\ntide_ticks_total 43\n"), "%s", buf);

        close(fd);
        metrics_server_stop(server);
}

Test(metrics_server, keeps_serving_while_a_client_stays_silent) {
        struct metrics_server *server = start("127.0.0.1:0");
        struct snapshot s = sample();
        int idle = connect_to(AF_INET, metrics_server_port(server));
        struct reply r;

        cr_assert_eq(metrics_publish(server, &s), 0);
        r = http(metrics_server_port(server), GET_METRICS);
        cr_assert_eq(r.status, 200);
        reply_done(&r);
        close(idle);
        metrics_server_stop(server);
}

Test(metrics_server, listens_on_ipv6_loopback) {
        struct metrics_server *server = NULL;
        char err[256] = "";
        struct reply r;
        int ret = metrics_server_start("[::1]:0", &server, err, sizeof(err));

        if (ret == -EADDRNOTAVAIL || ret == -EAFNOSUPPORT)
                cr_skip_test("no IPv6 loopback here: %s", err);
        cr_assert_eq(ret, 0, "%s", err);
        r = http_family(AF_INET6, metrics_server_port(server), GET_METRICS);
        cr_assert_eq(r.status, 503);
        reply_done(&r);
        metrics_server_stop(server);
}

Test(metrics_server, takes_localhost_as_ipv4_loopback) {
        struct metrics_server *server = start("localhost:0");
        struct reply r = http(metrics_server_port(server), GET_METRICS);

        cr_assert_eq(r.status, 503);
        reply_done(&r);
        metrics_server_stop(server);
}

Test(metrics_server, refuses_an_address_in_use_with_a_message) {
        struct metrics_server *first = start("127.0.0.1:0"), *second = (struct metrics_server *) &first;
        char address[64], err[256] = "";
        int r;

        snprintf(address, sizeof(address), "127.0.0.1:%d", metrics_server_port(first));
        r = metrics_server_start(address, &second, err, sizeof(err));

        cr_assert_eq(r, -EADDRINUSE, "%d: %s", r, err);
        cr_assert_eq(second, (struct metrics_server *) &first, "ret written on failure");
        cr_assert_not_null(strstr(err, address), "%s", err);
        cr_assert_not_null(strstr(err, "Address already in use"), "%s", err);
        metrics_server_stop(first);
}

Test(metrics_server, gives_the_port_back_on_stop) {
        struct metrics_server *server = start("127.0.0.1:0");
        char address[64];

        snprintf(address, sizeof(address), "127.0.0.1:%d", metrics_server_port(server));
        server = metrics_server_stop(server);
        server = start(address);
        metrics_server_stop(server);
}

Test(metrics_server, refuses_malformed_addresses_with_a_message) {
        static const struct {
                const char *address, *message;
        } cases[] = {
                { "", "invalid metrics address \"\": expected HOST:PORT" },
                { "127.0.0.1", "missing ':PORT'" },
                { "127.0.0.1:", "port must be a number from 0 to 65535" },
                { "127.0.0.1:65536", "port must be a number from 0 to 65535" },
                { "127.0.0.1:-1", "port must be a number from 0 to 65535" },
                { "127.0.0.1: 80", "port must be a number from 0 to 65535" },
                { "127.0.0.1:9177x", "port must be a number from 0 to 65535" },
                { "127.0.0.1:0000009177", "port must be a number from 0 to 65535" },
                { ":9177", "missing host" },
                { "127.1:9177", "host must be a numeric IPv4 address" },
                { "example.com:9177", "host must be a numeric IPv4 address" },
                { "::1:9177", "an IPv6 address goes in brackets" },
                { "[::1]", "missing ':PORT' after ']'" },
                { "[::1:9177", "missing ']'" },
                { "[]:9177", "missing host" },
                { "[localhost]:9177", "\"localhost\" is not a numeric IPv6 address" },
                { "[127.0.0.1]:9177", "\"127.0.0.1\" is not a numeric IPv6 address" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct metrics_server *server = NULL;
                char err[256] = "";
                int r = metrics_server_start(cases[i].address, &server, err, sizeof(err));

                cr_expect_eq(r, -EINVAL, "\"%s\": %d (%s)", cases[i].address, r, err);
                cr_expect_null(server, "\"%s\": ret written on failure", cases[i].address);
                cr_expect_not_null(strstr(err, cases[i].message), "\"%s\": message \"%s\", expected \"%s\"",
                                   cases[i].address, err, cases[i].message);
        }
        cr_assert_eq(metrics_server_start(NULL, &(struct metrics_server *) { NULL }, NULL, 0), -EINVAL);
}

Test(metrics_server, stop_and_publish_accept_null) {
        struct snapshot s = sample();

        cr_assert_null(metrics_server_stop(NULL));
        cr_assert_eq(metrics_publish(NULL, &s), -EINVAL);
        cr_assert_eq(metrics_server_port(NULL), -EINVAL);
}
