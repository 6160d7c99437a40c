#include "coreparking/plan.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"

/* Busier than this on average, the unparked CPUs are queueing work: the load they show is what
 * they could do, not what is asked of them, so every core is unparked. */
#define PARKING_SATURATED_PCT 95.0

/* PARKING_DWELL_MIN_USEC: Hyper-V parks no faster than its decrease time allows (3 check
 * intervals on Windows 11, ../shared/PEERS.md); a core's idle states need seconds to show
 * whether parking paid, so tide never parks faster than one core per 10 s. */

static const char *const mode_names[PARKING_MODES] = {
        [PARKING_OFF] = "off", [PARKING_PIN] = "pin", [PARKING_PARTITION] = "partition" };

const char *parking_mode_to_string(enum parking_mode m) {
        return (unsigned) m < PARKING_MODES ? mode_names[m] : NULL;
}

static const char *const reason_names[PARKING_REASONS] = {
        [PARKING_REASON_OFF] = "parking off",
        [PARKING_REASON_NO_LOAD] = "no load measured yet",
        [PARKING_REASON_PARK] = "idle: one core parked",
        [PARKING_REASON_UNPARK] = "load rose: cores unparked",
        [PARKING_REASON_SATURATED] = "unparked CPUs saturated: every core unparked",
        [PARKING_REASON_DWELL] = "idle, but the last change is too recent",
        [PARKING_REASON_REVERSAL] = "idle, but the last unpark is too recent",
        [PARKING_REASON_NOTHING] = "idle, but no core may be parked",
        [PARKING_REASON_STEADY] = "the load fits the unparked cores",
        [PARKING_REASON_CLAIMED] = "a parked core was pinned to or reserved: unparked",
        [PARKING_REASON_UNKNOWN_VM] = "idle, but a VM's own CPUs are not known yet",
        [PARKING_REASON_EXEMPT_VM] = "a latency-sensitive VM runs in the confined partition: nothing parked",
};

const char *parking_reason_to_string(enum parking_reason r) {
        return (unsigned) r < PARKING_REASONS ? reason_names[r] : NULL;
}

void parking_config_init(struct parking_config *c) {
        *c = (struct parking_config){
                .mode = PARKING_PIN,
                .min_per_node = 1,
                .headroom_pct = 50,
                .over_util_pct = 85,
                .dwell_usec = PARKING_DWELL_MIN_USEC,
                .reversal_hold_usec = 600 * USEC_PER_SEC,
                .irqbalance = true,
        };
}

static bool config_valid(const struct parking_config *c) {
        return (unsigned) c->mode < PARKING_MODES && c->min_per_node >= 1 && c->headroom_pct >= 0 &&
               c->headroom_pct <= PARKING_HEADROOM_MAX_PCT && c->over_util_pct > 0 && c->over_util_pct <= 100 &&
               c->dwell_usec >= PARKING_DWELL_MIN_USEC;
}

/* What the CPUs of s did over the last interval, and how many were measured. */
static double busy_of(const struct parking_obs *o, const struct hv_cpuset *s, unsigned *ret_n) {
        double sum = 0;
        unsigned n = 0;
        /* The set's CPUs only, word by word: called per core, a walk over every CPU made the plan
         * O(cores x CPUs) (half the simulator's time on a 246-CPU host). */
        for (unsigned w = 0; w < HV_CPUSET_WORDS && w * 64 < o->n_cpus; w++)
                for (uint64_t bits = s->bits[w]; bits; bits &= bits - 1) {
                        unsigned c = w * 64 + (unsigned) __builtin_ctzll(bits);
                        if (c < o->n_cpus && o->busy[c] >= 0) {
                                sum += fmin(o->busy[c], 1.0);
                                n++;
                        }
                }
        if (ret_n)
                *ret_n = n;
        return sum;
}

static bool parked(const struct hv_cpuset *p, const struct parking_core *k) {
        return hv_cpuset_within(&k->cpus, p);
}

/* Unparked cores on k's node (one node for the unknown ones). */
static unsigned unparked_on_node(const struct parking_topology *t, const struct hv_cpuset *p, int node) {
        unsigned n = 0;
        for (size_t i = 0; i < t->n_cores; i++)
                if (t->cores[i].node == node && !parked(p, &t->cores[i]))
                        n++;
        return n;
}

static bool may_park(const struct parking_config *cfg, const struct parking_topology *t, const struct parking_obs *o,
                     const struct hv_cpuset *p, const struct parking_core *k) {
        return !parked(p, k) && !hv_cpuset_meets(&k->cpus, &o->pinned) && !hv_cpuset_meets(&k->cpus, &cfg->reserved) &&
               unparked_on_node(t, p, k->node) > cfg->min_per_node;
}

/* The core to park next: the most performant kind, then the least busy, then the highest. */
static const struct parking_core *next_to_park(const struct parking_config *cfg, const struct parking_topology *t,
                                               const struct parking_obs *o, const struct hv_cpuset *p) {
        const struct parking_core *best = NULL;
        double best_busy = 0;
        for (size_t i = t->n_cores; i > 0; i--) {
                const struct parking_core *k = &t->cores[i - 1];
                if (!may_park(cfg, t, o, p, k))
                        continue;
                double b = busy_of(o, &k->cpus, NULL);
                if (!best || k->kind > best->kind || (k->kind == best->kind && b < best_busy)) {
                        best = k;
                        best_busy = b;
                }
        }
        return best;
}

/* The parked core to unpark next: the most performant kind, then the lowest. */
static const struct parking_core *next_to_unpark(const struct parking_topology *t, const struct hv_cpuset *p) {
        const struct parking_core *best = NULL;
        for (size_t i = 0; i < t->n_cores; i++) {
                const struct parking_core *k = &t->cores[i];
                if (parked(p, k) && (!best || k->kind > best->kind))
                        best = k;
        }
        return best;
}

int parking_plan(const struct parking_config *cfg, const struct parking_topology *topo,
                 const struct parking_obs *obs, struct parking_state *state, uint64_t now_usec,
                 struct parking_decision *ret) {
        if (!cfg || !topo || !obs || !state || !ret || !topo->cores || topo->n_cores == 0 ||
            topo->n_cores > PARKING_CORES_MAX || !config_valid(cfg) || (obs->load_known && !obs->busy))
                return -EINVAL;

        struct hv_cpuset host = { 0 }, p = { 0 }, before = state->parked;
        for (size_t i = 0; i < topo->n_cores; i++) {
                hv_cpuset_or(&host, &topo->cores[i].cpus);
                /* Only whole cores of this topology stay parked: a set from another topology
                 * (a CPU taken offline since) is not trusted in part. */
                if (parked(&state->parked, &topo->cores[i]))
                        hv_cpuset_or(&p, &topo->cores[i].cpus);
        }
        struct parking_decision d = { 0 };
        bool forced = false;

        bool none = cfg->mode == PARKING_OFF || (cfg->mode == PARKING_PARTITION && obs->exempt_running);
        if (none) {
                p = (struct hv_cpuset){ 0 };
                d.reason = cfg->mode == PARKING_OFF ? PARKING_REASON_OFF : PARKING_REASON_EXEMPT_VM;
        } else {
                /* A core an administrator has since pinned a VM to, or since listed as reserved,
                 * is given back at once, whatever the load. */
                for (size_t i = 0; i < topo->n_cores; i++) {
                        const struct parking_core *k = &topo->cores[i];
                        if (parked(&p, k) && (hv_cpuset_meets(&k->cpus, &obs->pinned) || hv_cpuset_meets(&k->cpus, &cfg->reserved))) {
                                hv_cpuset_minus(&p, &k->cpus);
                                forced = true;
                        }
                }
                d.reason = PARKING_REASON_NO_LOAD;
        }

        if (!none && obs->load_known) {
                struct hv_cpuset unparked = host;
                hv_cpuset_minus(&unparked, &p);
                unsigned n_unparked = 0;
                double load = busy_of(obs, &host, NULL);
                /* Capacity is what was measured: a CPU gone offline since the topology was read
                 * holds no load, and counting it would park into an overload. */
                double u_busy = busy_of(obs, &unparked, &n_unparked);
                unsigned n_measured = n_unparked;
                double u_pct = n_measured ? 100.0 * u_busy / n_measured : 0;
                unsigned needed = (unsigned) ceil(load / (1.0 - cfg->headroom_pct / 100.0) - 1e-9);
                needed = needed ? needed : 1;
                d.load_cpus = load;
                d.needed_cpus = needed;
                d.unparked_busy_pct = u_pct;

                if (hv_cpuset_count(&p) && u_pct >= fmax(PARKING_SATURATED_PCT, cfg->over_util_pct)) {
                        p = (struct hv_cpuset){ 0 };
                        d.reason = PARKING_REASON_SATURATED;
                } else if (hv_cpuset_count(&p) && u_pct > cfg->over_util_pct) {
                        /* At least one core, then as many as the load with its headroom needs. */
                        const struct parking_core *k;
                        do {
                                k = next_to_unpark(topo, &p);
                                if (k) {
                                        hv_cpuset_minus(&p, &k->cpus);
                                        n_unparked += hv_cpuset_count(&k->cpus);
                                }
                        } while (k && n_unparked < needed);
                        d.reason = PARKING_REASON_UNPARK;
                } else {
                        const struct parking_core *k = next_to_park(cfg, topo, obs, &p);
                        unsigned k_cpus = k ? hv_cpuset_count(&k->cpus) : 0;
                        /* After it goes, the rest must hold the load with its headroom, and not
                         * be pushed past over-utilisation (with a small headroom it could be). */
                        bool fits = k && n_unparked > k_cpus && n_unparked - k_cpus >= needed &&
                                    100.0 * load / (n_unparked - k_cpus) <= cfg->over_util_pct;
                        if (!k)
                                d.reason = n_unparked > needed ? PARKING_REASON_NOTHING : PARKING_REASON_STEADY;
                        else if (!fits || forced) /* no park in a tick that gave a core back */
                                d.reason = PARKING_REASON_STEADY;
                        else if (obs->affinity_unknown)
                                d.reason = PARKING_REASON_UNKNOWN_VM;
                        else if (state->last_change_usec && now_usec - state->last_change_usec < cfg->dwell_usec)
                                d.reason = PARKING_REASON_DWELL;
                        else if (state->last_unpark_usec &&
                                 now_usec - state->last_unpark_usec < cfg->reversal_hold_usec)
                                d.reason = PARKING_REASON_REVERSAL;
                        else {
                                hv_cpuset_or(&p, &k->cpus);
                                d.reason = PARKING_REASON_PARK;
                        }
                }
        }
        /* Given back for a claim, not for load: said so. */
        if (forced && d.reason != PARKING_REASON_UNPARK && d.reason != PARKING_REASON_SATURATED)
                d.reason = PARKING_REASON_CLAIMED;

        d.parked = p;
        d.unparked = host;
        hv_cpuset_minus(&d.unparked, &p);
        d.unparked_cpus = hv_cpuset_count(&d.unparked);
        for (unsigned w = 0; w < HV_CPUSET_WORDS; w++)
                d.changed.bits[w] = before.bits[w] ^ p.bits[w];
        if (hv_cpuset_count(&d.changed)) {
                state->last_change_usec = now_usec;
                /* An unpark undoes an earlier park: the anti-flap hold counts from it. */
                struct hv_cpuset given = before;
                hv_cpuset_minus(&given, &p);
                if (hv_cpuset_count(&given)) {
                        state->last_unpark_usec = now_usec;
                        if (d.reason == PARKING_REASON_UNPARK || d.reason == PARKING_REASON_SATURATED)
                                state->reversals++;
                }
        }
        state->parked = p;
        *ret = d;
        return 0;
}

enum parking_vm_action parking_vm_action(const struct parking_config *cfg, const struct parking_decision *d,
                                         bool floats, bool latency_sensitive) {
        if (!cfg || !d || !floats || latency_sensitive || cfg->mode != PARKING_PIN)
                return floats && !latency_sensitive ? PARKING_VM_RESTORE : PARKING_VM_LEAVE;
        return hv_cpuset_count(&d->parked) ? PARKING_VM_CONFINE : PARKING_VM_RESTORE;
}

int parking_cpulist_parse(const char *s, struct hv_cpuset *ret, const char **err) {
        struct hv_cpuset set = { 0 };
        const char *why = NULL;

        if (!s || !ret)
                return -EINVAL;
        if (*s && strcmp(s, "none") != 0)
                for (const char *p = s;;) {
                        char *end;
                        if (*p < '0' || *p > '9') {
                                why = "not a CPU list like 0-3,8";
                                goto bad;
                        }
                        errno = 0;
                        unsigned long a = strtoul(p, &end, 10), b = a;
                        if (*end == '-') {
                                p = end + 1;
                                if (*p < '0' || *p > '9') {
                                        why = "not a CPU list like 0-3,8";
                                        goto bad;
                                }
                                b = strtoul(p, &end, 10);
                        }
                        if (errno || a >= HV_CPUSET_MAX || b >= HV_CPUSET_MAX) {
                                why = "a CPU past the 1024 tide knows";
                                goto bad;
                        }
                        if (b < a) {
                                why = "a range that goes backwards";
                                goto bad;
                        }
                        for (unsigned long c = a; c <= b; c++)
                                hv_cpuset_set(&set, (unsigned) c);
                        if (*end == '\0')
                                break;
                        if (*end != ',') {
                                why = "not a CPU list like 0-3,8";
                                goto bad;
                        }
                        p = end + 1;
                }
        *ret = set;
        return 0;
bad:
        if (err)
                *err = why;
        return -EINVAL;
}

char *parking_cpulist_format(const struct hv_cpuset *s, char *buf, size_t len) {
        size_t at = 0;
        if (!s || !buf || !len)
                return NULL;
        buf[0] = '\0';
        for (unsigned c = 0; c < HV_CPUSET_MAX; c++) {
                if (!hv_cpuset_test(s, c))
                        continue;
                unsigned e = c;
                while (e + 1 < HV_CPUSET_MAX && hv_cpuset_test(s, e + 1))
                        e++;
                int n = e == c ? snprintf(buf + at, len - at, "%s%u", at ? "," : "", c)
                               : snprintf(buf + at, len - at, "%s%u-%u", at ? "," : "", c, e);
                if (n < 0 || (size_t) n >= len - at)
                        return NULL;
                at += (size_t) n;
                c = e;
        }
        if (!at && snprintf(buf, len, "none") >= (int) len)
                return NULL;
        return buf;
}
