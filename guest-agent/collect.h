/* tide-agent's collection, the pure part: from the guest's counters (or the text of its /proc
 * files) to one protocol report. No I/O, no clock reads: the agent's readers (agent_source.c)
 * and the unit tests (tests/unit/agent/test_collect.c) feed it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/meminfo.h"
#include "common/psi.h"
#include "guest-agent/protocol.h"

/* One reading of the guest's counters, taken at one instant. */
struct agent_sample {
        struct meminfo mem;
        uint64_t pgmajfault; /* cumulative major faults since boot (/proc/vmstat) */
        bool has_pgmajfault;
        struct psi psi; /* /proc/pressure/memory */
        bool has_psi;
};

/* Finds the "pgmajfault N" line of /proc/vmstat text. Returns 0 and fills *ret, -ENOENT when
 * there is no such line, -EINVAL when its value is not a plain decimal u64 or the line repeats. */
int agent_vmstat_parse_pgmajfault(const char *text, uint64_t *ret);

/* Builds a sample from the text of /proc/meminfo (required), /proc/vmstat and
 * /proc/pressure/memory (either may be NULL: the file is absent). A meminfo that meminfo_parse()
 * refuses fails the whole sample (-EINVAL): without it there is nothing to report. A vmstat or
 * pressure text that does not parse only clears has_pgmajfault / has_psi, as an absent file
 * would: the memory figures are still worth sending. Returns 0 and fills *ret, or -EINVAL. */
int agent_sample_parse(const char *meminfo_text, const char *vmstat_text, const char *psi_text,
                       struct agent_sample *ret);

/* What the agent remembers between reports: the fault counter at the previous one. */
struct agent_collector {
        uint64_t last_pgmajfault;
        bool has_last;
};

/* Starts counting major faults from this sample (NULL: from the first report, which then
 * says 0). */
void agent_collector_init(struct agent_collector *c, const struct agent_sample *baseline);

/* Fills *ret from the sample: seq and uptime_ms as given, major_faults since the previous call
 * (0 on the first call without a baseline, and when the counter went back), floor_kib =
 * agent_floor_kib(MemTotal). Every value is clamped into the range docs/PROTOCOL.md lets tided
 * accept (available <= total, swap free <= total, floor <= total, counters below their caps), so
 * an odd but honest kernel figure never gets a whole report rejected. Advances the collector.
 * Returns 0, or -EINVAL (collector untouched) when MemTotal is 0: no report can say that. */
int agent_report_build(struct agent_collector *c, const struct agent_sample *s, uint64_t seq, uint64_t uptime_ms,
                       struct agent_report *ret);

/* --hostile=lie (test only): rewrites a report to claim a 64 GiB guest that needs nearly all of
 * it and stalls on memory, keeping seq and uptime. Each field stays within the protocol's
 * ranges: only tided's host-truth check on mem.total_kib can catch the lie. */
void agent_report_lie(struct agent_report *r);
