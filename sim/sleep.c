/* The simulator's fast path (sim_set_fast()). Most VMs, most ticks, hold: their demand moves
 * within the dead-band and the core leaves them where they are. Such a VM sleeps: the ticks and
 * steps it sleeps through are not taken, and the metrics count it as the constant it is
 * (running, booted, holding what it holds, no less than its demand). It wakes when its demand
 * leaves the range its hold rests on (core_vm_hold_range(), found ahead from its demand
 * profile), when an event of its own comes, or after an hour. Waking brings it to the state the
 * full loop would have given it: its demand and agent report at that time, and its last skipped
 * tick replayed through the core. That is enough because a hold carries nothing from one tick
 * to the next but what that tick sets (the sample's time, the balloon watch's last look).
 *
 * A hold rests on a roomy host. The sleepers count toward it with the most they may desire
 * while asleep; a tick on which the host may be short with them counted (the core returns
 * -EAGAIN) wakes them all and is taken over every VM, and for a while after no VM sleeps.
 * tests/unit/sim/test_sim.c runs scenarios both ways and compares every number. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/units.h"
#include "policy/demand.h"
#include "policy/engine.h"
#include "sim/internal.h"
#include "sim/sim.h"

/* A sleeper wakes at least this often, so no wake time is looked for far ahead. */
#define SLEEP_HORIZON_USEC (UINT64_C(3600) * USEC_PER_SEC)
/* A walk has to be stepped a second at a time to see where it goes: looking further ahead
 * than this costs more than a wake does. */
#define SLEEP_WALK_HORIZON_USEC (UINT64_C(600) * USEC_PER_SEC)
/* A sleep shorter than this many steps costs more than it saves (a wake replays a tick). */
#define SLEEP_MIN_STEPS 3
/* After the host turned short with the sleepers counted, nothing sleeps for this long; doubled
 * each time it happens again soon after, up to the maximum. */
#define SLEEP_BACKOFF_USEC (UINT64_C(60) * USEC_PER_SEC)
#define SLEEP_BACKOFF_MAX_USEC (UINT64_C(1800) * USEC_PER_SEC)

bool sim_fast_active(const struct sim *s) {
        return s->fast && !s->peer_mode && !s->node_bound;
}

bool sim_sleep_candidate(const struct sim_vm *v) {
        const struct sim_vm_spec *sp = &v->spec;
        bool reads = sp->agent == SIM_AGENT_HONEST || (sp->agent == SIM_AGENT_NONE && sp->balloon_stats);
        return reads && sp->have_policy && sp->policy.dynamic && sp->psi_some_avg10 == 0 &&
               (!sp->oom_at_start || v->oom_done) && sim_driver_up(v) && !v->pg.file_kib;
}

/* Room for n VMs in the awake list, the merge scratch and the heap (a VM has at most one
 * entry there: only a wake from the heap or a wake of all, which empties it, ends a sleep). */
static int reserve(struct sim *s, size_t n) {
        if (n <= s->awake_cap)
                return 0;
        size_t cap = n < 16 ? 16 : n + n / 2;
        if (realloc_array(&s->awake, cap, sizeof(*s->awake)) < 0 ||
            realloc_array(&s->scratch, cap, sizeof(*s->scratch)) < 0 ||
            realloc_array(&s->heap, cap, sizeof(*s->heap)) < 0)
                return -ENOMEM;
        s->awake_cap = cap;
        return 0;
}

int sim_set_fast(struct sim *s, bool on) {
        if (s->ticks || s->n_asleep)
                return -EBUSY;
        if (on) {
                if (reserve(s, s->n_vms) < 0 || core_frame_reserve(&s->one, 1) < 0)
                        return -ENOMEM;
                for (size_t i = 0; i < s->n_vms; i++)
                        s->awake[i] = i;
                s->n_awake = s->n_vms;
        }
        s->fast = on;
        return 0;
}

int sim_sleep_add(struct sim *s, size_t i) {
        if (reserve(s, s->n_vms + 1) < 0)
                return -ENOMEM;
        s->awake[s->n_awake++] = i; /* the newest VM has the highest index: the list stays sorted */
        return 0;
}

static bool wake_before(const struct sim_wake *a, const struct sim_wake *b) {
        return a->usec < b->usec || (a->usec == b->usec && a->vm < b->vm);
}

static void heap_push(struct sim *s, struct sim_wake w) {
        size_t k = s->n_heap++;
        while (k > 0) {
                size_t parent = (k - 1) / 2;
                if (!wake_before(&w, &s->heap[parent]))
                        break;
                s->heap[k] = s->heap[parent];
                k = parent;
        }
        s->heap[k] = w;
}

static struct sim_wake heap_pop(struct sim *s) {
        struct sim_wake top = s->heap[0], last = s->heap[--s->n_heap];
        size_t k = 0;
        for (;;) {
                size_t c = 2 * k + 1;
                if (c >= s->n_heap)
                        break;
                if (c + 1 < s->n_heap && wake_before(&s->heap[c + 1], &s->heap[c]))
                        c++;
                if (!wake_before(&s->heap[c], &last))
                        break;
                s->heap[k] = s->heap[c];
                k = c;
        }
        if (s->n_heap)
                s->heap[k] = last;
        return top;
}

/* What the sleepers add up to, as the steps and ticks count them. */
static void count_asleep(struct sim *s, const struct sim_vm *v, bool add) {
        uint64_t a = sim_vm_assigned_kib(v), startup = sim_vm_startup_kib(v);
        if (add) {
                s->n_asleep++;
                s->asleep_held_kib += a;
                s->asleep_desired_kib += v->asleep_desired_kib;
                s->asleep_startup_kib += startup;
        } else {
                s->n_asleep--;
                s->asleep_held_kib -= a;
                s->asleep_desired_kib -= v->asleep_desired_kib;
                s->asleep_startup_kib -= startup;
        }
}

/* The profile's demand at t (after the start), as a step takes it; *pos: a trace's cursor. */
static uint64_t profile_at(const struct sim_demand *d, uint64_t t, size_t *pos) {
        return d->kind == SIM_DEMAND_TRACE ? sim_trace_at(&d->trace, t, pos) : sim_demand_at(d, t);
}

/* A sleeper's demand at step time x (not before it fell asleep), as the steps it slept
 * through would have made it: a walk is stepped on from where it was last worked out (or from
 * where it fell asleep, for an earlier x), a step per whole second. *walk_state (may be NULL)
 * gets the walk's generator at x. */
static uint64_t sleeper_demand(const struct sim *s, struct sim_vm *v, uint64_t x, size_t *pos, uint64_t *walk_state) {
        const struct sim_demand *d = &v->spec.demand;

        if (d->kind != SIM_DEMAND_WALK)
                return profile_at(d, x - s->start_usec, pos);
        if (x < v->walk_at_usec) {
                /* Behind what was worked out (a wake that replays the tick before a row's):
                 * from where it fell asleep again. */
                v->walk_at_usec = v->asleep_usec;
                v->walk_at_state = v->asleep_walk_state;
                v->walk_at_kib = v->asleep_demand_kib;
        }
        for (uint64_t sec = v->walk_at_usec / USEC_PER_SEC; sec < x / USEC_PER_SEC; sec++)
                v->walk_at_kib = sim_walk_step(d, &v->walk_at_state, v->walk_at_kib);
        v->walk_at_usec = x;
        if (walk_state)
                *walk_state = v->walk_at_state;
        return v->walk_at_kib;
}

/* The sleeper as after the step to x: its demand then, and its agent's report of it (one a
 * step, so the report carries the number the full loop's would). Nothing else of it moves
 * while it sleeps: its balloon is at its target and its demand within what it holds. */
static void catch_up(struct sim *s, struct sim_vm *v, uint64_t x) {
        v->demand_kib = sleeper_demand(s, v, x, &v->trace_pos, &v->walk_state);
        if (v->spec.agent == SIM_AGENT_NONE)
                return;
        v->report_seq = v->asleep_report_seq + (x - v->asleep_usec) / s->fast_dt - 1;
        sim_report(v, x);
}

/* The sleeper's tick at x, taken through the core alone. Its hold did not depend on the other
 * VMs (the host was roomy, or it would have been woken), so the host handed in is roomy. */
static void replay(struct sim *s, struct sim_vm *v, uint64_t x) {
        struct core_host_obs host = { .total_kib = s->total_kib, .available_kib = SIZE_MAX_KIB };
        struct core_host_out ho;

        sim_observe_vm(v, x, &s->one.obs[0]);
        int r = core_tick(s->core, &s->cfg, &host, s->one.obs, 1, x, false, s->one.out, &ho);
        const struct core_vm_out *o = &s->one.out[0];
        if (r < 0 || o->release || o->set_balloon || o->set_vmem || o->logs)
                s->replay_mismatches++;
        if (r == 0)
                sim_apply_vm(s, v, o, &ho);
}

/* Wakes v at t: as after the tick at t (ticked) or after the step to t. It fell asleep after
 * the step to asleep_usec, so its first tick skipped was that one. */
static void wake(struct sim *s, struct sim_vm *v, uint64_t t, bool ticked) {
        uint64_t f = v->asleep_usec, dt = s->fast_dt;

        count_asleep(s, v, false);
        v->asleep = false;
        s->wakes++;
        s->slept_steps += (t - f) / dt;
        if (ticked) {
                if (t > f)
                        catch_up(s, v, t);
                replay(s, v, t);
        } else if (t > f) {
                catch_up(s, v, t - dt);
                replay(s, v, t - dt);
                catch_up(s, v, t);
        }
}

static int cmp_index(const void *a, const void *b) {
        size_t x = *(const size_t *) a, y = *(const size_t *) b;
        return x < y ? -1 : x > y;
}

void sim_sleep_wake_due(struct sim *s, uint64_t until_usec) {
        size_t k = 0;

        while (s->n_heap && s->heap[0].usec <= until_usec) {
                struct sim_wake w = heap_pop(s);
                struct sim_vm *v = &s->vms[w.vm];
                if (!v->asleep || v->wake_usec != w.usec)
                        continue;
                wake(s, v, s->now_usec, true);
                s->scratch[k++] = w.vm;
        }
        if (k == 0)
                return;
        /* Into the awake list in index order (a step moves memory in that order), merged from
         * the back so it needs no second list. */
        qsort(s->scratch, k, sizeof(*s->scratch), cmp_index);
        size_t i = s->n_awake, j = k, out = s->n_awake + k;
        while (j > 0) {
                if (i > 0 && s->awake[i - 1] > s->scratch[j - 1])
                        s->awake[--out] = s->awake[--i];
                else
                        s->awake[--out] = s->scratch[--j];
        }
        s->n_awake += k;
}

void sim_sleep_wake_all(struct sim *s, uint64_t t_usec, bool ticked) {
        for (size_t i = 0; i < s->n_vms; i++)
                if (s->vms[i].asleep)
                        wake(s, &s->vms[i], t_usec, ticked);
        s->n_heap = 0;
        for (size_t i = 0; i < s->n_vms; i++)
                s->awake[i] = i;
        s->n_awake = s->n_vms;
}

int sim_sleep_tick(struct sim *s) {
        /* Funding a start looks at every VM (core_tick() would say -EAGAIN): they wake first. A
         * start is no short host, so nothing is held awake after it. */
        for (size_t k = 0; s->n_asleep && k < s->n_awake; k++)
                if (s->vms[s->awake[k]].start_pending) {
                        sim_sleep_wake_all(s, s->now_usec, false);
                        break;
                }
        int r = core_frame_reserve(&s->frame, s->n_awake);
        if (r < 0)
                return r;
        uint64_t held = s->asleep_held_kib;
        for (size_t k = 0; k < s->n_awake; k++) {
                struct sim_vm *v = &s->vms[s->awake[k]];
                held += sim_vm_assigned_kib(v);
                sim_observe_vm(v, s->now_usec, &s->frame.obs[k]);
        }
        /* No VM is bound to a node here (sim_fast_active()), so the nodes' free memory is not
         * handed in. */
        struct core_host_obs host = { .total_kib = s->total_kib,
                                      .available_kib = sat_sub_u64(s->total_kib, s->other_kib + held),
                                      .others_held_kib = s->asleep_held_kib,
                                      .others_desired_kib = s->asleep_desired_kib };
        sim_paging_host(s, &host);
        r = core_tick(s->core, &s->cfg, &host, s->frame.obs, s->n_awake, s->now_usec, false, s->frame.out,
                      &s->host_out);
        if (r == -EAGAIN) {
                /* Short with the sleepers counted: the weights decide over every VM. */
                uint64_t now = s->now_usec;
                bool again = s->backoff_usec && now < s->backoff_until_usec + 2 * s->backoff_usec;
                s->backoff_usec = again ? min_u64(2 * s->backoff_usec, SLEEP_BACKOFF_MAX_USEC) : SLEEP_BACKOFF_USEC;
                s->backoff_until_usec = now + s->backoff_usec;
                s->full_ticks++;
                sim_sleep_wake_all(s, now, false);
                return sim_sleep_tick(s); /* nobody sleeps now: no -EAGAIN */
        }
        if (r < 0)
                return r;
        for (size_t k = 0; k < s->n_awake; k++)
                sim_apply_vm(s, &s->vms[s->awake[k]], &s->frame.out[k], &s->host_out);
        s->ticks++;
        return 0;
}

/* The next time after t at which the profile may turn: up to it the demand only rises or only
 * falls (a trace between two samples, a step's level, a ramp as a whole). UINT64_MAX: never. */
static uint64_t next_turn(const struct sim_demand *d, uint64_t t, size_t pos) {
        if (d->kind == SIM_DEMAND_STEPS) {
                uint64_t next = UINT64_MAX;
                for (size_t k = 0; k < d->n_steps && k < SIM_STEPS_MAX; k++)
                        if (d->steps[k].at_usec > t)
                                next = min_u64(next, d->steps[k].at_usec);
                return next;
        }
        if (d->kind == SIM_DEMAND_TRACE) {
                /* In the trace's own time (its copies are shifted): before its first sample the
                 * first value holds. */
                const struct sim_trace *tr = &d->trace;
                uint64_t own = sat_sub_u64(t, tr->offset_usec);
                if (own < tr->t_usec[0])
                        return tr->t_usec[0] + tr->offset_usec;
                return pos + 1 < tr->n ? tr->t_usec[pos + 1] + tr->offset_usec : UINT64_MAX;
        }
        return UINT64_MAX;
}

static bool outside(uint64_t kib, int64_t lo, int64_t hi) {
        return (int64_t) kib < lo || (int64_t) kib > hi;
}

/* The first step time after now at which the VM's demand leaves [lo, hi], or the first at or
 * after `until` (a step time) when it does not leave before. */
static uint64_t demand_leaves(const struct sim *s, const struct sim_vm *v, int64_t lo, int64_t hi, uint64_t until) {
        const struct sim_demand *d = &v->spec.demand;
        uint64_t dt = s->fast_dt, x = s->now_usec + dt;

        if (d->kind == SIM_DEMAND_WALK) {
                uint64_t st = v->walk_state, kib = v->demand_kib;
                until = min_u64(until, s->now_usec + SLEEP_WALK_HORIZON_USEC / dt * dt);
                for (; x < until; x += dt) {
                        for (uint64_t sec = (x - dt) / USEC_PER_SEC; sec < x / USEC_PER_SEC; sec++)
                                kib = sim_walk_step(d, &st, kib);
                        if (outside(kib, lo, hi))
                                return x;
                }
                return x;
        }
        size_t pos = v->trace_pos;
        while (x < until) {
                uint64_t t = x - s->start_usec;
                if (outside(profile_at(d, t, &pos), lo, hi))
                        return x;
                /* Up to the last step before the turn the demand is monotone: if it is inside
                 * there too, it is inside all the way; if not, it left once, found by halving. */
                uint64_t turn = next_turn(d, t, pos), m = (until - 1 - x) / dt;
                if (turn != UINT64_MAX)
                        m = min_u64(m, (turn - 1 - t) / dt);
                if (m > 0) {
                        size_t end_pos = pos;
                        if (outside(profile_at(d, t + m * dt, &end_pos), lo, hi)) {
                                uint64_t in = 0, out = m;
                                while (out - in > 1) {
                                        uint64_t mid = in + (out - in) / 2;
                                        size_t p = pos;
                                        if (outside(profile_at(d, t + mid * dt, &p), lo, hi))
                                                out = mid;
                                        else
                                                in = mid;
                                }
                                return x + out * dt;
                        }
                        pos = end_pos;
                }
                x += (m + 1) * dt;
        }
        return x;
}

/* Whether the demand the core reads when the guest needs need_kib now is within the VM's hold
 * range. The reading rises with the need (the guest's meminfo and its agent's report are its
 * use, shifted and floored), so checking both ends of a range of needs checks all of it. */
static bool reads_within(const struct sim *s, struct sim_vm *v, uint64_t need_kib) {
        struct demand_sources src = { 0 };
        uint64_t now = s->now_usec;

        if (v->spec.agent == SIM_AGENT_HONEST) {
                struct agent_report rep;
                if (!sim_agent_report(v, need_kib, now, &rep) || rep.has_psi ||
                    balloon_used_host_frame(rep.total_kib, rep.available_kib, v->actual_kib, &v->info,
                                            &src.agent.used_kib, &src.agent_total_kib) < 0)
                        return false;
                if (src.agent.used_kib > 0 &&
                    !demand_agent_plausible((uint64_t) src.agent.used_kib, sim_vm_assigned_kib(v)))
                        return false;
                src.has_agent = true;
                src.agent_usec = now;
                src.agent.floor_kib = rep.floor_kib;
        } else {
                struct hv_mem_stats st;
                sim_vm_stats_at(v, need_kib, now, &st);
                if (balloon_demand_from_stats(&st, &v->info, &src.balloon_demand_kib, &src.balloon_total_kib) < 0)
                        return false;
                src.balloon = true;
                src.balloon_usec = now;
        }
        struct demand_pick p = demand_pick(&src, now, s->cfg.stale_usec, 0);
        return p.source != DEMAND_SOURCE_NONE && p.demand_kib >= v->hold_lo_kib && p.demand_kib <= v->hold_hi_kib &&
               (p.total_kib == 0 || p.demand_kib <= (int64_t) p.total_kib);
}

/* Puts v to sleep after this step if its last tick rested on its demand alone, it holds what
 * that tick decided and nothing of it moves: returns whether it sleeps. Its replayed ticks then
 * start from the state that tick left (the target set, the watch on it), as the full loop's
 * next tick, a hold, would. */
static bool try_sleep(struct sim *s, struct sim_vm *v) {
        uint64_t now = s->now_usec, dt = s->fast_dt;

        if (!v->hold || !sim_sleep_candidate(v) || v->start_pending || v->actual_kib != v->balloon_target_kib ||
            v->info.virtio_mem_current_kib != v->info.virtio_mem_requested_kib || v->shortfall_kib || v->in_oom)
                return false;
        /* It holds what its last tick decided (a hold, or a grow or shrink its balloon has
         * carried out in full this step), and that rests on its demand alone. */
        uint64_t a = sim_vm_assigned_kib(v);
        if (a != v->state.decision.target_kib || !core_vm_holds_on_demand(&v->state))
                return false;
        /* The range depends on the target alone here: kept, as a VM that fails to sleep asks
         * again next step. */
        if (v->hold_for_kib != a) {
                v->hold_for_kib = a;
                v->hold_found = core_vm_hold_range(&v->state, &s->cfg, &v->hold_lo_kib, &v->hold_hi_kib);
        }
        if (!v->hold_found)
                return false;
        /* In the simulator's frame: a need above what it holds would be a warning to count. */
        int64_t lo = v->hold_lo_kib > 0 ? v->hold_lo_kib : 0;
        int64_t hi = v->hold_hi_kib < (int64_t) a ? v->hold_hi_kib : (int64_t) a;
        if (lo > hi || outside(v->demand_kib, lo, hi) || !reads_within(s, v, (uint64_t) lo) ||
            !reads_within(s, v, (uint64_t) hi))
                return false;
        uint64_t until = now + SLEEP_HORIZON_USEC / dt * dt;
        /* Its restart takes the step that reaches it. */
        if (v->spec.restart_at_usec && !v->restarted) {
                uint64_t at = s->start_usec + v->spec.restart_at_usec;
                if (at <= now)
                        return false;
                until = min_u64(until, now + (at - now + dt - 1) / dt * dt);
        }
        uint64_t x = demand_leaves(s, v, lo, hi, until);
        if (x < now + SLEEP_MIN_STEPS * dt)
                return false;
        v->asleep = true;
        v->asleep_usec = now;
        v->wake_usec = x;
        v->walk_at_usec = now;
        v->walk_at_state = v->asleep_walk_state = v->walk_state;
        v->walk_at_kib = v->asleep_demand_kib = v->demand_kib;
        v->asleep_report_seq = v->report_seq;
        uint64_t desired = engine_desired_kib(&v->state.input.policy, (uint64_t) v->hold_hi_kib);
        v->asleep_desired_kib = (desired + POLICY_ALIGN_KIB - 1) / POLICY_ALIGN_KIB * POLICY_ALIGN_KIB;
        count_asleep(s, v, true);
        heap_push(s, (struct sim_wake){ .usec = x, .vm = (size_t) (v - s->vms) });
        return true;
}

void sim_sleep_settle(struct sim *s) {
        if (s->now_usec < s->backoff_until_usec)
                return;
        size_t kept = 0;
        for (size_t k = 0; k < s->n_awake; k++) {
                size_t i = s->awake[k];
                if (!try_sleep(s, &s->vms[i]))
                        s->awake[kept++] = i;
        }
        s->n_awake = kept;
}

uint64_t sim_sleep_demand(struct sim *s) {
        uint64_t sum = 0;
        for (size_t i = 0; i < s->n_vms; i++) {
                struct sim_vm *v = &s->vms[i];
                size_t pos = v->trace_pos;
                if (v->asleep)
                        sum += sleeper_demand(s, v, s->now_usec, &pos, NULL);
        }
        return sum;
}
