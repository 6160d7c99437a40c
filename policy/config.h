/* tided's host configuration (/etc/tide/tided.conf, INI). Defaults first, then the file.
 * Every key, its default and why, is documented in docs/POLICY.md ("Host configuration"). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "coreparking/plan.h"

#define CONFIG_PATH_DEFAULT "/etc/tide/tided.conf"
/* tided's control socket unless the config or --socket says otherwise; tidectl's default too. */
#define CONFIG_SOCKET_DEFAULT "/run/tide/tided.sock"
#define CONFIG_STR_MAX 256
/* Where Smart Paging keeps its files unless the config says otherwise. */
#define CONFIG_PAGING_DIR_DEFAULT "/var/lib/tide/smartpaging"

/* When a VM that cannot get its startup memory pages the shortfall (smartpaging/plan.h). */
enum config_paging {
        CONFIG_PAGING_RESTART, /* a reboot or reset of a running VM only, as Hyper-V */
        CONFIG_PAGING_ALWAYS,  /* every start: cold starts and failover restarts too */
        CONFIG_PAGING_OFF,
};

struct tide_config {
        /* [tided] */
        uint64_t interval_usec;               /* tick period */
        char libvirt_uri[CONFIG_STR_MAX];     /* e.g. qemu:///system */
        char socket_path[CONFIG_STR_MAX];     /* control socket */
        char metrics_address[CONFIG_STR_MAX]; /* "host:port", or "" when metrics are off */

        /* [memory] */
        bool reserve_auto;        /* reserve = auto: config_reserve_kib() computes it */
        uint64_t reserve_kib;     /* host reserve when not auto */
        double shrink_step_pct;   /* a shrink moves at most this share of assigned per tick */
        uint64_t shrink_step_max_kib; /* ... and at most this much */
        uint64_t grow_step_max_kib;   /* 0: grow at once to the target */
        uint64_t deadband_kib;    /* changes smaller than this are skipped */
        uint64_t quiet_usec;      /* no shrink this long after a VM boots */
        uint64_t stale_usec;      /* demand older than this is not acted on */
        double psi_grow_pct;      /* guest memory PSI some avg10 above this: grow now */
        double psi_calm_pct;      /* ... and no shrink until it stays below this ... */
        uint64_t psi_calm_usec;   /* ... for this long */
        double psi_grow_step_pct; /* how much a pressured VM grows per tick, share of assigned */

        /* [paging] */
        enum config_paging smart_paging;
        char paging_dir[CONFIG_STR_MAX]; /* absolute; one swap file per paging VM */
        uint64_t reclaim_usec;     /* what the others give back within this long funds a start */
        uint64_t qemu_overhead_kib; /* QEMU's own memory beyond guest RAM, above a paging VM's grant */

        /* [parking] */
        struct parking_config parking; /* coreparking/plan.h */
};

/* "restart", "always", "off"; NULL for a value out of range. */
const char *config_paging_to_string(enum config_paging m);

/* Fills the documented defaults. */
void config_init(struct tide_config *c);

/* The reserve this host keeps for itself given its usable memory: the configured one, or
 * with reserve = auto, 512 MiB + 1/32 of host memory (see docs/POLICY.md for why). */
uint64_t config_reserve_kib(const struct tide_config *c, uint64_t host_total_kib);

/* Parses INI text over the values already in *c (call config_init() first). On error returns
 * -EINVAL, sets *ret_line to the 1-based line of the first error and writes a message that
 * names the section and key into err ("[memory] reserve: 1001MiB is not a multiple of 2MiB").
 * Unknown sections and keys are errors: a typo must not silently keep a default.
 * - *c is changed only on success; on error it keeps the values it came in with.
 * - Only the first error (lowest line) is reported; later ones are often caused by it.
 * - A key given twice is an error ("set twice (first on line N)"), not "later wins".
 * - psi_calm < psi_grow is checked once a file has otherwise parsed, at the later of the two
 *   lines; *ret_line is 0 when neither is in the text (the clash is in the values passed in).
 * - Comments start a line with '#' or ';', or follow a value after " ;". Leading whitespace is
 *   ignored (no indented continuation lines). A line holds at most INI_MAX_LINE - 1 (199)
 *   characters, newline excluded; a longer one is an error.
 * - Sizes need a unit (size_parse()), except a bare 0; memory amounts are multiples of 2 MiB.
 * Returns 0, -EINVAL, or -ENOMEM. ret_line and err may be NULL. */
int config_parse_string(const char *text, struct tide_config *c, int *ret_line, char *err, size_t errlen);

/* Loads a file. Errors are written as "PATH:LINE: message" (or "PATH: message" when the file
 * cannot be read or the error has no line) into err, with no trailing newline. A file larger
 * than 1 MiB is refused with -EFBIG, one holding a NUL byte with -EINVAL. Returns 0, -EINVAL or
 * -errno; *c as for config_parse_string(). */
int config_load_file(const char *path, struct tide_config *c, char *err, size_t errlen);

/* Writes the effective configuration as INI that config_parse_string() reads back unchanged:
 * a one-line comment, then every key of [tided], [memory], [paging] and [parking] in a fixed order; sizes and
 * durations in their exact canonical form ("128MiB", "45s"), percents as %g ("2", "0.5"; more
 * digits, never an exponent, when %g would not read back), reserve "auto", metrics "off" and
 * smart_paging's mode spelled out. Holds for any *c that config_init() and config_parse_string() produced. */
void config_format(const struct tide_config *c, FILE *out);
