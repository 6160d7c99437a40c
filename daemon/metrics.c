/* microhttpd.h expects the socket types to be declared before it. */
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <microhttpd.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "daemon/metrics.h"

/* ---- rendering ---------------------------------------------------------------------------- */

/* Which domains a family has a sample for. Unmanaged domains get only what tide can say without
 * a policy (what they hold, what QEMU uses); the demand-derived families need a demand. */
enum domain_scope {
        SCOPE_ALL,
        SCOPE_MANAGED,
        SCOPE_DEMAND, /* managed and has_demand */
};

enum value_kind {
        VALUE_BYTES,   /* uint64_t KiB, printed as bytes */
        VALUE_PERCENT, /* double */
        VALUE_COUNT,   /* uint64_t */
        VALUE_BOOL,    /* bool, printed as 0/1 */
        VALUE_SECONDS, /* uint64_t microseconds, printed as seconds */
        VALUE_ENUM,    /* const char *, one series per value of `values` */
};

/* A family is described by the offset of the field it reads, so that adding one is a table row
 * and every family goes through the same (tested) printing and escaping code. */
struct family {
        const char *name, *type, *help;
        enum value_kind kind;
        size_t offset;
        enum domain_scope scope;   /* domain families only */
        const char *label;         /* VALUE_ENUM: name of the label carrying the value */
        const char *const *values; /* VALUE_ENUM: NULL-terminated */
        const char *fallback;      /* VALUE_ENUM: counted when the field is outside `values`;
                                    * NULL: such a domain has no sample in this family */
};

static const char *const status_values[] = { "ok", "low", "warning", "unknown", "paging", NULL };
static const char *const balloon_values[] = { "ok", "inactive", "uncooperative", NULL };
static const char *const agent_values[] = { "none", "disconnected", "waiting", "connected", "gone", NULL };
static const char *const paging_values[] = { "none", "paging", "releasing", "failed", NULL };

#define DOMAIN_FIELD(f) offsetof(struct snapshot_domain, f)
#define HOST_FIELD(f) offsetof(struct snapshot_host, f)

static const struct family domain_families[] = {
        { "tide_domain_assigned_bytes", "gauge",
          "Memory the domain holds now (balloon actual plus plugged virtio-mem).",
          VALUE_BYTES, DOMAIN_FIELD(assigned_kib), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_domain_demand_bytes", "gauge",
          "Memory the guest needs now, without buffer.",
          VALUE_BYTES, DOMAIN_FIELD(demand_kib), SCOPE_DEMAND, NULL, NULL, NULL },
        { "tide_domain_target_bytes", "gauge",
          "Memory tide is moving the domain to.",
          VALUE_BYTES, DOMAIN_FIELD(target_kib), SCOPE_MANAGED, NULL, NULL, NULL },
        { "tide_domain_minimum_bytes", "gauge",
          "Policy minimum: the floor after boot.",
          VALUE_BYTES, DOMAIN_FIELD(minimum_kib), SCOPE_MANAGED, NULL, NULL, NULL },
        { "tide_domain_maximum_bytes", "gauge",
          "Policy maximum: the ceiling.",
          VALUE_BYTES, DOMAIN_FIELD(maximum_kib), SCOPE_MANAGED, NULL, NULL, NULL },
        { "tide_domain_startup_bytes", "gauge",
          "Policy startup: memory the domain gets at every (re)boot.",
          VALUE_BYTES, DOMAIN_FIELD(startup_kib), SCOPE_MANAGED, NULL, NULL, NULL },
        { "tide_domain_pressure_percent", "gauge",
          "Demand / assigned x 100.",
          VALUE_PERCENT, DOMAIN_FIELD(pressure_pct), SCOPE_DEMAND, NULL, NULL, NULL },
        { "tide_domain_available_buffer_percent", "gauge",
          "(assigned - demand) / (demand x buffer / 100) x 100; negative when assigned < demand.",
          VALUE_PERCENT, DOMAIN_FIELD(available_buffer_pct), SCOPE_DEMAND, NULL, NULL, NULL },
        { "tide_domain_status", "gauge",
          "Memory status: 1 for the current one, 0 for the others.",
          VALUE_ENUM, DOMAIN_FIELD(status), SCOPE_MANAGED, "status", status_values, "unknown" },
        { "tide_domain_managed", "gauge",
          "1 when the domain has a tide policy, 0 when tide leaves it alone.",
          VALUE_BOOL, DOMAIN_FIELD(managed), SCOPE_ALL, NULL, NULL, NULL },
        /* A managed domain that is shut off reads status "unknown" (its stats say "off"): this
         * tells the two apart. */
        { "tide_domain_active", "gauge",
          "1 when the domain is running, 0 when it is shut off.",
          VALUE_BOOL, DOMAIN_FIELD(active), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_domain_balloon_actions_total", "counter",
          "Balloon and virtio-mem changes tided made since it started.",
          VALUE_COUNT, DOMAIN_FIELD(balloon_actions), SCOPE_MANAGED, NULL, NULL, NULL },
        { "tide_domain_guest_oom_deflates_total", "counter",
          "Samples in which the balloon rose above tided's target on the guest's side (with deflate-on-oom: the guest ran out of memory).",
          VALUE_COUNT, DOMAIN_FIELD(guest_oom_deflates), SCOPE_MANAGED, NULL, NULL, NULL },
        { "tide_domain_balloon_state", "gauge",
          "Balloon progress: 1 for the current state, 0 for the others.",
          VALUE_ENUM, DOMAIN_FIELD(balloon), SCOPE_MANAGED, "state", balloon_values, NULL },
        { "tide_domain_rss_bytes", "gauge",
          "Resident memory of the domain's QEMU process on the host.",
          VALUE_BYTES, DOMAIN_FIELD(rss_kib), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_domain_paging_bytes", "gauge",
          "Size of the domain's Smart Paging file while it has one, else 0.",
          VALUE_BYTES, DOMAIN_FIELD(paging_kib), SCOPE_MANAGED, NULL, NULL, NULL },
        { "tide_domain_paging_used_bytes", "gauge",
          "How much of the domain's Smart Paging file is in use (/proc/swaps).",
          VALUE_BYTES, DOMAIN_FIELD(paging_used_kib), SCOPE_MANAGED, NULL, NULL, NULL },
        /* "failed" (it should have paged and could not: it boots short) shows in no status. */
        { "tide_domain_paging_state", "gauge",
          "Smart Paging: 1 for the current phase (releasing: its file is being switched off or waits "
          "its turn; failed: it should have paged and could not), 0 for the others.",
          VALUE_ENUM, DOMAIN_FIELD(paging), SCOPE_MANAGED, "state", paging_values, NULL },
        { "tide_domain_agent_state", "gauge",
          "tide-agent channel: 1 for the current state, 0 for the others.",
          VALUE_ENUM, DOMAIN_FIELD(agent), SCOPE_MANAGED, "state", agent_values, NULL },
        { "tide_domain_agent_rejected_total", "counter",
          "tide-agent messages rejected (malformed, oversized, out of range, contradicting the host).",
          VALUE_COUNT, DOMAIN_FIELD(agent_rejected), SCOPE_MANAGED, NULL, NULL, NULL },
        { "tide_domain_agent_rate_dropped_total", "counter",
          "tide-agent messages dropped over the rate limit (5 a second).",
          VALUE_COUNT, DOMAIN_FIELD(agent_rate_dropped), SCOPE_MANAGED, NULL, NULL, NULL },
        { "tide_domain_demand_from_agent", "gauge",
          "1 when this tick's demand came from tide-agent, 0 when from balloon statistics.",
          VALUE_BOOL, DOMAIN_FIELD(agent_demand), SCOPE_DEMAND, NULL, NULL, NULL },
};

static const struct family host_families[] = {
        { "tide_host_memory_total_bytes", "gauge", "Host MemTotal.",
          VALUE_BYTES, HOST_FIELD(total_kib), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_host_memory_available_bytes", "gauge", "Host MemAvailable.",
          VALUE_BYTES, HOST_FIELD(available_kib), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_host_capacity_bytes", "gauge", "Memory domains may hold: host usable minus reserve.",
          VALUE_BYTES, HOST_FIELD(capacity_kib), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_host_reserve_bytes", "gauge", "Memory kept for the host itself.",
          VALUE_BYTES, HOST_FIELD(reserve_kib), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_host_assigned_bytes", "gauge", "Memory the domains hold now, summed.",
          VALUE_BYTES, HOST_FIELD(assigned_kib), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_host_target_bytes", "gauge", "Targets of the managed domains, summed.",
          VALUE_BYTES, HOST_FIELD(target_kib), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_host_short", "gauge", "1 when what the domains desire does not fit and weights decide.",
          VALUE_BOOL, HOST_FIELD(short_host), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_host_overcommitted", "gauge", "1 when even the domains' minimums do not fit.",
          VALUE_BOOL, HOST_FIELD(overcommitted), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_paging_files", "gauge", "Smart Paging files on (or being switched off).",
          VALUE_COUNT, HOST_FIELD(paging_files), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_cpu_parked", "gauge", "CPUs core parking keeps the floating VMs off now.",
          VALUE_COUNT, HOST_FIELD(parked_cpus), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_parking_reversals_total", "counter", "Unparks that undid a park (load rose after one).",
          VALUE_COUNT, HOST_FIELD(parking_reversals), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_host_unfunded_bytes", "gauge",
          "Startup memory of starting domains that neither RAM nor a Smart Paging file covers.",
          VALUE_BYTES, HOST_FIELD(unfunded_kib), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_tick_duration_seconds", "gauge", "How long the last tick took.",
          VALUE_SECONDS, HOST_FIELD(tick_usec), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_ticks_total", "counter", "Ticks since tided started.",
          VALUE_COUNT, HOST_FIELD(ticks), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_uptime_seconds", "gauge", "Time since tided started.",
          VALUE_SECONDS, HOST_FIELD(uptime_usec), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_libvirt_connected", "gauge",
          "1 while tided is connected to libvirt; 0 while it waits for it (every VM held where it is).",
          VALUE_BOOL, HOST_FIELD(libvirt_connected), SCOPE_ALL, NULL, NULL, NULL },
        { "tide_libvirt_disconnects_total", "counter", "Times tided lost its libvirt connection since it started.",
          VALUE_COUNT, HOST_FIELD(libvirt_disconnects), SCOPE_ALL, NULL, NULL, NULL },
};

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 when it is not one. Overlong
 * forms, surrogates and code points above U+10FFFF are invalid, as the Prometheus parser
 * (Go's utf8.ValidString) has it. */
static size_t utf8_sequence_len(const unsigned char *p, size_t n) {
        unsigned char lo = 0x80, hi = 0xBF;
        size_t len, i;

        if (p[0] < 0x80)
                return 1;
        if (p[0] >= 0xC2 && p[0] <= 0xDF)
                len = 2;
        else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
                len = 3;
                if (p[0] == 0xE0)
                        lo = 0xA0; /* overlong */
                else if (p[0] == 0xED)
                        hi = 0x9F; /* surrogates */
        } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
                len = 4;
                if (p[0] == 0xF0)
                        lo = 0x90; /* overlong */
                else if (p[0] == 0xF4)
                        hi = 0x8F; /* above U+10FFFF */
        } else
                return 0;

        if (n < len || p[1] < lo || p[1] > hi)
                return 0;
        for (i = 2; i < len; i++)
                if (p[i] < 0x80 || p[i] > 0xBF)
                        return 0;
        return len;
}

/* A label value: the field is read up to its size even if a writer forgot the NUL. */
static void put_label_value(FILE *f, const char *s, size_t max) {
        const unsigned char *p = (const unsigned char *) s;
        size_t n = strnlen(s, max), i = 0;

        fputc('"', f);
        while (i < n) {
                size_t len = utf8_sequence_len(p + i, n - i);

                if (len == 0) {
                        fputs("\xEF\xBF\xBD", f); /* U+FFFD REPLACEMENT CHARACTER */
                        i++;
                        continue;
                }
                if (p[i] == '\\')
                        fputs("\\\\", f);
                else if (p[i] == '"')
                        fputs("\\\"", f);
                else if (p[i] == '\n')
                        fputs("\\n", f);
                else
                        fwrite(p + i, 1, len, f);
                i += len;
        }
        fputc('"', f);
}

static void put_domain_labels(FILE *f, const struct snapshot_domain *d) {
        fputs("domain=", f);
        put_label_value(f, d->name, sizeof(d->name));
        fputs(",uuid=", f);
        put_label_value(f, d->uuid, sizeof(d->uuid));
}

/* Go's ParseFloat reads what we print: the shortest of %.15g / %.17g that reads back exactly
 * (so 12.5 stays "12.5", not "12.500000000000000"), and NaN / +Inf / -Inf by their names. */
static void put_double(FILE *f, double v) {
        char buf[32];

        if (isnan(v)) {
                fputs("NaN", f);
                return;
        }
        if (isinf(v)) {
                fputs(v > 0 ? "+Inf" : "-Inf", f);
                return;
        }
        snprintf(buf, sizeof(buf), "%.15g", v);
        if (strtod(buf, NULL) != v)
                snprintf(buf, sizeof(buf), "%.17g", v);
        fputs(buf, f);
}

static void put_value(FILE *f, enum value_kind kind, const void *field) {
        uint64_t u;

        switch (kind) {
        case VALUE_BYTES:
                memcpy(&u, field, sizeof(u));
                /* Exact while it fits in 64 bits, i.e. for any size below 16 EiB. */
                if (u <= UINT64_MAX / 1024)
                        fprintf(f, "%" PRIu64, u * 1024);
                else
                        put_double(f, (double) u * 1024.0);
                break;
        case VALUE_PERCENT: {
                double d;

                memcpy(&d, field, sizeof(d));
                put_double(f, d);
                break;
        }
        case VALUE_COUNT:
                memcpy(&u, field, sizeof(u));
                fprintf(f, "%" PRIu64, u);
                break;
        case VALUE_BOOL: {
                bool b;

                memcpy(&b, field, sizeof(b));
                fputs(b ? "1" : "0", f);
                break;
        }
        case VALUE_SECONDS:
                /* Printed from integers so that no rounding creeps in: 1500 us is "0.001500". */
                memcpy(&u, field, sizeof(u));
                fprintf(f, "%" PRIu64 ".%06" PRIu64, u / USEC_PER_SEC, u % USEC_PER_SEC);
                break;
        case VALUE_ENUM:
                break; /* handled by the caller: one series per value */
        }
}

static void put_header(FILE *f, const struct family *fam) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name, fam->type);
}

/* Index in fam->values of d's value, -1 when d has no sample in fam. */
static int enum_index(const struct family *fam, const struct snapshot_domain *d) {
        const char *v;
        int i;

        memcpy(&v, (const char *) d + fam->offset, sizeof(v));
        for (int pass = 0; pass < 2; pass++) {
                for (i = 0; v && fam->values[i]; i++)
                        if (streq(v, fam->values[i]))
                                return i;
                /* Once more with the fallback: a status tide does not know yet is "unknown". */
                v = fam->fallback;
        }
        return -1;
}

static bool domain_in_family(const struct family *fam, const struct snapshot_domain *d) {
        switch (fam->scope) {
        case SCOPE_ALL:
                break;
        case SCOPE_MANAGED:
                if (!d->managed)
                        return false;
                break;
        case SCOPE_DEMAND:
                if (!d->managed || !d->has_demand)
                        return false;
                break;
        }
        return fam->kind != VALUE_ENUM || enum_index(fam, d) >= 0;
}

static void put_domain_family(FILE *f, const struct family *fam, const struct snapshot *s) {
        bool header = false;

        for (size_t i = 0; i < s->n_domains; i++) {
                const struct snapshot_domain *d = &s->domains[i];

                if (!domain_in_family(fam, d))
                        continue;
                if (!header) {
                        put_header(f, fam);
                        header = true;
                }

                if (fam->kind == VALUE_ENUM) {
                        int current = enum_index(fam, d);

                        for (int v = 0; fam->values[v]; v++) {
                                fprintf(f, "%s{", fam->name);
                                put_domain_labels(f, d);
                                fprintf(f, ",%s=\"%s\"} %d\n", fam->label, fam->values[v], v == current);
                        }
                        continue;
                }

                fprintf(f, "%s{", fam->name);
                put_domain_labels(f, d);
                fputs("} ", f);
                put_value(f, fam->kind, (const char *) d + fam->offset);
                fputc('\n', f);
        }
}

static void put_host_family(FILE *f, const struct family *fam, const struct snapshot_host *h) {
        put_header(f, fam);
        fprintf(f, "%s ", fam->name);
        put_value(f, fam->kind, (const char *) h + fam->offset);
        fputc('\n', f);
}

/* What core parking is worth, when tided measures it: each CPU's idle residency over the last
 * interval (a share, 0..1, per state kind), the estimate for the episode under way, and the
 * episodes so far by verdict. */
static void put_parking_measured(FILE *f, const struct snapshot *s) {
        const struct snapshot_host *h = &s->host;
        if (!h->parking_on || !h->parking_measured)
                return;
        fputs("# HELP tide_cpu_idle_residency Share of the last interval the CPU spent idle (state=\"idle\") and, "
              "part of that, in deep idle states, exit latency >= 10 us (state=\"deep\"): do not sum them.\n"
              "# TYPE tide_cpu_idle_residency gauge\n",
              f);
        for (size_t i = 0; i < s->n_cpus; i++) {
                const struct snapshot_cpu *c = &s->cpus[i];
                if (c->idle < 0)
                        continue;
                fprintf(f, "tide_cpu_idle_residency{cpu=\"%u\",state=\"idle\"} ", c->cpu);
                put_double(f, c->idle);
                fprintf(f, "\ntide_cpu_idle_residency{cpu=\"%u\",state=\"deep\"} ", c->cpu);
                put_double(f, c->deep);
                fputc('\n', f);
        }
        fputs("# HELP tide_parking_watts_saved_estimate Power the parking episode under way saves by deeper idle, "
              "estimated from the energy model (0: none under way).\n"
              "# TYPE tide_parking_watts_saved_estimate gauge\ntide_parking_watts_saved_estimate ",
              f);
        put_double(f, h->parking_watts_saved);
        fputs("\n# HELP tide_parking_joules_saved_estimate Energy the ended parking episodes saved, estimated "
              "(negative: episodes that did not pay cost more than the others saved).\n"
              "# TYPE tide_parking_joules_saved_estimate gauge\ntide_parking_joules_saved_estimate ",
              f);
        put_double(f, h->parking_joules_saved);
        fprintf(f,
                "\n# HELP tide_parking_episodes_total Ended parking episodes by whether they paid.\n"
                "# TYPE tide_parking_episodes_total counter\n"
                "tide_parking_episodes_total{verdict=\"paid\"} %" PRIu64 "\n"
                "tide_parking_episodes_total{verdict=\"did_not_pay\"} %" PRIu64 "\n"
                "tide_parking_episodes_total{verdict=\"unknown\"} %" PRIu64 "\n"
                "# HELP tide_parking_pays 0 when parking cannot or does not pay on this host (no deep idle state, or "
                "several episodes and none paid).\n"
                "# TYPE tide_parking_pays gauge\ntide_parking_pays %d\n",
                h->parking_episodes_paid, h->parking_episodes_not_paid, h->parking_episodes_unknown,
                !h->parking_never_pays);
}

int metrics_render(const struct snapshot *s, char **ret, size_t *ret_len) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        locale_t c_locale, old_locale;
        FILE *f;
        bool failed;

        if (!s || !ret || !ret_len || (s->n_domains > 0 && !s->domains))
                return -EINVAL;

        /* The format wants '.' as the decimal point whatever LC_NUMERIC the program runs
         * under; uselocale() switches only this thread, so the scrape thread is unaffected. */
        c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t) 0);
        if (c_locale == (locale_t) 0)
                return -ENOMEM;
        f = open_memstream(&buf, &len);
        if (!f) {
                freelocale(c_locale);
                return -ENOMEM;
        }
        old_locale = uselocale(c_locale);

        for (size_t i = 0; i < ELEMENTSOF(domain_families); i++)
                put_domain_family(f, &domain_families[i], s);
        for (size_t i = 0; i < ELEMENTSOF(host_families); i++)
                put_host_family(f, &host_families[i], &s->host);
        put_parking_measured(f, s);

        uselocale(old_locale);
        freelocale(c_locale);

        /* A memory stream fails only for lack of memory; the error sticks, so it is checked
         * once here rather than after every write. */
        failed = ferror(f);
        if (fclose(f) != 0 || failed || !buf)
                return -ENOMEM;

        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

/* ---- the server --------------------------------------------------------------------------- */

/* One rendered tick. Reference-counted so that a scrape sends it without copying (10,000
 * domains make ~20 MB) and without holding the lock while the client reads slowly; the last
 * holder, publisher or response, frees it. */
struct metrics_text {
        atomic_uint refs;
        char *data;
        size_t len;
};

static void text_unref(struct metrics_text *t) {
        if (t && atomic_fetch_sub(&t->refs, 1) == 1) {
                free(t->data);
                free(t);
        }
}

static void text_unref_callback(void *cls) {
        text_unref(cls);
}

struct metrics_server {
        struct MHD_Daemon *daemon;
        pthread_mutex_t lock;      /* guards `text` (the pointer; the text itself is immutable) */
        struct metrics_text *text; /* NULL until the first publish */
        int port;
};

#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_TEXT "text/plain; charset=utf-8"

static enum MHD_Result queue_response(struct MHD_Connection *connection, unsigned status,
                                      struct MHD_Response *response, const char *content_type,
                                      const char *allow) {
        enum MHD_Result q = MHD_NO;

        if (MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_YES &&
            (!allow || MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, allow) == MHD_YES))
                q = MHD_queue_response(connection, status, response);
        MHD_destroy_response(response);
        return q;
}

static enum MHD_Result queue_message(struct MHD_Connection *connection, unsigned status,
                                     const char *body, const char *allow) {
        struct MHD_Response *response;

        response = MHD_create_response_from_buffer(strlen(body), (void *) body, MHD_RESPMEM_PERSISTENT);
        if (!response)
                return MHD_NO;
        return queue_response(connection, status, response, CONTENT_TYPE_TEXT, allow);
}

/* Marks a request whose first call has been seen (*con_cls). */
static char request_started;

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *connection, const char *url,
                                      const char *method, const char *version, const char *upload_data,
                                      size_t *upload_data_size, void **con_cls) {
        struct metrics_server *server = cls;
        struct MHD_Response *response;
        struct metrics_text *t;

        if (!streq(method, MHD_HTTP_METHOD_GET) && !streq(method, MHD_HTTP_METHOD_HEAD)) {
                /* Answered on the first call, before any body arrives: libmicrohttpd then
                 * discards the body and closes the connection, so nobody can stream one in. */
                if (!streq(url, "/metrics"))
                        return queue_message(connection, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
                return queue_message(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n",
                                     "GET, HEAD");
        }

        /* GET and HEAD are answered on the second call, once the request is complete: a reply
         * queued earlier makes libmicrohttpd close the connection, and Prometheus keeps its
         * connection open from one scrape to the next. */
        if (!*con_cls) {
                *con_cls = &request_started;
                return MHD_YES;
        }
        /* A GET with a body: no scraper sends one; drop the connection rather than read it. */
        if (*upload_data_size != 0)
                return MHD_NO;

        if (!streq(url, "/metrics"))
                return queue_message(connection, MHD_HTTP_NOT_FOUND, "not found\n", NULL);

        pthread_mutex_lock(&server->lock);
        t = server->text;
        if (t)
                atomic_fetch_add(&t->refs, 1);
        pthread_mutex_unlock(&server->lock);

        if (!t)
                return queue_message(connection, MHD_HTTP_SERVICE_UNAVAILABLE, "no tick yet\n", NULL);

        /* The response holds the reference; libmicrohttpd drops it through the callback when
         * the response is destroyed, at the latest in MHD_stop_daemon(). */
        response = MHD_create_response_from_buffer_with_free_callback_cls(t->len, t->data,
                                                                          text_unref_callback, t);
        if (!response) {
                text_unref(t);
                return MHD_NO;
        }
        return queue_response(connection, MHD_HTTP_OK, response, CONTENT_TYPE_METRICS, NULL);
}

static int fail(char *err, size_t errlen, int r, const char *format, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int r, const char *format, ...) {
        va_list ap;

        if (err && errlen > 0) {
                errno = -r; /* for %m */
                va_start(ap, format);
                vsnprintf(err, errlen, format, ap);
                va_end(ap);
        }
        return r;
}

#define ADDRESS_HELP "expected HOST:PORT, e.g. 127.0.0.1:9177, [::1]:9177 or localhost:9177"

/* See metrics_server_start() for what is accepted and why names are not resolved. */
/* Room for an IPv6 address with a scope ("fe80::1%enp3s0f0"). */
#define ADDRESS_HOST_MAX (INET6_ADDRSTRLEN + IF_NAMESIZE + 1)

/* "HOST:PORT" or "[HOST]:PORT" into its host (a string), family and port. */
static int address_split(const char *address, char host[static ADDRESS_HOST_MAX], int *ret_family,
                         unsigned long *ret_port, char *err, size_t errlen) {
        const char *host_start, *port_start;
        size_t host_len;
        unsigned long port = 0;

        if (!address || !*address)
                return fail(err, errlen, -EINVAL, "invalid metrics address \"\": " ADDRESS_HELP);
        if (address[0] == '[') {
                const char *close = strchr(address, ']');

                if (!close)
                        return fail(err, errlen, -EINVAL, "invalid metrics address \"%s\": missing ']'", address);
                if (close[1] != ':')
                        return fail(err, errlen, -EINVAL, "invalid metrics address \"%s\": missing ':PORT' after ']'",
                                    address);
                *ret_family = AF_INET6;
                host_start = address + 1;
                host_len = (size_t) (close - host_start);
                port_start = close + 2;
        } else {
                const char *colon = strrchr(address, ':');

                if (!colon)
                        return fail(err, errlen, -EINVAL, "invalid metrics address \"%s\": missing ':PORT'; " ADDRESS_HELP,
                                    address);
                /* "::1:9177" is ambiguous (is 9177 a port or the last group?), hence brackets. */
                if (memchr(address, ':', (size_t) (colon - address)))
                        return fail(err, errlen, -EINVAL,
                                    "invalid metrics address \"%s\": an IPv6 address goes in brackets, e.g. [::1]:9177",
                                    address);
                *ret_family = AF_INET;
                host_start = address;
                host_len = (size_t) (colon - address);
                port_start = colon + 1;
        }
        if (host_len == 0)
                return fail(err, errlen, -EINVAL,
                            "invalid metrics address \"%s\": missing host (0.0.0.0 or [::] listens on every address)",
                            address);
        if (host_len >= ADDRESS_HOST_MAX)
                return fail(err, errlen, -EINVAL, "invalid metrics address \"%s\": host too long", address);
        memcpy(host, host_start, host_len);
        host[host_len] = '\0';
        /* Digits only (strtoul would take a sign and blanks), at most 5 of them. */
        if (*port_start == '\0' || strspn(port_start, "0123456789") != strlen(port_start) || strlen(port_start) > 5 ||
            (port = strtoul(port_start, NULL, 10)) > 65535)
                return fail(err, errlen, -EINVAL, "invalid metrics address \"%s\": port must be a number from 0 to 65535",
                            address);
        *ret_port = port;
        return 0;
}

static int address_parse(const char *address, struct sockaddr_storage *ret, socklen_t *ret_len,
                         char *err, size_t errlen) {
        char host[ADDRESS_HOST_MAX];
        unsigned long port = 0;
        int family = AF_UNSPEC, r;

        if ((r = address_split(address, host, &family, &port, err, errlen)) < 0)
                return r;
        memset(ret, 0, sizeof(*ret));
        if (family == AF_INET) {
                struct sockaddr_in *sin = (struct sockaddr_in *) ret;

                sin->sin_family = AF_INET;
                sin->sin_port = htons((uint16_t) port);
                if (streq(host, "localhost"))
                        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
                        /* inet_pton, not inet_aton: "127.1" or "0x7f.1" are typos here. */
                        return fail(err, errlen, -EINVAL,
                                    "invalid metrics address \"%s\": host must be a numeric IPv4 address, an IPv6 "
                                    "address in brackets or localhost",
                                    address);
                *ret_len = sizeof(*sin);
                return 0;
        }
        /* getaddrinfo rather than inet_pton for the scope of link-local addresses. */
        struct addrinfo hints = {
                .ai_family = AF_INET6,
                .ai_socktype = SOCK_STREAM,
                .ai_flags = AI_NUMERICHOST,
        };
        struct addrinfo *ai = NULL;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ret;

        if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai || ai->ai_addrlen != sizeof(*sin6)) {
                if (ai)
                        freeaddrinfo(ai);
                return fail(err, errlen, -EINVAL, "invalid metrics address \"%s\": \"%s\" is not a numeric IPv6 address",
                            address, host);
        }
        memcpy(sin6, ai->ai_addr, sizeof(*sin6));
        freeaddrinfo(ai);
        sin6->sin6_port = htons((uint16_t) port);
        *ret_len = sizeof(*sin6);
        return 0;
}

/* Bound and listening, or -errno. */
static int listen_socket(const struct sockaddr_storage *sa, socklen_t sa_len, int *ret_fd, int *ret_port) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_storage bound;
        socklen_t bound_len = sizeof(bound);
        int one = 1;

        fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* A restarted tided must get its port back while the old connections sit in TIME_WAIT.
         * On Linux this still refuses a port another socket is listening on. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                return -errno;
        /* "[::]" means IPv6: leaving IPv4 to whichever net.ipv6.bindv6only the host has would make
         * "[::]:9177" and "0.0.0.0:9177" conflict on some hosts and not on others. */
        if (sa->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
                return -errno;
        if (bind(fd, (const struct sockaddr *) sa, sa_len) < 0)
                return -errno;
        if (listen(fd, METRICS_CONNECTION_LIMIT) < 0)
                return -errno;
        if (getsockname(fd, (struct sockaddr *) &bound, &bound_len) < 0)
                return -errno;

        *ret_port = ntohs(bound.ss_family == AF_INET6 ? ((const struct sockaddr_in6 *) &bound)->sin6_port
                                                      : ((const struct sockaddr_in *) &bound)->sin_port);
        *ret_fd = fd;
        fd = -1;
        return 0;
}

/* Whether fd still refers to the same socket as ref (which the caller keeps open, so its inode
 * cannot be reused meanwhile). */
static bool same_socket(int fd, int ref) {
        struct stat a, b;

        return fstat(fd, &a) == 0 && fstat(ref, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int metrics_server_start(const char *address, struct metrics_server **ret, char *err, size_t errlen) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_storage sa;
        socklen_t sa_len = 0;
        struct metrics_server *server;
        int r, port = 0, mhd_fd;

        if (!ret)
                return fail(err, errlen, -EINVAL, "metrics_server_start: ret is NULL");

        r = address_parse(address, &sa, &sa_len, err, errlen);
        if (r < 0)
                return r;

        /* The socket is ours, not libmicrohttpd's: so the address is honoured exactly (scope,
         * V6ONLY) and a failure has its errno ("Address already in use") rather than a NULL. */
        r = listen_socket(&sa, sa_len, &fd, &port);
        if (r < 0)
                return fail(err, errlen, r, "cannot listen on %s: %m", address);

        server = calloc(1, sizeof(*server));
        if (!server)
                return fail(err, errlen, -ENOMEM, "cannot start the metrics server: %m");
        r = pthread_mutex_init(&server->lock, NULL);
        if (r != 0) {
                free(server);
                return fail(err, errlen, -r, "cannot start the metrics server: %m");
        }
        server->port = port;

        /* libmicrohttpd gets a duplicate: it closes the socket it was given on some of its
         * failure paths and not on others, so the original tells afterwards whether the
         * duplicate is still open and ours to close. On success it owns the duplicate and
         * closes it in MHD_stop_daemon(). */
        mhd_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (mhd_fd < 0) {
                r = -errno;
                pthread_mutex_destroy(&server->lock);
                free(server);
                return fail(err, errlen, r, "cannot start the metrics server: %m");
        }

        /* MHD_USE_AUTO picks epoll on Linux: select() would break once tided holds more than
         * FD_SETSIZE (1024) descriptors, which a host with many domains' agent sockets does.
         * No MHD_USE_ERROR_LOG: library code does not print; failures come back as errors. */
        server->daemon = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL, handle_request, server,
                                          MHD_OPTION_LISTEN_SOCKET, (MHD_socket) mhd_fd,
                                          MHD_OPTION_CONNECTION_LIMIT, (unsigned) METRICS_CONNECTION_LIMIT,
                                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) METRICS_CONNECTION_TIMEOUT_SEC,
                                          MHD_OPTION_END);
        if (!server->daemon) {
                if (same_socket(mhd_fd, fd))
                        close(mhd_fd);
                pthread_mutex_destroy(&server->lock);
                free(server);
                return fail(err, errlen, -EIO, "cannot start the metrics server on %s: libmicrohttpd refused to start",
                            address);
        }

        *ret = server;
        return 0;
}

int metrics_server_port(const struct metrics_server *server) {
        if (!server)
                return -EINVAL;
        return server->port;
}

int metrics_publish(struct metrics_server *server, const struct snapshot *s) {
        struct metrics_text *t, *old;
        int r;

        if (!server || !s)
                return -EINVAL;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        /* Rendered before taking the lock: a scrape never waits for a render. */
        r = metrics_render(s, &t->data, &t->len);
        if (r < 0) {
                free(t);
                return r;
        }
        atomic_init(&t->refs, 1);

        pthread_mutex_lock(&server->lock);
        old = server->text;
        server->text = t;
        pthread_mutex_unlock(&server->lock);

        text_unref(old);
        return 0;
}

struct metrics_server *metrics_server_stop(struct metrics_server *server) {
        if (!server)
                return NULL;
        /* Returns once its thread has ended and every connection (and response, with its
         * reference to a text) is gone, so nothing touches `server` afterwards. */
        if (server->daemon)
                MHD_stop_daemon(server->daemon);
        text_unref(server->text);
        pthread_mutex_destroy(&server->lock);
        free(server);
        return NULL;
}
