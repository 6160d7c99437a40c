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

/* What the host's cores did over one interval: summed over every core measured, in core-seconds
 * (a share of the interval times its length), so intervals of different lengths add up. Per
 * core, as the power model is: SMT siblings share one core's power, and the core reaches a deep
 * state only when every sibling does (parking_idle_host_read()). The whole host, not the parked
 * cores alone: parking moves work onto the unparked ones, and whatever deep idle they lose
 * counts against what the parked ones gain. */
struct parking_sample {
        double seconds;      /* the interval's length */
        double busy_cpu_s;   /* sum over the cores of busy share x seconds */
        double idle_cpu_s;   /* ... of idle residency */
        double deep_cpu_s;   /* ... of deep-idle residency */
        unsigned cores;      /* how many cores */
        double rapl_joules;  /* the host's energy over the interval (RAPL), < 0: none */
};

/* An episode: the host before anything was parked (the baseline, the minutes before) and while
 * something was. */
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
        double deep_before, deep_during; /* the share of the host's idle time spent in deep
                                          * states, 0..1 */
        double watts_saved;              /* estimated from the model: what the host's idle time
                                          * during the episode cost at the idle-state mix before,
                                          * less what it cost at the mix during. Busy time is not
                                          * counted: work parking moves costs the same elsewhere */
        bool rapl_known;                 /* RAPL measured both sides */
        double rapl_watts_saved;         /* then what the whole host drew less (negative: more; it
                                          * also moves with the load: shown, not judged on) */
};

/* Judges one episode with model m; has_deep: the CPUs list a deep idle state at all. Paid: the
 * deep share of idle time rose and that is worth at least PARKING_PAID_MIN_W. */
struct parking_judgement parking_judge(const struct parking_power_model *m, const struct parking_episode *e,
                                       bool has_deep);

/* Episodes, interval by interval (pure). An episode runs from an interval with something parked
 * to the first one with nothing parked; its baseline is the host while nothing was parked since
 * the last episode, weighted to the last minutes: each interval scales what the baseline held
 * down so that it keeps PARKING_BASELINE_S seconds (time t seconds back weighs ~e^(-t/300)). */
#define PARKING_BASELINE_S 300.0
/* Past this many episodes and none paid, the setting is reported as one that does not pay here. */
#define PARKING_NEVER_PAID_EPISODES 3

struct parking_meter {
        struct parking_sample baseline, during;
        bool in_episode;
        double episode_seconds_total;      /* time with something parked */
        double joules_saved;               /* estimated over the ended episodes (watts_saved x time) */
        uint64_t episodes[PARKING_NO_DEEP_STATE + 1]; /* ended episodes by verdict */
        struct parking_judgement last;     /* the last ended episode's */
        double last_seconds;               /* ... and how long it ran */
        bool ended;                        /* the last parking_meter_add() ended an episode */
};

/* Adds one interval s (the host's CPUs; rapl_joules < 0 when not measured) during which
 * something was parked (parked) or not. An episode that ends with it is judged into m->last
 * (m->ended). Intervals of no length or no CPU are ignored. */
void parking_meter_add(struct parking_meter *m, const struct parking_power_model *pm, const struct parking_sample *s,
                       bool parked, bool has_deep);
/* The episode under way judged so far (PARKING_UNKNOWN when none, or too short yet). */
struct parking_judgement parking_meter_now(const struct parking_meter *m, const struct parking_power_model *pm,
                                           bool has_deep);
/* Whether parking has not paid here: PARKING_NEVER_PAID_EPISODES or more judged, none paid, or
 * the CPUs have no deep state at all. */
bool parking_meter_never_pays(const struct parking_meter *m, bool has_deep);
