/* From balloon statistics to the engine's inputs, and from the engine's targets to balloon and
 * virtio-mem sizes. Pure: the daemon does the calls. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "balloon/hv.h"

/* A balloon that has not moved toward its target for this long is "inactive"; for the longer
 * time "uncooperative" (the guest's driver is gone, stuck, or refusing). The Linux driver moves
 * hundreds of MiB a second (ENVIRONMENT.md: 512 -> 200 MiB in 0.8 s under TCG), so 5 s of no
 * movement is already abnormal; 20 s leaves room for a guest under heavy reclaim. */
#define BALLOON_INACTIVE_USEC (UINT64_C(5) * 1000000)
#define BALLOON_UNCOOPERATIVE_USEC (UINT64_C(20) * 1000000)
/* Within this distance the balloon is "at" its target: drivers move in 4 KiB pages and round. */
#define BALLOON_SLACK_KIB UINT64_C(4096)

/* Demand from balloon statistics, for guests without tide-agent, in the host's frame (comparable
 * with what the VM holds): MemTotal - MemAvailable (available_kib - usable_kib), so page cache
 * the guest can drop is not counted as used (unlike the "unused"-based demand of Proxmox's or
 * oVirt MOM's balloon logic); less the balloon itself when the guest counts it as used
 * (deflate-on-oom); plus what the guest kernel keeps outside MemTotal. Returns 0 and fills
 * *ret_demand_kib (signed: the engine rejects a negative one) and *ret_total_kib (the most the
 * guest can hold in that frame, for the engine's sanity check), or -ENODATA when the guest does
 * not report available, usable and actual. */
int balloon_demand_from_stats(const struct hv_mem_stats *s, const struct hv_domain *d, int64_t *ret_demand_kib,
                              uint64_t *ret_total_kib);

/* The same frame change for any source of MemTotal/MemAvailable (tide-agent reports too):
 * actual_kib is the balloon's actual. Returns 0, or -ERANGE for absurd numbers. */
int balloon_used_host_frame(uint64_t memtotal_kib, uint64_t memavailable_kib, uint64_t actual_kib,
                            const struct hv_domain *d, int64_t *ret_used_kib, uint64_t *ret_visible_kib);

/* The most the guest can see and use with this balloon actual: the boot size when the balloon
 * is deflate-on-oom (the guest may take it back), else actual; plus plugged virtio-mem. */
uint64_t balloon_visible_kib(uint64_t actual_kib, const struct hv_domain *d);

/* The balloon's actual is the guest's word (QEMU derives it from the page count the guest's
 * driver writes) and no balloon holds more than the boot size: caps s->actual_kib at d->max_kib,
 * before anything counts it, so a guest claiming more cannot make the host look full. Returns
 * true when it had to. */
bool balloon_stats_clamp(struct hv_mem_stats *s, const struct hv_domain *d);

/* What the VM holds: balloon actual plus plugged virtio-mem. -ENODATA without `actual`. */
int balloon_assigned_kib(const struct hv_mem_stats *s, const struct hv_domain *d, uint64_t *ret_kib);

/* How a target is made of balloon and virtio-mem. Up to the boot size the balloon alone
 * (deflating is cheaper and works on any guest); above it, virtio-mem plugs the rest, rounded
 * down to its block size (never above the target) and capped at its size. Shrinking unplugs
 * first. */
struct balloon_split {
        uint64_t balloon_kib;      /* virDomainSetMemoryFlags(LIVE) */
        uint64_t vmem_requested_kib; /* virtio-mem <requested>; 0 without a device */
};
struct balloon_split balloon_split_target(uint64_t target_kib, const struct hv_domain *d);

/* The most this domain can hold now: boot size plus the virtio-mem device's size. */
uint64_t balloon_reachable_kib(const struct hv_domain *d);

/* Tracks whether a balloon moves toward its target, and whether the guest takes pages back from
 * it on its own. */
struct balloon_watch {
        uint64_t target_kib;     /* last target set, 0 when none */
        uint64_t last_actual_kib;
        uint64_t last_move_usec; /* when actual last moved toward the target (or target was set) */
        uint64_t seen_kib;       /* actual at the previous sample, 0 before the first */
};

enum balloon_state {
        BALLOON_STATE_OK,
        BALLOON_STATE_INACTIVE,
        BALLOON_STATE_UNCOOPERATIVE,
};

/* Records a new target at now_usec. */
void balloon_watch_target(struct balloon_watch *w, uint64_t target_kib, uint64_t actual_kib, uint64_t now_usec);
/* Feeds the latest actual; returns the state. */
enum balloon_state balloon_watch_update(struct balloon_watch *w, uint64_t actual_kib, uint64_t now_usec);
const char *balloon_state_to_string(enum balloon_state s);

/* Deflate-on-OOM seen from the host: with a target set, the balloon's actual rose while above
 * that target. Nothing tided does makes that happen (moving toward a lower target only lowers
 * actual, and a higher target resets the watch), so the guest deflated it because it ran out of
 * memory (Linux virtio_balloon's OOM notifier; it does not re-inflate until the target changes).
 * Feed every new sample before deciding; returns the KiB the guest took back since the previous
 * sample, 0 when none, and remembers the sample. It does not touch the progress watch: the
 * caller sends the target again after a rise, which resets it (balloon_watch_target). */
uint64_t balloon_watch_reclaimed(struct balloon_watch *w, uint64_t actual_kib);
