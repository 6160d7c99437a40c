/* Smart Paging's plan: the rule is docs/POLICY.md "Smart Paging"; the why of each step is here. */
#include "smartpaging/plan.h"

#include <errno.h>

#include "common/macro.h"
#include "common/units.h"
#include "policy/engine.h"
#include "policy/policy.h"

static const char *const phase_names[] = {
        [PAGING_NONE] = "none", [PAGING_ACTIVE] = "paging", [PAGING_RELEASING] = "releasing",
        [PAGING_FAILED] = "failed",
};

const char *paging_phase_to_string(enum paging_phase p) {
        return (unsigned) p < ELEMENTSOF(phase_names) ? phase_names[p] : NULL;
}

bool paging_in_use(const struct paging_vm_state *s) {
        return s && (s->phase == PAGING_ACTIVE || s->phase == PAGING_RELEASING);
}

static uint64_t align_down(uint64_t kib) {
        return kib - kib % POLICY_ALIGN_KIB;
}

static uint64_t align_up(uint64_t kib) {
        return (kib + POLICY_ALIGN_KIB - 1) / POLICY_ALIGN_KIB * POLICY_ALIGN_KIB;
}

/* Whether this kind of start may page. Hyper-V pages on a restart only: a cold start that does
 * not fit is the operator's placement to fix. `always` covers cold starts too, because a
 * cluster's failover restarts everything of a dead host on the survivors as cold starts, which
 * is where a boot storm hurts most. */
static bool mode_allows(enum config_paging mode, enum paging_start start) {
        switch (mode) {
        case CONFIG_PAGING_RESTART:
                return start == PAGING_START_RESTART;
        case CONFIG_PAGING_ALWAYS:
                return start != PAGING_START_NONE;
        default:
                return false;
        }
}

/* A VM that can never come down below its startup would page for good: Hyper-V, too, pages only
 * a VM whose minimum is below its startup. */
static bool can_come_down(const struct paging_vm *v) {
        return v->dynamic && v->minimum_kib < v->startup_kib;
}

/* A VM the engine may shrink for a start: running, booted, sized by tide, not paging itself. */
static bool gives_back(const struct paging_vm *v) {
        return v->managed && v->dynamic && !v->booting && v->reporting && v->start == PAGING_START_NONE &&
               v->state->phase == PAGING_NONE;
}

/* What the others give back above their minimums within reclaim_time at the engine's pace. */
static uint64_t reclaimable_kib(const struct tide_config *cfg, const struct paging_vm *vms, size_t n) {
        uint64_t ticks = cfg->interval_usec ? cfg->reclaim_usec / cfg->interval_usec : 0, sum = 0;
        for (size_t i = 0; i < n && ticks > 0; i++)
                if (gives_back(&vms[i]))
                        sum += vms[i].assigned_kib -
                               engine_shrink_reach_kib(vms[i].assigned_kib, vms[i].minimum_kib, ticks, cfg);
        return sum;
}

/* A (re)start to fund. One whose old file is still in use (a paging VM started cold: a new
 * QEMU, its file to be switched off) is funded too, so what it takes is counted, but it cannot
 * page: its file's name is taken. */
static bool wants_funding(const struct paging_vm *v) {
        /* A lifted VM whose file waits for swap room is under no limit: a reboot of it fills its
         * startup like any unpaged boot. */
        return v->managed && v->start != PAGING_START_NONE &&
               (!paging_in_use(v->state) || v->start == PAGING_START_COLD ||
                (v->state->phase == PAGING_RELEASING && v->state->lifted));
}

/* The next start to fund: the highest weight, then the first given. SIZE_MAX: none left. */
static size_t next_start(const struct paging_vm *vms, size_t n, const struct paging_action *out) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < n; i++)
                if (!out[i].start_seen && wants_funding(&vms[i]) &&
                    (best == SIZE_MAX || vms[i].weight > vms[best].weight))
                        best = i;
        return best;
}

static void page(const struct tide_config *cfg, const struct paging_vm *v, uint64_t grant, uint64_t shortfall,
                 uint64_t now_usec, struct paging_action *a) {
        struct paging_vm_state *s = v->state;
        *s = (struct paging_vm_state){
                .phase = PAGING_ACTIVE,
                .startup_kib = v->startup_kib,
                .grant_kib = grant,
                .file_kib = align_up(shortfall) + PAGING_FILE_SLACK_KIB,
                .since_usec = now_usec,
        };
        a->start = true;
        a->file_kib = s->file_kib;
        a->hard_limit_kib = grant + cfg->qemu_overhead_kib;
        a->swap_hard_limit_kib = UINT64_MAX; /* plan.h: no bound on memory + swap */
        a->grant_kib = grant;
}

/* Funds this tick's starts from pool (free memory, then what the others give back); returns
 * how much of the free memory they took. */
static uint64_t fund_starts(const struct tide_config *cfg, const struct paging_host *host, const struct paging_vm *vms,
                            size_t n, uint64_t now_usec, struct paging_action *out, struct paging_summary *sum) {
        uint64_t pool = 0, taken = 0;
        bool counted = false;

        for (size_t i; (i = next_start(vms, n, out)) != SIZE_MAX;) {
                const struct paging_vm *v = &vms[i];
                struct paging_action *a = &out[i];
                a->start_seen = true;
                /* A failed attempt belongs to the boot it was for. */
                if (v->state->phase == PAGING_FAILED)
                        *v->state = (struct paging_vm_state){ 0 };
                /* The others' share is worked out only for a tick with a start: it walks them all. */
                if (!counted) {
                        pool = host->free_kib + reclaimable_kib(cfg, vms, n);
                        counted = true;
                }
                /* In the cgroup's terms: it will want its startup and QEMU's own memory resident,
                 * and has its resident set already (a reboot keeps its QEMU and what it held). */
                uint64_t want = v->startup_kib + cfg->qemu_overhead_kib;
                uint64_t need = sat_sub_u64(want, v->held_kib), take = min_u64(need, pool);
                pool -= take;
                taken += take;
                uint64_t shortfall = need - take;
                if (shortfall < PAGING_MIN_SHORTFALL_KIB)
                        continue;
                a->shortfall_kib = shortfall;
                if (!host->can_page || !mode_allows(cfg->smart_paging, v->start) || !can_come_down(v) ||
                    paging_in_use(v->state)) {
                        sum->unfunded_kib += shortfall;
                        continue;
                }
                /* QEMU's own memory is never the part that pages, even with nothing granted. */
                uint64_t hard = max_u64(align_down(min_u64(v->held_kib, want) + take), cfg->qemu_overhead_kib);
                page(cfg, v, hard - cfg->qemu_overhead_kib, shortfall, now_usec, a);
        }
        return min_u64(taken, host->free_kib);
}

/* What the engine counts of a paging VM as kept on disk: what it holds beyond its grant (its
 * startup while it boots), never more than its file. An adopted file's grant is not known: 0. */
static uint64_t on_disk_kib(const struct paging_vm *v, const struct paging_vm_state *s) {
        if (s->phase != PAGING_ACTIVE || !s->grant_kib || !v->active)
                return 0;
        return min_u64(sat_sub_u64(v->booting ? s->startup_kib : v->assigned_kib, s->grant_kib), s->file_kib);
}

/* What switching this VM's file off brings back into RAM: what the file holds (any process's
 * pages: swap areas are host-wide), but no more than is out in swap host-wide and not in RAM
 * already. */
static uint64_t file_back_kib(const struct paging_host *h, const struct paging_vm *v) {
        return h->swap_known ? min_u64(v->file_used_kib, h->swapped_kib) : v->file_used_kib;
}

/* What comes back when this VM is released: what its file brings back, and at least what the
 * engine counted on disk for it, which stops counting as capacity. QEMU's overhead is not
 * counted again: what it holds resident is in the free memory already, and what it has on disk
 * is in the file. */
static uint64_t comes_back_kib(const struct paging_host *h, const struct paging_vm *v) {
        return max_u64(on_disk_kib(v, v->state), file_back_kib(h, v));
}

/* The memory promised to a paging VM's grant and not yet taken: it is the VM's own room to come
 * back into (plan.c: counted as promised, so not in free_left). */
static uint64_t own_room_kib(const struct tide_config *cfg, const struct paging_vm *v) {
        const struct paging_vm_state *s = v->state;
        /* Only a managed, booting VM's was counted as promised (above). */
        return v->managed && v->booting && s->grant_kib
                       ? sat_sub_u64(s->grant_kib + cfg->qemu_overhead_kib, v->held_kib)
                       : 0;
}

/* What every paging file holds, and could bring back, as far as it is out in swap and not in RAM
 * already. */
static uint64_t all_back_kib(const struct paging_host *h, const struct paging_vm *vms, size_t n) {
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++)
                if (paging_in_use(vms[i].state))
                        sum += vms[i].file_used_kib;
        return h->swap_known ? min_u64(sum, h->swapped_kib) : sum;
}

/* Down to what the host can hold: its balloon reports (the boot is over), what comes back fits
 * the free memory, and so does everything every file holds. The last is what makes a release
 * safe whatever the guests touch next: once its limit is lifted a VM takes back its pages from
 * any file as it touches them, and the free memory shows that only as it happens (after a
 * kill -9 mid-storm, files released one a second on free memory that had not yet seen the
 * previous VM's pages come back brought a partition to OOM here). */
static bool may_release_now(const struct tide_config *cfg, const struct paging_host *h, const struct paging_vm *v,
                            uint64_t all_back, uint64_t free_left) {
        /* A VM no longer managed (its policy removed while it paged, or a file adopted for a
         * domain without one) is never sampled again, so it would never be seen to have come
         * down: it goes as soon as what the files hold fits, not limited for good. */
        return (!v->managed || (!v->booting && v->reporting)) &&
               max_u64(comes_back_kib(h, v), all_back) <= free_left + own_room_kib(cfg, v);
}

/* Whether vms[i] runs under tide's memory limit: paging, or released with its lift failed (a
 * release in flight or a lifted one waiting has its limits off). Its pages in a file come back
 * only as far as its limit lets them. */
static bool limited(const struct paging_vm *v) {
        const struct paging_vm_state *s = v->state;
        return v->active && (s->phase == PAGING_ACTIVE || (s->phase == PAGING_RELEASING && s->retry_usec && !s->lifted));
}

/* Whether vms[i]'s file may be switched off as far as swap room goes, while other VMs are under
 * their limits. Which of its pages are theirs is not known (/proc/swaps has no owners), so all
 * of them may have to go to the other swap areas: their free space, the host's free swap less
 * this file's, must take what it holds; that is, the host's free swap must be at least its size.
 * And none of them may still be booting: a boot under its limit goes on paging out, into the
 * room this counted on, for the minutes a switch-off takes. Not known: it waits for them. */
static bool file_may_go(const struct paging_host *h, const struct paging_vm *vms, size_t n, size_t i) {
        bool others = false;
        for (size_t k = 0; k < n; k++) {
                if (k == i || !limited(&vms[k]))
                        continue;
                if (vms[k].booting)
                        return false;
                others = true;
        }
        return !others || (h->swap_known && h->swap_free_kib >= vms[i].state->file_kib);
}

/* The paging VM whose file goes this tick: of those that fit, the one whose file holds least,
 * so the most files are given back soonest. SIZE_MAX: none. */
static size_t next_release(const struct tide_config *cfg, const struct paging_host *h, const struct paging_vm *vms,
                           size_t n, const struct paging_action *out, uint64_t all_back, uint64_t free_left) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
                const struct paging_vm *v = &vms[i];
                if (v->state->phase != PAGING_ACTIVE || out[i].start || !v->active ||
                    v->start == PAGING_START_COLD || !may_release_now(cfg, h, v, all_back, free_left))
                        continue;
                if (best == SIZE_MAX || comes_back_kib(h, v) < comes_back_kib(h, &vms[best]))
                        best = i;
        }
        return best;
}

/* A VM paging since before this tick and not released: raised or left as it is. */
static void follow(const struct paging_vm *v, const struct tide_config *cfg, bool may_raise, uint64_t *free_left,
                   uint64_t now_usec, struct paging_action *a) {
        struct paging_vm_state *s = v->state;

        /* Memory freed since it started goes to it, so less of it pages. An adopted file's grant
         * and startup are not known: its limit is left as found. */
        if (may_raise && s->grant_kib && s->startup_kib > s->grant_kib) {
                uint64_t more = align_down(min_u64(s->startup_kib - s->grant_kib, *free_left));
                if (more >= PAGING_RAISE_MIN_KIB || (more > 0 && s->grant_kib + more == s->startup_kib)) {
                        *free_left -= more;
                        a->raise = true;
                        a->grant_kib = s->grant_kib + more;
                        a->hard_limit_kib = a->grant_kib + cfg->qemu_overhead_kib;
                        a->swap_hard_limit_kib = UINT64_MAX;
                }
        }
        if (!s->long_warned && now_usec - s->since_usec >= PAGING_LONG_USEC) {
                s->long_warned = true;
                a->warn_long = true;
        }
}

int paging_plan(const struct tide_config *cfg, const struct paging_host *host, const struct paging_vm *vms, size_t n,
                uint64_t now_usec, struct paging_action *out, struct paging_summary *summary) {
        struct paging_summary sum = { 0 };

        if (!cfg || !host || (n && (!vms || !out)))
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (!vms[i].state)
                        return -EINVAL;
                out[i] = (struct paging_action){ 0 };
        }

        /* A failed attempt ends with its boot, or with the domain. */
        for (size_t i = 0; i < n; i++) {
                struct paging_vm_state *s = vms[i].state;
                if (s->phase == PAGING_FAILED && (!vms[i].active || (!vms[i].booting && vms[i].start == PAGING_START_NONE)))
                        *s = (struct paging_vm_state){ 0 };
        }

        /* Memory promised but not yet taken: a booting VM fills its startup (a paging one its
         * grant) over seconds, and until it has, the free memory still shows what it will take.
         * Counting it free would fund it twice. */
        uint64_t promised = 0;
        for (size_t i = 0; i < n; i++) {
                const struct paging_vm *v = &vms[i];
                const struct paging_vm_state *s = v->state;
                if (!v->managed || v->start != PAGING_START_NONE)
                        continue;
                if (s->phase == PAGING_ACTIVE && s->grant_kib && v->booting)
                        /* Once its boot is over it takes what it is assigned, which the engine
                         * counts; its grant (with the configured overhead, more than QEMU
                         * really holds) is no longer a promise: kept, six such grants held
                         * every file of a storm here for good. */
                        promised += sat_sub_u64(s->grant_kib + cfg->qemu_overhead_kib, v->held_kib);
                else if (v->booting && s->phase != PAGING_ACTIVE)
                        /* A boot unpaging or unpaged fills its whole startup, also one whose old
                         * file is still to be switched off (a new QEMU, no limit on it). */
                        promised += sat_sub_u64(v->startup_kib + cfg->qemu_overhead_kib, v->held_kib);
                if (s->phase == PAGING_RELEASING && !s->retry_usec)
                        /* What its file holds comes back as it is switched off (a release
                         * waiting for its turn is in all_back, below, instead). */
                        promised += file_back_kib(host, v);
        }
        struct paging_host h = *host;
        h.free_kib = sat_sub_u64(host->free_kib, promised);

        /* Starts first: a boot cannot wait, a release can. */
        uint64_t free_left = h.free_kib - fund_starts(cfg, &h, vms, n, now_usec, out, &sum);

        /* One file is switched off at a time, host-wide: swap areas are shared, so switching one
         * off also brings back other VMs' pages, and the next one waits for /proc/swaps and
         * the free memory to show where that left the host (three at once brought a partition
         * to OOM here). */
        bool may_release = true;
        for (size_t i = 0; i < n; i++)
                if (vms[i].state->phase == PAGING_RELEASING && !vms[i].state->retry_usec)
                        may_release = false;
        /* While a file is being switched off the free memory does not yet show what it brings
         * back (nor what the VM let go takes back by touching it): no raise meanwhile. */
        bool may_raise = may_release;

        /* Stopped (or stopped and started again between two ticks: a new QEMU, its limits
         * gone): its limits went with its QEMU; only the file is left to remove. Its file still
         * holds other VMs' pages, so it waits for its turn and for room like any other. */
        for (size_t i = 0; i < n; i++) {
                struct paging_vm_state *s = vms[i].state;
                if (s->phase == PAGING_ACTIVE && !out[i].start &&
                    (!vms[i].active || vms[i].start == PAGING_START_COLD)) {
                        s->phase = PAGING_RELEASING;
                        s->release_usec = now_usec;
                        s->lifted = true;
                        s->retry_usec = max_u64(now_usec, 1); /* due now */
                } else if (s->phase == PAGING_RELEASING && !vms[i].active)
                        s->lifted = true; /* a lift that failed: its limits went with its QEMU */
        }
        uint64_t all_back = all_back_kib(host, vms, n);
        /* A retry (or a stopped VM's file, or a lifted one's) waits for its turn, for room and
         * for swap room like a first release. One whose lift failed is lifted again as soon as
         * there is room, file or not: two such VMs would otherwise wait on each other for good. */
        for (size_t i = 0; i < n && may_release; i++) {
                struct paging_vm_state *s = vms[i].state;
                if (s->phase != PAGING_RELEASING || out[i].release || !s->retry_usec || now_usec < s->retry_usec ||
                    all_back > free_left)
                        continue;
                if (file_may_go(host, vms, n, i)) {
                        may_release = false;
                        free_left -= all_back;
                        s->retry_usec = 0;
                        out[i].release = true;
                        out[i].lift_limits = !s->lifted && vms[i].active;
                } else if (!s->lifted && vms[i].active && !out[i].lift_limits) {
                        free_left -= all_back;
                        out[i].lift_limits = true; /* lifted only: paging_lifted() */
                }
        }
        size_t r = may_release ? next_release(cfg, host, vms, n, out, all_back, free_left) : SIZE_MAX;
        if (r != SIZE_MAX) {
                struct paging_vm_state *s = vms[r].state;
                /* What it was let go on is kept back, not handed to a raise this tick. */
                free_left = sat_sub_u64(free_left + own_room_kib(cfg, &vms[r]),
                                        max_u64(comes_back_kib(host, &vms[r]), all_back));
                s->phase = PAGING_RELEASING;
                s->release_usec = now_usec;
                out[r].lift_limits = true;
                if (file_may_go(host, vms, n, r))
                        out[r].release = true;
                else
                        s->retry_usec = max_u64(now_usec, 1); /* lifted only: its file waits (due now) */
        }
        for (size_t i = 0; i < n; i++) {
                struct paging_vm_state *s = vms[i].state;
                if (s->phase == PAGING_ACTIVE && !out[i].start)
                        follow(&vms[i], cfg, may_raise, &free_left, now_usec, &out[i]);
                if (paging_in_use(s)) {
                        sum.files++;
                        sum.file_kib += s->file_kib;
                        /* No more than its file holds: a paging VM grown past its startup must
                         * not make room for itself on a disk it does not have. */
                        sum.on_disk_kib += on_disk_kib(&vms[i], s);
                } else if (s->phase == PAGING_FAILED)
                        sum.unfunded_kib += s->file_kib;
        }
        if (summary)
                *summary = sum;
        return 0;
}

void paging_started(struct paging_vm_state *s, const struct paging_action *a, int error) {
        if (!s || !a)
                return;
        if (a->start && error < 0) {
                *s = (struct paging_vm_state){ .phase = PAGING_FAILED, .file_kib = a->shortfall_kib,
                                               .fail_errno = -error };
                return;
        }
        if (a->raise && error == 0)
                s->grant_kib = a->grant_kib;
}

void paging_released(struct paging_vm_state *s, bool lifted, int error, uint64_t now_usec) {
        if (!s)
                return;
        if (error == 0) {
                *s = (struct paging_vm_state){ 0 };
                return;
        }
        s->lifted |= lifted;
        s->fail_errno = -error;
        s->retry_usec = now_usec + PAGING_RETRY_USEC;
}

void paging_lifted(struct paging_vm_state *s, int error, uint64_t now_usec) {
        if (!s)
                return;
        if (error < 0)
                paging_released(s, false, error, now_usec);
        else
                s->lifted = true;
}

void paging_adopt(struct paging_vm_state *s, uint64_t file_kib, uint64_t grant_kib, uint64_t startup_kib,
                  uint64_t now_usec) {
        if (!s)
                return;
        *s = (struct paging_vm_state){ .phase = PAGING_ACTIVE,
                                       .file_kib = file_kib,
                                       .grant_kib = grant_kib,
                                       .startup_kib = grant_kib ? startup_kib : 0,
                                       .since_usec = now_usec };
}
