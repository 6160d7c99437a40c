#include <errno.h>

#include "balloon/collect.h"
#include "common/units.h"
#include "common/macro.h"

#define ABSENT UINT64_MAX

uint64_t balloon_visible_kib(uint64_t actual_kib, const struct hv_domain *d) {
        return (d->balloon_deflate_on_oom ? max_u64(d->max_kib, actual_kib) : actual_kib) +
               (d->has_virtio_mem ? d->virtio_mem_current_kib : 0);
}

int balloon_used_host_frame(uint64_t memtotal_kib, uint64_t memavailable_kib, uint64_t actual_kib,
                            const struct hv_domain *d, int64_t *ret_used_kib, uint64_t *ret_visible_kib) {
        /* All guest-reported and possibly garbage; keep the sign and let the engine judge. */
        if (memtotal_kib > INT64_MAX || memavailable_kib > INT64_MAX || actual_kib > SIZE_MAX_KIB)
                return -ERANGE;
        int64_t used = (int64_t) memtotal_kib - (int64_t) memavailable_kib;

        /* With deflate-on-oom the guest keeps ballooned pages in MemTotal and counts them as
         * used (Linux virtio_balloon.c calls adjust_managed_page_count() for inflated pages
         * only without VIRTIO_BALLOON_F_DEFLATE_ON_OOM): the balloon, boot size - actual, is
         * not demand. Measured here: a 1 GiB guest at 200 MiB showed 342 MiB "used", 32 real. */
        uint64_t balloon = d->balloon_deflate_on_oom && actual_kib < d->max_kib ? d->max_kib - actual_kib : 0;
        used -= (int64_t) balloon;
        uint64_t visible = balloon_visible_kib(actual_kib, d);
        if (used < 0) {
                *ret_used_kib = used; /* garbage: the engine rejects it and flags the VM */
                *ret_visible_kib = visible;
                return 0;
        }

        /* Targets are in the host's frame (what the VM holds), but MemTotal leaves out what the
         * guest kernel keeps for itself: its image, struct pages, swiotlb. A guest at 512 MiB
         * with virtio-mem saw MemTotal 393 MiB here. Counting that as demand keeps the buffer
         * real: without it the guest fills its 393 MiB while tide believes it has 119 MiB spare.
         * A gap of more than half the VM is not a kernel reservation but bad data: ignored. */
        uint64_t kernel = sat_sub_u64(visible, memtotal_kib);
        if (kernel > visible / 2)
                kernel = 0;
        *ret_used_kib = used + (int64_t) kernel;
        *ret_visible_kib = visible;
        return 0;
}

int balloon_demand_from_stats(const struct hv_mem_stats *s, const struct hv_domain *d, int64_t *ret_demand_kib,
                              uint64_t *ret_total_kib) {
        if (s->available_kib == ABSENT || s->usable_kib == ABSENT || s->actual_kib == ABSENT)
                return -ENODATA;
        return balloon_used_host_frame(s->available_kib, s->usable_kib, s->actual_kib, d, ret_demand_kib,
                                       ret_total_kib);
}

bool balloon_stats_clamp(struct hv_mem_stats *s, const struct hv_domain *d) {
        if (s->actual_kib == ABSENT || d->max_kib == 0 || s->actual_kib <= d->max_kib)
                return false;
        s->actual_kib = d->max_kib;
        return true;
}

int balloon_assigned_kib(const struct hv_mem_stats *s, const struct hv_domain *d, uint64_t *ret_kib) {
        if (s->actual_kib == ABSENT)
                return -ENODATA;
        *ret_kib = s->actual_kib + (d->has_virtio_mem ? d->virtio_mem_current_kib : 0);
        return 0;
}

uint64_t balloon_reachable_kib(const struct hv_domain *d) {
        return d->max_kib + (d->has_virtio_mem ? d->virtio_mem_max_kib : 0);
}

struct balloon_split balloon_split_target(uint64_t target_kib, const struct hv_domain *d) {
        struct balloon_split sp = { 0 };

        if (target_kib <= d->max_kib || !d->has_virtio_mem) {
                sp.balloon_kib = min_u64(target_kib, d->max_kib);
                return sp;
        }
        uint64_t above = target_kib - d->max_kib;
        uint64_t block = d->virtio_mem_block_kib ? d->virtio_mem_block_kib : 2048;
        /* Down, not up: a target is never exceeded, so neither is the policy's maximum (with
         * 128 MiB or 1 GiB blocks rounding up could overshoot it by most of a block, for good). */
        above = above / block * block;
        sp.balloon_kib = d->max_kib;
        sp.vmem_requested_kib = min_u64(above, d->virtio_mem_max_kib / block * block);
        return sp;
}

void balloon_watch_target(struct balloon_watch *w, uint64_t target_kib, uint64_t actual_kib, uint64_t now_usec) {
        w->target_kib = target_kib;
        w->last_actual_kib = actual_kib;
        w->last_move_usec = now_usec;
        w->seen_kib = actual_kib;
}

uint64_t balloon_watch_reclaimed(struct balloon_watch *w, uint64_t actual_kib) {
        uint64_t seen = w->seen_kib;

        w->seen_kib = actual_kib;
        if (w->target_kib == 0 || seen == 0 || actual_kib <= seen || actual_kib <= w->target_kib + BALLOON_SLACK_KIB)
                return 0;
        return actual_kib - seen;
}

enum balloon_state balloon_watch_update(struct balloon_watch *w, uint64_t actual_kib, uint64_t now_usec) {
        if (w->target_kib == 0)
                return BALLOON_STATE_OK;
        uint64_t dist_before = w->last_actual_kib > w->target_kib ? w->last_actual_kib - w->target_kib
                                                                    : w->target_kib - w->last_actual_kib;
        uint64_t dist_now = actual_kib > w->target_kib ? actual_kib - w->target_kib : w->target_kib - actual_kib;

        if (dist_now <= BALLOON_SLACK_KIB || dist_now < dist_before) {
                w->last_move_usec = now_usec;
                w->last_actual_kib = actual_kib;
                return BALLOON_STATE_OK;
        }
        uint64_t still = now_usec - w->last_move_usec;
        if (still >= BALLOON_UNCOOPERATIVE_USEC)
                return BALLOON_STATE_UNCOOPERATIVE;
        if (still >= BALLOON_INACTIVE_USEC)
                return BALLOON_STATE_INACTIVE;
        return BALLOON_STATE_OK;
}

const char *balloon_state_to_string(enum balloon_state s) {
        switch (s) {
        case BALLOON_STATE_OK:
                return "ok";
        case BALLOON_STATE_INACTIVE:
                return "inactive";
        case BALLOON_STATE_UNCOOPERATIVE:
                return "uncooperative";
        }
        return "ok";
}
