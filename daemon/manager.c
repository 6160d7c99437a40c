#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <numa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balloon/collect.h"
#include "balloon/metadata.h"
#include "common/cgroup.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/meminfo.h"
#include "common/units.h"
#include "coreparking/idle.h"
#include "coreparking/irq.h"
#include "coreparking/load.h"
#include "coreparking/measure.h"
#include "core/core.h"
#include "daemon/channel.h"
#include "daemon/manager.h"
#include "daemon/pager.h"
#include "smartpaging/file.h"

/* A partition's own CPU list, as cpuset.cpus holds it. */
#define PARKING_PART_LIST_MAX 4096

/* The domain list is re-read on every lifecycle event; this is the safety net for events lost
 * while libvirtd restarted. */
#define REFRESH_EVERY_USEC (UINT64_C(30) * USEC_PER_SEC)
/* Events for domains not listed yet (created and started between two listings), kept until the
 * next listing. A burst beyond this loses the oldest: such a domain is adopted as found running. */
#define EVENTS_UNKNOWN_MAX 64

struct dom {
        struct hv_domain info;
        bool have_policy;
        struct vm_policy policy;       /* as stored in metadata */
        char pending[SNAPSHOT_REASON_MAX];
        bool seen;                     /* mark for the refresh sweep */
        enum core_start start;         /* events since the last tick, for the core */
        bool stopped;
        bool release_failed;           /* the last release failed (logged once) */
        char stats_err[HV_ERR_MAX];    /* why this tick's balloon statistics could not be read */
        char partition[HV_PARTITION_MAX]; /* its cgroup partition while running, "" unknown */
        struct core_vm core;           /* what the core carries for this domain */
        char reason[SNAPSHOT_REASON_MAX];
        struct channel *chan;          /* tide-agent channel; NULL without one. Heap: the event
                                        * loop holds its address while doms[] moves. */
        /* Smart Paging: the limits it had before tide set its own (put back on release; unknown
         * for a file adopted after a restart: lifted to none), its file's use (/proc/swaps), the
         * release running off the loop. */
        struct hv_memtune paging_orig;
        bool paging_orig_known;
        uint64_t paging_used_kib;
        struct pager_job *paging_job;
        /* Core parking: its own affinity, read once per run (aff_read): its administrator's
         * (aff_pinned: some vCPU or the emulator off a host CPU, on aff_cpus), or it floats.
         * confined: tide pinned it to confined_to, its record in its live metadata (it floated:
         * every host CPU is what it gets back); a record an earlier tided left counts, with
         * confined_to empty. */
        bool aff_read, aff_pinned, confined, parking_failed;
        struct hv_cpuset aff_cpus, confined_to;
};

struct event_unknown {
        char uuid[HV_UUID_MAX];
        enum core_start start;
};

struct manager {
        struct hv *hv;
        struct tide_config cfg;
        manager_host_fn host_fn;
        void *host_userdata;

        struct dom *doms;
        size_t n_doms, doms_cap;
        size_t *index, index_cap;      /* UUID -> doms[] (find_dom), SIZE_MAX empty */
        bool dirty;
        uint64_t last_refresh_usec;
        uint64_t start_usec;
        uint64_t ticks;
        struct event_unknown unknown[EVENTS_UNKNOWN_MAX];
        size_t n_unknown;
        unsigned early_pending;        /* channels whose report asked for an early tick */
        char cgroup_root[CGROUP_PATH_MAX]; /* "" : partition limits are not read */
        char partition[HV_PARTITION_MAX];  /* the managed VMs' common partition, "" none */
        int partition_errno;               /* the last failure reading its limit (logged once) */
        /* Smart Paging: on once manager_enable_paging() prepared the directory; where
         * /proc/swaps is read (tests: a fixture root); files found on adopted once. */
        bool paging_on, paging_adopted;
        bool paging_adopt_waited; /* a file's domain could not be read yet: said once */
        char swaps_root[CGROUP_PATH_MAX];
        struct manager_paging_files files;
        /* Core parking: on once manager_enable_parking() gave a topology; the host's CPUs (every
         * core's), and each one's busy share this tick (read through load). */
        bool parking_on;
        bool restore_only;              /* parking off, but records left by a tided that parked
                                         * are still given back (manager_enable_parking) */
        struct hv_cpuset host_cpus;
        manager_cpu_load_fn load;
        void *load_userdata;
        double *busy;
        unsigned n_busy;
        bool load_known;
        struct parking_decision parking_last; /* the last regular tick's, for the snapshot */
        bool parking_decided;
        /* What parking is worth (manager_measure_parking()): the CPUs' idle states and RAPL read
         * every regular tick under sys_root, and each episode judged on them. */
        bool measure_on;
        struct parking_core *cores;     /* the topology, measured per core */
        size_t n_cores;
        char sys_root[CGROUP_PATH_MAX];
        struct parking_idle_host idle_host;
        struct parking_power_model model;
        struct parking_meter meter;
        bool never_pays_said; /* "parking does not pay here" logged */
        /* mode = partition (manager_enable_partition_parking()): the partition's cgroup (v2)
         * whose cpuset is confined to the unparked CPUs, its own list, and the record of that
         * list kept while it is confined. */
        bool part_on, part_confined;
        char part_root[CGROUP_PATH_MAX], part_dir[CGROUP_PATH_MAX], part_record[CGROUP_PATH_MAX];
        char part_orig[PARKING_PART_LIST_MAX];
        struct hv_cpuset part_to;
        int part_errno; /* the last failure logged, so a failing write is logged once */
        /* irqbalance (manager_enable_irqbalance()): told to keep interrupts off the parked CPUs
         * (irq_sent) while cores are parked; the record says a ban is out, so the next tided
         * lifts one a tided that died left. */
        bool irq_on, irq_banned;
        char irq_dir[CGROUP_PATH_MAX], irq_record[CGROUP_PATH_MAX];
        struct hv_cpuset irq_sent;
        struct hv_cpuset irq_own;       /* what irqbalance banned of its own before tided's ban */
        int irq_errno;

        struct core *core;
        struct core_frame frame;       /* observations in, decisions out, one per domain */
        struct core_host_out host_out;

        struct snapshot snap;
};

int manager_host_live(struct manager_host *ret, void *userdata) {
        struct meminfo mi;
        int r = meminfo_read_live(&mi);
        if (r < 0)
                return r;
        *ret = (struct manager_host){ .total_kib = mi.total_kib,
                                      .available_kib = mi.available_kib,
                                      .swap_known = true,
                                      .swapped_kib = sat_sub_u64(sat_sub_u64(mi.swap_total_kib, mi.swap_free_kib),
                                                                 mi.swap_cached_kib),
                                      .swap_free_kib = mi.swap_free_kib };
        /* libnuma: free memory per node, for VMs whose memory is bound to one node. */
        if (numa_available() >= 0) {
                int max = numa_max_node();
                for (int n = 0; n <= max && n < MANAGER_NODE_MAX; n++) {
                        long long free_bytes = 0;
                        if (numa_node_size64(n, &free_bytes) < 0 || free_bytes < 0)
                                free_bytes = 0; /* a node without memory (CPU-only) */
                        ret->node_free_kib[n] = (uint64_t) free_bytes / 1024;
                        ret->n_nodes = (unsigned) n + 1;
                }
        }
        return 0;
}

int manager_new(struct hv *hv, const struct tide_config *cfg, manager_host_fn host, void *host_userdata,
                struct manager **ret) {
        struct manager *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->core = core_new();
        if (!m->core) {
                free(m);
                return -ENOMEM;
        }
        m->hv = hv;
        m->cfg = *cfg;
        m->host_fn = host;
        m->host_userdata = host_userdata;
        m->dirty = true;
        *ret = m;
        return 0;
}

static void drop_channel(struct manager *m, struct dom *d) {
        if (!d->chan)
                return;
        if (d->chan->early_counted && m->early_pending)
                m->early_pending--;
        channel_close(d->chan);
        free(d->chan);
        d->chan = NULL;
}

/* A managed, running domain with an agent channel gets a channel; others lose theirs. */
static void sync_channel(struct manager *m, struct dom *d) {
        bool want = d->info.active && d->have_policy && d->info.agent_socket[0];
        if (!want) {
                drop_channel(m, d);
                return;
        }
        if (d->chan && streq(d->chan->path, d->info.agent_socket))
                return;
        drop_channel(m, d);
        d->chan = calloc(1, sizeof(*d->chan));
        if (!d->chan)
                return;
        channel_init(d->chan, d->info.name, d->info.agent_socket);
        d->chan->early_pending = &m->early_pending;
}


struct manager *manager_free(struct manager *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_doms; i++) {
                drop_channel(m, &m->doms[i]);
                m->doms[i].paging_job = pager_job_drop(m->doms[i].paging_job);
        }
        free(m->doms);
        free(m->busy);
        parking_idle_host_done(&m->idle_host);
        free(m->cores);
        free(m->index);
        core_free(m->core);
        core_frame_done(&m->frame);
        snapshot_done(&m->snap);
        free(m);
        return NULL;
}

void manager_set_config(struct manager *m, const struct tide_config *cfg) {
        /* The files in use are named under the directory paging started with: it, and whether
         * paging is on, change only with a new tided. */
        struct tide_config keep = m->cfg;
        m->cfg = *cfg;
        m->cfg.smart_paging = keep.smart_paging;
        snprintf(m->cfg.paging_dir, sizeof(m->cfg.paging_dir), "%s", keep.paging_dir);
}

/* The UUID index: open addressing over doms[], rebuilt when doms[] moves (a sweep, a grow), so
 * a listing of n domains costs O(n), not O(n^2) string compares (10,000 domains: 0.45 s). */
static uint64_t uuid_hash(const char *uuid) {
        uint64_t h = UINT64_C(1469598103934665603); /* FNV-1a */
        for (const char *p = uuid; *p; p++)
                h = (h ^ (unsigned char) *p) * UINT64_C(1099511628211);
        return h;
}

static void index_put(struct manager *m, size_t i) {
        size_t k = (size_t) uuid_hash(m->doms[i].info.uuid) & (m->index_cap - 1);
        while (m->index[k] != SIZE_MAX)
                k = (k + 1) & (m->index_cap - 1);
        m->index[k] = i;
}

/* Room for n domains at most half full; -ENOMEM leaves the old index (still right). */
static int index_rebuild(struct manager *m, size_t n) {
        size_t cap = 64;
        while (cap < 2 * n)
                cap *= 2;
        if (cap != m->index_cap) {
                size_t *ix = malloc(cap * sizeof(*ix));
                if (!ix)
                        return -ENOMEM;
                free(m->index);
                m->index = ix;
                m->index_cap = cap;
        }
        for (size_t k = 0; k < m->index_cap; k++)
                m->index[k] = SIZE_MAX;
        for (size_t i = 0; i < m->n_doms; i++)
                index_put(m, i);
        return 0;
}

static struct dom *find_dom(struct manager *m, const char *key) {
        if (m->index_cap)
                for (size_t k = (size_t) uuid_hash(key) & (m->index_cap - 1); m->index[k] != SIZE_MAX;
                     k = (k + 1) & (m->index_cap - 1))
                        if (streq(m->doms[m->index[k]].info.uuid, key))
                                return &m->doms[m->index[k]];
        /* By name: the operator's word, a control request now and then. */
        for (size_t i = 0; i < m->n_doms; i++)
                if (streq(m->doms[i].info.name, key))
                        return &m->doms[i];
        return NULL;
}

/* Reads a domain's policy from its metadata: live for a running domain, config otherwise. */
static void load_policy(struct manager *m, struct dom *d) {
        _cleanup_free_ char *xml = NULL;
        char err[HV_ERR_MAX] = "";
        struct vm_policy p;
        int r;

        r = m->hv->ops->get_metadata(m->hv->h, d->info.uuid, d->info.active ? HV_LIVE : HV_CONFIG, &xml, err,
                                     sizeof(err));
        if (r == -ENODATA) {
                if (d->have_policy)
                        log_info("%s: policy removed, now unmanaged", d->info.name);
                d->have_policy = false;
                return;
        }
        if (r < 0) {
                log_warning_errno(r, "%s: cannot read policy metadata: %s, keeping what we had", d->info.name, err);
                return;
        }
        r = metadata_parse(xml, &p, err, sizeof(err));
        if (r < 0) {
                /* Someone wrote our metadata by hand and got it wrong: do not guess, stop managing. */
                if (d->have_policy || !d->seen)
                        log_warning("%s: invalid tide policy in metadata (%s), not managing it", d->info.name, err);
                d->have_policy = false;
                return;
        }
        d->policy = p;
        d->have_policy = true;
}

/* An event for a known domain, kept for the core's next tick. */
static void note_event(struct manager *m, struct dom *d, enum hv_event_kind kind) {
        switch (kind) {
        case HV_EVENT_STARTED:
        case HV_EVENT_REBOOTED:
                /* The guest restarts with its balloon driver not loaded yet: it gets its
                 * startup memory (Hyper-V semantics), then the quiet period runs. */
                d->start = kind == HV_EVENT_REBOOTED ? CORE_START_REBOOT : CORE_START_BOOT;
                /* A new QEMU has no pins of tide's (a reboot keeps its QEMU, and them). */
                if (kind == HV_EVENT_STARTED)
                        d->aff_read = d->confined = d->parking_failed = false;
                /* Running from now on, whatever the next listing says: a policy-clear before
                 * it must release, and a failed listing must not turn the start into a lost one. */
                d->info.active = true;
                if (d->have_policy)
                        log_info("%s: %s, giving it its startup memory", d->info.name,
                                 kind == HV_EVENT_STARTED ? "started" : "rebooted");
                break;
        case HV_EVENT_RESUMED:
                /* Its memory came with it: no startup memory (a migrated VM must not jump to
                 * startup on arrival); the core starts a new run that is not a boot. */
                d->start = CORE_START_RESUME;
                d->info.active = true;
                /* A new QEMU, with the live pins (and parking record) it came with: read again. */
                d->aff_read = d->confined = d->parking_failed = false;
                if (d->have_policy)
                        log_info("%s: started with its memory (migrated in, restored or woken up); not a boot",
                                 d->info.name);
                break;
        case HV_EVENT_STOPPED:
                d->start = CORE_START_NONE;
                d->stopped = true;
                d->info.active = false;
                drop_channel(m, d);
                /* Its pins and their record went with its QEMU. */
                d->aff_read = d->confined = d->parking_failed = false;
                break;
        default:
                break;
        }
}

/* The partition whose memory limit bounds the managed VMs: theirs when they share one. VMs in
 * different partitions would each need their own bound; until tide shares memory per partition,
 * none is applied then (docs/ARCHITECTURE.md). */
static void pick_partition(struct manager *m) {
        const char *common = NULL;
        for (size_t i = 0; i < m->n_doms; i++) {
                const struct dom *d = &m->doms[i];
                if (!d->info.active || !d->have_policy)
                        continue;
                /* One whose partition is unknown may live elsewhere: then no bound is safe. */
                if (!d->partition[0] || (common && !streq(common, d->partition))) {
                        common = "";
                        break;
                }
                common = d->partition;
        }
        snprintf(m->partition, sizeof(m->partition), "%s", common ? common : "");
}

void manager_set_cgroup_root(struct manager *m, const char *root) {
        snprintf(m->cgroup_root, sizeof(m->cgroup_root), "%s", root ? root : "");
}

/* A domain listed for the first time. Returns it, or NULL out of memory. */
static struct dom *adopt(struct manager *m, const struct hv_domain *info, uint64_t now_usec) {
        /* Doubling: a host listing 1,000 domains at start reallocates ten times, not a thousand. */
        if (m->n_doms == m->doms_cap) {
                size_t cap = m->doms_cap ? m->doms_cap * 2 : 16;
                struct dom *grown = realloc(m->doms, cap * sizeof(*grown));
                if (!grown)
                        return NULL;
                m->doms = grown;
                m->doms_cap = cap;
        }
        if (2 * (m->n_doms + 1) > m->index_cap && index_rebuild(m, m->n_doms + 1) < 0)
                return NULL;
        struct dom *d = &m->doms[m->n_doms++];
        *d = (struct dom){ .info = *info };
        index_put(m, m->n_doms - 1);
        core_vm_init(&d->core, now_usec);
        load_policy(m, d);
        if (d->have_policy && d->info.active)
                log_info("%s: managed (minimum %" PRIu64 " KiB, maximum %" PRIu64 " KiB)", d->info.name,
                         d->policy.minimum_kib, d->policy.maximum_kib);
        /* Created and started since the last listing: its start event came before it could be
         * listed, and makes it a boot, not a find. */
        for (size_t k = 0; k < m->n_unknown; k++)
                if (streq(m->unknown[k].uuid, d->info.uuid))
                        d->start = m->unknown[k].start;
        return d;
}

/* ---- Smart Paging: the files and limits the core's plan asks for (smartpaging/plan.h) ---- */

/* Most paging areas /proc/swaps is read for: one per paging domain, and the host's own. */
#define SWAPS_MAX 256

static int paging_path(const struct manager *m, const struct dom *d, char *buf, size_t len) {
        return paging_file_path(m->cfg.paging_dir, d->info.uuid, buf, len);
}

/* Switches the file off and removes it, off the loop; the result comes in collect_paging(). */
static int start_release(struct manager *m, struct dom *d) {
        char path[PAGING_PATH_MAX];
        int r = paging_path(m, d, path, sizeof(path));
        if (r < 0 || (r = pager_job_start(path, m->files.off, &d->paging_job)) < 0)
                return r;
        log_info("%s: switching its paging file off (%s)", d->info.name, path);
        return 0;
}

/* A domain gone from libvirt's list (a transient one that stopped) takes its file with it. */
static void forget_paging(struct manager *m, struct dom *d) {
        if (paging_in_use(&d->core.paging) && !d->paging_job && start_release(m, d) < 0)
                log_error("%s: gone, and its paging file could not be switched off; the next start of tided will",
                          d->info.name);
        d->paging_job = pager_job_drop(d->paging_job);
}

/* Its memory limits back to what they were before tide set them (none, when not known). */
static int lift_limits(struct manager *m, struct dom *d) {
        char err[HV_ERR_MAX] = "";
        struct hv_memtune none = { HV_MEMTUNE_UNLIMITED, HV_MEMTUNE_UNLIMITED };
        const struct hv_memtune *to = d->paging_orig_known ? &d->paging_orig : &none;
        int r = m->hv->ops->set_memtune(m->hv->h, d->info.uuid, to, HV_LIVE, err, sizeof(err));
        if (r < 0)
                log_error_errno(r, "%s: Failed to lift its paging limits: %s", d->info.name, err);
        return r;
}

void manager_stop_paging(struct manager *m) {
        for (size_t i = 0; m->hv->ops && i < m->n_doms; i++) {
                struct dom *d = &m->doms[i];
                bool limited = d->core.paging.phase == PAGING_ACTIVE ||
                               (d->core.paging.phase == PAGING_RELEASING && !d->core.paging.lifted &&
                                d->core.paging.retry_usec);
                if (limited && d->info.active && lift_limits(m, d) >= 0)
                        log_info("%s: paging limits lifted as tided stops; its file stays on for the next tided",
                                 d->info.name);
        }
}

int manager_enable_paging(struct manager *m, const char *swaps_root, const struct manager_paging_files *files) {
        char err[PAGING_ERR_MAX] = "";
        bool on_root = false;
        int r;

        m->paging_on = false;
        m->files = files ? *files : (struct manager_paging_files){ .on = paging_file_on, .off = paging_file_off };
        snprintf(m->swaps_root, sizeof(m->swaps_root), "%s", swaps_root ? swaps_root : "");
        if (m->cfg.smart_paging == CONFIG_PAGING_OFF) {
                log_info("Smart Paging is off (smart_paging = off)");
                return 0;
        }
        if ((r = paging_dir_prepare(m->cfg.paging_dir, &on_root, err, sizeof(err))) < 0)
                return log_error_errno(r, "Smart Paging is unavailable: %s; a start the host cannot fund will "
                                          "run short instead",
                                       err);
        if (on_root)
                /* As Hyper-V's Best Practices Analyzer says of Smart Paging files on the system
                 * disk: a storm that fills it takes the host down with it. */
                log_warning("Smart Paging directory %s is on the root filesystem: a boot storm can fill it; "
                            "set paging_dir to another filesystem",
                            m->cfg.paging_dir);
        /* /proc/swaps names files by their resolved path: the directory is kept resolved, or
         * a symlink in it would hide every file's use and its adoption after a restart. */
        char real[PATH_MAX];
        if (!realpath(m->cfg.paging_dir, real))
                return log_error_errno(-errno, "Smart Paging is unavailable: cannot resolve %s: %m", m->cfg.paging_dir);
        if (strlen(real) >= sizeof(m->cfg.paging_dir))
                return log_error_errno(-ENAMETOOLONG, "Smart Paging is unavailable: %s resolves to a path too long",
                                       m->cfg.paging_dir);
        memcpy(m->cfg.paging_dir, real, strlen(real) + 1); /* fits: checked above */
        m->paging_on = true;
        m->paging_adopted = false;
        return 0;
}

/* After the first listing: paging files left on by an earlier tided resume (released as any
 * other, their domain's limits as found), those of domains that are gone are switched off, and
 * files that are not on are removed. A file whose domain exists but could not be described is
 * left as it is and looked at again next tick: switched off now, it could come back into a
 * QEMU still under tide's limit, and the cgroup would OOM-kill it. */
static void adopt_paging(struct manager *m, uint64_t now_usec) {
        char err[PAGING_ERR_MAX] = "", uuid[37], herr[HV_ERR_MAX] = "", a[SIZE_FORMAT_MAX];
        _cleanup_free_ struct paging_swap *sw = calloc(SWAPS_MAX, sizeof(*sw));
        size_t n = 0;
        int r;

        m->paging_adopted = true;
        if (!sw || (r = paging_swaps_read(m->swaps_root, sw, SWAPS_MAX, &n, err, sizeof(err))) < 0) {
                log_warning("Cannot look for paging files left on: %s, ignoring", sw ? err : "out of memory");
                return;
        }
        n = min_u64(n, SWAPS_MAX);
        for (size_t k = 0; k < n; k++) {
                if (!sw[k].is_file || !paging_file_uuid(m->cfg.paging_dir, sw[k].path, uuid))
                        continue;
                struct dom *d = find_dom(m, uuid);
                if (d && paging_in_use(&d->core.paging))
                        continue; /* adopted on an earlier pass */
                if (!d) {
                        struct hv_domain info;
                        r = m->hv->ops->get_domain(m->hv->h, uuid, &info, herr, sizeof(herr));
                        if (r != -ENOENT) {
                                /* It exists (or libvirt could not say): wait for its description. */
                                if (!m->paging_adopt_waited)
                                        log_warning("Paging file %s is on but its domain cannot be read yet (%s); "
                                                    "leaving it as it is until it can",
                                                    sw[k].path, r < 0 ? herr : "not described in the listing");
                                m->paging_adopt_waited = true;
                                m->paging_adopted = false;
                                continue;
                        }
                        /* Undefined since: no domain to wait for. */
                        struct pager_job *j = NULL;
                        log_info("Switching off paging file %s: its domain is gone", sw[k].path);
                        if (pager_job_start(sw[k].path, m->files.off, &j) < 0)
                                log_error("Cannot switch off %s, ignoring", sw[k].path);
                        pager_job_drop(j);
                        continue;
                }
                /* Its record has what libvirt cannot say: the limits before tide's, the startup
                 * and the grant. Without one (a tided killed between the file and the record),
                 * the grant is read from the limit, which is lifted to none on release. */
                struct paging_record rec;
                bool have = false;
                if ((r = paging_record_read(sw[k].path, &rec, err, sizeof(err))) == 0)
                        have = true;
                else if (r != -ENOENT)
                        log_warning("%s: %s, ignoring", d->info.name, err);
                uint64_t grant = 0, startup = 0;
                d->paging_orig_known = have;
                if (have)
                        d->paging_orig = (struct hv_memtune){ rec.orig_hard_limit_kib, rec.orig_swap_hard_limit_kib };
                if (d->info.active) {
                        /* The record's grant holds only while tide's limit is still the one on: a
                         * tided that stopped lifted it, one killed while releasing may have, and a
                         * domain started again since has none. Then nothing is raised (a raise
                         * would put a limit below what QEMU holds again). */
                        struct hv_memtune mt = { HV_MEMTUNE_UNLIMITED, HV_MEMTUNE_UNLIMITED };
                        if (m->hv->ops->get_memtune(m->hv->h, d->info.uuid, &mt, herr, sizeof(herr)) < 0)
                                log_warning("%s: cannot read its memory limits: %s, ignoring", d->info.name, herr);
                        if (have && mt.hard_limit_kib == rec.grant_kib + m->cfg.qemu_overhead_kib) {
                                grant = rec.grant_kib;
                                startup = rec.startup_kib;
                        } else if (!have && mt.hard_limit_kib != HV_MEMTUNE_UNLIMITED)
                                grant = sat_sub_u64(mt.hard_limit_kib, m->cfg.qemu_overhead_kib);
                }
                paging_adopt(&d->core.paging, sw[k].size_kib, grant, startup, now_usec);
                d->paging_used_kib = sw[k].used_kib;
                if (d->info.active)
                        log_info("%s: paging file %s found on (%s), released once the guest has come down",
                                 d->info.name, sw[k].path, size_format_human(sw[k].size_kib, a));
                else
                        log_info("%s: not running, paging file %s found on (%s): switched off when what it holds "
                                 "fits",
                                 d->info.name, sw[k].path, size_format_human(sw[k].size_kib, a));
        }
        r = paging_dir_sweep(m->cfg.paging_dir, sw, n);
        if (r > 0)
                log_info("Removed %d paging file%s that were not on", r, r == 1 ? "" : "s");
}

/* Ended releases to the plan, and how much of each file is in use. */
static void collect_paging(struct manager *m, uint64_t now_usec) {
        char err[PAGING_ERR_MAX] = "";
        size_t files = 0;
        int r;

        for (size_t i = 0; i < m->n_doms; i++) {
                struct dom *d = &m->doms[i];
                if (d->paging_job && pager_job_done(d->paging_job, &r, err, sizeof(err))) {
                        d->paging_job = pager_job_drop(d->paging_job);
                        uint64_t since = d->core.paging.since_usec, asked = d->core.paging.release_usec;
                        paging_released(&d->core.paging, true, r, now_usec);
                        if (r < 0)
                                log_error_errno(r, "%s: Failed to release its paging file: %s; retrying in %d s",
                                                d->info.name, err, (int) (PAGING_RETRY_USEC / USEC_PER_SEC));
                        else
                                log_info("%s: paging file released, %.1f s after it was asked; paged for %.0f s",
                                         d->info.name, (double) (now_usec - asked) / 1e6,
                                         (double) (now_usec - since) / 1e6);
                }
                files += paging_in_use(&d->core.paging);
        }
        if (!files)
                return;
        _cleanup_free_ struct paging_swap *sw = calloc(SWAPS_MAX, sizeof(*sw));
        size_t n = 0;
        if (!sw || paging_swaps_read(m->swaps_root, sw, SWAPS_MAX, &n, err, sizeof(err)) < 0)
                return; /* the use shown stays as last read */
        n = min_u64(n, SWAPS_MAX);
        for (size_t i = 0; i < m->n_doms; i++) {
                struct dom *d = &m->doms[i];
                char path[PAGING_PATH_MAX];
                d->paging_used_kib = 0;
                if (!paging_in_use(&d->core.paging) || paging_path(m, d, path, sizeof(path)) < 0)
                        continue;
                for (size_t k = 0; k < n; k++)
                        if (streq(sw[k].path, path))
                                d->paging_used_kib = sw[k].used_kib;
        }
}

/* What a tided restarted after a crash needs to resume this file (smartpaging/file.h). Without
 * it the file is still released, its limits lifted to none: worth a warning, not a failure. */
static void write_record(struct manager *m, struct dom *d, const char *path, uint64_t grant_kib) {
        char err[PAGING_ERR_MAX] = "";
        struct paging_record rec = {
                .orig_hard_limit_kib = d->paging_orig_known ? d->paging_orig.hard_limit_kib : PAGING_NO_LIMIT,
                .orig_swap_hard_limit_kib = d->paging_orig_known ? d->paging_orig.swap_hard_limit_kib
                                                                 : PAGING_NO_LIMIT,
                .startup_kib = d->core.paging.startup_kib,
                .grant_kib = grant_kib,
        };
        if (paging_record_write(path, &rec, err, sizeof(err)) < 0)
                log_warning("%s: %s: a tided restarted before its release will not know its limits", d->info.name,
                            err);
}

/* A start: the file on, then the limits (a limit below what the guest touches with no swap
 * to go to would hang or kill it). Anything failing undoes the rest: the guest boots anyway. */
static int start_paging(struct manager *m, struct dom *d, const struct paging_action *a) {
        char path[PAGING_PATH_MAX], err[PAGING_ERR_MAX] = "", herr[HV_ERR_MAX] = "";
        struct hv_memtune lim = { a->hard_limit_kib, a->swap_hard_limit_kib };
        int r;

        d->paging_orig_known =
                m->hv->ops->get_memtune(m->hv->h, d->info.uuid, &d->paging_orig, herr, sizeof(herr)) >= 0;
        if ((r = paging_path(m, d, path, sizeof(path))) < 0)
                return log_error_errno(r, "%s: Failed to page: no paging file name for its UUID", d->info.name);
        if ((r = m->files.on(path, a->file_kib, err, sizeof(err))) < 0)
                return log_error_errno(r, "%s: Failed to page: %s; it boots short, the host is overcommitted",
                                       d->info.name, err);
        if ((r = m->hv->ops->set_memtune(m->hv->h, d->info.uuid, &lim, HV_LIVE, herr, sizeof(herr))) < 0) {
                log_error_errno(r, "%s: Failed to page: cannot set its memory limits: %s; it boots short, the host "
                                   "is overcommitted",
                                d->info.name, herr);
                if (m->files.off(path, err, sizeof(err)) < 0)
                        log_error("%s: %s, ignoring", d->info.name, err);
                return r;
        }
        write_record(m, d, path, a->grant_kib);
        return 0;
}

static void act_paging(struct manager *m, struct dom *d, const struct paging_action *a, uint64_t now_usec) {
        char x[SIZE_FORMAT_MAX], y[SIZE_FORMAT_MAX], z[SIZE_FORMAT_MAX], herr[HV_ERR_MAX] = "";
        int r;

        if (!m->hv->ops) {
                /* libvirt is away: a start is a failed one (it boots short), a lift waits; a file
                 * whose limits are off already needs no libvirt to be switched off. */
                if (a->start)
                        paging_started(&d->core.paging, a, -ENOTCONN);
                if (a->lift_limits)
                        paging_released(&d->core.paging, false, -ENOTCONN, now_usec);
                else if (a->release && (r = start_release(m, d)) < 0)
                        paging_released(&d->core.paging, true, r, now_usec);
                return;
        }
        if (a->start) {
                r = start_paging(m, d, a);
                paging_started(&d->core.paging, a, r);
                if (r >= 0)
                        log_info("%s: starts %s short of its startup memory: paging it to its own file (%s), RAM "
                                 "limited to %s until it has ballooned down",
                                 d->info.name, size_format_human(a->shortfall_kib, x),
                                 size_format_human(a->file_kib, y), size_format_human(a->hard_limit_kib, z));
        }
        if (a->raise) {
                struct hv_memtune lim = { a->hard_limit_kib, a->swap_hard_limit_kib };
                r = m->hv->ops->set_memtune(m->hv->h, d->info.uuid, &lim, HV_LIVE, herr, sizeof(herr));
                paging_started(&d->core.paging, a, r);
                char path[PAGING_PATH_MAX];
                if (r < 0)
                        log_error_errno(r, "%s: Failed to raise its paging limit: %s, ignoring", d->info.name, herr);
                else {
                        log_info("%s: paging: RAM limit raised to %s", d->info.name,
                                 size_format_human(a->hard_limit_kib, x));
                        if (paging_path(m, d, path, sizeof(path)) == 0)
                                write_record(m, d, path, a->grant_kib);
                }
        }
        if (a->lift_limits && !a->release) {
                r = lift_limits(m, d);
                paging_lifted(&d->core.paging, r, now_usec);
                if (r >= 0)
                        log_info("%s: has come down: paging limits lifted; its file stays on until no other "
                                 "guest under a paging limit needs the swap room",
                                 d->info.name);
        }
        if (a->release) {
                /* Never switch the file off under a limit: the pages coming back would make the
                 * cgroup OOM-kill QEMU. */
                if (a->lift_limits && (r = lift_limits(m, d)) < 0) {
                        paging_released(&d->core.paging, false, r, now_usec);
                        return;
                }
                if ((r = start_release(m, d)) < 0) {
                        log_error_errno(r, "%s: Failed to start switching its paging file off: %m; retrying",
                                        d->info.name);
                        paging_released(&d->core.paging, a->lift_limits, r, now_usec);
                }
        }
        if (a->warn_long)
                log_warning("%s: paging for %d minutes: its guest has not come down to what the host can hold",
                            d->info.name, (int) (PAGING_LONG_USEC / USEC_PER_SEC / 60));
}

/* A known domain listed again. A stop or start seen only here (its event lost) is still an
 * event for the core: the next tick may see neither state in between. */
static void relist(struct manager *m, struct dom *d, const struct hv_domain *info) {
        if (d->info.active && !info->active)
                note_event(m, d, HV_EVENT_STOPPED);
        else if (!d->info.active && info->active && d->start == CORE_START_NONE)
                d->start = CORE_START_BOOT;
        /* Another QEMU than the one tide knew (stopped and started while it was not looking, a
         * libvirt outage): its pins and record are its own, read again. */
        if (d->info.active && info->active && d->info.id != info->id)
                d->aff_read = d->confined = d->parking_failed = false;
        /* A stopped domain's configured pins may have changed since: read again. */
        if (!info->active)
                d->aff_read = false;
        d->info = *info;
        load_policy(m, d);
}

/* What a running managed domain needs set up once listed: its agent channel, its partition,
 * and the balloon statistics period our staleness clock is built on. */
static void set_up(struct manager *m, struct dom *d) {
        char err[HV_ERR_MAX] = "";

        sync_channel(m, d);
        if (!d->info.active)
                d->partition[0] = '\0';
        else if (!d->partition[0] && m->hv->ops->get_partition &&
                 m->hv->ops->get_partition(m->hv->h, d->info.uuid, d->partition, sizeof(d->partition), err,
                                           sizeof(err)) < 0)
                log_debug("%s: cannot read its cgroup partition: %s", d->info.name, err);
        /* The guest refreshes its statistics once a second. */
        if (d->info.active && d->have_policy && d->info.has_balloon &&
            m->hv->ops->set_stats_period(m->hv->h, d->info.uuid, 1, err, sizeof(err)) < 0)
                log_debug("%s: cannot set the balloon stats period: %s", d->info.name, err);
}

int manager_refresh(struct manager *m, uint64_t now_usec) {
        _cleanup_free_ struct hv_domain *list = NULL;
        char err[HV_ERR_MAX] = "";
        size_t n = 0;
        int r;

        if (!m->hv->ops)
                return -ENOTCONN; /* libvirt went away; tided reconnects and refreshes then */

        r = m->hv->ops->list_domains(m->hv->h, &list, &n, err, sizeof(err));
        if (r < 0)
                return log_error_errno(r, "Failed to list domains: %s", err);

        for (size_t i = 0; i < m->n_doms; i++)
                m->doms[i].seen = false;

        for (size_t i = 0; i < n; i++) {
                struct dom *d = find_dom(m, list[i].uuid);
                if (list[i].undescribed) {
                        /* It exists but could not be read this time: what tided knew of it stays,
                         * and a new one is adopted once it can be read. */
                        log_warning("%s: cannot read its description (%s), keeping what tided knew, ignoring",
                                    list[i].name, err);
                        if (d)
                                d->seen = true;
                        continue;
                }
                if (d)
                        relist(m, d, &list[i]);
                else if (!(d = adopt(m, &list[i], now_usec)))
                        return log_error_errno(-ENOMEM, "Out of memory tracking domains");
                d->seen = true;
                set_up(m, d);
        }
        m->n_unknown = 0;

        /* Sweep domains that are gone. */
        size_t k = 0;
        for (size_t i = 0; i < m->n_doms; i++) {
                if (m->doms[i].seen)
                        m->doms[k++] = m->doms[i];
                else {
                        drop_channel(m, &m->doms[i]);
                        forget_paging(m, &m->doms[i]);
                }
        }
        if (k != m->n_doms) {
                m->n_doms = k;
                /* Positions moved. Shrinking needs no memory: the index only grows. */
                (void) index_rebuild(m, m->index_cap / 2);
        }
        pick_partition(m);
        m->dirty = false;
        m->last_refresh_usec = now_usec;
        return 0;
}

void manager_on_event(struct manager *m, enum hv_event_kind kind, const char *uuid, uint64_t now_usec) {
        struct dom *d = find_dom(m, uuid);

        m->dirty = true;
        if (d) {
                note_event(m, d, kind);
                return;
        }
        enum core_start start = kind == HV_EVENT_STARTED    ? CORE_START_BOOT
                                : kind == HV_EVENT_REBOOTED ? CORE_START_REBOOT
                                : kind == HV_EVENT_RESUMED  ? CORE_START_RESUME
                                                            : CORE_START_NONE;
        if (kind != HV_EVENT_STOPPED && start == CORE_START_NONE)
                return;
        for (size_t k = 0; k < m->n_unknown; k++)
                if (streq(m->unknown[k].uuid, uuid)) {
                        m->unknown[k].start = start;
                        return;
                }
        if (start == CORE_START_NONE)
                return;
        if (m->n_unknown == EVENTS_UNKNOWN_MAX) {
                memmove(m->unknown, m->unknown + 1, (EVENTS_UNKNOWN_MAX - 1) * sizeof(m->unknown[0]));
                m->n_unknown--;
        }
        m->unknown[m->n_unknown] = (struct event_unknown){ .start = start };
        snprintf(m->unknown[m->n_unknown].uuid, HV_UUID_MAX, "%s", uuid);
        m->n_unknown++;
}

/* Reads one domain's balloon statistics (and, with virtio-mem, its plugged size). */
static void read_stats(struct manager *m, struct dom *d, struct core_vm_obs *o) {
        char err[HV_ERR_MAX] = "";
        int r;

        /* The guest plugs virtio-mem blocks at its own pace; how much it has plugged is in the
         * domain XML only (<current>), so a domain with virtio-mem is re-read every tick. */
        if (d->info.has_virtio_mem) {
                struct hv_domain fresh;
                r = m->hv->ops->get_domain(m->hv->h, d->info.uuid, &fresh, err, sizeof(err));
                if (r >= 0)
                        d->info = fresh;
                else
                        log_debug("%s: cannot re-read the domain: %s", d->info.name, err);
        }
        o->fresh_stats = true;
        r = m->hv->ops->memory_stats(m->hv->h, d->info.uuid, &o->stats, d->stats_err, sizeof(d->stats_err));
        o->stats_ok = r >= 0;
}

/* Collect: what one domain looks like now. An early tick reads only the domains whose agent
 * asked for it; the others' last sample stands. */
/* ---- core parking: each VM's own affinity, and the pins the core's plan asks for ---- */

/* vCPUs read or pinned at once: as many as a CPU set holds (a VM with more is never touched,
 * its affinity unread, and nothing new is parked meanwhile). */
#define PARKING_VCPUS_MAX HV_CPUSET_MAX

/* libvirt's "current": live on a running domain, and the one flag its test driver takes for
 * vCPU pins (balloon/hv.h). */
#define PIN_FLAGS 0


/* The record of a confined VM: it floated, so what it gets back is every CPU of the host it is
 * on then (a migrated VM's, the destination's). */
#define PARKING_RECORD "<parking version=\"1\"><own>all</own></parking>"

static int parking_record_write(struct manager *m, struct dom *d) {
        char herr[HV_ERR_MAX] = "";
        int r = m->hv->ops->set_metadata(m->hv->h, d->info.uuid, PARKING_RECORD, HV_LIVE | HV_META_PARKING, herr,
                                         sizeof(herr));
        if (r < 0 && !d->parking_failed)
                log_error_errno(r, "%s: Failed to record its affinity before parking: %s; not confining it",
                                d->info.name, herr);
        d->parking_failed |= r < 0;
        return r;
}

/* Its live pins: every vCPU's and the emulator's; *ret_uniform: all on one set, *ret_set. */
static int read_pins(struct manager *m, struct dom *d, struct hv_cpuset *ret_union, bool *ret_floats,
                     bool *ret_uniform, struct hv_cpuset *ret_set, char *herr, size_t errlen) {
        _cleanup_free_ struct hv_cpuset *pins = calloc(PARKING_VCPUS_MAX, sizeof(*pins));
        unsigned n = 0;
        struct hv_cpuset emu;
        int r;
        if (!pins)
                return -ENOMEM;
        if ((r = m->hv->ops->get_vcpu_pins(m->hv->h, d->info.uuid, pins, PARKING_VCPUS_MAX, &n, herr, errlen)) < 0 ||
            (r = m->hv->ops->get_emulator_pin(m->hv->h, d->info.uuid, &emu, herr, errlen)) < 0)
                return r;
        /* It floats when every vCPU and its emulator may run on every host CPU (libvirt's answer
         * for no pinning). The CPUs it is pinned to are those of the pins that restrict it: a
         * pinned vCPU's, not an emulator left on every CPU. */
        bool floats = hv_cpuset_within(&m->host_cpus, &emu), uniform = true;
        *ret_union = floats ? (struct hv_cpuset){ 0 } : emu;
        for (unsigned v = 0; v < n; v++) {
                uniform &= hv_cpuset_equal(&pins[v], &emu);
                if (hv_cpuset_within(&m->host_cpus, &pins[v]))
                        continue;
                floats = false;
                hv_cpuset_or(ret_union, &pins[v]);
        }
        *ret_floats = floats;
        *ret_uniform = uniform;
        *ret_set = emu;
        return 0;
}

/* Its administrator's from now on: tide's record goes, its pins stay as they are. */
static void hand_over(struct manager *m, struct dom *d, const struct hv_cpuset *cpus, const char *why) {
        char herr[HV_ERR_MAX] = "";
        if (d->confined)
                (void) m->hv->ops->set_metadata(m->hv->h, d->info.uuid, NULL, HV_LIVE | HV_META_PARKING, herr,
                                                sizeof(herr));
        d->aff_read = d->aff_pinned = true;
        d->aff_cpus = *cpus;
        d->confined = d->parking_failed = false;
        d->confined_to = (struct hv_cpuset){ 0 };
        log_info("%s: %s: core parking leaves it and its CPUs alone", d->info.name, why);
}

static int unconfine(struct manager *m, struct dom *d, const char *why);

/* Reads a running VM's own affinity once per run: a record from an earlier tided (confined
 * then: it floats and gets every CPU back, unless its pins are no longer the one set tide put
 * there, which makes them its administrator's), or its live pins. */
/* mode = partition, a stopped domain: the CPUs its configuration pins it to. Its next start
 * pins it there, and a pin entirely outside the confined partition's cpuset fails that start
 * (sched_setaffinity: EINVAL), so they are never parked, as a running VM's own pins are not. Read
 * again at each listing (relist()), so a pin configured since is seen within a refresh. */
static void read_configured_pins(struct manager *m, struct dom *d) {
        char herr[HV_ERR_MAX] = "";
        struct hv_cpuset pinned, set;
        bool floats, uniform;
        if (read_pins(m, d, &pinned, &floats, &uniform, &set, herr, sizeof(herr)) < 0) {
                log_debug("%s: cannot read the CPUs it is configured to run on: %s", d->info.name, herr);
                return;
        }
        d->aff_read = true;
        d->aff_pinned = !floats;
        d->aff_cpus = pinned;
}

static void read_affinity(struct manager *m, struct dom *d) {
        char herr[HV_ERR_MAX] = "";
        _cleanup_free_ char *xml = NULL;
        struct hv_cpuset pinned, set;
        bool floats, uniform;
        int r = m->hv->ops->get_metadata(m->hv->h, d->info.uuid, HV_LIVE | HV_META_PARKING, &xml, herr, sizeof(herr));
        if (r < 0 && r != -ENODATA) {
                log_debug("%s: cannot read its parking record: %s", d->info.name, herr);
                return;
        }
        if (!xml && !m->parking_on) {
                d->aff_read = true; /* restore only, and nothing to restore: not asked again this run */
                return;
        }
        if ((r = read_pins(m, d, &pinned, &floats, &uniform, &set, herr, sizeof(herr))) < 0) {
                log_debug("%s: cannot read its CPU affinity: %s", d->info.name, herr);
                return;
        }
        if (xml) {
                d->confined = true;
                if (!uniform) {
                        hand_over(m, d, &pinned, "found with tide's record but pins of its administrator's");
                        return;
                }
                d->aff_read = true;
                d->aff_pinned = false;
                d->confined_to = set;
                log_info("%s: found confined by an earlier tided; its own CPUs come back when it is unparked",
                         d->info.name);
                if (!m->parking_on)
                        (void) unconfine(m, d, "parking is off");
                return;
        }
        d->aff_read = true;
        d->aff_pinned = !floats;
        d->aff_cpus = pinned;
        if (!floats)
                log_info("%s: pinned by its administrator: core parking leaves it and its CPUs alone", d->info.name);
}

/* Whether its pins are still what tide left (confined: all on confined_to; else floating); if
 * not, its administrator has pinned it since, and it is theirs. */
static bool still_ours(struct manager *m, struct dom *d) {
        char herr[HV_ERR_MAX] = "";
        struct hv_cpuset pinned, set;
        bool floats, uniform;
        if (read_pins(m, d, &pinned, &floats, &uniform, &set, herr, sizeof(herr)) < 0)
                return false; /* not now: tried again next tick */
        bool ours = d->confined ? uniform && (!hv_cpuset_count(&d->confined_to) || hv_cpuset_equal(&set, &d->confined_to))
                                : floats;
        if (!ours)
                hand_over(m, d, &pinned, "pinned by its administrator since");
        return ours;
}

/* Pins every online vCPU and the emulator to cpus (live), each tried whatever the others do.
 * Returns 0 or the first failure's -errno. */
static int pin_all(struct manager *m, struct dom *d, const struct hv_cpuset *cpus, char *herr, size_t errlen) {
        unsigned online = 0;
        int r, first = 0;
        if ((r = m->hv->ops->get_vcpu_count(m->hv->h, d->info.uuid, &online, herr, errlen)) < 0)
                return r;
        /* vCPUs past the online ones cannot be pinned live; hot-added later, they float. */
        for (unsigned v = 0; v < online && v < PARKING_VCPUS_MAX; v++)
                if ((r = m->hv->ops->set_vcpu_pin(m->hv->h, d->info.uuid, v, cpus, PIN_FLAGS, herr, errlen)) < 0 && !first)
                        first = r;
        if ((r = m->hv->ops->set_emulator_pin(m->hv->h, d->info.uuid, cpus, PIN_FLAGS, herr, errlen)) < 0 && !first)
                first = r;
        return first;
}

/* Every host CPU back, then its record removed (both tried again while either fails). */
static int unconfine(struct manager *m, struct dom *d, const char *why) {
        char herr[HV_ERR_MAX] = "";
        int r = pin_all(m, d, &m->host_cpus, herr, sizeof(herr));
        if (r >= 0)
                r = m->hv->ops->set_metadata(m->hv->h, d->info.uuid, NULL, HV_LIVE | HV_META_PARKING, herr,
                                             sizeof(herr));
        if (r < 0) {
                if (!d->parking_failed)
                        log_error_errno(r, "%s: Failed to give it its own CPUs back (%s): %s; retrying", d->info.name,
                                        why, herr);
                d->parking_failed = true;
                return r;
        }
        log_info("%s: unparked (%s): its own CPUs back", d->info.name, why);
        d->confined = d->parking_failed = false;
        d->confined_to = (struct hv_cpuset){ 0 };
        return 0;
}

static void confine(struct manager *m, struct dom *d, const struct hv_cpuset *to) {
        char herr[HV_ERR_MAX] = "", list[4096];
        if (!d->confined && parking_record_write(m, d) < 0)
                return;
        d->confined = true; /* the record is there: whatever happens next, it is given back */
        int r = pin_all(m, d, to, herr, sizeof(herr));
        if (r < 0) {
                if (!d->parking_failed)
                        log_error_errno(r, "%s: Failed to confine it to the unparked CPUs: %s; retrying", d->info.name,
                                        herr);
                d->parking_failed = true;
                return;
        }
        d->confined_to = *to;
        d->parking_failed = false;
        log_info("%s: confined to CPUs %s", d->info.name,
                 parking_cpulist_format(to, list, sizeof(list)) ? list : "(many)");
}

static void act_parking(struct manager *m, struct dom *d, const struct core_vm_out *o) {
        if (!m->parking_on || !m->host_out.parking_on || !d->info.active || !d->aff_read)
                return;
        /* Before every change, its pins must still be what tide left: an administrator may have
         * pinned it since (virsh vcpupin --live), and then it is theirs. */
        switch (o->parking) {
        case PARKING_VM_CONFINE:
                if ((!d->confined || !hv_cpuset_equal(&d->confined_to, &m->host_out.parking.unparked)) &&
                    still_ours(m, d))
                        confine(m, d, &m->host_out.parking.unparked);
                break;
        case PARKING_VM_RESTORE:
        case PARKING_VM_LEAVE:
                if (d->confined && still_ours(m, d))
                        (void) unconfine(m, d, o->parking == PARKING_VM_LEAVE ? "latency-sensitive" : "cores unparked");
                break;
        }
}

int manager_enable_parking(struct manager *m, const struct parking_core *cores, size_t n, manager_cpu_load_fn load,
                           void *userdata) {
        int r;
        if (!m || !cores || !n)
                return -EINVAL;
        if (!load) {
                /* Parking off: only what an earlier tided left confined is given back. */
                for (size_t i = 0; i < n; i++)
                        hv_cpuset_or(&m->host_cpus, &cores[i].cpus);
                m->restore_only = true;
                return 0;
        }
        if ((r = core_set_topology(m->core, cores, n)) < 0)
                return log_error_errno(r, "Core parking is unavailable: %m");
        struct hv_cpuset host = { 0 };
        for (size_t i = 0; i < n; i++)
                hv_cpuset_or(&host, &cores[i].cpus);
        unsigned top = (unsigned) hv_cpuset_last(&host) + 1;
        double *busy = calloc(top, sizeof(*busy));
        if (!busy) {
                (void) core_set_topology(m->core, NULL, 0);
                return log_error_errno(-ENOMEM, "Core parking is unavailable: %m");
        }
        struct parking_core *copy = malloc(n * sizeof(*copy));
        if (!copy) {
                free(busy);
                (void) core_set_topology(m->core, NULL, 0);
                return log_error_errno(-ENOMEM, "Core parking is unavailable: %m");
        }
        memcpy(copy, cores, n * sizeof(*copy));
        free(m->cores);
        m->cores = copy;
        m->n_cores = n;
        free(m->busy);
        m->busy = busy;
        m->n_busy = top;
        m->host_cpus = host;
        m->load = load;
        m->load_userdata = userdata;
        m->load_known = false;
        m->parking_on = true;
        char list[4096];
        log_info("Core parking: %s, %zu cores (CPUs %s)", parking_mode_to_string(m->cfg.parking.mode), n,
                 parking_cpulist_format(&host, list, sizeof(list)) ? list : "many");
        return 0;
}

/* ---- mode = partition: the partition's cpuset, and its record ---- */

/* A record of what tided changed outside itself, written whole (a temporary file renamed over
 * it): a tided that dies meanwhile has it undone at its next start. */
static int record_write(const char *path, const char *text) {
        return write_file_atomic(path, text, strlen(text));
}

/* The partition's own list, kept before it is first confined. */
static int part_record_write(struct manager *m) {
        char text[2 * CGROUP_PATH_MAX + PARKING_PART_LIST_MAX + 128];
        snprintf(text, sizeof(text), "# tided: %s's own cpuset.cpus, given back when no core is parked\ndir=%s\ncpus=%s\n",
                 m->part_dir, m->part_dir, m->part_orig);
        return record_write(m->part_record, text);
}

/* ---- irqbalance: the parked CPUs banned while cores are parked ---- */

static void irq_failed(struct manager *m, int r, const char *what) {
        if (r != m->irq_errno)
                log_warning_errno(r, "Core parking: cannot %s irqbalance: %m", what);
        m->irq_errno = r;
}

/* Sends banned (NULL: irqbalance's own choice again) to the irqbalance that runs now. -ENOENT:
 * none runs. */
static int irq_send(struct manager *m, const struct hv_cpuset *banned) {
        return parking_irqbalance_ban(m->irq_dir, banned);
}

static void irq_lift(struct manager *m, const char *why) {
        int r = irq_send(m, NULL);
        if (r < 0 && r != -ENOENT)
                return irq_failed(m, r, "lift the ban of");
        /* None runs (or it went): its ban went with it. */
        if (unlink(m->irq_record) < 0 && errno != ENOENT)
                log_warning_errno(-errno, "Core parking: cannot remove %s: %m", m->irq_record);
        if (r == 0)
                log_info("Core parking: irqbalance may use every CPU again (%s)", why);
        m->irq_banned = false;
        m->irq_errno = 0;
}

static void act_irqbalance(struct manager *m) {
        if (!m->irq_on)
                return;
        const struct parking_decision *p = &m->host_out.parking;
        bool want = m->cfg.parking.mode != PARKING_OFF && m->cfg.parking.irqbalance && m->host_out.parking_on &&
                    hv_cpuset_count(&p->parked);
        if (!want) {
                if (m->irq_banned)
                        irq_lift(m, m->host_out.parking_on ? parking_reason_to_string(p->reason) : "parking off");
                return;
        }
        if (m->irq_banned && hv_cpuset_equal(&m->irq_sent, &p->parked))
                return;
        int r;
        /* The ban replaces irqbalance's own (isolated and nohz_full CPUs, its configured list):
         * those are read first and kept in it. */
        if (!m->irq_banned && (r = parking_irqbalance_banned(m->irq_dir, &m->irq_own)) < 0) {
                if (r != -ENOENT)
                        irq_failed(m, r, "read the CPUs banned by");
                return;
        }
        if (!m->irq_banned && (r = record_write(m->irq_record, "# tided: irqbalance was told the parked CPUs\n")) < 0)
                return irq_failed(m, r, "record a ban for");
        struct hv_cpuset ban = p->parked;
        hv_cpuset_or(&ban, &m->irq_own);
        if ((r = irq_send(m, &ban)) < 0) {
                if (r == -ENOENT) {
                        /* None runs: nothing to tell, nothing to undo (a ban an earlier one had went
                         * with it). */
                        (void) unlink(m->irq_record);
                        m->irq_banned = false;
                } else
                        irq_failed(m, r, "tell");
                return;
        }
        char list[256];
        log_info("Core parking: irqbalance keeps interrupts off CPUs %s (the parked ones and its own)",
                 parking_cpulist_format(&ban, list, sizeof(list)) ? list : "(many)");
        m->irq_banned = true;
        m->irq_sent = p->parked;
        m->irq_errno = 0;
}

int manager_enable_irqbalance(struct manager *m, const char *dir, const char *record_path) {
        if (!m || !record_path || strlen(record_path) >= sizeof(m->irq_record) ||
            (dir && strlen(dir) >= sizeof(m->irq_dir)))
                return -EINVAL;
        snprintf(m->irq_dir, sizeof(m->irq_dir), "%s", dir ? dir : PARKING_IRQBALANCE_DIR);
        snprintf(m->irq_record, sizeof(m->irq_record), "%s", record_path);
        m->irq_on = true;
        /* A ban a tided that died left: lifted now. */
        if (access(record_path, F_OK) == 0) {
                m->irq_banned = true;
                irq_lift(m, "a tided that parked had stopped without lifting it");
        }
        return 0;
}

static void part_failed(struct manager *m, int r, const char *what) {
        if (r != m->part_errno)
                log_error_errno(r, "Core parking: cannot %s %s's cpuset: %m; retrying every tick", what, m->part_dir);
        m->part_errno = r;
}

static void part_confine(struct manager *m, const struct hv_cpuset *to) {
        char list[PARKING_PART_LIST_MAX];
        int r;
        if (!parking_cpulist_format(to, list, sizeof(list)))
                return;
        /* Recorded once per confinement: a write that keeps failing does not rewrite it each tick. */
        if (!m->part_confined && access(m->part_record, F_OK) < 0) {
                if ((r = cgroup_cpuset_read(m->part_root, m->part_dir, m->part_orig, sizeof(m->part_orig))) < 0 ||
                    (r = part_record_write(m)) < 0)
                        return part_failed(m, r, "record");
        }
        if ((r = cgroup_cpuset_write(m->part_root, m->part_dir, list)) < 0)
                return part_failed(m, r, "confine");
        if (!m->part_confined)
                log_info("Core parking: the VMs of %s confined to CPUs %s (its own: %s)", m->part_dir, list,
                         m->part_orig[0] ? m->part_orig : "its parent's");
        m->part_confined = true;
        m->part_to = *to;
        m->part_errno = 0;
}

/* Its own list back, and the record gone. */
static int part_restore(struct manager *m, const char *why) {
        int r = cgroup_cpuset_write(m->part_root, m->part_dir, m->part_orig);
        if (r < 0) {
                part_failed(m, r, "give back");
                return r;
        }
        if (unlink(m->part_record) < 0 && errno != ENOENT)
                log_warning_errno(-errno, "Core parking: cannot remove %s: %m", m->part_record);
        log_info("Core parking: %s has its own CPUs back (%s): %s", m->part_dir,
                 m->part_orig[0] ? m->part_orig : "its parent's", why);
        m->part_confined = false;
        m->part_errno = 0;
        return 0;
}

static void act_partition(struct manager *m) {
        if (!m->part_on)
                return;
        if (m->cfg.parking.mode != PARKING_PARTITION || !m->host_out.parking_on) {
                if (m->part_confined)
                        (void) part_restore(m, "parking no longer confines the partition");
                return;
        }
        const struct parking_decision *p = &m->host_out.parking;
        if (hv_cpuset_count(&p->parked)) {
                if (!m->part_confined || !hv_cpuset_equal(&m->part_to, &p->unparked))
                        part_confine(m, &p->unparked);
        } else if (m->part_confined)
                (void) part_restore(m, parking_reason_to_string(p->reason));
}

int manager_enable_partition_parking(struct manager *m, const char *cgroup_root, const char *partition,
                                     const char *record_path) {
        if (!m || !partition || !record_path || strlen(record_path) >= sizeof(m->part_record))
                return -EINVAL;
        snprintf(m->part_root, sizeof(m->part_root), "%s", cgroup_root ? cgroup_root : "");
        int r = cgroup_partition_cpuset_dir(m->part_root, partition, m->part_dir);
        if (r < 0)
                return r;
        snprintf(m->part_record, sizeof(m->part_record), "%s", record_path);
        /* It must be writable (a unit with ProtectControlGroups=yes mounts it read-only): its own
         * list written back, which changes nothing. */
        char now[PARKING_PART_LIST_MAX];
        if (access(record_path, F_OK) < 0 &&
            ((r = cgroup_cpuset_read(m->part_root, m->part_dir, now, sizeof(now))) < 0 ||
             (r = cgroup_cpuset_write(m->part_root, m->part_dir, now)) < 0))
                return log_error_errno(r, "Core parking: cannot write %s's cpuset: %m", m->part_dir);
        /* A record left by a tided that died while it confined the partition: its list back. */
        _cleanup_free_ char *text = NULL;
        if ((r = read_file_at(NULL, record_path, 8192, &text, NULL)) == 0) {
                const char *c = strstr(text, "\ncpus=");
                struct hv_cpuset check;
                size_t n = c ? strcspn(c + 6, "\n") : 0;
                if (c && n < sizeof(m->part_orig)) {
                        memcpy(m->part_orig, c + 6, n);
                        m->part_orig[n] = '\0';
                }
                if (!c || n >= sizeof(m->part_orig) || streq(m->part_orig, "none") ||
                    parking_cpulist_parse(m->part_orig, &check, NULL) < 0) {
                        log_error("Core parking: %s is not a record tided wrote; %s left as it is", record_path,
                                  m->part_dir);
                        return -EINVAL;
                }
                /* Confined by it: given back now, or, if that fails, every tick until it is. */
                m->part_confined = true;
                m->part_on = true;
                if ((r = part_restore(m, "a tided that parked had stopped without giving it back")) < 0)
                        return r;
        } else if (r != -ENOENT)
                return log_error_errno(r, "Core parking: cannot read %s: %m", record_path);
        m->part_on = true;
        return 0;
}

void manager_stop_parking(struct manager *m) {
        if (m && m->part_on && m->part_confined)
                (void) part_restore(m, "tided stops");
        if (m && m->irq_on && m->irq_banned)
                irq_lift(m, "tided stops");
        for (size_t i = 0; m && m->parking_on && m->hv->ops && i < m->n_doms; i++)
                if (m->doms[i].confined && m->doms[i].info.active)
                        (void) unconfine(m, &m->doms[i], "tided stops");
}

/* The per-CPU load for this tick (a regular one: the plan moves cores on those only). */
int manager_cpu_load_live(double *busy, unsigned n, bool *ret_known, void *userdata) {
        int r = parking_load_read(userdata, busy, n, ret_known);
        return r < 0 ? r : 0;
}

static void read_load(struct manager *m) {
        bool known = false;
        int r = m->load(m->busy, m->n_busy, &known, m->load_userdata);
        m->load_known = r >= 0 && known;
        if (r < 0)
                log_debug("cannot read the CPUs' load: %s", strerror(-r));
}

int manager_measure_parking(struct manager *m, const char *sys_root) {
        if (!m || !m->parking_on)
                return -EINVAL;
        parking_idle_host_done(&m->idle_host);
        int r = parking_idle_host_init(&m->idle_host, m->n_busy);
        if (r < 0)
                return log_error_errno(r, "Core parking will not be measured: %m");
        snprintf(m->sys_root, sizeof(m->sys_root), "%s", sys_root && *sys_root ? sys_root : "/");
        parking_power_model_default(&m->model);
        m->meter = (struct parking_meter){ 0 };
        m->measure_on = true;
        return 0;
}

/* The interval since the last regular tick, with what the previous one parked: into the meter;
 * an episode that ends is logged with what it was worth, and a host where parking does not pay
 * is said to be one, once. */
static void measure_parking(struct manager *m, uint64_t now_usec) {
        struct parking_sample s;
        if (parking_idle_host_read(&m->idle_host, m->sys_root, m->cores, m->n_cores, m->load_known ? m->busy : NULL,
                                   now_usec, &s) < 0 ||
            !s.cores)
                return;
        bool parked = m->parking_decided && hv_cpuset_count(&m->parking_last.parked) > 0;
        bool deep = m->idle_host.has_deep;
        parking_meter_add(&m->meter, &m->model, &s, parked, deep);
        const struct parking_judgement *j = &m->meter.last;
        if (m->meter.ended && j->verdict != PARKING_NO_DEEP_STATE)
                log_info("Core parking: an episode of %.0f s is over: %s; deep idle %.0f%% of idle time before, "
                         "%.0f%% during; estimated %.2f W saved%s",
                         m->meter.last_seconds, parking_verdict_to_string(j->verdict), 100 * j->deep_before,
                         100 * j->deep_during, j->watts_saved, j->rapl_known ? " (RAPL shown in stats)" : "");
        if (!m->never_pays_said && parking_meter_never_pays(&m->meter, deep)) {
                m->never_pays_said = true;
                if (!deep)
                        log_warning("Core parking cannot pay on this host: its CPUs list no idle state with an exit "
                                    "latency of %d us or more (only polling or a halt, as a VM's cpuidle-haltpoll), "
                                    "so a parked core sleeps no deeper than an idle one; [parking] mode = off "
                                    "saves the pinning",
                                    PARKING_DEEP_LATENCY_USEC);
                else
                        log_warning("Core parking has not paid in %" PRIu64 " episodes on this host (no deeper "
                                    "idle worth %.1f W); [parking] mode = off saves the pinning",
                                    m->meter.episodes[PARKING_DID_NOT_PAY], PARKING_PAID_MIN_W);
        }
}

static void gather(struct manager *m, struct dom *d, struct core_vm_obs *o, uint64_t now_usec, bool early) {
        *o = (struct core_vm_obs){ .info = &d->info,
                                   .have_policy = d->have_policy,
                                   .policy = d->policy,
                                   .start = d->start,
                                   .stopped = d->stopped,
                                   .paging_used_kib = d->paging_used_kib,
                                   .state = &d->core };
        if ((m->parking_on || m->restore_only) && d->info.active && !early && !d->aff_read && m->hv->ops)
                read_affinity(m, d);
        else if (m->parking_on && m->cfg.parking.mode == PARKING_PARTITION && !d->info.active && !early &&
                 !d->aff_read && m->hv->ops)
                read_configured_pins(m, d);
        /* Unread is left alone as if pinned, its CPUs unknown: nothing new is parked meanwhile. */
        o->pinned = !d->aff_read || d->aff_pinned;
        o->pinned_cpus = d->aff_pinned ? d->aff_cpus : (struct hv_cpuset){ 0 };
        o->affinity_unknown = m->parking_on && d->info.active && !d->aff_read;
        if (!d->info.active || !d->have_policy)
                return;
        /* Connects and resumes the agent channel whether or not stats can be read. */
        if (d->chan)
                channel_tick(d->chan, now_usec);
        if (!early || (d->chan && d->chan->early))
                read_stats(m, d, o);
        if (d->chan && d->chan->have_report) {
                o->has_report = true;
                o->report = d->chan->report;
                o->report_usec = d->chan->report_usec;
                o->report_fresh = d->chan->fresh;
        }
}

/* Releases a domain whose policy went away: virtio-mem unplugged, balloon at the boot size.
 * Returns 0 or the balloon's -errno (then the core asks again next tick). */
static int release(struct manager *m, struct dom *d, char *err, size_t errlen) {
        struct balloon_split sp = core_release_split(&d->info);
        char a[SIZE_FORMAT_MAX];
        int r;

        if (d->info.has_virtio_mem && d->info.virtio_mem_requested_kib != sp.vmem_requested_kib) {
                r = m->hv->ops->set_virtio_mem(m->hv->h, d->info.uuid, sp.vmem_requested_kib, err, errlen);
                if (r < 0)
                        log_warning_errno(r, "%s: cannot unplug virtio-mem: %s, ignoring", d->info.name, err);
                else
                        d->info.virtio_mem_requested_kib = sp.vmem_requested_kib;
        }
        /* Without a balloon device there is nothing to give back (and libvirt refuses the call). */
        r = d->info.has_balloon ? m->hv->ops->set_balloon(m->hv->h, d->info.uuid, sp.balloon_kib, err, errlen) : 0;
        core_vm_released(&d->core, r >= 0);
        if (r < 0) {
                /* Retried every tick: one warning per episode. */
                if (!d->release_failed)
                        log_warning_errno(r, "%s: cannot release the balloon: %s, retrying every tick", d->info.name,
                                          err);
                d->release_failed = true;
                return r;
        }
        d->release_failed = false;
        if (!d->info.has_balloon)
                return 0;
        d->info.current_kib = sp.balloon_kib;
        log_info("%s: unmanaged, balloon released to %s", d->info.name, size_format_human(sp.balloon_kib, a));
        return 0;
}

/* The log lines the core asked for, and the agent channel's share of its findings. */
static void report(struct dom *d, const struct core_vm_out *o, uint64_t now_usec) {
        char a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX], c[SIZE_FORMAT_MAX];
        const struct core_vm *s = &d->core;

        if (o->logs & CORE_LOG_STATS_LOST)
                log_warning("%s: cannot read balloon statistics: %s, holding", d->info.name, d->stats_err);
        if (o->logs & CORE_LOG_CLAMPED)
                log_debug("%s: balloon actual above the boot size %" PRIu64 " KiB; taken as the boot size",
                          d->info.name, d->info.max_kib);
        if (o->logs & CORE_LOG_GUEST_OOM)
                log_warning("%s: guest deflated its balloon by %s to %s (out of memory; target %s)", d->info.name,
                            size_format_human(o->oom_took_kib, a), size_format_human(s->stats.actual_kib, b),
                            size_format_human(s->watch.target_kib, c));
        if (o->logs & CORE_LOG_BALLOON_RISE)
                log_warning("%s: balloon rose by %s above its target without deflate-on-oom; ignoring", d->info.name,
                            size_format_human(o->oom_took_kib, a));
        if (o->logs & CORE_LOG_INSANE)
                log_warning("%s: %s", d->info.name, d->reason);
        if (o->logs & CORE_LOG_BALLOON_STUCK)
                log_warning("%s: balloon %s: target %" PRIu64 " KiB, actual %" PRIu64 " KiB", d->info.name,
                            balloon_state_to_string(s->balloon), s->watch.target_kib, s->stats.actual_kib);
        /* A start the host could not fund, and no paging file covers: the guest boots anyway
         * (tide never blocks a boot), short, on an overcommitted host. */
        if (o->paging.shortfall_kib && !o->paging.start)
                log_warning("%s: starts %s short of its startup memory, not paged; the host is overcommitted",
                            d->info.name, size_format_human(o->paging.shortfall_kib, a));
        if (d->chan) {
                if (o->logs & CORE_LOG_DISTRUST)
                        channel_distrust(d->chan, o->distrust_why, now_usec);
                if (o->managed_running)
                        /* What tided knows that the guest cannot fake: the most it can hold. */
                        d->chan->limits.max_total_kib = o->agent_max_total_kib;
                d->chan->early_above_kib = s->early_above_kib;
        }
}

static void act_vmem(struct manager *m, struct dom *d, const struct core_vm_out *o, uint64_t now_usec) {
        char err[HV_ERR_MAX] = "", a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX];
        int r = m->hv->ops->set_virtio_mem(m->hv->h, d->info.uuid, o->vmem_kib, err, sizeof(err));

        core_vm_applied(&d->core, o, true, r >= 0, 0, now_usec);
        if (r < 0) {
                log_error_errno(r, "%s: Failed to set virtio-mem to %s: %s, ignoring", d->info.name,
                                size_format_human(o->vmem_kib, a), err);
                return;
        }
        log_info("%s: virtio-mem %s -> %s (%s)", d->info.name, size_format_human(d->info.virtio_mem_requested_kib, a),
                 size_format_human(o->vmem_kib, b), d->reason);
        d->info.virtio_mem_requested_kib = o->vmem_kib;
}

static void act_balloon(struct manager *m, struct dom *d, const struct core_vm_out *o, uint64_t now_usec) {
        char err[HV_ERR_MAX] = "", a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX];
        uint64_t actual = core_actual_kib(&d->core, &d->info);
        int r = m->hv->ops->set_balloon(m->hv->h, d->info.uuid, o->balloon_kib, err, sizeof(err));

        core_vm_applied(&d->core, o, false, r >= 0, actual, now_usec);
        if (r < 0) {
                log_error_errno(r, "%s: Failed to set balloon to %s: %s, ignoring", d->info.name,
                                size_format_human(o->balloon_kib, a), err);
                return;
        }
        if (o->resend)
                /* Re-sent after the guest deflated past it: once a tick at most, and the deflate
                 * itself is logged (once a minute). */
                log_debug("%s: balloon target %s sent again (%s)", d->info.name, size_format_human(o->balloon_kib, b),
                          d->reason);
        else if (d->core.agent_demand && d->chan && o->balloon_kib > actual)
                /* Reaction latency: the agent's report to this call (bench/agent-latency.sh). */
                log_info("%s: %s -> %s (%s; %" PRIu64 " ms after the agent's report)", d->info.name,
                         size_format_human(actual, a), size_format_human(o->balloon_kib, b), d->reason,
                         (now_usec - d->chan->report_usec) / 1000);
        else
                log_info("%s: %s -> %s (%s)", d->info.name, size_format_human(actual, a),
                         size_format_human(o->balloon_kib, b), d->reason);
        d->info.current_kib = o->balloon_kib;
}

/* Act: the calls the core asked for, each outcome handed back to it. */
static void apply(struct manager *m, struct dom *d, const struct core_vm_out *o, uint64_t now_usec) {
        char err[HV_ERR_MAX] = "";

        if (o->managed_running)
                core_reason_format(&d->core, d->reason, sizeof(d->reason));
        report(d, o, now_usec);
        act_paging(m, d, &o->paging, now_usec);
        act_parking(m, d, o);
        if (o->release) {
                (void) release(m, d, err, sizeof(err));
                return;
        }
        /* Shrink: unplug before inflating; grow: deflate before plugging (as Hyper-V does). */
        if (o->set_vmem && o->vmem_first)
                act_vmem(m, d, o, now_usec);
        if (o->set_balloon)
                act_balloon(m, d, o, now_usec);
        if (o->set_vmem && !o->vmem_first)
                act_vmem(m, d, o, now_usec);
}

/* A snapshot row's policy columns (zero for an unmanaged domain) and the status they imply
 * before a decision. */
static void snapshot_set_policy(struct snapshot_domain *o, const struct dom *d) {
        struct vm_policy none = { 0 };
        const struct vm_policy *p = d->have_policy ? &d->policy : &none;

        o->managed = d->have_policy;
        o->status = d->have_policy ? "unknown" : "unmanaged";
        snprintf(o->pending, sizeof(o->pending), "%s", d->pending);
        o->dynamic = p->dynamic;
        o->latency_sensitive = p->latency_sensitive;
        o->minimum_kib = p->minimum_kib;
        o->startup_kib = p->startup_kib;
        o->maximum_kib = p->maximum_kib;
        o->buffer_pct = p->buffer_pct;
        o->weight = p->weight;
}

static void snapshot_row(const struct dom *d, const struct core_vm_out *c, uint64_t now_usec, bool parking_shown,
                         struct snapshot_domain *o) {
        snprintf(o->uuid, sizeof(o->uuid), "%s", d->info.uuid);
        snprintf(o->name, sizeof(o->name), "%s", d->info.name);
        snapshot_set_policy(o, d);
        o->active = d->info.active;
        o->agent = "none";
        o->balloon = balloon_state_to_string(d->core.balloon);
        o->balloon_actions = d->core.actions;
        o->guest_oom_deflates = d->core.guest_oom_deflates;
        o->rss_kib = c->rss_kib;
        o->assigned_kib = c->assigned_kib;
        o->paging = paging_phase_to_string(d->core.paging.phase);
        o->parking = !d->info.active || !parking_shown ? NULL
                     : !d->aff_read                   ? "unknown"
                     : d->aff_pinned                  ? "pinned"
                     : d->confined                    ? "confined"
                                                      : "own";
        o->paging_kib = paging_in_use(&d->core.paging) ? d->core.paging.file_kib : 0;
        o->paging_used_kib = o->paging_kib ? d->paging_used_kib : 0;
        if (c->has_demand) {
                o->has_demand = true;
                o->demand_kib = c->demand_kib;
                o->pressure_pct = c->assigned_kib ? (double) c->demand_kib / (double) c->assigned_kib * 100.0 : 0;
        }
        o->agent_report_age_ms = -1;
        if (d->chan) {
                o->agent = channel_state_to_string(d->chan->state);
                o->agent_demand = d->core.agent_demand;
                o->agent_rejected = d->chan->session.rejected;
                o->agent_rate_dropped = d->chan->session.rate_dropped;
                snprintf(o->agent_error, sizeof(o->agent_error), "%s", d->chan->last_error);
                if (d->chan->have_report)
                        o->agent_report_age_ms = (int64_t) ((now_usec - d->chan->report_usec) / 1000);
        }
        if (!d->have_policy)
                return;
        if (!d->info.active) {
                o->status = "off";
                return;
        }
        if (d->core.decided) {
                o->target_kib = d->core.decision.target_kib;
                o->flags = d->core.decision.flags;
                snprintf(o->reason, sizeof(o->reason), "%s", d->reason);
                o->status = engine_status_to_string(c->status);
                o->available_buffer_pct = c->available_buffer_pct;
        }
}

/* What parking is worth, and each CPU as it is now, into s. */
static int publish_measure(struct manager *m, struct snapshot *s) {
        const struct parking_meter *mt = &m->meter;
        struct snapshot_host *h = &s->host;
        struct parking_judgement now = parking_meter_now(mt, &m->model, m->idle_host.has_deep);

        h->parking_measured = true;
        h->parking_has_deep = m->idle_host.has_deep;
        h->parking_never_pays = parking_meter_never_pays(mt, m->idle_host.has_deep);
        h->parking_verdict = mt->in_episode ? parking_verdict_to_string(now.verdict) : NULL;
        h->parking_deep_before = now.deep_before;
        h->parking_deep_during = now.deep_during;
        h->parking_watts_saved = mt->in_episode ? now.watts_saved : 0;
        h->parking_rapl_known = mt->in_episode && now.rapl_known;
        h->parking_rapl_watts_saved = h->parking_rapl_known ? now.rapl_watts_saved : 0;
        h->parking_joules_saved = mt->joules_saved;
        h->parking_episodes_paid = mt->episodes[PARKING_PAID];
        h->parking_episodes_not_paid = mt->episodes[PARKING_DID_NOT_PAY] + mt->episodes[PARKING_NO_DEEP_STATE];
        h->parking_episodes_unknown = mt->episodes[PARKING_UNKNOWN];
        bool any = false;
        for (size_t k = 0; k < ELEMENTSOF(mt->episodes); k++)
                any |= mt->episodes[k] > 0;
        h->parking_last_verdict = any ? parking_verdict_to_string(mt->last.verdict) : NULL;
        h->parking_last_watts_saved = any ? mt->last.watts_saved : 0;
        h->parking_last_seconds = any ? mt->last_seconds : 0;

        unsigned n = hv_cpuset_count(&m->host_cpus);
        if (!(s->cpus = calloc(n ? n : 1, sizeof(*s->cpus))))
                return -ENOMEM;
        for (unsigned c = 0; c < m->n_busy && s->n_cpus < n; c++) {
                if (!hv_cpuset_test(&m->host_cpus, c))
                        continue;
                s->cpus[s->n_cpus++] = (struct snapshot_cpu){
                        .cpu = c,
                        .parked = hv_cpuset_test(&m->parking_last.parked, c),
                        .busy = m->load_known ? m->busy[c] : -1,
                        .idle = c < m->idle_host.n ? m->idle_host.idle[c] : -1,
                        .deep = c < m->idle_host.n ? m->idle_host.deep[c] : -1,
                };
        }
        return 0;
}

/* Publish: the snapshot `stats` and /metrics show. The tick's duration is filled in afterwards
 * by manager_note_tick_duration(). */
static int publish(struct manager *m, const struct core_host_obs *h, uint64_t now_usec) {
        const struct core_host_out *c = &m->host_out;
        struct snapshot s = { 0 };

        s.domains = calloc(m->n_doms ? m->n_doms : 1, sizeof(*s.domains));
        if (!s.domains)
                return -ENOMEM;
        s.n_domains = m->n_doms;
        s.host = (struct snapshot_host){
                .total_kib = h->total_kib,
                .available_kib = h->available_kib,
                .usable_kib = c->host.usable_kib,
                .reserve_kib = c->host.reserve_kib,
                .capacity_kib = c->summary.capacity_kib,
                .assigned_kib = c->assigned_kib,
                .target_kib = c->summary.target_kib,
                .short_host = c->summary.short_host,
                .overcommitted = c->summary.overcommitted || c->paging.unfunded_kib > 0,
                .paging_files = c->paging.files,
                .unfunded_kib = c->paging.unfunded_kib,
                .ticks = m->ticks,
                .uptime_usec = now_usec - m->start_usec,
                .tick_usec = m->snap.host.tick_usec,
                .libvirt_connected = true, /* a tick runs only while it is */
                .libvirt_disconnects = m->snap.host.libvirt_disconnects,
        };
        for (size_t i = 0; i < m->n_doms; i++)
                snapshot_row(&m->doms[i], &m->frame.out[i], now_usec, m->parking_on, &s.domains[i]);
        if (m->parking_on && c->parking_on) {
                m->parking_last = c->parking;
                m->parking_decided = true;
        }
        if (m->parking_on && m->parking_decided) {
                const struct parking_decision *p = &m->parking_last;
                s.host.parking_on = true;
                if (!parking_cpulist_format(&p->parked, s.host.parked, sizeof(s.host.parked)))
                        snprintf(s.host.parked, sizeof(s.host.parked), "(too many to list)");
                s.host.parking_reason = parking_reason_to_string(p->reason);
                s.host.parked_cpus = hv_cpuset_count(&p->parked);
                s.host.unparked_cpus = p->unparked_cpus;
                s.host.parking_needed_cpus = p->needed_cpus;
                s.host.parking_load_cpus = p->load_cpus;
                s.host.parking_reversals = core_parking_state(m->core)->reversals;
                if (m->measure_on && publish_measure(m, &s) < 0) {
                        snapshot_done(&s);
                        return -ENOMEM;
                }
        }
        snapshot_done(&m->snap);
        m->snap = s;
        return 0;
}

static int read_host(struct manager *m, struct core_host_obs *ret) {
        struct manager_host hm = { 0 };
        int r = m->host_fn(&hm, m->host_userdata);
        if (r < 0)
                return r;
        *ret = (struct core_host_obs){ .total_kib = hm.total_kib,
                                       .available_kib = hm.available_kib,
                                       .n_nodes = (unsigned) min_u64(hm.n_nodes, CORE_NODE_MAX),
                                       .can_page = m->paging_on,
                                       .swap_known = hm.swap_known,
                                       .swapped_kib = hm.swapped_kib,
                                       .swap_free_kib = hm.swap_free_kib };
        memcpy(ret->node_free_kib, hm.node_free_kib, ret->n_nodes * sizeof(ret->node_free_kib[0]));
        if (m->cgroup_root[0] && m->partition[0]) {
                r = cgroup_partition_memory_at(m->cgroup_root, m->partition, &ret->partition_limit_kib,
                                               &ret->partition_usage_kib);
                ret->partition_limited = r >= 0 && ret->partition_limit_kib != CGROUP_UNLIMITED;
                if (r < 0 && r != m->partition_errno)
                        log_warning_errno(r, "Cannot read the memory limit of cgroup partition %s: %m; using the host's",
                                          m->partition);
                m->partition_errno = r < 0 ? r : 0;
        }
        return 0;
}

/* The early-tick requests this tick answers, whether or not it gets through: a failing tick
 * must not be asked for again at every wake-up. A regular tick lets every guest ask again; an
 * early one does not (`early` stays set), so one guest causes at most one early tick per
 * regular tick. */
static void serve_early(struct manager *m, bool early) {
        for (size_t i = 0; i < m->n_doms; i++) {
                struct channel *c = m->doms[i].chan;
                if (!c)
                        continue;
                c->early_counted = false;
                if (!early)
                        c->early = false;
        }
        m->early_pending = 0;
}

/* collect -> decide -> act -> publish. Everything that decides is in core_tick(). */
static int tick(struct manager *m, uint64_t now_usec, bool early) {
        struct core_host_obs host;
        int r;

        if (m->start_usec == 0)
                m->start_usec = now_usec;
        if (m->dirty || now_usec - m->last_refresh_usec >= REFRESH_EVERY_USEC)
                (void) manager_refresh(m, now_usec); /* logged inside; keep ticking on what we know */
        serve_early(m, early);
        if (m->paging_on && !m->paging_adopted && m->hv->ops)
                adopt_paging(m, now_usec);
        collect_paging(m, now_usec);
        if ((r = read_host(m, &host)) < 0)
                return log_error_errno(r, "Failed to read host memory: %m");
        if (m->parking_on && !early) {
                read_load(m);
                if (m->measure_on)
                        measure_parking(m, now_usec);
                host.cpu_busy = m->busy;
                host.n_cpus = m->n_busy;
                host.cpu_load_known = m->load_known;
        }
        if ((r = core_frame_reserve(&m->frame, m->n_doms)) < 0)
                return log_error_errno(r, "Out of memory for %zu domains", m->n_doms);

        for (size_t i = 0; i < m->n_doms; i++)
                gather(m, &m->doms[i], &m->frame.obs[i], now_usec, early);

        r = core_tick(m->core, &m->cfg, &host, m->frame.obs, m->n_doms, now_usec, early, m->frame.out, &m->host_out);
        if (r < 0)
                return log_error_errno(r, "The controller core failed: %m");

        for (size_t i = 0; i < m->n_doms; i++) {
                struct dom *d = &m->doms[i];
                /* Only now are the events the core's: a failed tick keeps them for the next. */
                d->start = CORE_START_NONE;
                d->stopped = false;
                apply(m, d, &m->frame.out[i], now_usec);
                if (d->chan)
                        d->chan->fresh = false;
        }
        if (!early) {
                act_partition(m);
                act_irqbalance(m);
        }
        m->ticks++;
        return publish(m, &host, now_usec);
}

int manager_tick(struct manager *m, uint64_t now_usec) {
        return tick(m, now_usec, false);
}

bool manager_wants_early_tick(const struct manager *m) {
        return m->early_pending > 0;
}

int manager_tick_early(struct manager *m, uint64_t now_usec) {
        return tick(m, now_usec, true);
}

const struct snapshot *manager_snapshot(const struct manager *m) {
        return &m->snap;
}

/* Reflects a policy change in the published snapshot at once, so `tidectl policy show` right
 * after `policy set` shows it; the numbers that need a tick come with the next one. */
static void snapshot_policy(struct manager *m, const struct dom *d) {
        for (size_t i = 0; i < m->snap.n_domains; i++) {
                struct snapshot_domain *o = &m->snap.domains[i];
                if (!streq(o->uuid, d->info.uuid))
                        continue;
                snapshot_set_policy(o, d);
                if (!d->have_policy)
                        o->reason[0] = '\0';
        }
}

int manager_policy_set(struct manager *m, const char *domain, const struct policy_change *c,
                       uint64_t now_usec, char *note, size_t notelen, char *err, size_t errlen) {
        char xml[METADATA_XML_MAX], herr[HV_ERR_MAX] = "", a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX];
        struct vm_policy p;
        struct dom *d;
        int r;

        if (!m->hv->ops) {
                snprintf(err, errlen, "tided is not connected to libvirt right now; try again shortly");
                return -ENOTCONN;
        }
        if (m->dirty)
                (void) manager_refresh(m, now_usec);
        d = find_dom(m, domain);
        if (!d) {
                snprintf(err, errlen, "no domain named '%s'", domain);
                return -ENOENT;
        }

        p = policy_apply_change(d->have_policy ? &d->policy : NULL, d->info.max_kib, balloon_reachable_kib(&d->info),
                                c);
        if ((r = policy_validate(&p, err, errlen)) < 0)
                return r;

        r = metadata_format(&p, xml, sizeof(xml));
        if (r < 0) {
                snprintf(err, errlen, "cannot format policy metadata");
                return r;
        }
        unsigned flags = (d->info.active ? HV_LIVE : 0) | (d->info.persistent ? HV_CONFIG : 0);
        r = m->hv->ops->set_metadata(m->hv->h, d->info.uuid, xml, flags, herr, sizeof(herr));
        if (r < 0) {
                snprintf(err, errlen, "cannot store the policy in the domain's metadata: %s", herr);
                return r;
        }

        /* What cannot apply now. */
        size_t off = 0;
        note[0] = '\0';
        d->pending[0] = '\0';
        if (d->info.persistent) {
                r = m->hv->ops->set_boot_memory(m->hv->h, d->info.uuid, p.startup_kib, herr, sizeof(herr));
                if (r < 0)
                        off += (size_t) snprintf(note + off, notelen - off, "boot size not changed (%s); ", herr);
                else if (d->info.active && p.startup_kib != d->info.max_kib)
                        off += (size_t) snprintf(note + off, notelen > off ? notelen - off : 0,
                                                 "startup %s applies at the next start; ",
                                                 size_format_human(p.startup_kib, a));
        } else
                off += (size_t) snprintf(note + off, notelen > off ? notelen - off : 0,
                                         "transient domain: startup is not stored; ");
        uint64_t reach = balloon_reachable_kib(&d->info);
        if (p.maximum_kib > reach && off < notelen) {
                off += (size_t) snprintf(note + off, notelen - off,
                                         "maximum %s is above what this domain can reach (%s = boot size%s): capped "
                                         "there until it is given more memory or a virtio-mem device; ",
                                         size_format_human(p.maximum_kib, a), size_format_human(reach, b),
                                         d->info.has_virtio_mem ? " + virtio-mem" : "");
                snprintf(d->pending, sizeof(d->pending), "maximum capped at %s", size_format_human(reach, a));
        }
        if (off > 1 && off < notelen)
                note[off - 2] = '\0'; /* drop the trailing "; " */
        if (!note[0])
                snprintf(note, notelen, "applied live");

        log_info("%s: policy set: startup %" PRIu64 " KiB, minimum %" PRIu64 " KiB, maximum %" PRIu64
                 " KiB, buffer %u%%, weight %u, %s%s",
                 d->info.name, p.startup_kib, p.minimum_kib, p.maximum_kib, p.buffer_pct, p.weight,
                 p.dynamic ? "dynamic" : "static", p.latency_sensitive ? ", latency-sensitive" : "");
        d->policy = p;
        d->have_policy = true; /* the core takes newly managed as a new baseline (core/core.h) */
        sync_channel(m, d);
        snapshot_policy(m, d);
        return 0;
}

int manager_policy_clear(struct manager *m, const char *domain, uint64_t now_usec, char *note, size_t notelen,
                         char *err, size_t errlen) {
        char herr[HV_ERR_MAX] = "";
        struct dom *d;
        int r;

        if (!m->hv->ops) {
                snprintf(err, errlen, "tided is not connected to libvirt right now; try again shortly");
                return -ENOTCONN;
        }
        if (m->dirty)
                (void) manager_refresh(m, now_usec); /* started or stopped since the last listing */
        d = find_dom(m, domain);
        if (!d) {
                snprintf(err, errlen, "no domain named '%s'", domain);
                return -ENOENT;
        }
        if (!d->have_policy) {
                snprintf(err, errlen, "'%s' has no tide policy", domain);
                return -ENODATA;
        }
        /* Release first, then forget: with the metadata gone first, a failed release or a tided
         * stopped before the next tick would leave the VM ballooned down for good. */
        if (d->info.active && (r = release(m, d, herr, sizeof(herr))) < 0) {
                snprintf(err, errlen, "cannot release its balloon to the boot size (%s); the policy is kept", herr);
                return r;
        }
        unsigned flags = (d->info.active ? HV_LIVE : 0) | (d->info.persistent ? HV_CONFIG : 0);
        r = m->hv->ops->set_metadata(m->hv->h, d->info.uuid, NULL, flags, herr, sizeof(herr));
        if (r < 0) {
                snprintf(err, errlen, "cannot remove the policy metadata: %s%s", herr,
                         d->info.active ? " (its balloon was released; tide manages it again at the next tick)" : "");
                return r;
        }
        d->have_policy = false;
        drop_channel(m, d);
        d->pending[0] = '\0';
        snapshot_policy(m, d);
        log_info("%s: policy cleared", d->info.name);
        snprintf(note, notelen, d->info.active ? "unmanaged; its balloon was released to its boot size" : "unmanaged");
        return 0;
}

void manager_note_tick_duration(struct manager *m, uint64_t usec) {
        m->snap.host.tick_usec = usec;
}

void manager_note_disconnected(struct manager *m) {
        m->snap.host.libvirt_connected = false;
        m->snap.host.libvirt_disconnects++;
}
