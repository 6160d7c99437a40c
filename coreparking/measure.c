#include "coreparking/measure.h"

#include <math.h>

#include "common/macro.h"

/* Under this a side of an episode says too little: a few ticks of residency are noise. */
#define PARKING_JUDGE_MIN_S 10.0

void parking_power_model_default(struct parking_power_model *m) {
        /* A Skylake server core at base clock: C0 4.0 W, C1 1.44 W, C6 0.1 W (Haj-Yahya et al.,
         * "AgileWatts", MICRO 2022, Table 1, a model calibrated on a real Skylake Xeon; read
         * through simulator code citing it). C6 ~0.1 W agrees with AMD Zen 2's measured per-core
         * figures (Schöne et al., arXiv 2108.00808); C0 varies ~8x with the work and the clock.
         * docs/POLICY.md "Core parking: what it is worth" has the caveats. */
        *m = (struct parking_power_model){ .active_w = 4.0, .shallow_w = 1.44, .deep_w = 0.1 };
}

static double clamp01(double v) {
        return v < 0 ? 0 : v > 1 ? 1 : v;
}

double parking_cpu_watts(const struct parking_power_model *m, double busy, double idle, double deep) {
        if (!m)
                return 0;
        idle = clamp01(idle);
        deep = fmin(clamp01(deep), idle);
        busy = fmin(clamp01(busy), 1 - idle);
        return busy * m->active_w + (idle - deep) * m->shallow_w + deep * m->deep_w;
}

static const char *const verdict_names[] = {
        [PARKING_UNKNOWN] = "not measured long enough",
        [PARKING_PAID] = "paid",
        [PARKING_DID_NOT_PAY] = "did not pay",
        [PARKING_NO_DEEP_STATE] = "cannot pay here: no deep idle state",
};

const char *parking_verdict_to_string(enum parking_verdict v) {
        return (unsigned) v < ELEMENTSOF(verdict_names) ? verdict_names[v] : NULL;
}

/* The parked CPUs' estimated watts over a sample, at its average shares. */
static double sample_watts(const struct parking_power_model *m, const struct parking_sample *s) {
        double cs = s->seconds * s->cpus;
        return s->cpus * parking_cpu_watts(m, s->busy_cpu_s / cs, s->idle_cpu_s / cs, s->deep_cpu_s / cs);
}

struct parking_judgement parking_judge(const struct parking_power_model *m, const struct parking_episode *e,
                                       bool has_deep) {
        struct parking_judgement j = { .verdict = PARKING_UNKNOWN, .rapl_watts_saved = -1 };
        if (!m || !e)
                return j;
        if (!has_deep) {
                j.verdict = PARKING_NO_DEEP_STATE;
                return j;
        }
        const struct parking_sample *b = &e->before, *d = &e->during;
        if (b->seconds < PARKING_JUDGE_MIN_S || d->seconds < PARKING_JUDGE_MIN_S || !b->cpus || !d->cpus)
                return j;
        j.deep_before = clamp01(b->deep_cpu_s / (b->seconds * b->cpus));
        j.deep_during = clamp01(d->deep_cpu_s / (d->seconds * d->cpus));
        j.watts_saved = sample_watts(m, b) - sample_watts(m, d);
        if (b->rapl_joules >= 0 && d->rapl_joules >= 0)
                j.rapl_watts_saved = b->rapl_joules / b->seconds - d->rapl_joules / d->seconds;
        j.verdict = j.deep_during > j.deep_before && j.watts_saved >= PARKING_PAID_MIN_W ? PARKING_PAID
                                                                                          : PARKING_DID_NOT_PAY;
        return j;
}
