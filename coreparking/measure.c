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

/* What one CPU-second of idle costs at a sample's mix of shallow and deep idle. */
static double idle_watts(const struct parking_power_model *m, const struct parking_sample *s) {
        double deep = clamp01(s->deep_cpu_s / s->idle_cpu_s);
        return (1 - deep) * m->shallow_w + deep * m->deep_w;
}

struct parking_judgement parking_judge(const struct parking_power_model *m, const struct parking_episode *e,
                                       bool has_deep) {
        struct parking_judgement j = { .verdict = PARKING_UNKNOWN };
        if (!m || !e)
                return j;
        if (!has_deep) {
                j.verdict = PARKING_NO_DEEP_STATE;
                return j;
        }
        const struct parking_sample *b = &e->before, *d = &e->during;
        if (b->seconds < PARKING_JUDGE_MIN_S || d->seconds < PARKING_JUDGE_MIN_S || !b->cores || !d->cores ||
            b->idle_cpu_s <= 0 || d->idle_cpu_s <= 0)
                return j;
        j.deep_before = clamp01(b->deep_cpu_s / b->idle_cpu_s);
        j.deep_during = clamp01(d->deep_cpu_s / d->idle_cpu_s);
        /* The idle time the host had during the episode, priced at the mix before and at the
         * mix during. What the load did meanwhile still weighs in: parking starts because the
         * load fell, and a lighter load deepens idle by itself, so the estimate leans towards
         * "paid" (docs/POLICY.md). */
        j.watts_saved = (idle_watts(m, b) - idle_watts(m, d)) * d->idle_cpu_s / d->seconds;
        j.rapl_known = b->rapl_joules >= 0 && d->rapl_joules >= 0;
        if (j.rapl_known)
                j.rapl_watts_saved = b->rapl_joules / b->seconds - d->rapl_joules / d->seconds;
        j.verdict = j.deep_during > j.deep_before && j.watts_saved >= PARKING_PAID_MIN_W ? PARKING_PAID
                                                                                          : PARKING_DID_NOT_PAY;
        return j;
}

static void sample_add(struct parking_sample *to, const struct parking_sample *s) {
        to->seconds += s->seconds;
        to->busy_cpu_s += s->busy_cpu_s;
        to->idle_cpu_s += s->idle_cpu_s;
        to->deep_cpu_s += s->deep_cpu_s;
        to->cores = s->cores; /* the latest count: CPUs may go offline */
        /* One interval without RAPL and the sum is not a measurement. */
        to->rapl_joules = to->rapl_joules < 0 || s->rapl_joules < 0 ? -1 : to->rapl_joules + s->rapl_joules;
}

static void sample_scale(struct parking_sample *s, double k) {
        s->seconds *= k;
        s->busy_cpu_s *= k;
        s->idle_cpu_s *= k;
        s->deep_cpu_s *= k;
        if (s->rapl_joules > 0)
                s->rapl_joules *= k;
}

void parking_meter_add(struct parking_meter *m, const struct parking_power_model *pm, const struct parking_sample *s,
                       bool parked, bool has_deep) {
        if (!m || !pm || !s)
                return;
        m->ended = false;
        if (!(s->seconds > 0) || !s->cores)
                return;
        if (parked) {
                if (!m->in_episode) {
                        m->in_episode = true;
                        m->during = (struct parking_sample){ 0 };
                }
                sample_add(&m->during, s);
                m->episode_seconds_total += s->seconds;
                return;
        }
        if (m->in_episode) {
                struct parking_episode e = { .before = m->baseline, .during = m->during };
                m->last = parking_judge(pm, &e, has_deep);
                m->last_seconds = m->during.seconds;
                m->episodes[m->last.verdict]++;
                if (m->last.verdict == PARKING_PAID || m->last.verdict == PARKING_DID_NOT_PAY)
                        m->joules_saved += m->last.watts_saved * m->last_seconds;
                m->in_episode = false;
                m->ended = true;
                /* The host after an episode is no baseline for the next: it starts again. */
                m->baseline = (struct parking_sample){ 0 };
        }
        if (m->baseline.seconds + s->seconds > PARKING_BASELINE_S && m->baseline.seconds > 0)
                sample_scale(&m->baseline, fmax(0, PARKING_BASELINE_S - s->seconds) / m->baseline.seconds);
        sample_add(&m->baseline, s);
}

struct parking_judgement parking_meter_now(const struct parking_meter *m, const struct parking_power_model *pm,
                                           bool has_deep) {
        struct parking_judgement none = { .verdict = PARKING_UNKNOWN };
        if (!m || !m->in_episode)
                return none;
        struct parking_episode e = { .before = m->baseline, .during = m->during };
        return parking_judge(pm, &e, has_deep);
}

bool parking_meter_never_pays(const struct parking_meter *m, bool has_deep) {
        if (!has_deep)
                return true;
        return m && !m->episodes[PARKING_PAID] && m->episodes[PARKING_DID_NOT_PAY] >= PARKING_NEVER_PAID_EPISODES;
}
