#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <float.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

#include "common/macro.h"
#include "common/units.h"
#include "policy/config.h"
#include "policy/policy.h"

/* A config file is a few dozen lines; anything this big is the wrong file. */
#define CONFIG_FILE_MAX_BYTES (1024 * 1024)

/* Longest line the parser takes, newline excluded: what fits inih's fixed line buffer. */
#define CONFIG_LINE_MAX (INI_MAX_LINE - 1)

enum key_type {
        KEY_DURATION, /* uint64_t usec in [min, max] */
        KEY_STRING,   /* char[CONFIG_STR_MAX] */
        KEY_SOCKET,   /* a string that must work as an AF_UNIX address */
        KEY_METRICS,  /* "host:port", "[v6]:port" or "off" (stored as "") */
        KEY_RESERVE,  /* "auto" or a size like KEY_SIZE */
        KEY_SIZE,     /* uint64_t KiB in [min, max], 0 or a multiple of POLICY_ALIGN_KIB */
        KEY_PERCENT,  /* double in [pmin, pmax] */
        KEY_PAGING,   /* enum config_paging by name */
        KEY_DIR,      /* an absolute path, char[CONFIG_STR_MAX] */
        KEY_PARKING,  /* enum parking_mode by name */
        KEY_COUNT,    /* unsigned in [min, max] */
        KEY_CPULIST,  /* struct hv_cpuset, "0-3,8" or "none" */
        KEY_BOOL,     /* bool: yes/no, true/false, on/off, 1/0 */
};

struct config_key {
        const char *section;
        const char *name;
        enum key_type type;
        size_t offset; /* of the value in struct tide_config */
        uint64_t min, max;
        double pmin, pmax;
};

#define FIELD(f) offsetof(struct tide_config, f)

/* One table drives parsing and formatting, so config_format() cannot forget a key that the
 * parser knows. The order is the order config_format() prints. */
static const struct config_key keys[] = {
        /* Below 100 ms a tick over many VMs cannot finish its libvirt calls, and guests' balloon
         * drivers do not react that fast anyway; above 60 s demand reports (one a second) pile up
         * unread and a pressured guest waits a minute for memory. */
        { .section = "tided", .name = "interval", .type = KEY_DURATION, .offset = FIELD(interval_usec),
          .min = 100 * USEC_PER_MSEC, .max = 60 * USEC_PER_SEC },
        { .section = "tided", .name = "libvirt_uri", .type = KEY_STRING, .offset = FIELD(libvirt_uri) },
        { .section = "tided", .name = "socket", .type = KEY_SOCKET, .offset = FIELD(socket_path) },
        { .section = "tided", .name = "metrics", .type = KEY_METRICS, .offset = FIELD(metrics_address) },

        { .section = "memory", .name = "reserve", .type = KEY_RESERVE, .offset = FIELD(reserve_kib),
          .min = 0, .max = SIZE_MAX_KIB },
        /* Taking more than half of a VM in one tick is no longer a step: the guest has to reclaim
         * it at once, which is the stall bounded steps exist to avoid. */
        { .section = "memory", .name = "shrink_step", .type = KEY_PERCENT, .offset = FIELD(shrink_step_pct),
          .pmin = 0.1, .pmax = 50 },
        /* 2 MiB is the smallest amount memory moves in; a smaller cap would stop shrinking. */
        { .section = "memory", .name = "shrink_step_max", .type = KEY_SIZE, .offset = FIELD(shrink_step_max_kib),
          .min = POLICY_ALIGN_KIB, .max = SIZE_MAX_KIB },
        { .section = "memory", .name = "grow_step_max", .type = KEY_SIZE, .offset = FIELD(grow_step_max_kib),
          .min = 0, .max = SIZE_MAX_KIB },
        /* A deadband above 1 GiB would hide demand changes a guest feels. */
        { .section = "memory", .name = "deadband", .type = KEY_SIZE, .offset = FIELD(deadband_kib),
          .min = 0, .max = KIB_PER_GIB },
        /* Past an hour after boot a guest is in steady state; a longer quiet period only means a
         * VM that will never give memory back. */
        { .section = "memory", .name = "quiet_period", .type = KEY_DURATION, .offset = FIELD(quiet_usec),
          .min = 0, .max = 3600 * USEC_PER_SEC },
        /* The agent reports once a second: under 1 s every report would be stale on arrival. */
        { .section = "memory", .name = "stale_after", .type = KEY_DURATION, .offset = FIELD(stale_usec),
          .min = USEC_PER_SEC, .max = 3600 * USEC_PER_SEC },
        /* 0 would treat every guest as pressured all the time. */
        { .section = "memory", .name = "psi_grow", .type = KEY_PERCENT, .offset = FIELD(psi_grow_pct),
          .pmin = 0.1, .pmax = 100 },
        /* Must also stay below psi_grow; checked once the whole file is read. */
        { .section = "memory", .name = "psi_calm", .type = KEY_PERCENT, .offset = FIELD(psi_calm_pct),
          .pmin = 0, .pmax = 100 },
        { .section = "memory", .name = "psi_calm_time", .type = KEY_DURATION, .offset = FIELD(psi_calm_usec),
          .min = 0, .max = 3600 * USEC_PER_SEC },
        /* Under 1 % a tick, a pressured guest would wait minutes for relief. */
        { .section = "memory", .name = "psi_grow_step", .type = KEY_PERCENT, .offset = FIELD(psi_grow_step_pct),
          .pmin = 1, .pmax = 100 },

        { .section = "paging", .name = "smart_paging", .type = KEY_PAGING, .offset = FIELD(smart_paging) },
        { .section = "paging", .name = "paging_dir", .type = KEY_DIR, .offset = FIELD(paging_dir) },
        /* The others shrink by bounded steps: over a minute they have given what they will in
         * time for a boot, and a boot waiting longer than that is the failure paging avoids. */
        { .section = "paging", .name = "reclaim_time", .type = KEY_DURATION, .offset = FIELD(reclaim_usec),
          .min = 0, .max = 60 * USEC_PER_SEC },
        /* QEMU's own memory (its code, device state, TCG's translation cache) must never be the
         * part that pages; past 4 GiB the number is a mistake, not an overhead. */
        { .section = "paging", .name = "qemu_overhead", .type = KEY_SIZE, .offset = FIELD(qemu_overhead_kib),
          .min = 0, .max = 4 * KIB_PER_GIB },

        { .section = "parking", .name = "mode", .type = KEY_PARKING, .offset = FIELD(parking.mode) },
        /* Windows keeps at least one logical processor per NUMA node unparked: a node with none
         * would send its memory's users across the interconnect. */
        { .section = "parking", .name = "min_unparked_cores", .type = KEY_COUNT,
          .offset = FIELD(parking.min_per_node), .min = 1, .max = PARKING_CORES_MAX },
        /* Past 95 % no core could ever be parked: the key would mean "off" in a roundabout way. */
        { .section = "parking", .name = "headroom", .type = KEY_PERCENT, .offset = FIELD(parking.headroom_pct),
          .pmin = 0, .pmax = PARKING_HEADROOM_MAX_PCT },
        /* Under 10 % an idle host's housekeeping alone would keep every core unparked. */
        { .section = "parking", .name = "over_utilisation", .type = KEY_PERCENT,
          .offset = FIELD(parking.over_util_pct), .pmin = 10, .pmax = 100 },
        /* A core's idle states need seconds to show whether parking it paid; past an hour a
         * host that went idle at night would still be parking at dawn. */
        { .section = "parking", .name = "dwell", .type = KEY_DURATION, .offset = FIELD(parking.dwell_usec),
          .min = PARKING_DWELL_MIN_USEC, .max = 3600 * USEC_PER_SEC },
        { .section = "parking", .name = "reversal_hold", .type = KEY_DURATION,
          .offset = FIELD(parking.reversal_hold_usec), .min = 0, .max = 24 * 3600 * USEC_PER_SEC },
        { .section = "parking", .name = "reserved", .type = KEY_CPULIST, .offset = FIELD(parking.reserved) },
        { .section = "parking", .name = "irqbalance", .type = KEY_BOOL, .offset = FIELD(parking.irqbalance) },
};

static const char *const sections[] = { "tided", "memory", "paging", "parking" };

static const char *const paging_names[] = {
        [CONFIG_PAGING_RESTART] = "restart", [CONFIG_PAGING_ALWAYS] = "always", [CONFIG_PAGING_OFF] = "off" };

const char *config_paging_to_string(enum config_paging m) {
        return (unsigned) m < ELEMENTSOF(paging_names) ? paging_names[m] : NULL;
}

struct parser {
        struct tide_config cfg; /* working copy: the caller's is replaced only on success */
        const char *next;       /* reader position in the text */
        int line;               /* 1-based line last handed to inih; the handler runs inside it */
        int set_line[ELEMENTSOF(keys)]; /* where each key was set, 0 = not in the text */
        bool failed;
        int err_line;
        char err[512];
};

void config_init(struct tide_config *c) {
        *c = (struct tide_config){
                .interval_usec = USEC_PER_SEC,
                .reserve_auto = true,
                .shrink_step_pct = 2,
                .shrink_step_max_kib = 128 * KIB_PER_MIB,
                .grow_step_max_kib = 0,
                .deadband_kib = 8 * KIB_PER_MIB,
                .quiet_usec = 45 * USEC_PER_SEC,
                .stale_usec = 10 * USEC_PER_SEC,
                .psi_grow_pct = 10,
                .psi_calm_pct = 2,
                .psi_calm_usec = 30 * USEC_PER_SEC,
                .psi_grow_step_pct = 10,
                .smart_paging = CONFIG_PAGING_RESTART,
                .reclaim_usec = 10 * USEC_PER_SEC,
                .qemu_overhead_kib = 256 * KIB_PER_MIB,
        };
        snprintf(c->libvirt_uri, sizeof(c->libvirt_uri), "%s", "qemu:///system");
        snprintf(c->socket_path, sizeof(c->socket_path), "%s", CONFIG_SOCKET_DEFAULT);
        snprintf(c->metrics_address, sizeof(c->metrics_address), "%s", "127.0.0.1:9177");
        snprintf(c->paging_dir, sizeof(c->paging_dir), "%s", CONFIG_PAGING_DIR_DEFAULT);
        parking_config_init(&c->parking);
}

uint64_t config_reserve_kib(const struct tide_config *c, uint64_t host_total_kib) {
        if (!c->reserve_auto)
                return c->reserve_kib;

        /* The fixed 512 MiB keeps the host kernel, libvirtd and the other daemons alive. The
         * part that scales is 1/32 of RAM: 1/64 is the kernel's struct page (64 bytes per 4 KiB
         * page), another 1/64 covers page tables and QEMU's per-VM overhead. Aligned down to
         * 2 MiB like every amount the engine moves. */
        uint64_t kib = 512 * KIB_PER_MIB + host_total_kib / 32;
        return kib - kib % POLICY_ALIGN_KIB;
}

/* Copies user text into a message safely: control characters become '?' (a config line must
 * not be able to rewrite the terminal it is reported on) and long text is cut. */
static const char *shown(const char *s, char buf[static 72]) {
        size_t i = 0;

        for (; s[i] && i < 64; i++)
                buf[i] = ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
        if (s[i]) {
                memcpy(buf + i, "...", 3);
                i += 3;
        }
        buf[i] = '\0';
        return buf;
}

#define PERCENT_TEXT_MAX 64

/* Shortest text that percent_parse() reads back to the same double, so that config_format()
 * round-trips "12.3456789" as well as "2": %g first; percent_parse() takes no exponent, so tiny
 * values are tried as plain decimals. Returns false (with %.17g in buf) when nothing that
 * short reads back: only values below ~1e-23, which the parser refuses for that reason. */
static bool percent_text(double v, char buf[static PERCENT_TEXT_MAX]) {
        double back;

        for (int prec = 6; prec <= 17; prec++) {
                snprintf(buf, PERCENT_TEXT_MAX, "%.*g", prec, v);
                if (percent_parse(buf, -DBL_MAX, DBL_MAX, &back, NULL) >= 0 && back == v)
                        return true;
        }
        for (int prec = 1; prec <= 40; prec++) {
                if (snprintf(buf, PERCENT_TEXT_MAX, "%.*f", prec, v) >= PERCENT_TEXT_MAX)
                        break;
                if (percent_parse(buf, -DBL_MAX, DBL_MAX, &back, NULL) >= 0 && back == v)
                        return true;
        }
        snprintf(buf, PERCENT_TEXT_MAX, "%.17g", v);
        return false;
}

static void fail(struct parser *p, int line, const char *format, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct parser *p, int line, const char *format, ...) {
        va_list ap;

        /* Only the first error is reported: later ones are often caused by it. */
        if (p->failed)
                return;
        p->failed = true;
        p->err_line = line;
        va_start(ap, format);
        vsnprintf(p->err, sizeof(p->err), format, ap);
        va_end(ap);
}

static bool section_known(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(sections); i++)
                if (strcmp(sections[i], name) == 0)
                        return true;
        return false;
}

static const struct config_key *key_find(const char *section, const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
                        return &keys[i];
        return NULL;
}

static int check_string(struct parser *p, const struct config_key *k, const char *v) {
        size_t n = strlen(v);

        if (n == 0) {
                fail(p, p->line, "[%s] %s: must not be empty", k->section, k->name);
                return -EINVAL;
        }
        if (n >= CONFIG_STR_MAX) {
                fail(p, p->line, "[%s] %s: longer than %d characters", k->section, k->name, CONFIG_STR_MAX - 1);
                return -EINVAL;
        }
        /* inih took "=;x" as the value ";x", but printed back as "key = ;x" it reads as an
         * inline comment: refused so that config_format() output always reads back. */
        if (v[0] == ';') {
                fail(p, p->line, "[%s] %s: must not start with ';'", k->section, k->name);
                return -EINVAL;
        }
        for (const char *s = v; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f) {
                        fail(p, p->line, "[%s] %s: contains a control character", k->section, k->name);
                        return -EINVAL;
                }
        return 0;
}

static bool all_digits(const char *s, size_t n) {
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

/* Syntax only: resolving the host is the daemon's job when it binds. */
static int check_metrics(struct parser *p, const struct config_key *k, const char *v) {
        char b[72];
        const char *colon = strrchr(v, ':');
        const char *host = v, *host_end = colon;

        if (!colon || colon == v)
                goto bad;
        if (v[0] == '[') {
                /* A bare IPv6 address would make the port ambiguous, hence the brackets. */
                if (colon[-1] != ']' || colon - v < 3)
                        goto bad;
                host = v + 1;
                host_end = colon - 1;
                for (const char *s = host; s < host_end; s++)
                        if (!strchr("0123456789abcdefABCDEF:.", *s))
                                goto bad;
                if (!memchr(host, ':', (size_t) (host_end - host)))
                        goto bad;
        } else {
                /* What the endpoint can open (daemon/metrics.c binds without a resolver):
                 * localhost or a numeric IPv4 address. A host name passed here and then left
                 * tided without metrics, said only in its log. */
                char h[INET_ADDRSTRLEN];
                struct in_addr a4;
                size_t n = (size_t) (host_end - host);
                if (n >= sizeof(h))
                        goto bad;
                memcpy(h, host, n);
                h[n] = '\0';
                if (!streq(h, "localhost") && inet_pton(AF_INET, h, &a4) != 1)
                        goto bad;
        }

        const char *port = colon + 1;
        size_t port_len = strlen(port);
        if (!all_digits(port, port_len))
                goto bad;
        unsigned long n = port_len > 5 ? 65536 : strtoul(port, NULL, 10);
        if (n < 1 || n > 65535) {
                fail(p, p->line, "[%s] %s: port %s is out of range 1-65535", k->section, k->name, shown(port, b));
                return -EINVAL;
        }
        return 0;

bad:
        fail(p, p->line, "[%s] %s: '%s' is not localhost:port, ipv4:port, [ipv6]:port or off", k->section, k->name,
             shown(v, b));
        return -EINVAL;
}

static int parse_size(struct parser *p, const struct config_key *k, const char *v, uint64_t *ret) {
        char a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX];
        const char *e = NULL;
        uint64_t kib;

        /* size_parse() wants a unit because a bare number is ambiguous, but zero is zero in
         * every unit, and "grow_step_max = 0" is how people write "unlimited". */
        if (strcmp(v, "0") == 0)
                kib = 0;
        else if (size_parse(v, &kib, &e) < 0) {
                fail(p, p->line, "[%s] %s: %s", k->section, k->name, e ? e : "invalid size");
                return -EINVAL;
        }
        if (kib < k->min) {
                fail(p, p->line, "[%s] %s: %s is below the minimum %s", k->section, k->name,
                     size_format_exact(kib, a), size_format_exact(k->min, b));
                return -EINVAL;
        }
        if (kib > k->max) {
                fail(p, p->line, "[%s] %s: %s is above the maximum %s", k->section, k->name,
                     size_format_exact(kib, a), size_format_exact(k->max, b));
                return -EINVAL;
        }
        /* Memory moves in 2 MiB blocks (see POLICY_ALIGN_KIB): an amount between two blocks
         * would be rounded by the engine, and the file would promise what tided does not do. */
        if (kib % POLICY_ALIGN_KIB != 0) {
                fail(p, p->line, "[%s] %s: %s is not a multiple of 2MiB", k->section, k->name,
                     size_format_exact(kib, a));
                return -EINVAL;
        }
        *ret = kib;
        return 0;
}

static int parse_value(struct parser *p, const struct config_key *k, const char *v) {
        char a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX];
        char *field = (char *) &p->cfg + k->offset;
        const char *e = NULL;
        int r;

        switch (k->type) {
        case KEY_DURATION: {
                uint64_t usec;

                if (duration_parse(v, &usec, &e) < 0) {
                        fail(p, p->line, "[%s] %s: %s", k->section, k->name, e ? e : "invalid duration");
                        return -EINVAL;
                }
                if (usec < k->min) {
                        fail(p, p->line, "[%s] %s: %s is below the minimum %s", k->section, k->name,
                             duration_format(usec, a), duration_format(k->min, b));
                        return -EINVAL;
                }
                if (usec > k->max) {
                        fail(p, p->line, "[%s] %s: %s is above the maximum %s", k->section, k->name,
                             duration_format(usec, a), duration_format(k->max, b));
                        return -EINVAL;
                }
                *(uint64_t *) field = usec;
                return 0;
        }

        case KEY_STRING:
                if ((r = check_string(p, k, v)) < 0)
                        return r;
                snprintf(field, CONFIG_STR_MAX, "%s", v);
                return 0;

        case KEY_SOCKET:
                if ((r = check_string(p, k, v)) < 0)
                        return r;
                /* The daemon runs with / as its working directory and clients from anywhere:
                 * only an absolute path names the same socket for both. */
                if (v[0] != '/') {
                        fail(p, p->line, "[%s] %s: must be an absolute path", k->section, k->name);
                        return -EINVAL;
                }
                /* Longer paths cannot be bound: they do not fit struct sockaddr_un. */
                if (strlen(v) >= sizeof(((struct sockaddr_un *) NULL)->sun_path)) {
                        fail(p, p->line, "[%s] %s: longer than %zu characters (the limit of a unix socket path)",
                             k->section, k->name, sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1);
                        return -EINVAL;
                }
                snprintf(field, CONFIG_STR_MAX, "%s", v);
                return 0;

        case KEY_METRICS:
                if (strcmp(v, "off") == 0) {
                        field[0] = '\0';
                        return 0;
                }
                if ((r = check_string(p, k, v)) < 0 || (r = check_metrics(p, k, v)) < 0)
                        return r;
                snprintf(field, CONFIG_STR_MAX, "%s", v);
                return 0;

        case KEY_RESERVE:
                if (strcmp(v, "auto") == 0) {
                        p->cfg.reserve_auto = true;
                        p->cfg.reserve_kib = 0;
                        return 0;
                }
                if ((r = parse_size(p, k, v, (uint64_t *) field)) < 0)
                        return r;
                p->cfg.reserve_auto = false;
                return 0;

        case KEY_SIZE:
                return parse_size(p, k, v, (uint64_t *) field);

        case KEY_PAGING: {
                char said[72];
                for (size_t m = 0; m < ELEMENTSOF(paging_names); m++)
                        if (strcmp(v, paging_names[m]) == 0) {
                                *(enum config_paging *) field = (enum config_paging) m;
                                return 0;
                        }
                fail(p, p->line, "[%s] %s: '%s' is not restart, always or off", k->section, k->name, shown(v, said));
                return -EINVAL;
        }

        case KEY_DIR:
                if ((r = check_string(p, k, v)) < 0)
                        return r;
                /* tided runs with / as its working directory: a relative path would be a surprise. */
                if (v[0] != '/') {
                        fail(p, p->line, "[%s] %s: must be an absolute path", k->section, k->name);
                        return -EINVAL;
                }
                snprintf(field, CONFIG_STR_MAX, "%s", v);
                return 0;

        case KEY_PARKING: {
                char said[72];
                for (unsigned m = 0; m < PARKING_MODES; m++)
                        if (strcmp(v, parking_mode_to_string((enum parking_mode) m)) == 0) {
                                *(enum parking_mode *) field = (enum parking_mode) m;
                                return 0;
                        }
                fail(p, p->line, "[%s] %s: '%s' is not off, pin or partition", k->section, k->name, shown(v, said));
                return -EINVAL;
        }

        case KEY_COUNT: {
                char said[72], *end;
                errno = 0;
                unsigned long n = strtoul(v, &end, 10);
                if (!all_digits(v, strlen(v)) || errno || *end) {
                        fail(p, p->line, "[%s] %s: '%s' is not a whole number", k->section, k->name, shown(v, said));
                        return -EINVAL;
                }
                if (n < k->min || n > k->max) {
                        fail(p, p->line, "[%s] %s: %lu is out of range %" PRIu64 "-%" PRIu64, k->section, k->name, n,
                             k->min, k->max);
                        return -EINVAL;
                }
                *(unsigned *) field = (unsigned) n;
                return 0;
        }

        case KEY_BOOL: {
                char said[72];
                static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };
                for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                        if (strcmp(v, yes[i]) == 0 || strcmp(v, no[i]) == 0) {
                                *(bool *) field = strcmp(v, yes[i]) == 0;
                                return 0;
                        }
                fail(p, p->line, "[%s] %s: '%s' is not yes or no", k->section, k->name, shown(v, said));
                return -EINVAL;
        }

        case KEY_CPULIST: {
                char said[72];
                const char *why = NULL;
                if (parking_cpulist_parse(v, (struct hv_cpuset *) field, &why) < 0) {
                        fail(p, p->line, "[%s] %s: '%s': %s", k->section, k->name, shown(v, said),
                             why ? why : "not a CPU list");
                        return -EINVAL;
                }
                return 0;
        }

        case KEY_PERCENT: {
                char c[PERCENT_TEXT_MAX];
                double pct;

                /* The key's own bounds are checked here, not by percent_parse(), so that the
                 * message can name them. */
                if (percent_parse(v, -DBL_MAX, DBL_MAX, &pct, &e) < 0) {
                        fail(p, p->line, "[%s] %s: %s", k->section, k->name, e ? e : "invalid percentage");
                        return -EINVAL;
                }
                bool printable = percent_text(pct, c);
                if (!(pct >= k->pmin)) { /* written so that NaN fails too */
                        fail(p, p->line, "[%s] %s: %s%% is below the minimum %g%%", k->section, k->name, c, k->pmin);
                        return -EINVAL;
                }
                if (!(pct <= k->pmax)) {
                        fail(p, p->line, "[%s] %s: %s%% is above the maximum %g%%", k->section, k->name, c, k->pmax);
                        return -EINVAL;
                }
                if (!printable) {
                        fail(p, p->line, "[%s] %s: too many decimal places", k->section, k->name);
                        return -EINVAL;
                }
                *(double *) field = pct;
                return 0;
        }
        }
        return -EINVAL;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
        struct parser *p = user;
        char a[72], b[72];

        /* inih is told every key is fine: errors are recorded here with the line the reader
         * counted, and inih's own return value then means a syntax error only. */
        if (p->failed)
                return 1;
        if (section[0] == '\0') {
                fail(p, p->line, "'%s' is outside any section (expected [tided], [memory], [paging] or [parking] above it)",
                     shown(name, a));
                return 1;
        }
        if (!section_known(section)) {
                fail(p, p->line, "unknown section [%s]", shown(section, a));
                return 1;
        }

        const struct config_key *k = key_find(section, name);
        if (!k) {
                fail(p, p->line, "[%s] unknown key '%s'", shown(section, a), shown(name, b));
                return 1;
        }

        /* A key set twice is an error rather than "later wins": with no drop-in directory there
         * is no legitimate reason for it, and one of the two lines is a mistake the reader of
         * the file would otherwise have to find by knowing the rule. */
        size_t i = (size_t) (k - keys);
        if (p->set_line[i] > 0) {
                fail(p, p->line, "[%s] %s: set twice (first on line %d)", k->section, k->name, p->set_line[i]);
                return 1;
        }
        p->set_line[i] = p->line;

        (void) parse_value(p, k, value);
        return 1;
}

/* inih stays quiet about a section header it does not need ("[memroy]" with no keys below, or
 * text after the ']'), so headers are checked here, where the line is known. */
static void check_section_line(struct parser *p, const char *line) {
        char a[72], name[CONFIG_LINE_MAX + 1];
        const char *end;

        if (line[0] != '[' || !(end = strchr(line, ']')))
                return; /* not a header, or one inih reports as a syntax error */

        memcpy(name, line + 1, (size_t) (end - line - 1));
        name[end - line - 1] = '\0';
        if (!section_known(name)) {
                fail(p, p->line, "unknown section [%s]", shown(name, a));
                return;
        }
        end += 1 + strspn(end + 1, " \t\r");
        if (*end != '\0' && *end != '#' && *end != ';')
                fail(p, p->line, "unexpected text after [%s]", name);
}

/* Hands inih one line per call, so p->line is the line the handler is running for (Debian's
 * inih is built without INI_HANDLER_LINENO). Two deliberate differences from inih's own reader:
 * - leading whitespace is dropped, which turns off inih's indented continuation lines: none of
 *   tide's values spans lines, and an indented "key = value" would otherwise be glued onto the
 *   key above it;
 * - a line too long for inih's buffer is an error here instead of being split silently into
 *   two lines (which would also shift every later line number). */
static char *reader(char *str, int num, void *stream) {
        struct parser *p = stream;
        const char *line = p->next;

        if (*line == '\0')
                return NULL;

        size_t len = strcspn(line, "\n");
        p->next = line + len + (line[len] == '\n');
        p->line++;

        if (len > (size_t) num - 1) {
                fail(p, p->line, "line is longer than %d characters", num - 1);
                str[0] = '\0';
                return str;
        }

        const char *s = line, *end = line + len;
        if (p->line == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
                s += 3; /* UTF-8 byte order mark, as editors on other systems write it */
        while (s < end && (*s == ' ' || *s == '\t'))
                s++;
        memcpy(str, s, (size_t) (end - s));
        str[end - s] = '\0';

        check_section_line(p, str);
        return str;
}

/* inih reports its syntax errors by line only; the line itself says which kind it was. */
static void syntax_error(struct parser *p, const char *text, int line) {
        const char *s = text;

        for (int i = 1; i < line && s; i++) {
                s = strchr(s, '\n');
                if (s)
                        s++;
        }
        if (s) {
                if (line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
                        s += 3;
                s += strspn(s, " \t");
        }
        if (s && *s == '[')
                fail(p, line, "section header without a closing ']'");
        else
                fail(p, line, "expected 'key = value', '[section]' or a comment");
}

int config_parse_string(const char *text, struct tide_config *c, int *ret_line, char *err, size_t errlen) {
        char a[PERCENT_TEXT_MAX], b[PERCENT_TEXT_MAX];
        struct parser parser = { .cfg = *c, .next = text }, *p = &parser;
        int r;

        r = ini_parse_stream(reader, p, handler, p);
        if (r < 0) /* inih's own allocation failure; it cannot fail to open a stream */
                return -ENOMEM;

        /* Both kinds of error come in line order; the earlier line is the first error. The
         * reader and handler recorded theirs; inih's return is the first syntax error. */
        if (r > 0 && (!p->failed || r < p->err_line)) {
                p->failed = false;
                syntax_error(p, text, r);
        }

        if (!p->failed && !(p->cfg.psi_calm_pct < p->cfg.psi_grow_pct)) {
                /* A cross-check only makes sense on a file that otherwise parsed. It is reported
                 * at whichever of the two lines came later, the one that made the pair wrong;
                 * line 0 when neither is in the text (values set by the caller). */
                int calm_line = p->set_line[key_find("memory", "psi_calm") - keys];
                int grow_line = p->set_line[key_find("memory", "psi_grow") - keys];
                int line = calm_line > grow_line ? calm_line : grow_line;
                percent_text(p->cfg.psi_calm_pct, a);
                percent_text(p->cfg.psi_grow_pct, b);
                fail(p, line, "[memory] psi_calm (%s%%) must be below psi_grow (%s%%)", a, b);
        }

        if (p->failed) {
                if (ret_line)
                        *ret_line = p->err_line;
                if (err && errlen > 0)
                        snprintf(err, errlen, "%s", p->err);
                return -EINVAL;
        }

        *c = p->cfg;
        return 0;
}

int config_load_file(const char *path, struct tide_config *c, char *err, size_t errlen) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *text = NULL;
        char msg[512], ignored[1];
        size_t len;
        int line, r;

        if (!err || errlen == 0) {
                err = ignored;
                errlen = sizeof(ignored);
        }

        f = fopen(path, "re");
        if (!f) {
                r = -errno;
                snprintf(err, errlen, "%s: %s", path, strerror(-r));
                return r;
        }

        /* One byte more than the limit tells "exactly at the limit" from "too big". */
        text = malloc(CONFIG_FILE_MAX_BYTES + 1);
        if (!text) {
                snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
                return -ENOMEM;
        }
        len = fread(text, 1, CONFIG_FILE_MAX_BYTES + 1, f);
        if (ferror(f)) {
                r = errno > 0 ? -errno : -EIO;
                snprintf(err, errlen, "%s: %s", path, strerror(-r));
                return r;
        }
        if (len > CONFIG_FILE_MAX_BYTES) {
                snprintf(err, errlen, "%s: larger than %d bytes, not a tided configuration", path,
                         CONFIG_FILE_MAX_BYTES);
                return -EFBIG;
        }
        text[len] = '\0';

        /* The parser takes a C string: a NUL byte would silently end the file early. */
        const char *nul = memchr(text, '\0', len);
        if (nul) {
                line = 1;
                for (const char *s = text; s < nul; s++)
                        line += *s == '\n';
                snprintf(err, errlen, "%s:%d: contains a NUL byte", path, line);
                return -EINVAL;
        }

        r = config_parse_string(text, c, &line, msg, sizeof(msg));
        if (r == -EINVAL) {
                if (line > 0)
                        snprintf(err, errlen, "%s:%d: %s", path, line, msg);
                else
                        snprintf(err, errlen, "%s: %s", path, msg);
        } else if (r < 0)
                snprintf(err, errlen, "%s: %s", path, strerror(-r));
        return r;
}

void config_format(const struct tide_config *c, FILE *out) {
        /* The longest CPU list: every other CPU of 1024, "0,2,4,...". */
        char buf[4096];
        const char *section = NULL;

        fputs("# tided configuration in effect (defaults + file); every key is listed\n", out);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const struct config_key *k = &keys[i];
                const char *field = (const char *) c + k->offset;
                const char *v = buf;

                if (!section || strcmp(section, k->section) != 0) {
                        fprintf(out, "%s[%s]\n", section ? "\n" : "", k->section);
                        section = k->section;
                }

                switch (k->type) {
                case KEY_DURATION:
                        duration_format(*(const uint64_t *) field, buf);
                        break;
                case KEY_STRING:
                case KEY_SOCKET:
                case KEY_DIR:
                        v = field;
                        break;
                case KEY_PAGING:
                        v = config_paging_to_string(*(const enum config_paging *) field);
                        break;
                case KEY_METRICS:
                        v = field[0] ? field : "off";
                        break;
                case KEY_RESERVE:
                        if (c->reserve_auto)
                                v = "auto";
                        else
                                size_format_exact(*(const uint64_t *) field, buf);
                        break;
                case KEY_SIZE:
                        size_format_exact(*(const uint64_t *) field, buf);
                        break;
                case KEY_PERCENT:
                        percent_text(*(const double *) field, buf);
                        break;
                case KEY_PARKING:
                        v = parking_mode_to_string(*(const enum parking_mode *) field);
                        break;
                case KEY_COUNT:
                        snprintf(buf, sizeof(buf), "%u", *(const unsigned *) field);
                        break;
                case KEY_CPULIST:
                        v = parking_cpulist_format((const struct hv_cpuset *) field, buf, sizeof(buf));
                        break;
                case KEY_BOOL:
                        v = *(const bool *) field ? "yes" : "no";
                        break;
                }
                fprintf(out, "%s = %s\n", k->name, v);
        }
}
