/* The demand model: from what a guest reports to the demand the engine works with. Pure.
 * docs/POLICY.md ("Demand from tide-agent") states it for users. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Memory pressure raises demand by this share of used memory per percent of PSI some avg10,
 * up to DEMAND_PSI_RAISE_MAX_PCT: a guest that stalls 10 % of the time needs ~10 % more than it
 * has, whatever MemAvailable says (reclaim is already eating into its working set). */
#define DEMAND_PSI_RAISE_MAX_PCT 100.0

struct demand_input {
        int64_t used_kib;    /* MemTotal - MemAvailable in the host's frame (balloon/collect.h) */
        uint64_t floor_kib;  /* the guest's own safe floor; 0 when unknown */
        bool has_psi;
        double psi_some_avg10; /* percent */
};

/* demand = used x (1 + min(psi some avg10, 100) / 100), never below the guest's floor.
 * A negative used (garbage) is passed through for the engine to reject. Returns the demand. */
int64_t demand_model(const struct demand_input *in);

/* Where a VM's demand comes from this tick, and the choice between them (docs/POLICY.md,
 * "Where demand comes from"). The daemon gathers what each source says; this decides. */
enum demand_source {
        DEMAND_SOURCE_NONE,    /* nothing usable: the engine holds the VM */
        DEMAND_SOURCE_AGENT,   /* tide-agent's last report */
        DEMAND_SOURCE_BALLOON, /* virtio-balloon statistics */
        DEMAND_SOURCE_AGENT_STALE, /* tide-agent's last report, stale, and no balloon statistics:
                                    * the engine holds the VM on it and says so */
};

struct demand_sources {
        /* tide-agent: its last accepted report, converted to the host's frame. */
        bool has_agent;            /* a report exists, converted without error and plausible */
        struct demand_input agent; /* its use (MemTotal - MemAvailable, host frame), floor, PSI */
        uint64_t agent_usec;       /* when it arrived (tided's monotonic clock) */
        uint64_t agent_total_kib;  /* the most the guest can use in that frame */
        /* Balloon statistics: usable only once they have advanced since tided found the domain
         * (after a tided restart the first sample may be minutes old). */
        bool balloon;
        uint64_t balloon_usec;     /* when the current sample was first seen */
        int64_t balloon_demand_kib;
        uint64_t balloon_total_kib;
};

struct demand_pick {
        enum demand_source source;
        int64_t demand_kib;        /* for the engine; meaningless with DEMAND_SOURCE_NONE */
        uint64_t total_kib;        /* the engine's sanity bound, 0 for none */
        uint64_t usec;             /* the sample's time */
        double psi_some_avg10;     /* 0 unless the agent reported PSI */
};

/* The agent while its report is at most stale_usec old, else balloon statistics, else the stale
 * report (for the engine to hold on), else none.
 * An agent's demand is demand_model() of its use; a use above what the guest can hold is handed
 * over raw with its total, for the engine to reject and flag (the modelled demand may rightly
 * exceed the total: a guest stalling on memory needs more than it has). A balloon sample never
 * goes back before last_demand_usec (the engine's last accepted sample, maybe the agent's), or
 * the engine would see time run backwards. */
struct demand_pick demand_pick(const struct demand_sources *in, uint64_t now_usec, uint64_t stale_usec,
                               uint64_t last_demand_usec);

/* Host truth a guest cannot fake: memory it uses is resident in QEMU. An agent's use (host frame)
 * above QEMU's RSS plus max(DEMAND_RSS_SLACK_MIN_KIB, RSS / 4) (room for host swap and
 * accounting differences) is a lie. */
#define DEMAND_RSS_SLACK_MIN_KIB (UINT64_C(128) * 1024)
bool demand_agent_plausible(uint64_t used_kib, uint64_t rss_kib);
