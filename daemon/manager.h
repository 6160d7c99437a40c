/* tided's domain table and its tick: collect -> decide (engine) -> act, then publish.
 *
 * The manager owns what tided knows about each domain. Everything in it can be rebuilt from
 * libvirt (policies live in domain metadata), so a restarted tided loses nothing; until a
 * domain's balloon statistics have advanced once after (re)discovery, its demand is unknown and
 * the engine holds it: a restart moves no VM on old data.
 *
 * Decisions are logged here, once, where they are made. Library-style errors are returned. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balloon/hv.h"
#include "daemon/snapshot.h"
#include "policy/config.h"
#include "policy/policy.h"

struct manager;

#define MANAGER_NODE_MAX 64

/* The host's memory for one tick. */
struct manager_host {
        uint64_t total_kib, available_kib; /* /proc/meminfo (libproc2) */
        unsigned n_nodes;                  /* NUMA nodes (libnuma); 0 when NUMA is not available */
        uint64_t node_free_kib[MANAGER_NODE_MAX];
        /* What is out in swap and not also in RAM, host-wide (SwapTotal - SwapFree - SwapCached):
         * the most that switching any swap area off can bring back. swap_known false: not read. */
        bool swap_known;
        uint64_t swapped_kib;
        uint64_t swap_free_kib; /* SwapFree: room for pages a switched-off file held */
};

/* Reads host memory for the tick. Production passes manager_host_live; tests a fake. */
typedef int (*manager_host_fn)(struct manager_host *ret, void *userdata);
int manager_host_live(struct manager_host *ret, void *userdata);

/* hv is borrowed and must outlive the manager. cfg is copied. */
int manager_new(struct hv *hv, const struct tide_config *cfg, manager_host_fn host, void *host_userdata,
                struct manager **ret);
struct manager *manager_free(struct manager *m); /* accepts NULL, returns NULL */

/* Where cgroups are mounted (tided: /sys/fs/cgroup; tests: a fixture tree). With a root set, the
 * memory limit of the cgroup partition the managed VMs share (libvirt's <resource><partition>)
 * bounds what they may hold, when lower than the host's (common/cgroup.h). NULL or "": not read. */
void manager_set_cgroup_root(struct manager *m, const char *root);

/* Smart Paging (smartpaging/plan.h): prepares cfg's paging_dir (and warns when it is on the root
 * filesystem) so starts the host cannot fund page to files there; at the next tick, files left
 * on by an earlier tided (swaps_root + /proc/swaps; NULL or "": the real one) are adopted and
 * strays removed. Without this call, or with smart_paging = off, nothing pages. Returns 0 or
 * -errno (logged: paging stays off, tided runs on). */
struct manager_paging_files {
        int (*on)(const char *path, uint64_t kib, char *err, size_t errlen);
        int (*off)(const char *path, char *err, size_t errlen);
};
/* files: how paging files are switched on and off (NULL: smartpaging/file.h's paging_file_on()
 * and paging_file_off(); a unit test hands in functions that switch nothing on). */
int manager_enable_paging(struct manager *m, const char *swaps_root, const struct manager_paging_files *files);
/* Core parking (coreparking/plan.h, [parking] in the config): the per-CPU load for a tick into
 * busy[0..n) (each CPU's busy share since the last call, < 0 unknown; *ret_known false on the
 * first call). Production passes manager_cpu_load_live with a struct parking_load; tests a fake. */
typedef int (*manager_cpu_load_fn)(double *busy, unsigned n, bool *ret_known, void *userdata);
int manager_cpu_load_live(double *busy, unsigned n, bool *ret_known, void *userdata);
/* Parks cores on the host's topology (cores[0..n), copied): every regular tick reads the load,
 * the core decides, and each floating VM (no pinning of its own, not latency-sensitive) has its
 * vCPUs and emulator pinned (live) to the unparked CPUs, or given its own CPUs back. Before the
 * first pin a record of its own affinity goes into its live metadata (HV_META_PARKING), so a
 * tided killed meanwhile gives it back at its next start; a VM pinned by its administrator (also
 * since: its pins are checked before each change) is never touched. load NULL: parking is off,
 * and only VMs an earlier tided left confined (their record) get every host CPU back, at this
 * start or when they migrate in. Returns 0 or -errno (logged: parking stays off). */
int manager_enable_parking(struct manager *m, const struct parking_core *cores, size_t n, manager_cpu_load_fn load,
                           void *userdata);
/* Measures what parking is worth (after manager_enable_parking() with a load): every regular
 * tick reads each CPU's cpuidle states and RAPL under sys_root (NULL or "": "/"), and judges each
 * episode (coreparking/measure.h); an episode's end is logged, and so, once, is a host where
 * parking does not pay. The snapshot then has the figures and each CPU. Returns 0, -EINVAL
 * (parking not on) or -ENOMEM. */
int manager_measure_parking(struct manager *m, const char *sys_root);
/* mode = partition: instead of pinning each VM, the cgroup of libvirt's partition (e.g.
 * "/machine", under cgroup_root; cgroup v2 only, common/cgroup.h) has its cpuset confined to the
 * unparked CPUs while cores are parked. Its own list is written to record_path before the first
 * change and given back (the record removed) when nothing is parked, when tided stops, and at the
 * next start after a tided that died (this call). Returns 0; -EOPNOTSUPP on cgroup v1 or without
 * the cpuset controller there (the caller pins instead), -ENOENT without such a cgroup, -EINVAL
 * for a record tided did not write, or another -errno (logged). */
int manager_enable_partition_parking(struct manager *m, const char *cgroup_root, const char *partition,
                                     const char *record_path);
/* Tells a running irqbalance (coreparking/irq.h; dir NULL: /run/irqbalance) to keep interrupts
 * off the parked CPUs while cores are parked ([parking] irqbalance), and to use every CPU again
 * when none is, when tided stops, and at the next start after a tided that died (record_path
 * marks a ban that is out). Returns 0 or -EINVAL. */
int manager_enable_irqbalance(struct manager *m, const char *dir, const char *record_path);
/* Gives every confined VM its own CPUs back (tided stopping: no VM stays pinned). */
void manager_stop_parking(struct manager *m);

/* Lifts the memory limits of every paging domain (tided stopping: no VM is left limited; the
 * files stay on, for the next tided to adopt and release). */
void manager_stop_paging(struct manager *m);
/* Replaces the configuration (SIGHUP). */
void manager_set_config(struct manager *m, const struct tide_config *cfg);

/* Re-reads the domain list and every domain's description and policy. Called at start, on
 * lifecycle events and periodically. */
int manager_refresh(struct manager *m, uint64_t now_usec);

/* Lifecycle event from the hypervisor. */
void manager_on_event(struct manager *m, enum hv_event_kind kind, const char *uuid, uint64_t now_usec);

/* One tick. Returns 0; per-domain failures are logged and skipped. */
int manager_tick(struct manager *m, uint64_t now_usec);

/* True when an agent report since the last tick shows a guest's used memory rising past what
 * the last tick planned for: tided then runs manager_tick_early() at once instead of waiting up
 * to a whole interval (reaction latency, bench/agent-latency.sh). */
bool manager_wants_early_tick(const struct manager *m);
/* A tick that only grows: shrinking keeps its pace of one bounded step per regular tick. */
int manager_tick_early(struct manager *m, uint64_t now_usec);

/* The last published snapshot (valid until the next tick). */
const struct snapshot *manager_snapshot(const struct manager *m);

/* Policy changes from the control socket. `domain` is a name or UUID. The change merges as
 * policy_apply_change() says (policy/policy.h): on the domain's current policy, or for a domain
 * without one on defaults from its boot size and what it can reach.
 * On success fills `note` with what applies live and what waits for the next start.
 * On failure returns -errno and writes the reason into `err`. */
int manager_policy_set(struct manager *m, const char *domain, const struct policy_change *c,
                       uint64_t now_usec, char *note, size_t notelen, char *err, size_t errlen);
/* Removes the policy. A running domain's balloon is released to the boot size first (virtio-mem
 * unplugged); when that fails nothing is removed and -errno says why. Then the domain is
 * unmanaged and never touched again. */
int manager_policy_clear(struct manager *m, const char *domain, uint64_t now_usec, char *note, size_t notelen,
                         char *err, size_t errlen);

/* Records how long the last tick took (tided measures it around manager_tick()). */
void manager_note_tick_duration(struct manager *m, uint64_t usec);

/* tided lost libvirt: the snapshot says so (stats, /metrics) until a tick runs again. Everything
 * else in it is the last tick's, as it was. */
void manager_note_disconnected(struct manager *m);
