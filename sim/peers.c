/* The peers' rules, modelled from their sources (docs/SIMULATOR.md "The peers' rules" names the
 * file and function behind each constant here and every assumption). */
#include "sim/peers.h"

#include <errno.h>
#include <math.h>

#include "common/macro.h"

/* ---- shared ---- */

static const char *const rule_names[PEER_RULES] = {
        [PEER_HYPERV] = "hyperv", [PEER_MOM] = "mom", [PEER_PROXMOX] = "proxmox",
        [PEER_STATIC] = "static", [PEER_ORACLE] = "oracle", [PEER_SWAP_ANYTIME] = "swap-anytime",
};

const char *peer_rule_to_string(enum peer_rule r) {
        if ((unsigned) r >= PEER_RULES)
                return NULL;
        return rule_names[r];
}

int peer_rule_from_string(const char *s, enum peer_rule *ret) {
        if (!s || !ret)
                return -EINVAL;
        for (unsigned r = 0; r < PEER_RULES; r++)
                if (streq(s, rule_names[r])) {
                        *ret = (enum peer_rule) r;
                        return 0;
                }
        return -EINVAL;
}

/* Hyper-V's host rebalances "second by second" (and the Linux guest posts its pressure once a
 * second, hv_balloon.c dm_thread_func); MOM's policy-engine-interval is 10 in
 * doc/mom-balloon.conf; pvestatd's $updatetime is 10. */
#define HV_PERIOD_USEC (1 * USEC_PER_SEC)
#define MOM_PERIOD_USEC (10 * USEC_PER_SEC)
#define PVE_PERIOD_USEC (10 * USEC_PER_SEC)
/* [assumed] ESXi publishes no period for recomputing its allocation targets. */
#define SWAP_ANYTIME_PERIOD_USEC (1 * USEC_PER_SEC)

uint64_t peer_rule_period_usec(enum peer_rule r) {
        switch (r) {
        case PEER_HYPERV:
                return HV_PERIOD_USEC;
        case PEER_SWAP_ANYTIME:
                return SWAP_ANYTIME_PERIOD_USEC;
        case PEER_MOM:
                return MOM_PERIOD_USEC;
        case PEER_PROXMOX:
                return PVE_PERIOD_USEC;
        default:
                return 0;
        }
}

static bool due(const struct peer_vm *v, uint64_t period_usec, uint64_t now_usec) {
        return now_usec - v->memo.last_act_usec >= period_usec;
}

/* The ceiling every rule sizes within: the policy's maximum, but never more than the domain
 * can hold now (0: unknown, the maximum alone). */
static uint64_t ceiling_kib(const struct peer_vm *v) {
        return v->reachable_kib ? min_u64(v->policy.maximum_kib, v->reachable_kib) : v->policy.maximum_kib;
}

static uint64_t floor_kib(const struct peer_vm *v) {
        return min_u64(v->policy.minimum_kib, ceiling_kib(v));
}

/* MemFree as the guest's balloon statistics report it: page cache is not free, which is why MOM
 * and Proxmox, both reading MemFree, count the cache as used. */
static uint64_t guest_memfree_kib(const struct peer_vm *v) {
        return sat_sub_u64(v->assigned_kib, v->used_kib + v->cache_kib);
}

/* ---- Hyper-V Dynamic Memory ---- */

/* hv_balloon.c: pressure_report_delay = 45, post_status() skips that many 1 s reports after
 * the driver loads. Without reports the host has no demand to act on, in either direction. */
#define HV_QUIET_USEC (45 * USEC_PER_SEC)

/* hv_balloon.c compute_balloon_floor(): a Linux guest adds this to the committed memory it
 * reports, so the host never balloons it below what its kernel needs. Piecewise linear in the
 * guest's total RAM (MiB): below 128 -> 8 + t/2, 512 -> 40 + t/4, 2048 -> 104 + t/8,
 * 8192 -> 232 + t/16, above -> 488 + t/32. */
static uint64_t hv_linux_floor_kib(uint64_t total_kib) {
        if (total_kib < 128 * KIB_PER_MIB)
                return 8 * KIB_PER_MIB + total_kib / 2;
        if (total_kib < 512 * KIB_PER_MIB)
                return 40 * KIB_PER_MIB + total_kib / 4;
        if (total_kib < 2048 * KIB_PER_MIB)
                return 104 * KIB_PER_MIB + total_kib / 8;
        if (total_kib < 8192 * KIB_PER_MIB)
                return 232 * KIB_PER_MIB + total_kib / 16;
        return 488 * KIB_PER_MIB + total_kib / 32;
}

/* The demand the host sees: get_pages_committed() = Committed_AS + ballooned + offline + floor.
 * The ballooned pages are there because a Windows guest's balloon allocations are committed
 * memory; the host discounts the pages it ballooned itself, so they are not demand here.
 * Offline hot-added pages are 0 in the simulator. */
static uint64_t hv_demand_kib(const struct peer_vm *v) {
        return v->committed_kib + hv_linux_floor_kib(v->assigned_kib);
}

static uint64_t hv_wanted_kib(const struct peer_vm *v) {
        uint64_t d = hv_demand_kib(v);
        return clamp_u64(d + d * v->policy.buffer_pct / 100, floor_kib(v), ceiling_kib(v));
}

static uint64_t hv_demand_part_kib(const struct peer_vm *v) {
        return clamp_u64(hv_demand_kib(v), floor_kib(v), ceiling_kib(v));
}

/* The VMs the balancer sizes this tick; the others keep what they hold. */
static bool hv_managed(const struct peer_vm *v, uint64_t now_usec) {
        return v->policy.dynamic && v->reporting && v->uptime_usec >= HV_QUIET_USEC &&
               due(v, HV_PERIOD_USEC, now_usec);
}

static unsigned weight_of(const struct peer_vm *v) {
        return v->policy.weight > POLICY_WEIGHT_MAX ? POLICY_WEIGHT_MAX : v->policy.weight;
}

/* Raises every managed VM toward goal(v), highest weight first, out of *rem: a weight gets all
 * it needs before the next lower one gets anything; VMs of one weight split what is left in
 * proportion to what each still needs. */
static void hv_fill(const struct peer_vm *vms, size_t n, uint64_t now_usec, uint64_t *targets,
                    uint64_t (*goal)(const struct peer_vm *), uint64_t *rem) {
        for (int w = POLICY_WEIGHT_MAX; w >= 0; w--) {
                uint64_t need = 0;
                for (size_t i = 0; i < n; i++)
                        if (hv_managed(&vms[i], now_usec) && weight_of(&vms[i]) == (unsigned) w)
                                need += sat_sub_u64(goal(&vms[i]), targets[i]);
                if (need == 0)
                        continue;
                bool all = need <= *rem;
                uint64_t pool = *rem;
                for (size_t i = 0; i < n; i++) {
                        if (!hv_managed(&vms[i], now_usec) || weight_of(&vms[i]) != (unsigned) w)
                                continue;
                        uint64_t want = sat_sub_u64(goal(&vms[i]), targets[i]);
                        uint64_t give = all ? want : (uint64_t) ((double) want * (double) pool / (double) need);
                        give = min_u64(give, min_u64(want, *rem));
                        targets[i] += give;
                        *rem -= give;
                }
                if (!all) {
                        *rem = 0;
                        return;
                }
        }
}

static void hyperv_tick(const struct peer_host *host, struct peer_vm *vms, size_t n, uint64_t now_usec,
                        uint64_t *targets) {
        uint64_t held = 0, fixed = 0, wanted = 0, floors = 0;

        for (size_t i = 0; i < n; i++) {
                held += vms[i].assigned_kib;
                if (hv_managed(&vms[i], now_usec)) {
                        wanted += hv_wanted_kib(&vms[i]);
                        floors += floor_kib(&vms[i]);
                } else
                        fixed += vms[i].assigned_kib;
        }
        /* What the VMs may hold: all but the root's reserve, and never more than the VMs hold plus
         * what is free (when the host itself uses more than its reserve). */
        uint64_t capacity = min_u64(sat_sub_u64(host->total_kib, host->reserve_kib), host->free_kib + held);
        uint64_t avail = sat_sub_u64(capacity, fixed);

        if (wanted <= avail) {
                for (size_t i = 0; i < n; i++)
                        targets[i] = hv_managed(&vms[i], now_usec) ? hv_wanted_kib(&vms[i]) : PEER_NO_CHANGE;
        } else {
                /* Short: the minimum is a guarantee, then demand by priority, then the buffer by
                 * priority ("the buffer is not kept when the host is short"). */
                for (size_t i = 0; i < n; i++)
                        targets[i] = hv_managed(&vms[i], now_usec) ? floor_kib(&vms[i]) : PEER_NO_CHANGE;
                uint64_t rem = sat_sub_u64(avail, floors);
                hv_fill(vms, n, now_usec, targets, hv_demand_part_kib, &rem);
                hv_fill(vms, n, now_usec, targets, hv_wanted_kib, &rem);
        }
        for (size_t i = 0; i < n; i++)
                if (targets[i] != PEER_NO_CHANGE)
                        vms[i].memo.last_act_usec = now_usec;
}

/* ---- oVirt MOM, doc/balloon.rules ---- */

/* doc/mom-balloon.conf: host- and guest-monitor-interval 5, sample-history-length 10. */
#define MOM_SAMPLE_USEC (5 * USEC_PER_SEC)
/* balloon.rules (defvar ...) constants. */
#define MOM_PRESSURE_THRESHOLD 0.20
#define MOM_PRESSURE_CRITICAL 0.05
#define MOM_MIN_GUEST_FREE_PERCENT 0.20
#define MOM_MAX_BALLOON_CHANGE_PERCENT 0.05
#define MOM_MIN_BALLOON_CHANGE_PERCENT 0.0025

static void mom_collect(struct peer_vm *v, const struct peer_host *host, uint64_t now_usec) {
        struct peer_memo *m = &v->memo;
        uint64_t memfree = guest_memfree_kib(v);

        /* A monitor whose collectors fail stores nothing: no sample without stats. */
        if (!v->reporting || (m->n > 0 && now_usec - m->last_sample_usec < MOM_SAMPLE_USEC))
                return;
        m->used_kib[m->pos] = v->assigned_kib - memfree;
        m->free_kib[m->pos] = memfree;
        m->host_free_kib[m->pos] = host->free_kib;
        m->pos = (m->pos + 1) % PEER_AVG_SAMPLES;
        if (m->n < PEER_AVG_SAMPLES)
                m->n++;
        m->last_sample_usec = now_usec;
}

static double mom_avg(const uint64_t *samples, unsigned n) {
        double sum = 0;
        for (unsigned k = 0; k < n; k++)
                sum += (double) samples[k];
        return sum / n;
}

/* One guest under balloon.rules: returns the target, or PEER_NO_CHANGE. */
static uint64_t mom_decide(const struct peer_vm *v, const struct peer_host *host) {
        const struct peer_memo *m = &v->memo;
        unsigned last = (m->pos + PEER_AVG_SAMPLES - 1) % PEER_AVG_SAMPLES;
        /* guest.balloon_cur is the latest collection's; the used memory is StatAvg("balloon_cur")
         * - StatAvg("mem_unused"), the same as the average of each sample's difference. */
        double cur = (double) (m->used_kib[last] + m->free_kib[last]);
        double used = mom_avg(m->used_kib, m->n);
        double host_free = mom_avg(m->host_free_kib, m->n) / (double) host->total_kib;
        double bmin = (double) floor_kib(v), bmax = (double) ceiling_kib(v);
        double size;

        if (host_free < MOM_PRESSURE_THRESHOLD) {
                /* shrink_guest: the free memory the guest keeps falls with the host's (it works out
                 * to host_free itself), and goes negative when critical to force it to swap. */
                double guest_free = host_free <= MOM_PRESSURE_CRITICAL
                                            ? host_free - MOM_PRESSURE_CRITICAL
                                            : MOM_MIN_GUEST_FREE_PERCENT * (host_free / MOM_PRESSURE_THRESHOLD);
                double want = used + guest_free * cur;
                double lowest = want > bmin ? want : bmin;
                size = cur * (1 - MOM_MAX_BALLOON_CHANGE_PERCENT);
                if (size < lowest)
                        size = lowest;
                if (size > cur)
                        return PEER_NO_CHANGE;
        } else {
                /* grow_guest: 5 % up per step at least, straight to used + 20 % when that is more,
                 * until balloon_max: without pressure every balloon deflates fully in the end. */
                if (cur >= bmax)
                        return PEER_NO_CHANGE;
                double want = used + MOM_MIN_GUEST_FREE_PERCENT * cur;
                double lowest = want > bmin ? want : bmin;
                size = cur * (1 + MOM_MAX_BALLOON_CHANGE_PERCENT);
                if (size < lowest)
                        size = lowest;
                if (size > bmax)
                        size = bmax;
        }
        /* change_big_enough: strictly more than 0.25 % of balloon_cur. */
        double delta = size > cur ? size - cur : cur - size;
        if (!(delta > MOM_MIN_BALLOON_CHANGE_PERCENT * cur))
                return PEER_NO_CHANGE;
        /* The Balloon controller sends int(target). */
        return clamp_u64((uint64_t) size, floor_kib(v), ceiling_kib(v));
}

static void mom_tick(const struct peer_host *host, struct peer_vm *vms, size_t n, uint64_t now_usec,
                     uint64_t *targets) {
        for (size_t i = 0; i < n; i++) {
                struct peer_vm *v = &vms[i];
                targets[i] = PEER_NO_CHANGE;
                mom_collect(v, host, now_usec);
                if (!due(v, MOM_PERIOD_USEC, now_usec))
                        continue;
                v->memo.last_act_usec = now_usec;
                /* 02-balloon.policy: a guest whose latest stats are missing is not ballooned. */
                if (!v->policy.dynamic || !v->reporting || v->memo.n == 0)
                        continue;
                targets[i] = mom_decide(v, host);
        }
}

/* ---- Proxmox VE, PVE::AutoBalloon::compute_alg1 and pvestatd auto_ballooning ---- */

/* pvestatd: $maxchange = 100 * 1024 * 1024; compute_alg1 acts when |goal| > 10 * 1024 * 1024;
 * ballooning-target defaults to 80 (%); qemu-server's shares default to 1000, here weight x 20. */
#define PVE_MAXCHANGE_KIB (100 * KIB_PER_MIB)
#define PVE_DEADBAND_KIB (10 * KIB_PER_MIB)
#define PVE_TARGET_PCT 80
#define PVE_SHARES_PER_WEIGHT 20

enum pve_list { PVE_ALL, PVE_PRESSURE, PVE_FREE };

/* qemu-server vm_start: a VM with a `balloon` minimum starts with its balloon set to that
 * minimum. A restart is an uptime lower than last seen, or a first sight within one cycle of
 * boot; a VM first seen long up started before the simulation. */
static bool pve_started(const struct peer_vm *v) {
        if (v->memo.seen)
                return v->uptime_usec < v->memo.uptime_usec;
        return v->uptime_usec < PVE_PERIOD_USEC;
}

static int64_t pve_shares(const struct peer_vm *v) {
        return (int64_t) v->policy.weight * PVE_SHARES_PER_WEIGHT;
}

/* compute_alg1's eligible VMs: a balloon (QEMU reports its actual even before the guest's
 * driver loads, so a booting VM is eligible), a minimum (`balloon` set), shares not 0. */
static bool pve_eligible(const struct peer_vm *v, uint64_t now_usec) {
        return due(v, PVE_PERIOD_USEC, now_usec) && !pve_started(v) && v->policy.dynamic && pve_shares(v) != 0 &&
               v->assigned_kib > 0;
}

/* "VMs with enough free memory" (idlist2): free_mem above a quarter of the minimum while not
 * below it; everyone else, including a VM without stats, counts as "with pressure" (idlist1). */
static bool pve_has_free(const struct peer_vm *v) {
        if (!v->reporting)
                return false;
        uint64_t memfree = guest_memfree_kib(v);
        return memfree > 0 && memfree * 4 > v->policy.minimum_kib && v->assigned_kib >= v->policy.minimum_kib;
}

static bool pve_in(const struct peer_vm *v, enum pve_list l, uint64_t now_usec) {
        if (!pve_eligible(v, now_usec))
                return false;
        switch (l) {
        case PVE_PRESSURE:
                return !pve_has_free(v);
        case PVE_FREE:
                return pve_has_free(v);
        default:
                return true;
        }
}

/* compute_alg1's $change_func: spreads `bytes` (KiB here) over the list in proportion to shares
 * above each minimum, each VM within [min, max] and at most maxchange from its current balloon,
 * repeating while something moved; res[] (targets, PEER_NO_CHANGE for unset) carries over
 * between calls. Returns what is left. */
static int64_t pve_change(struct peer_vm *vms, size_t n, enum pve_list l, uint64_t now_usec, uint64_t *res,
                          int64_t bytes) {
        int64_t rest = bytes;
        bool repeat = true, progress = true;

        for (size_t i = 0; i < n; i++)
                vms[i].memo.done = false;
        while (rest != 0 && repeat && progress) {
                int64_t shares_total = 0, alloc_old = 0, changes = 0;
                repeat = progress = false;

                for (size_t i = 0; i < n; i++) {
                        const struct peer_vm *v = &vms[i];
                        if (!pve_in(v, l, now_usec) || v->memo.done)
                                continue;
                        uint64_t balloon = res[i] != PEER_NO_CHANGE ? res[i] : v->assigned_kib;
                        alloc_old += (int64_t) balloon - (int64_t) v->policy.minimum_kib;
                        shares_total += pve_shares(v);
                }
                int64_t alloc_new = alloc_old + rest;

                for (size_t i = 0; i < n; i++) {
                        struct peer_vm *v = &vms[i];
                        if (!pve_in(v, l, now_usec) || v->memo.done)
                                continue;
                        int64_t min = (int64_t) v->policy.minimum_kib, max = (int64_t) ceiling_kib(v);
                        int64_t cur = (int64_t) v->assigned_kib, bal;
                        /* int() in Perl truncates toward zero, as the cast does. */
                        int64_t desired = min + (int64_t) ((double) alloc_new / (double) shares_total *
                                                           (double) pve_shares(v));
                        if (desired > max) {
                                desired = max;
                                repeat = true;
                        } else if (desired < min) {
                                desired = min;
                                repeat = true;
                        }
                        /* The step is measured from the balloon at the cycle's start, not from the
                         * last iteration's result: 100 MiB per VM per cycle, however many rounds. */
                        if (bytes > 0 && desired > cur)
                                bal = min_u64((uint64_t) desired, (uint64_t) cur + PVE_MAXCHANGE_KIB);
                        else if (desired < cur)
                                bal = desired > cur - (int64_t) PVE_MAXCHANGE_KIB ? desired
                                                                                 : cur - (int64_t) PVE_MAXCHANGE_KIB;
                        else {
                                v->memo.done = true;
                                continue;
                        }
                        if (bal == cur)
                                continue;
                        int64_t old = res[i] != PEER_NO_CHANGE ? (int64_t) res[i] : cur;
                        res[i] = (uint64_t) bal;
                        if (bal != old) {
                                changes += bal - old;
                                progress = true;
                                repeat = true;
                        }
                }
                rest -= changes;
        }
        return rest;
}

static void proxmox_tick(const struct peer_host *host, struct peer_vm *vms, size_t n, uint64_t now_usec,
                         uint64_t *targets) {
        bool any = false;

        for (size_t i = 0; i < n; i++) {
                targets[i] = PEER_NO_CHANGE;
                any |= due(&vms[i], PVE_PERIOD_USEC, now_usec);
        }
        if (any) {
                /* pvestatd auto_ballooning: MemUsed is MemTotal - MemAvailable (read_meminfo). */
                int64_t used = (int64_t) sat_sub_u64(host->total_kib, host->free_kib);
                int64_t goal = (int64_t) (host->total_kib * PVE_TARGET_PCT / 100) - used;

                if (goal > (int64_t) PVE_DEADBAND_KIB) {
                        /* "prioritize VMs with memory pressure"; nobody moved: everyone */
                        int64_t rest = pve_change(vms, n, PVE_PRESSURE, now_usec, targets, goal);
                        if (rest >= goal)
                                pve_change(vms, n, PVE_ALL, now_usec, targets, rest);
                } else if (goal < -(int64_t) PVE_DEADBAND_KIB) {
                        /* "prioritize VMs with enough free memory"; nobody moved: everyone */
                        int64_t rest = pve_change(vms, n, PVE_FREE, now_usec, targets, goal);
                        if (rest <= goal)
                                pve_change(vms, n, PVE_ALL, now_usec, targets, rest);
                }
                /* pvestatd: "next if $target == $current". */
                for (size_t i = 0; i < n; i++)
                        if (targets[i] == vms[i].assigned_kib)
                                targets[i] = PEER_NO_CHANGE;
        }
        for (size_t i = 0; i < n; i++) {
                struct peer_vm *v = &vms[i];
                if (pve_started(v) && v->policy.dynamic)
                        targets[i] = clamp_u64(v->policy.minimum_kib, floor_kib(v), ceiling_kib(v));
                else if (targets[i] != PEER_NO_CHANGE)
                        targets[i] = clamp_u64(targets[i], floor_kib(v), ceiling_kib(v));
        }
        for (size_t i = 0; i < n; i++) {
                struct peer_vm *v = &vms[i];
                if (due(v, PVE_PERIOD_USEC, now_usec) && !pve_started(v))
                        v->memo.last_act_usec = now_usec;
                v->memo.seen = true;
                v->memo.uptime_usec = v->uptime_usec;
                v->memo.done = false;
        }
}

/* ---- swap-anytime: VMware ESXi's allocation (docs/SIMULATOR.md has the sources) ---- */

/* Waldspurger, "Memory Resource Management in VMware ESX Server" (OSDI '02) 5.3: the idle memory
 * tax rate tau "defaults to 75%"; an idle page costs k = 1 / (1 - tau) times an active one. */
#define SA_IDLE_COST 4.0

/* The free memory ESXi keeps (minFree): 899 MB for the first 28 GB of the host, 1 % of the rest
 * [2nd]; a host below 28 GB keeps the same fraction [assumed]. */
static uint64_t sa_min_free_kib(uint64_t total_kib) {
        const uint64_t first = 28ULL * KIB_PER_GIB, first_free = 899ULL * KIB_PER_MIB;
        if (total_kib <= first)
                return (uint64_t) ((double) total_kib * (double) first_free / (double) first);
        return first_free + (total_kib - first) / 100;
}

/* ESXi's shares at the "normal" level are 10 per MB of configured memory; the policy's weight
 * scales them (a constant factor changes nothing). At least 1, so weight 0 still holds its
 * reservation and is reclaimed from first. */
static void sa_prepare(struct peer_vm *v) {
        v->memo.sa_shares = (double) max_u64(weight_of(v), 1) * (double) ceiling_kib(v);
        v->memo.sa_active = (double) min_u64(v->committed_kib, ceiling_kib(v));
        v->memo.sa_lo = (double) floor_kib(v);
        v->memo.sa_hi = (double) ceiling_kib(v);
}

/* The allocation min-funding revocation converges to, at x pages per share: reclaiming always
 * from the VM with the fewest adjusted shares per page, S / (P (f + k (1 - f))) with f its active
 * fraction, equalises that ratio at 1 / x over the VMs between their reservation and ceiling.
 * Solving it for P: up to the working set A each page costs one, beyond it k. */
static double sa_alloc(const struct peer_memo *m, double x) {
        double s = m->sa_shares * x, a = m->sa_active;
        double p = s <= a ? s : a + (s - a) / SA_IDLE_COST;
        return p < m->sa_lo ? m->sa_lo : p > m->sa_hi ? m->sa_hi : p;
}

static bool sa_sized(const struct peer_vm *v, uint64_t now_usec) {
        return v->policy.dynamic && due(v, SWAP_ANYTIME_PERIOD_USEC, now_usec);
}

static double sa_total(const struct peer_vm *vms, size_t n, uint64_t now_usec, double x) {
        double sum = 0;
        for (size_t i = 0; i < n; i++)
                if (sa_sized(&vms[i], now_usec))
                        sum += sa_alloc(&vms[i].memo, x);
        return sum;
}

/* Every dynamic VM is sized, booting or not (ESXi needs no guest driver to reclaim: it swaps);
 * the memory they may hold together is what is neither the host's reserve nor minFree. When
 * their ceilings fit, each gets its ceiling; when their reservations do not, each gets its
 * reservation (the policy's minimum); otherwise the level x that fills the room, found by
 * false position (Illinois): the total is monotone and piecewise linear in x, so it takes a
 * handful of passes where bisection took sixty (7x the time of Hyper-V's rule on a trace). */
static void swap_anytime_tick(const struct peer_host *host, struct peer_vm *vms, size_t n, uint64_t now_usec,
                              uint64_t *targets) {
        uint64_t held = 0, fixed = 0;
        double lo = 0, hi = 0, x_max = 0;
        for (size_t i = 0; i < n; i++) {
                struct peer_vm *v = &vms[i];
                held += v->assigned_kib;
                if (!sa_sized(v, now_usec)) {
                        fixed += v->assigned_kib;
                        continue;
                }
                sa_prepare(v);
                lo += v->memo.sa_lo;
                hi += v->memo.sa_hi;
                /* Where even this VM's level reaches its ceiling. */
                x_max = fmax(x_max, (v->memo.sa_active + SA_IDLE_COST * v->memo.sa_hi) / v->memo.sa_shares);
        }
        uint64_t capacity = min_u64(sat_sub_u64(host->total_kib, host->reserve_kib), host->free_kib + held);
        double room = (double) sat_sub_u64(sat_sub_u64(capacity, sa_min_free_kib(host->total_kib)), fixed);
        double x = x_max;
        if (room <= lo)
                x = 0;
        else if (room < hi) {
                /* f(x) = total(x) - room: f(0) = lo - room < 0, f(x_max) = hi - room > 0. */
                double a = 0, fa = lo - room, b = x_max, fb = hi - room;
                int side = 0;
                x = a;
                for (int it = 0; it < 100 && b - a > x_max * 1e-12; it++) {
                        double c = (a * fb - b * fa) / (fb - fa), fc = sa_total(vms, n, now_usec, c) - room;
                        if (fabs(fc) < 0.5) { /* within half a KiB */
                                a = c;
                                break;
                        }
                        if (fc < 0) {
                                a = c, fa = fc;
                                if (side == -1)
                                        fb /= 2;
                                side = -1;
                        } else {
                                b = c, fb = fc;
                                if (side == 1)
                                        fa /= 2;
                                side = 1;
                        }
                }
                x = a; /* the side that fits */
        }
        for (size_t i = 0; i < n; i++) {
                struct peer_vm *v = &vms[i];
                if (!sa_sized(v, now_usec)) {
                        targets[i] = PEER_NO_CHANGE;
                        continue;
                }
                targets[i] = clamp_u64((uint64_t) sa_alloc(&v->memo, x), floor_kib(v), ceiling_kib(v));
                v->memo.last_act_usec = now_usec;
        }
}

/* ---- static and the oracle ---- */

static void static_tick(struct peer_vm *vms, size_t n, uint64_t now_usec, uint64_t *targets) {
        for (size_t i = 0; i < n; i++) {
                targets[i] = clamp_u64(vms[i].policy.startup_kib, floor_kib(&vms[i]), ceiling_kib(&vms[i]));
                vms[i].memo.last_act_usec = now_usec;
        }
}

static void oracle_tick(struct peer_vm *vms, size_t n, uint64_t now_usec, uint64_t *targets) {
        for (size_t i = 0; i < n; i++) {
                uint64_t hi = max_u64(vms[i].reachable_kib, KIB_PER_MIB);
                targets[i] = clamp_u64(vms[i].demand_kib, KIB_PER_MIB, hi);
                vms[i].memo.last_act_usec = now_usec;
        }
}

int peer_tick(enum peer_rule r, const struct peer_host *host, struct peer_vm *vms, size_t n, uint64_t now_usec,
              uint64_t *targets) {
        if ((unsigned) r >= PEER_RULES || !host || host->total_kib == 0 || (n > 0 && (!vms || !targets)))
                return -EINVAL;
        switch (r) {
        case PEER_HYPERV:
                hyperv_tick(host, vms, n, now_usec, targets);
                break;
        case PEER_MOM:
                mom_tick(host, vms, n, now_usec, targets);
                break;
        case PEER_PROXMOX:
                proxmox_tick(host, vms, n, now_usec, targets);
                break;
        case PEER_STATIC:
                static_tick(vms, n, now_usec, targets);
                break;
        case PEER_ORACLE:
                oracle_tick(vms, n, now_usec, targets);
                break;
        case PEER_SWAP_ANYTIME:
                swap_anytime_tick(host, vms, n, now_usec, targets);
                break;
        default:
                return -EINVAL;
        }
        return 0;
}
