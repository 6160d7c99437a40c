/* What tided publishes after each tick: one row per domain plus host totals. The control
 * socket's `stats` reply and the Prometheus metrics are both rendered from this, so they can
 * never disagree. Plain data, no pointers: a snapshot is copied between threads by value. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balloon/hv.h"

#define SNAPSHOT_REASON_MAX 160

struct snapshot_domain {
        char uuid[HV_UUID_MAX];
        char name[HV_NAME_MAX];
        bool managed;          /* has a tide policy */
        bool active;
        bool dynamic;
        bool latency_sensitive;  /* core parking never packs it */
        const char *parking;     /* core parking: "confined", "own" (floats, not confined), "pinned" (its
                                  * administrator's), "unknown" (not read yet); NULL: parking off or
                                  * not running */
        uint64_t assigned_kib;
        bool has_demand;
        uint64_t demand_kib;
        uint64_t target_kib;
        double pressure_pct;         /* demand / assigned x 100 */
        double available_buffer_pct; /* docs/POLICY.md rule 7 */
        const char *status;          /* "ok", "low", "warning", "unknown", "unmanaged" (static strings) */
        uint64_t minimum_kib, startup_kib, maximum_kib;
        unsigned buffer_pct, weight;
        const char *agent;           /* channel state: "none", "disconnected", "waiting", "connected", "gone" */
        bool agent_demand;           /* demand came from tide-agent this tick (else balloon stats) */
        int64_t agent_report_age_ms; /* age of the last accepted report, -1 when none */
        uint64_t agent_rejected;     /* messages rejected (bad, oversized, lying) */
        uint64_t agent_rate_dropped; /* messages over the rate limit */
        char agent_error[160];       /* why the last one was rejected, "" when none */
        const char *balloon;         /* "ok", "inactive", "uncooperative" */
        char reason[SNAPSHOT_REASON_MAX];
        uint64_t balloon_actions;    /* balloon/virtio-mem changes tided made since it started */
        uint64_t guest_oom_deflates; /* samples in which the balloon rose above tided's target */
        uint64_t rss_kib;
        unsigned flags;              /* ENGINE_FLAG_* */
        char pending[SNAPSHOT_REASON_MAX]; /* what applies at next start, "" when nothing */
        const char *paging;          /* Smart Paging: "none", "paging", "releasing", "failed" */
        uint64_t paging_kib;         /* its paging file's size while it has one, else 0 */
        uint64_t paging_used_kib;    /* how much of it is in use (/proc/swaps) */
};

struct snapshot_host {
        uint64_t total_kib, available_kib;
        uint64_t usable_kib, reserve_kib, capacity_kib;
        uint64_t assigned_kib, target_kib;
        bool short_host, overcommitted; /* overcommitted: also a start no RAM or file covers */
        uint64_t paging_files;       /* Smart Paging files on (or being switched off) */
        uint64_t unfunded_kib;       /* startup memory of starts neither RAM nor a file covers */
        uint64_t tick_usec;          /* how long the last tick took */
        uint64_t ticks;
        uint64_t uptime_usec;
        /* libvirt: connected now (false while tided waits for it, every VM held where it is),
         * and how many times the connection was lost since tided started. */
        bool libvirt_connected;
        uint64_t libvirt_disconnects;
        /* Core parking, as the last regular tick decided (parking_on false: not running). */
        bool parking_on;
        char parked[256];            /* the parked CPUs as a list ("1-3"), "none" */
        const char *parking_reason;  /* parking_reason_to_string() */
        uint64_t parked_cpus, unparked_cpus, parking_needed_cpus, parking_reversals;
        double parking_load_cpus;    /* the host's busy CPUs */
        /* What parking is worth, measured (coreparking/measure.h; parking_measured false: the
         * CPUs' idle states are not read). */
        bool parking_measured;
        bool parking_has_deep;       /* the CPUs list a deep idle state */
        bool parking_never_pays;     /* no deep state, or several episodes and none paid */
        const char *parking_verdict; /* the episode under way, judged so far; NULL: none */
        double parking_deep_before, parking_deep_during; /* its deep share of idle time, 0..1 */
        double parking_watts_saved;  /* its estimate (0: no episode) */
        bool parking_rapl_known;     /* RAPL measured it: */
        double parking_rapl_watts_saved; /* what the host drew less (negative: more) */
        double parking_joules_saved; /* estimated over the ended episodes */
        uint64_t parking_episodes_paid, parking_episodes_not_paid, parking_episodes_unknown;
        const char *parking_last_verdict; /* the last ended episode's; NULL: none yet */
        double parking_last_watts_saved, parking_last_seconds;
};

/* One CPU as core parking sees it (snapshot.cpus: parking on and measured). */
struct snapshot_cpu {
        unsigned cpu;
        bool parked;
        double busy, idle, deep; /* shares of the last interval, < 0: not measured */
};

struct snapshot {
        struct snapshot_host host;
        struct snapshot_domain *domains; /* owned */
        size_t n_domains;
        struct snapshot_cpu *cpus;       /* owned; the host's CPUs while parking is measured */
        size_t n_cpus;
};

void snapshot_done(struct snapshot *s);
