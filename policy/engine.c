/* The dynamic-memory engine. docs/POLICY.md is the user-facing statement of these rules;
 * keep the two in step. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/units.h"
#include "policy/engine.h"

#define UNIT_KIB POLICY_ALIGN_KIB

enum vm_mode {
        MODE_DYNAMIC, /* running, fresh demand */
        MODE_HOLD,    /* running, demand unusable: keep what it has */
        MODE_FIXED,   /* static, or booting: startup memory */
};

/* Per-VM working values. Sizes in allocation units (2 MiB) so that everything the sharing
 * hands out stays aligned. */
struct work {
        uint64_t floor_u;   /* never below this (minimum, or startup when fixed) */
        uint64_t dlev_u;    /* demand level: demand clamped to [floor, desired] */
        uint64_t desired_u; /* demand + buffer clamped to [minimum, maximum] (rule 1) */
        uint64_t cap_u;     /* NUMA-node share, UINT64_MAX when not node-limited */
        uint64_t alloc_u;   /* entitlement */
        uint64_t need_u;    /* scratch for one water-filling round */
        uint32_t weight;
        uint8_t mode;
        bool node_capped;
        bool grow_now;    /* rule 5: guest PSI above psi_grow, or it deflated its balloon, this tick */
        uint8_t insane;   /* rule 6: why the demand was rejected, 0 when it was not */
};

struct order {
        double key;
        uint32_t i;
};

struct engine {
        size_t max_vms;
        struct work *w;
        struct order *ord;
        uint32_t *idx;
};

struct engine *engine_new(size_t max_vms) {
        struct engine *e = calloc(1, sizeof(*e));
        if (!e)
                return NULL;
        e->max_vms = max_vms;
        e->w = calloc(max_vms ? max_vms : 1, sizeof(*e->w));
        e->ord = calloc(max_vms ? max_vms : 1, sizeof(*e->ord));
        e->idx = calloc(max_vms ? max_vms : 1, sizeof(*e->idx));
        if (!e->w || !e->ord || !e->idx)
                return engine_free(e);
        return e;
}

struct engine *engine_free(struct engine *e) {
        if (!e)
                return NULL;
        free(e->w);
        free(e->ord);
        free(e->idx);
        free(e);
        return NULL;
}

static uint64_t units_up(uint64_t kib) {
        return kib / UNIT_KIB + (kib % UNIT_KIB != 0);
}

static uint64_t align_up_kib(uint64_t kib) {
        return units_up(kib) * UNIT_KIB;
}

uint64_t engine_desired_kib(const struct vm_policy *p, uint64_t demand_kib) {
        /* demand is bounded by SIZE_MAX_KIB upstream, buffer by 2000 %: no overflow. */
        uint64_t d = demand_kib > SIZE_MAX_KIB ? SIZE_MAX_KIB : demand_kib;
        uint64_t want = d + (d * p->buffer_pct + 99) / 100;
        return clamp_u64(align_up_kib(want), p->minimum_kib, p->maximum_kib);
}

enum engine_status engine_status_of(uint64_t assigned_kib, bool has_demand, uint64_t demand_kib,
                                    unsigned buffer_pct, double *ret_avail_pct) {
        double avail;

        if (!has_demand) {
                if (ret_avail_pct)
                        *ret_avail_pct = 0;
                return ENGINE_STATUS_UNKNOWN;
        }
        double buffer_kib = (double) demand_kib * buffer_pct / 100.0;
        if (buffer_kib <= 0)
                avail = 1e6; /* no demand: the whole VM is buffer */
        else
                avail = fmin(((double) assigned_kib - (double) demand_kib) / buffer_kib * 100.0, 1e6);
        if (ret_avail_pct)
                *ret_avail_pct = avail;
        if (assigned_kib < demand_kib)
                return ENGINE_STATUS_WARNING;
        return avail > 80.0 ? ENGINE_STATUS_OK : ENGINE_STATUS_LOW;
}

const char *engine_status_to_string(enum engine_status s) {
        switch (s) {
        case ENGINE_STATUS_OK:
                return "ok";
        case ENGINE_STATUS_LOW:
                return "low";
        case ENGINE_STATUS_WARNING:
                return "warning";
        case ENGINE_STATUS_UNKNOWN:
                return "unknown";
        case ENGINE_STATUS_PAGING:
                return "paging";
        }
        return "unknown";
}

static int order_cmp(const void *a, const void *b) {
        const struct order *x = a, *y = b;
        if (x->key != y->key)
                return x->key < y->key ? -1 : 1;
        return x->i < y->i ? -1 : x->i > y->i;
}

/* Weighted water-filling of `budget` units over items idx[0..n) whose need is w[i].need_u:
 * find the level L where sum(min(need, weight x L)) == budget, so each item gets the same
 * amount per unit of weight unless its need is smaller. Weight-0 items get nothing until every
 * weighted item is satisfied, then share what is left equally. Adds to w[i].alloc_u, returns
 * what it handed out. */
static uint64_t waterfill(struct engine *e, const uint32_t *idx, size_t n, uint64_t budget) {
        uint64_t given = 0;

        for (int pass = 0; pass < 2 && budget > 0; pass++) {
                size_t m = 0;
                uint64_t wsum = 0, need_sum = 0;

                for (size_t k = 0; k < n; k++) {
                        struct work *x = &e->w[idx[k]];
                        uint32_t wt = pass == 0 ? x->weight : 1;
                        if ((pass == 0) != (x->weight > 0) || x->need_u == 0)
                                continue;
                        e->ord[m++] = (struct order){ .key = (double) x->need_u / wt, .i = idx[k] };
                        wsum += wt;
                        need_sum += x->need_u;
                }
                if (m == 0)
                        continue;

                if (need_sum <= budget) { /* common case: everyone fits, no sort */
                        for (size_t k = 0; k < m; k++) {
                                struct work *x = &e->w[e->ord[k].i];
                                x->alloc_u += x->need_u;
                                x->need_u = 0;
                        }
                        budget -= need_sum;
                        given += need_sum;
                        continue;
                }

                qsort(e->ord, m, sizeof(*e->ord), order_cmp);
                size_t k = 0;
                for (; k < m; k++) {
                        struct work *x = &e->w[e->ord[k].i];
                        uint32_t wt = pass == 0 ? x->weight : 1;
                        /* need/wt <= budget/wsum, in exact integer arithmetic */
                        if ((unsigned __int128) x->need_u * wsum > (unsigned __int128) budget * wt)
                                break;
                        x->alloc_u += x->need_u;
                        budget -= x->need_u;
                        given += x->need_u;
                        x->need_u = 0;
                        wsum -= wt;
                }
                /* The rest are all above the level: each gets weight x level, rounded down; the
                 * few units rounding leaves go to the largest needs first. */
                uint64_t handed = 0;
                for (size_t j = k; j < m; j++) {
                        struct work *x = &e->w[e->ord[j].i];
                        uint32_t wt = pass == 0 ? x->weight : 1;
                        uint64_t share = (uint64_t) ((unsigned __int128) budget * wt / wsum);
                        share = min_u64(share, x->need_u);
                        x->alloc_u += share;
                        x->need_u -= share;
                        handed += share;
                }
                uint64_t left = budget - handed;
                for (size_t j = m; j > k && left > 0; j--) {
                        struct work *x = &e->w[e->ord[j - 1].i];
                        if (x->need_u > 0) {
                                x->alloc_u++;
                                x->need_u--;
                                left--;
                        }
                }
                given += budget - left;
                budget = left;
        }
        return given;
}

/* Rules 2-3: hands capacity out over idx[0..n): floors first, then demand, then buffers, each
 * by weight. Fills alloc_u. Returns true when even the floors did not fit. others_u: what VMs
 * left out of the step may desire; it counts toward a short host, and is handed nothing. */
static bool share(struct engine *e, const uint32_t *idx, size_t n, uint64_t capacity_u, uint64_t others_u,
                  bool *ret_short) {
        uint64_t floor_sum = 0, desired_sum = others_u;

        for (size_t k = 0; k < n; k++) {
                struct work *x = &e->w[idx[k]];
                floor_sum += x->floor_u;
                desired_sum += x->desired_u;
        }
        if (desired_sum <= capacity_u) {
                for (size_t k = 0; k < n; k++)
                        e->w[idx[k]].alloc_u = e->w[idx[k]].desired_u;
                *ret_short = false;
                return false;
        }
        *ret_short = true;
        for (size_t k = 0; k < n; k++)
                e->w[idx[k]].alloc_u = e->w[idx[k]].floor_u;
        if (floor_sum >= capacity_u)
                return floor_sum > capacity_u;

        uint64_t left = capacity_u - floor_sum;
        for (size_t k = 0; k < n; k++) {
                struct work *x = &e->w[idx[k]];
                x->need_u = x->dlev_u - x->floor_u;
        }
        left -= waterfill(e, idx, n, left);
        for (size_t k = 0; k < n; k++) {
                struct work *x = &e->w[idx[k]];
                x->need_u = x->desired_u - x->alloc_u;
        }
        waterfill(e, idx, n, left);
        return false;
}

/* Rule 6: is this demand sample believable? Returns 0 or the ENGINE_REASON_INSANE argument. */
enum {
        INSANE_NEGATIVE = 1,
        INSANE_ABOVE_TOTAL,
        INSANE_TIME_BACKWARDS,
        INSANE_FROM_FUTURE,
};

static unsigned demand_insanity(const struct engine_vm *vm, uint64_t now_usec) {
        if (vm->demand_kib < 0)
                return INSANE_NEGATIVE;
        if ((uint64_t) vm->demand_kib > SIZE_MAX_KIB ||
            (vm->guest_total_kib > 0 && (uint64_t) vm->demand_kib > vm->guest_total_kib))
                return INSANE_ABOVE_TOTAL;
        if (vm->demand_usec > now_usec)
                return INSANE_FROM_FUTURE;
        if (vm->demand_usec < vm->memo.last_demand_usec)
                return INSANE_TIME_BACKWARDS;
        return 0;
}

/* Rule 5, Senpai-style: pressure above psi_grow starts a back-off; it ends once pressure has
 * stayed at or below psi_calm for psi_calm_usec. A guest that deflated its own balloon
 * (deflate-on-oom) ran out of memory: that is the strongest pressure signal there is, and
 * without it tided would shrink the guest straight back into the same OOM. */
static struct engine_memo update_pressure(const struct engine_vm *vm, const struct tide_config *cfg,
                                          uint64_t now_usec, bool *ret_grow_now) {
        struct engine_memo m = vm->memo;
        double psi = isfinite(vm->psi_some_avg10) ? vm->psi_some_avg10 : 0;

        *ret_grow_now = psi > cfg->psi_grow_pct || vm->guest_reclaimed;
        if (*ret_grow_now)
                m.pressured = true;
        if (vm->guest_reclaimed)
                m.last_reclaim_usec = now_usec;
        if (psi > cfg->psi_calm_pct || vm->guest_reclaimed)
                m.last_pressure_usec = now_usec;
        if (m.pressured && now_usec - m.last_pressure_usec >= cfg->psi_calm_usec && !*ret_grow_now)
                m.pressured = false;
        return m;
}

/* Rule 5's grow: psi_grow_step % above what the VM holds, aligned, within its maximum. */
static uint64_t pressure_bump_kib(const struct engine_vm *vm, const struct tide_config *cfg) {
        uint64_t bump = (uint64_t) ((double) vm->assigned_kib * cfg->psi_grow_step_pct / 100.0);
        return min_u64(align_up_kib(vm->assigned_kib + bump), vm->policy.maximum_kib);
}

static uint64_t shrink_step_kib(uint64_t assigned_kib, const struct tide_config *cfg) {
        uint64_t step = (uint64_t) ((double) assigned_kib * cfg->shrink_step_pct / 100.0);
        return max_u64(min_u64(step, cfg->shrink_step_max_kib), UNIT_KIB);
}

/* Rule 4's shrink, one step: what a VM holding a KiB is taken to next, aligned, never up. */
static uint64_t shrink_stepped_kib(uint64_t a, const struct tide_config *cfg) {
        return min_u64(align_up_kib(sat_sub_u64(a, shrink_step_kib(a, cfg))), a);
}

uint64_t engine_shrink_reach_kib(uint64_t assigned_kib, uint64_t floor_kib, uint64_t ticks,
                                 const struct tide_config *cfg) {
        uint64_t a = assigned_kib;
        for (uint64_t k = 0; k < ticks && a > floor_kib; k++)
                a = max_u64(shrink_stepped_kib(a, cfg), floor_kib);
        return a;
}

/* Rule 6's hold: why the demand could not be used, and the number its sentence needs. */
static void set_hold_reason(const struct engine_vm *vm, unsigned insane, bool stale, uint64_t now_usec,
                            struct engine_decision *d) {
        d->reason = insane ? ENGINE_REASON_INSANE : stale ? ENGINE_REASON_STALE : ENGINE_REASON_NO_DEMAND;
        d->reason_arg = insane ? insane : stale ? (now_usec - vm->demand_usec) / USEC_PER_SEC : 0;
}

/* Rules 4-6 for one VM: d's desired, flags and memo are set; x holds its entitlement. */
static void decide_one(const struct engine_vm *vm, const struct work *x, const struct tide_config *cfg,
                       uint64_t now_usec, bool overcommitted, bool short_host, struct engine_decision *d) {
        const struct vm_policy *p = &vm->policy;
        unsigned insane = x->insane;
        bool stale = d->flags & ENGINE_FLAG_STALE_DEMAND;
        bool grow_now = x->grow_now;
        uint64_t a = vm->assigned_kib;
        uint64_t ent = x->alloc_u * UNIT_KIB;
        uint64_t t;

        d->entitled_kib = ent;

        if (x->mode == MODE_FIXED) {
                bool booting = vm->state == ENGINE_VM_BOOTING;
                /* A booting guest cannot give memory back yet (no balloon driver): never shrink it
                 * below what it holds; a static VM simply sits at startup. */
                t = booting ? max_u64(p->startup_kib, a) : p->startup_kib;
                d->reason = booting ? ENGINE_REASON_BOOTING : ENGINE_REASON_STATIC;
                d->reason_arg = p->startup_kib;
                d->target_kib = t;
                return;
        }

        if (a < p->minimum_kib) {
                d->target_kib = max_u64(ent, p->minimum_kib);
                d->reason = overcommitted ? ENGINE_REASON_OVERCOMMITTED : ENGINE_REASON_RAISE_TO_MINIMUM;
                d->reason_arg = p->minimum_kib;
                return;
        }
        if (a > p->maximum_kib) {
                d->target_kib = p->maximum_kib;
                d->reason = ENGINE_REASON_LOWER_TO_MAXIMUM;
                d->reason_arg = p->maximum_kib;
                return;
        }

        t = ent;
        if (cfg->grow_step_max_kib > 0 && t > a)
                t = min_u64(t, align_up_kib(a + cfg->grow_step_max_kib));

        if (t < a) {
                /* Rule 4: shrink slowly, never on data we do not trust, never while the guest is
                 * settling after boot or backing off from pressure. */
                if (x->mode == MODE_HOLD) {
                        d->target_kib = a;
                        set_hold_reason(vm, insane, stale, now_usec, d);
                        return;
                }
                if (vm->uptime_usec < cfg->quiet_usec) {
                        d->target_kib = a;
                        d->reason = ENGINE_REASON_QUIET;
                        d->reason_arg = (cfg->quiet_usec - vm->uptime_usec + USEC_PER_SEC - 1) / USEC_PER_SEC;
                        return;
                }
                /* Pressure holds a VM at what it has, but not on a short host (or node): there
                 * the weights decide, or a guest claiming pressure (a lying agent, a faked
                 * deflate) would keep above its entitlement what the others are owed. */
                if (d->memo.pressured && !short_host) {
                        d->target_kib = a;
                        d->reason = ENGINE_REASON_PRESSURE_HOLD;
                        d->reason_arg = (now_usec - d->memo.last_pressure_usec) / USEC_PER_SEC;
                        return;
                }
                uint64_t stepped = shrink_stepped_kib(a, cfg);
                /* A last step that would stop within the dead-band of the entitlement goes all
                 * the way, or the dead-band would strand the VM a few MiB above it for good. */
                if (stepped > t && stepped - t >= cfg->deadband_kib)
                        t = stepped;
        }

        /* The dead-band is about how far the VM is from its entitlement, not the size of this
         * tick's bounded step: a small VM, whose 2 % step is under the dead-band, would otherwise
         * hold far above its target for good. */
        uint64_t dist = ent > a ? ent - a : a - ent;
        uint64_t diff = t > a ? t - a : a - t;
        bool below_demand = x->mode == MODE_DYNAMIC && (int64_t) a < vm->demand_kib;
        if (diff > 0 && dist < cfg->deadband_kib && !(t > a && (below_demand || grow_now))) {
                d->target_kib = a;
                d->reason = ENGINE_REASON_DEADBAND;
                d->reason_arg = diff;
                return;
        }

        d->target_kib = t;
        /* Rule 5's reasons only when it grew, or would have but for the maximum. */
        bool pressure_grew = grow_now && (t > a || t == p->maximum_kib);
        if (overcommitted) {
                d->reason = ENGINE_REASON_OVERCOMMITTED;
                d->reason_arg = p->minimum_kib;
        } else if (pressure_grew && vm->guest_reclaimed) {
                d->reason = ENGINE_REASON_RECLAIM_GROW;
                d->reason_arg = t == p->maximum_kib;
        } else if (x->mode == MODE_HOLD) {
                set_hold_reason(vm, insane, stale, now_usec, d);
        } else if (pressure_grew) {
                d->reason = ENGINE_REASON_PRESSURE_GROW;
                d->reason_arg = t == p->maximum_kib; /* pressured, but at the ceiling */
        } else if (ent < d->desired_kib) {
                d->reason = x->node_capped ? ENGINE_REASON_NODE_SHARE : ENGINE_REASON_WEIGHT_SHARE;
                d->reason_arg = ent;
        } else if (t > a) {
                d->reason = ENGINE_REASON_GROW;
        } else if (t < a) {
                d->reason = ENGINE_REASON_SHRINK;
                d->reason_arg = a - t;
        } else if (d->desired_kib == p->minimum_kib && (uint64_t) vm->demand_kib * (100 + p->buffer_pct) / 100 < p->minimum_kib) {
                d->reason = ENGINE_REASON_AT_MINIMUM; /* demand + buffer is below the floor */
        } else if (d->desired_kib == p->maximum_kib && (uint64_t) vm->demand_kib * (100 + p->buffer_pct) / 100 > p->maximum_kib) {
                d->reason = ENGINE_REASON_AT_MAXIMUM;
        } else {
                d->reason = ENGINE_REASON_STEADY;
        }
}

/* The entitlement on a roomy host: rule 1's target in allocation units. Never falls as the
 * demand rises. */
static uint64_t roomy_entitlement_kib(const struct vm_policy *p, uint64_t demand_kib) {
        return align_up_kib(engine_desired_kib(p, demand_kib));
}

/* Bisection over [0, limit] for demand_reaching(): the answer lies in [lo, hi]. */
static int64_t demand_reaching_bisect(const struct vm_policy *p, uint64_t want, uint64_t limit) {
        uint64_t lo = 0, hi = limit;
        while (lo < hi) {
                uint64_t mid = lo + (hi - lo) / 2;
                if (roomy_entitlement_kib(p, mid) >= want)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return (int64_t) lo;
}

/* Bisection over [0, limit] for demand_within(). */
static int64_t demand_within_bisect(const struct vm_policy *p, uint64_t want, uint64_t limit) {
        uint64_t lo = 0, hi = limit;
        while (lo < hi) {
                uint64_t mid = lo + (hi - lo + 1) / 2;
                if (roomy_entitlement_kib(p, mid) <= want)
                        lo = mid;
                else
                        hi = mid - 1;
        }
        return (int64_t) lo;
}

/* Rule 1 before its clamp is about demand x (1 + buffer): a first guess at where the
 * entitlement crosses `kib`, within a few KiB. */
static uint64_t demand_guess(const struct vm_policy *p, uint64_t kib) {
        return (uint64_t) ((unsigned __int128) kib * 100 / (100 + p->buffer_pct));
}

/* The smallest demand up to `limit` whose entitlement is at least `want`, -1 when none is: from
 * the guess when the few demands around it show the crossing, else by bisection. */
static int64_t demand_reaching(const struct vm_policy *p, uint64_t want, uint64_t limit) {
        if (roomy_entitlement_kib(p, limit) < want)
                return -1;
        uint64_t g = demand_guess(p, sat_sub_u64(align_up_kib(want), UNIT_KIB));
        for (uint64_t x = g > 4 ? g - 4 : 0; x <= g + 4 && x <= limit; x++)
                if (roomy_entitlement_kib(p, x) >= want)
                        return x == 0 || roomy_entitlement_kib(p, x - 1) < want ? (int64_t) x
                                                                              : demand_reaching_bisect(p, want, limit);
        return demand_reaching_bisect(p, want, limit);
}

/* The largest demand up to `limit` whose entitlement is at most `want`, -1 when none is: from
 * the guess when the few demands around it show the crossing, else by bisection. */
static int64_t demand_within(const struct vm_policy *p, uint64_t want, uint64_t limit) {
        if (roomy_entitlement_kib(p, 0) > want)
                return -1;
        if (roomy_entitlement_kib(p, limit) <= want)
                return (int64_t) limit;
        uint64_t g = demand_guess(p, want - want % UNIT_KIB);
        for (uint64_t x = min_u64(g + 4, limit); x + 4 >= g; x--) {
                if (roomy_entitlement_kib(p, x) <= want)
                        return roomy_entitlement_kib(p, x + 1) > want ? (int64_t) x : demand_within_bisect(p, want, limit);
                if (x == 0)
                        break;
        }
        return demand_within_bisect(p, want, limit);
}

bool engine_holds_on_demand(const struct engine_vm *vm, const struct engine_decision *d) {
        const struct vm_policy *p = &vm->policy;
        uint64_t a = d->target_kib; /* what it holds once the decision is carried out */

        if (!p->dynamic || vm->state != ENGINE_VM_RUNNING || !vm->has_demand || vm->demand_kib < 0 || d->flags ||
            d->memo.pressured || vm->guest_reclaimed || vm->psi_some_avg10 != 0 || a < p->minimum_kib ||
            a > p->maximum_kib)
                return false;
        /* A plain grow or shrink, or a hold: not one the weights, the host's free memory,
         * pressure or the bounds decided. */
        switch (d->reason) {
        case ENGINE_REASON_STEADY:
        case ENGINE_REASON_DEADBAND:
        case ENGINE_REASON_AT_MINIMUM:
        case ENGINE_REASON_AT_MAXIMUM:
        case ENGINE_REASON_GROW:
        case ENGINE_REASON_SHRINK:
                return true;
        default:
                return false;
        }
}

bool engine_hold_range(const struct engine_vm *vm, const struct engine_decision *d, const struct tide_config *cfg,
                       int64_t *ret_lo, int64_t *ret_hi) {
        const struct vm_policy *p = &vm->policy;
        uint64_t a = d->target_kib;

        if (!engine_holds_on_demand(vm, d))
                return false;
        /* On a roomy host the entitlement is rule 1's target, and decide_one() holds exactly
         * when it is within the dead-band of what the VM holds (a grow also needs the demand no
         * higher than that): a - deadband < entitlement < a + deadband, or entitlement == a.
         * A demand above a is left out (the VM would be short of it), so both ends lie in
         * [0, a]. */
        uint64_t db = cfg->deadband_kib;
        int64_t lo = demand_reaching(p, db ? a - min_u64(a, db - 1) : a, a);
        int64_t hi = demand_within(p, db ? a + db - 1 : a, a);
        if (lo < 0 || hi < 0 || lo > hi)
                return false;
        *ret_lo = lo;
        *ret_hi = hi;
        return true;
}

int engine_step(struct engine *e, const struct engine_host *host, const struct engine_vm *vms, size_t n,
                const struct tide_config *cfg, uint64_t now_usec, struct engine_decision *out,
                struct engine_summary *summary) {
        if (!e || !host || !cfg || (n > 0 && (!vms || !out)))
                return -EINVAL;
        if (n > e->max_vms || n > UINT32_MAX)
                return -E2BIG;

        uint64_t capacity_kib = sat_sub_u64(host->usable_kib, host->reserve_kib);
        struct engine_summary s = { .capacity_kib = capacity_kib };

        /* Pass 1: per-VM inputs, sanity, rule 1. */
        for (size_t i = 0; i < n; i++) {
                const struct engine_vm *vm = &vms[i];
                const struct vm_policy *p = &vm->policy;
                struct work *x = &e->w[i];
                struct engine_decision *d = &out[i];
                bool grow_now;

                *d = (struct engine_decision){ 0 };
                d->memo = update_pressure(vm, cfg, now_usec, &grow_now);
                unsigned insane = vm->has_demand ? demand_insanity(vm, now_usec) : 0;
                bool usable = vm->has_demand && !insane;
                bool stale = usable && now_usec - vm->demand_usec > cfg->stale_usec;
                if (usable)
                        d->memo.last_demand_usec = vm->demand_usec;
                if (insane)
                        d->flags |= ENGINE_FLAG_INSANE_DEMAND;
                if (stale)
                        d->flags |= ENGINE_FLAG_STALE_DEMAND;
                if (d->memo.pressured)
                        d->flags |= ENGINE_FLAG_PRESSURED;
                if (vm->guest_reclaimed)
                        d->flags |= ENGINE_FLAG_GUEST_OOM;

                *x = (struct work){ .weight = p->weight, .cap_u = UINT64_MAX, .grow_now = grow_now,
                                    .insane = (uint8_t) insane };
                if (!p->dynamic || vm->state == ENGINE_VM_BOOTING) {
                        x->mode = MODE_FIXED;
                        x->floor_u = x->dlev_u = x->desired_u = units_up(p->startup_kib);
                        d->desired_kib = p->startup_kib;
                } else if (!usable || stale) {
                        x->mode = MODE_HOLD;
                        d->desired_kib = clamp_u64(vm->assigned_kib, p->minimum_kib, p->maximum_kib);
                        if (vm->guest_reclaimed)
                                /* Rule 5: the host saw the OOM itself; no demand needed to believe
                                 * it (a guest out of memory is the one whose reports stall). */
                                d->desired_kib = max_u64(d->desired_kib, pressure_bump_kib(vm, cfg));
                        x->floor_u = units_up(p->minimum_kib);
                        x->dlev_u = x->desired_u = units_up(d->desired_kib);
                } else {
                        uint64_t demand = (uint64_t) vm->demand_kib;
                        x->mode = MODE_DYNAMIC;
                        d->desired_kib = engine_desired_kib(p, demand);
                        if (grow_now)
                                /* Rule 5: the guest is stalling on memory whatever it reports. */
                                d->desired_kib = max_u64(d->desired_kib, pressure_bump_kib(vm, cfg));
                        x->floor_u = units_up(p->minimum_kib);
                        x->desired_u = units_up(d->desired_kib);
                        x->dlev_u = clamp_u64(units_up(demand), x->floor_u, x->desired_u);
                }
                s.floor_kib += x->floor_u * UNIT_KIB;
                s.desired_kib += d->desired_kib;

                uint64_t shown = usable ? (uint64_t) vm->demand_kib : 0;
                d->status = engine_status_of(vm->assigned_kib, usable, shown, p->buffer_pct, NULL);
        }

        /* Pass 2: NUMA nodes first. A node-bound VM can have no more than its share of its
         * node; that share then caps what it may ask of the host as a whole. */
        for (unsigned node = 0; node < host->n_nodes && node < ENGINE_NODE_MAX; node++) {
                size_t m = 0;
                for (size_t i = 0; i < n; i++)
                        if (vms[i].node == (int) node)
                                e->idx[m++] = (uint32_t) i;
                if (m == 0)
                        continue;
                bool node_short;
                share(e, e->idx, m, host->node_usable_kib[node] / UNIT_KIB, 0, &node_short);
                if (!node_short)
                        continue;
                for (size_t k = 0; k < m; k++) {
                        struct work *x = &e->w[e->idx[k]];
                        if (x->alloc_u < x->desired_u) {
                                x->node_capped = true;
                                x->desired_u = max_u64(x->alloc_u, x->floor_u);
                                x->dlev_u = min_u64(x->dlev_u, x->desired_u);
                        }
                }
        }

        /* Pass 3: the host. */
        for (size_t i = 0; i < n; i++)
                e->idx[i] = (uint32_t) i;
        /* Left-out VMs count toward whether the host is short; when it is, this step's shares are
         * not the whole host's and the caller takes the step over every VM. */
        s.overcommitted = share(e, e->idx, n, capacity_kib / UNIT_KIB, units_up(host->others_desired_kib), &s.short_host);

        /* Pass 4: targets (rule 4-6), then fund the grows from what the host has free now. */
        uint64_t assigned_sum = 0;
        for (size_t i = 0; i < n; i++) {
                const struct engine_vm *vm = &vms[i];
                struct engine_decision *d = &out[i];
                const struct work *x = &e->w[i];

                assigned_sum += vm->assigned_kib;
                decide_one(vm, x, cfg, now_usec, s.overcommitted, s.short_host || x->node_capped, d);
                if (s.overcommitted)
                        d->flags |= ENGINE_FLAG_OVERCOMMITTED;
        }

        /* Raising a VM to its floor is a guarantee and is never limited; other grows share the
         * free memory by weight so one VM's spike cannot take what another was promised. */
        uint64_t free_kib = sat_sub_u64(capacity_kib, assigned_sum + host->others_assigned_kib);
        uint64_t grow_sum = 0;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
                const struct engine_vm *vm = &vms[i];
                struct work *x = &e->w[i];
                uint64_t a = vm->assigned_kib, t = out[i].target_kib;
                uint64_t floor_kib = x->floor_u * UNIT_KIB;

                if (t <= a)
                        continue;
                uint64_t guaranteed = a < floor_kib ? min_u64(t, floor_kib) - a : 0;
                free_kib = sat_sub_u64(free_kib, guaranteed);
                x->need_u = (t - a - guaranteed) / UNIT_KIB;
                x->alloc_u = 0;
                if (x->need_u > 0) {
                        e->idx[m++] = (uint32_t) i;
                        grow_sum += x->need_u;
                }
        }
        if (grow_sum > free_kib / UNIT_KIB) {
                waterfill(e, e->idx, m, free_kib / UNIT_KIB);
                for (size_t k = 0; k < m; k++) {
                        uint32_t i = e->idx[k];
                        struct work *x = &e->w[i];
                        if (x->need_u == 0)
                                continue; /* fully funded */
                        struct engine_decision *d = &out[i];
                        uint64_t a = vms[i].assigned_kib;
                        uint64_t floor_kib = x->floor_u * UNIT_KIB;
                        uint64_t guaranteed = a < floor_kib ? min_u64(d->target_kib, floor_kib) - a : 0;
                        d->target_kib = a + guaranteed + x->alloc_u * UNIT_KIB;
                        d->reason = ENGINE_REASON_HOST_FULL;
                        d->reason_arg = free_kib;
                }
        }

        for (size_t i = 0; i < n; i++)
                s.target_kib += out[i].target_kib;
        if (summary)
                *summary = s;
        return 0;
}

static const char *insane_text(uint64_t why) {
        switch (why) {
        case INSANE_NEGATIVE:
                return "negative";
        case INSANE_ABOVE_TOTAL:
                return "above the guest's total memory";
        case INSANE_TIME_BACKWARDS:
                return "sample time went backwards";
        case INSANE_FROM_FUTURE:
                return "sample time is in the future";
        }
        return "invalid";
}

char *engine_reason_format(const struct engine_decision *d, const struct engine_vm *vm, char *buf, size_t len) {
        char a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX], c[SIZE_FORMAT_MAX];
        const struct vm_policy *p = &vm->policy;
        uint64_t demand = vm->has_demand && vm->demand_kib > 0 ? (uint64_t) vm->demand_kib : 0;

        switch (d->reason) {
        case ENGINE_REASON_STATIC:
                snprintf(buf, len, "static: startup %s", size_format_human(p->startup_kib, a));
                break;
        case ENGINE_REASON_BOOTING:
                snprintf(buf, len, "booting: startup %s", size_format_human(p->startup_kib, a));
                break;
        case ENGINE_REASON_GROW:
                snprintf(buf, len, "grow: demand %s + %u%%", size_format_human(demand, a), p->buffer_pct);
                break;
        case ENGINE_REASON_SHRINK:
                snprintf(buf, len, "shrink by %s toward demand %s + %u%% = %s", size_format_human(d->reason_arg, a),
                         size_format_human(demand, b), p->buffer_pct, size_format_human(d->entitled_kib, c));
                break;
        case ENGINE_REASON_STEADY:
                snprintf(buf, len, "steady: demand %s + %u%%", size_format_human(demand, a), p->buffer_pct);
                break;
        case ENGINE_REASON_AT_MINIMUM:
                snprintf(buf, len, "at minimum %s: demand %s + %u%% is below it",
                         size_format_human(p->minimum_kib, a), size_format_human(demand, b), p->buffer_pct);
                break;
        case ENGINE_REASON_AT_MAXIMUM:
                snprintf(buf, len, "at maximum %s: demand %s + %u%% is above it",
                         size_format_human(p->maximum_kib, a), size_format_human(demand, b), p->buffer_pct);
                break;
        case ENGINE_REASON_DEADBAND:
                snprintf(buf, len, "hold: change of %s is within the dead-band", size_format_human(d->reason_arg, a));
                break;
        case ENGINE_REASON_QUIET:
                snprintf(buf, len, "hold: quiet period %" PRIu64 " s left", d->reason_arg);
                break;
        case ENGINE_REASON_PRESSURE_GROW:
                if (d->reason_arg)
                        snprintf(buf, len, "at maximum %s: guest memory pressure %.1f%% (psi some avg10)",
                                 size_format_human(p->maximum_kib, a), vm->psi_some_avg10);
                else
                        snprintf(buf, len, "grow: guest memory pressure %.1f%% (psi some avg10)", vm->psi_some_avg10);
                break;
        case ENGINE_REASON_RECLAIM_GROW:
                if (d->reason_arg)
                        snprintf(buf, len, "at maximum %s: guest deflated its balloon (out of memory)",
                                 size_format_human(p->maximum_kib, a));
                else
                        snprintf(buf, len, "grow: guest deflated its balloon (out of memory)");
                break;
        case ENGINE_REASON_PRESSURE_HOLD:
                if (d->memo.last_reclaim_usec && d->memo.last_reclaim_usec == d->memo.last_pressure_usec)
                        snprintf(buf, len, "hold: guest ran out of memory (deflated its balloon) %" PRIu64 " s ago",
                                 d->reason_arg);
                else
                        snprintf(buf, len, "hold: guest under memory pressure %" PRIu64 " s ago", d->reason_arg);
                break;
        case ENGINE_REASON_STALE:
                snprintf(buf, len, "hold: demand stale (%" PRIu64 " s old)", d->reason_arg);
                break;
        case ENGINE_REASON_NO_DEMAND:
                snprintf(buf, len, "hold: no demand data");
                break;
        case ENGINE_REASON_INSANE:
                snprintf(buf, len, "hold: demand rejected (%s)", insane_text(d->reason_arg));
                break;
        case ENGINE_REASON_WEIGHT_SHARE:
                snprintf(buf, len, "capped by weight share: %s of %s desired (weight %u)",
                         size_format_human(d->reason_arg, a), size_format_human(d->desired_kib, b), p->weight);
                break;
        case ENGINE_REASON_NODE_SHARE:
                snprintf(buf, len, "capped by node %d share: %s of %s desired (weight %u)", vm->node,
                         size_format_human(d->reason_arg, a), size_format_human(d->desired_kib, b), p->weight);
                break;
        case ENGINE_REASON_HOST_FULL:
                snprintf(buf, len, "grow limited: host has %s free", size_format_human(d->reason_arg, a));
                break;
        case ENGINE_REASON_OVERCOMMITTED:
                snprintf(buf, len, "host overcommitted: holding minimum %s", size_format_human(d->reason_arg, a));
                break;
        case ENGINE_REASON_RAISE_TO_MINIMUM:
                snprintf(buf, len, "raise to minimum %s", size_format_human(d->reason_arg, a));
                break;
        case ENGINE_REASON_LOWER_TO_MAXIMUM:
                snprintf(buf, len, "lower to maximum %s", size_format_human(d->reason_arg, a));
                break;
        default:
                snprintf(buf, len, "unknown");
        }
        return buf;
}
