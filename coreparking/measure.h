/* Whether parking paid (pure): the parked CPUs' idle residency before and during an episode,
 * and the power that residency is worth, measured (RAPL) or estimated (an energy model). Parking
 * by itself saves nothing (Microsoft, ../shared/PEERS.md): it pays only where the cores it
 * empties reach deeper idle than they did, so every episode is judged on that. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balloon/hv.h"

/* One CPU's power by what it does, in watts: busy (C0), in a shallow idle state (POLL, C1:
 * clocks gated), in a deep one (exit latency >= PARKING_DEEP_LATENCY_USEC: power gated). */
struct parking_power_model {
        double active_w, shallow_w, deep_w;
};

/* The model tide estimates with when there is no RAPL; docs/POLICY.md has its sources. */
void parking_power_model_default(struct parking_power_model *m);

/* One CPU's estimated power over an interval: busy x active + (idle - deep) x shallow + deep x
 * deep_w, the shares clamped to [0, 1] (busy + idle may pass 1 by a rounding: idle wins). */
double parking_cpu_watts(const struct parking_power_model *m, double busy, double idle, double deep);

/* What the parked CPUs did over one interval: summed over them, in CPU-seconds (a share of the
 * interval times its length), so intervals of different lengths add up. */
struct parking_sample {
        double seconds;      /* the interval's length */
        double busy_cpu_s;   /* sum over the CPUs of busy share x seconds */
        double idle_cpu_s;   /* ... of idle residency */
        double deep_cpu_s;   /* ... of deep-idle residency */
        unsigned cpus;       /* how many CPUs */
        double rapl_joules;  /* the host's energy over the interval (RAPL), < 0: none */
};

/* An episode: the same CPUs before they were parked (the baseline, the minutes before) and while
 * they were. */
struct parking_episode {
        struct parking_sample before, during;
};

enum parking_verdict {
        PARKING_UNKNOWN,   /* too little measured (under 10 s on either side, or no idle data) */
        PARKING_PAID,      /* deeper idle, worth at least PARKING_PAID_MIN_W */
        PARKING_DID_NOT_PAY, /* no deeper idle, or too little to be worth it */
        PARKING_NO_DEEP_STATE, /* the CPUs have no deep idle state to reach (a VM's haltpoll):
                                * parking can never pay on this hardware */
};
const char *parking_verdict_to_string(enum parking_verdict v);

/* Less than this per episode is noise in the estimate, not a saving. */
#define PARKING_PAID_MIN_W 0.1

struct parking_judgement {
        enum parking_verdict verdict;
        double deep_before, deep_during; /* the parked CPUs' average deep-idle share, 0..1 */
        double watts_saved;              /* estimated from the model on the parked CPUs (before -
                                          * during, at the rates each side measured) */
        double rapl_watts_saved;         /* measured on the whole host, < 0 without RAPL (it also
                                          * moves with the load elsewhere: shown, not judged on) */
};

/* Judges one episode with model m; has_deep: the CPUs list a deep idle state at all. */
struct parking_judgement parking_judge(const struct parking_power_model *m, const struct parking_episode *e,
                                       bool has_deep);
