/* The hypervisor layer: everything tide asks of libvirt, behind one table of operations.
 *
 * hv_libvirt.c is the only file in tide that includes libvirt; hv_fake.c is a recording fake
 * for unit tests. Domains are named by UUID string (stable across renames and migration).
 * Every operation returns 0 (or a count) on success and -errno on failure; on failure it may
 * describe the problem in `err` (libvirt's own message) when the caller passes one. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HV_UUID_MAX 37
#define HV_NAME_MAX 256
#define HV_PATH_MAX 256
#define HV_ERR_MAX 512

/* tide's namespace for domain metadata (<metadata><tide:policy xmlns:tide=...>). Stays fixed
 * forever: domains carry it across tided versions and hosts. Documented in docs/ARCHITECTURE.md. */
#define HV_METADATA_URI "urn:x-tide:policy:1"
#define HV_METADATA_PREFIX "tide"
/* Core parking's record of a VM it confined (its own affinity, to restore), kept live only: it
 * goes with the QEMU whose pins it describes. A namespace of its own, because libvirt keeps one
 * element per namespace and a live write there would replace the live policy. */
#define HV_METADATA_PARKING_URI "urn:x-tide:parking:1"
#define HV_METADATA_PARKING_PREFIX "tidepark"

struct hv_domain {
        char uuid[HV_UUID_MAX];
        char name[HV_NAME_MAX];
        int id;                    /* libvirt id while running, -1 otherwise */
        bool active;               /* running or paused */
        bool persistent;           /* has a config that outlives the process */
        /* The boot size, the balloon's ceiling: <memory> minus the <target><size> of every
         * <memory> device, because with memory devices libvirt's <memory> is the total (the qemu
         * driver writes 512 MiB of NUMA cells + a 1 GiB virtio-mem device as 1536 MiB). */
        uint64_t max_kib;
        /* <currentMemory>: config when inactive; live, the qemu driver puts there the balloon
         * size QEMU last reported (its `actual`), not the target last set: a guest without a
         * balloon driver never moves it. The test driver sets it to the target at once. */
        uint64_t current_kib;
        bool has_balloon;          /* <memballoon model='virtio'> */
        bool balloon_deflate_on_oom; /* autodeflate='on': the guest counts balloon pages as used */
        bool has_virtio_mem;       /* a <memory model='virtio-mem'> device; with several, the first */
        char virtio_mem_alias[64]; /* its alias (e.g. "virtiomem0"), for updates */
        uint64_t virtio_mem_max_kib;       /* <target><size>: most it can plug */
        uint64_t virtio_mem_block_kib;     /* <block> */
        uint64_t virtio_mem_requested_kib; /* <requested> */
        uint64_t virtio_mem_current_kib;   /* <current>: plugged now (live) */
        int numa_node;             /* host node the memory is bound to (numatune strict, one node), or -1 */
        char agent_socket[HV_PATH_MAX]; /* host path of the org.tide.agent.0 channel, "" when none */
        /* list_domains could not read this domain's description (a libvirt error, XML tide
         * cannot parse): only uuid and name hold. It still exists; keep what was known of it. */
        bool undescribed;
};

/* virDomainMemoryStats, in KiB. A field the guest did not report is UINT64_MAX. */
struct hv_mem_stats {
        uint64_t actual_kib;      /* balloon: what the guest holds now */
        uint64_t unused_kib;      /* MemFree */
        uint64_t available_kib;   /* MemTotal as the guest sees it */
        uint64_t usable_kib;      /* MemAvailable */
        uint64_t disk_caches_kib;
        uint64_t swap_in_kib, swap_out_kib;
        uint64_t major_faults, minor_faults;
        uint64_t rss_kib;         /* QEMU's resident set on the host */
        uint64_t last_update_sec; /* guest-side time of the last stats update (0/absent: never) */
};

/* Events tided wants from the hypervisor. */
enum hv_event_kind {
        HV_EVENT_STARTED,
        HV_EVENT_STOPPED,
        HV_EVENT_REBOOTED,
        HV_EVENT_RESUMED,   /* started with its memory as it was (migrated in, restored, woken
                             * up): not a boot */
        HV_EVENT_DEFINED,   /* config changed or new: re-read policy */
        HV_EVENT_UNDEFINED,
        HV_EVENT_METADATA,  /* metadata changed (someone used virsh metadata) */
};

typedef void (*hv_event_cb)(enum hv_event_kind kind, const char *uuid, void *userdata);

/* Affect-flags for metadata and memory changes. */
#define HV_LIVE (1u << 0)
#define HV_CONFIG (1u << 1)
/* get/set_metadata: core parking's element (HV_METADATA_PARKING_URI) instead of the policy. */
#define HV_META_PARKING (1u << 2)

/* ---- memory limits and CPU placement (Smart Paging, core parking) ---- */

/* A limit that is not set. libvirt's own "unlimited" (VIR_DOMAIN_MEMORY_PARAM_UNLIMITED,
 * 2^53 - 1 KiB) reads as this, and this is written as that. */
#define HV_MEMTUNE_UNLIMITED UINT64_MAX
/* The largest limit that is one: libvirt's cgroup code refuses a value above its "unlimited"
 * and takes that value itself as no limit (src/util/vircgroupv2.c, virCgroupV2SetMem*Limit). */
#define HV_MEMTUNE_MAX_KIB ((UINT64_C(1) << 53) - 2)

/* <memtune>: the memory cgroup limits of the domain's QEMU process (guest RAM, QEMU's own
 * memory, video memory: the whole process), in KiB, HV_MEMTUNE_UNLIMITED when not set.
 * hard_limit_kib is what the process may hold in RAM (cgroup v1 memory.limit_in_bytes, v2
 * memory.max): past it the kernel reclaims, swaps, then OOM-kills QEMU. swap_hard_limit_kib on
 * cgroup v1 is memory + swap (memory.memsw.limit_in_bytes); on cgroup v2 libvirt writes the same
 * number to memory.swap.max, which counts swap alone (vircgroupv2.c) — libvirt still demands
 * hard_limit_kib <= swap_hard_limit_kib on both. soft_limit is not tide's to touch. */
struct hv_memtune {
        uint64_t hard_limit_kib;
        uint64_t swap_hard_limit_kib;
};

/* A set of host CPUs: CPU c is bit c % 64 of bits[c / 64]. 1024 CPUs; a larger host is refused
 * (-ERANGE) by the ops rather than seen in part. */
#define HV_CPUSET_WORDS 16
#define HV_CPUSET_MAX (HV_CPUSET_WORDS * 64)

struct hv_cpuset {
        uint64_t bits[HV_CPUSET_WORDS];
};

/* CPUs past HV_CPUSET_MAX are ignored by set/clear and absent to test: no set can hold them. */
static inline void hv_cpuset_set(struct hv_cpuset *s, unsigned cpu) {
        if (cpu < HV_CPUSET_MAX)
                s->bits[cpu / 64] |= UINT64_C(1) << (cpu % 64);
}
static inline void hv_cpuset_clear(struct hv_cpuset *s, unsigned cpu) {
        if (cpu < HV_CPUSET_MAX)
                s->bits[cpu / 64] &= ~(UINT64_C(1) << (cpu % 64));
}
static inline bool hv_cpuset_test(const struct hv_cpuset *s, unsigned cpu) {
        return cpu < HV_CPUSET_MAX && (s->bits[cpu / 64] >> (cpu % 64) & 1);
}
static inline unsigned hv_cpuset_count(const struct hv_cpuset *s) {
        unsigned n = 0;
        for (unsigned w = 0; w < HV_CPUSET_WORDS; w++)
                n += (unsigned) __builtin_popcountll(s->bits[w]);
        return n;
}
static inline bool hv_cpuset_equal(const struct hv_cpuset *a, const struct hv_cpuset *b) {
        for (unsigned w = 0; w < HV_CPUSET_WORDS; w++)
                if (a->bits[w] != b->bits[w])
                        return false;
        return true;
}
/* a gets b's CPUs too; loses b's; whether every CPU of a is in b; whether they share one. */
static inline void hv_cpuset_or(struct hv_cpuset *a, const struct hv_cpuset *b) {
        for (unsigned w = 0; w < HV_CPUSET_WORDS; w++)
                a->bits[w] |= b->bits[w];
}
static inline void hv_cpuset_minus(struct hv_cpuset *a, const struct hv_cpuset *b) {
        for (unsigned w = 0; w < HV_CPUSET_WORDS; w++)
                a->bits[w] &= ~b->bits[w];
}
static inline bool hv_cpuset_within(const struct hv_cpuset *a, const struct hv_cpuset *b) {
        for (unsigned w = 0; w < HV_CPUSET_WORDS; w++)
                if (a->bits[w] & ~b->bits[w])
                        return false;
        return true;
}
static inline bool hv_cpuset_meets(const struct hv_cpuset *a, const struct hv_cpuset *b) {
        for (unsigned w = 0; w < HV_CPUSET_WORDS; w++)
                if (a->bits[w] & b->bits[w])
                        return true;
        return false;
}
/* The highest CPU in the set, or -1 when it is empty: what "beyond the host" is checked on. */
static inline int hv_cpuset_last(const struct hv_cpuset *s) {
        for (unsigned w = HV_CPUSET_WORDS; w > 0; w--)
                if (s->bits[w - 1])
                        return (int) ((w - 1) * 64 + 63 - (unsigned) __builtin_clzll(s->bits[w - 1]));
        return -1;
}

/* Room for a cgroup partition path ("/machine", "/machine/tenant-a"). */
#define HV_PARTITION_MAX 256

struct hv_ops {
        /* Lists every domain, active or not. *ret is an array the caller frees. A domain whose
         * description cannot be read does not fail the listing: it is listed `undescribed`, and
         * err says why (the first such reason) while the call returns 0. */
        int (*list_domains)(void *h, struct hv_domain **ret, size_t *ret_n, char *err, size_t errlen);
        /* One domain's current description. -ENOENT when it no longer exists. */
        int (*get_domain)(void *h, const char *uuid, struct hv_domain *ret, char *err, size_t errlen);
        int (*memory_stats)(void *h, const char *uuid, struct hv_mem_stats *ret, char *err, size_t errlen);
        /* How often the guest refreshes its balloon statistics (0 disables). Live. */
        int (*set_stats_period)(void *h, const char *uuid, int seconds, char *err, size_t errlen);
        /* Balloon target (virDomainSetMemoryFlags LIVE). */
        int (*set_balloon)(void *h, const char *uuid, uint64_t kib, char *err, size_t errlen);
        /* Persistent boot size (currentMemory in the config; raises <memory> when needed). */
        int (*set_boot_memory)(void *h, const char *uuid, uint64_t kib, char *err, size_t errlen);
        /* virtio-mem requested size, live. */
        int (*set_virtio_mem)(void *h, const char *uuid, uint64_t requested_kib, char *err, size_t errlen);
        /* tide's metadata element as XML text (*ret malloc'd), or -ENODATA when there is none. */
        int (*get_metadata)(void *h, const char *uuid, unsigned flags, char **ret, char *err, size_t errlen);
        /* Sets (xml non-NULL) or removes (xml NULL) tide's metadata element. */
        int (*set_metadata)(void *h, const char *uuid, const char *xml, unsigned flags, char *err, size_t errlen);

        /* The memory limits of a running domain as they are now (virDomainGetMemoryParameters,
         * live). -EINVAL when it is not running. */
        int (*get_memtune)(void *h, const char *uuid, struct hv_memtune *ret, char *err, size_t errlen);
        /* Sets both limits at once (flags: HV_LIVE and/or HV_CONFIG; 0 is libvirt's "current",
         * live when running). Each is 1..HV_MEMTUNE_MAX_KIB KiB or HV_MEMTUNE_UNLIMITED, and
         * hard_limit_kib <= swap_hard_limit_kib; else -EINVAL before libvirt is asked (0 would
         * leave QEMU no memory at all).
         * Raising and lowering both work in one call, because libvirt checks the rule on the
         * values the call leaves, not on each parameter against the old other one: both
         * src/qemu/qemu_driver.c qemuDomainSetMemoryParameters and src/test/test_driver.c
         * testDomainSetMemoryParameters take each limit from the call when given, else from the
         * domain, compare those, and only then write. The qemu driver also orders the cgroup
         * writes itself (hard limit first when it goes down, swap limit first otherwise), as
         * cgroup v1 requires memory <= memory+swap at every step. So this is one libvirt call
         * with both parameters, never two that could be refused or half-applied. */
        int (*set_memtune)(void *h, const char *uuid, const struct hv_memtune *m, unsigned flags, char *err,
                           size_t errlen);
        /* vCPUs online now (virDomainGetVcpusFlags, live). -EINVAL when not running. */
        int (*get_vcpu_count)(void *h, const char *uuid, unsigned *ret, char *err, size_t errlen);
        /* Where each vCPU may run, live (a stopped domain: as configured, where its next start
         * will pin it): ret[v] for vCPU v, *ret_n of them. libvirt answers for
         * every vCPU up to the domain's maximum (offline ones too: their pinning holds when they
         * come online), so *ret_n can exceed get_vcpu_count. An unpinned vCPU reads as every host
         * CPU (libvirt's answer; the domain-wide <vcpu cpuset> when set). -ENOBUFS when the
         * domain has more than max vCPUs (err says how many; ret untouched). */
        int (*get_vcpu_pins)(void *h, const char *uuid, struct hv_cpuset *ret, unsigned max, unsigned *ret_n,
                             char *err, size_t errlen);
        /* Pins one vCPU to cpus (flags as set_memtune). -EINVAL for an empty set or a CPU the host
         * does not have (checked here, named in err), and for a vCPU libvirt cannot pin there (not
         * present, or not online for a live change: libvirt's message). */
        int (*set_vcpu_pin)(void *h, const char *uuid, unsigned vcpu, const struct hv_cpuset *cpus, unsigned flags,
                            char *err, size_t errlen);
        /* Where QEMU's emulator threads (everything but the vCPUs and iothreads) may run, live (a
         * stopped domain: as configured); unpinned reads as every host CPU. */
        int (*get_emulator_pin)(void *h, const char *uuid, struct hv_cpuset *ret, char *err, size_t errlen);
        /* Pins the emulator threads (flags and -EINVAL as set_vcpu_pin). */
        int (*set_emulator_pin)(void *h, const char *uuid, const struct hv_cpuset *cpus, unsigned flags, char *err,
                                size_t errlen);
        /* The domain's cgroup partition, <resource><partition> of its XML (live when running, else
         * the config), into ret (len bytes, HV_PARTITION_MAX is enough for any sane one).
         * When the XML has none, ret is "" and the call returns 0: the qemu driver puts its
         * default "/machine" into the live XML of every domain it starts with cgroups
         * (qemuInitCgroup, src/qemu/qemu_cgroup.c), so "" means a stopped domain without an
         * explicit partition, or a driver without cgroups (qemu:///session, the test driver).
         * -ENAMETOOLONG when it does not fit. */
        int (*get_partition)(void *h, const char *uuid, char *ret, size_t len, char *err, size_t errlen);
};

/* An open hypervisor connection: ops + handle. */
struct hv {
        const struct hv_ops *ops;
        void *h;
};

/* ---- libvirt (hv_libvirt.c) ----
 *
 * libvirt errors become: VIR_ERR_NO_DOMAIN -ENOENT; VIR_ERR_NO_DOMAIN_METADATA -ENODATA;
 * VIR_ERR_INVALID_ARG, VIR_ERR_OPERATION_INVALID (e.g. "domain is not running" for a live
 * change or stats), VIR_ERR_XML_ERROR/DETAIL -EINVAL; VIR_ERR_NO_SUPPORT,
 * VIR_ERR_OPERATION_UNSUPPORTED, VIR_ERR_ARGUMENT_UNSUPPORTED (the driver lacks the call)
 * -EOPNOTSUPP; anything else -EIO. A UUID that is not one is -EINVAL, one that names no domain
 * -ENOENT. err gets libvirt's own message. libvirt's default printing of errors on stderr is
 * turned off by hv_event_init() and hv_libvirt_open(): the caller reports them.
 * Further errors of the libvirt ops: set_virtio_mem -ENODEV without a virtio-mem device,
 * -EINVAL for a size that is not a multiple of its block or above its size; set_balloon and
 * set_boot_memory -EINVAL for 0 KiB; set_stats_period -EINVAL for a negative period;
 * get/set_metadata -EINVAL for unknown flags, and get_metadata for HV_LIVE|HV_CONFIG together
 * (libvirt reads one or the other; 0 is libvirt's "current": live when running).
 * Memory limits: -EOPNOTSUPP where the driver has no memory tuning (qemu:///session: "Memory
 * tuning is not available in session mode"); -EINVAL ("cgroup memory controller is not
 * mounted") without the cgroup controller. A driver may refuse HV_LIVE|HV_CONFIG together (the
 * test driver does) with -EINVAL.
 * CPU pinning: CPU sets are converted to libvirt's cpumaps (VIR_CPU_MAPLEN bytes, CPU c at bit
 * c % 8 of byte c / 8) sized by the host's CPU count from virNodeGetCPUMap (present CPUs, online
 * or not; virNodeGetInfo's count where the driver lacks it). -ERANGE on a host with more than
 * HV_CPUSET_MAX CPUs. A CPU that is present but offline is not refused here; the kernel may.
 * libvirt's test driver pins vCPUs only with flags 0 ("current"): it refuses HV_LIVE with
 * "unsupported flags (0x1) in function testDomainPinVcpuFlags", -EINVAL (virCheckFlags(0) there in
 * src/test/test_driver.c, in libvirt 9.0 as in later releases); the qemu driver takes both. */

/* Registers libvirt's default event loop. Must run before hv_libvirt_open() (the embedded
 * QEMU driver, qemu:///embed, needs it, and so does every event registration). Call it from
 * the main thread before any other; a repeated call returns 0 and does nothing. -EIO on failure. */
int hv_event_init(void);
/* Runs one iteration of the event loop (blocks until something happens). */
int hv_event_run_once(void);
/* Timers and fds on the same loop; callbacks run from hv_event_run_once(). Return an id >= 0.
 * Timers repeat until removed; libvirt counts in milliseconds, so intervals round up to the next
 * millisecond, at least 1 ms (-ERANGE beyond INT_MAX ms). A NULL callback, a negative fd or id,
 * or unknown HV_FD_* bits are -EINVAL; removing an unknown id is -ENOENT. */
typedef void (*hv_timer_cb)(int id, void *userdata);
typedef void (*hv_fd_cb)(int id, int fd, int events, void *userdata);
#define HV_FD_READABLE (1 << 0)
#define HV_FD_WRITABLE (1 << 1)
#define HV_FD_ERROR (1 << 2)
#define HV_FD_HANGUP (1 << 3)
int hv_event_add_timer(uint64_t interval_usec, hv_timer_cb cb, void *userdata);
int hv_event_update_timer(int id, uint64_t interval_usec);
int hv_event_remove_timer(int id);
int hv_event_add_fd(int fd, int events, hv_fd_cb cb, void *userdata);
int hv_event_update_fd(int id, int events);
int hv_event_remove_fd(int id);

/* Opens a connection (NULL uri: libvirt's default). Registers for lifecycle, reboot and
 * metadata events, delivered to cb from the event loop (cb NULL: no events registered).
 * Lifecycle: started, stopped (also after a crash), defined, undefined; suspend/resume are not
 * reported. Metadata: only changes to tide's own element (HV_METADATA_URI). On failure *ret is
 * untouched and err holds libvirt's message. */
int hv_libvirt_open(const char *uri, hv_event_cb cb, void *userdata, struct hv *ret, char *err, size_t errlen);
/* What a libvirt STARTED lifecycle event with this detail (virDomainEventStartedDetailType) is to
 * tided: HV_EVENT_RESUMED for migrated, restored and woken up (memory kept), HV_EVENT_STARTED
 * for a boot, a snapshot revert and anything else. */
enum hv_event_kind hv_libvirt_started_kind(int detail);
/* True while the connection is alive (libvirtd restarts close it). */
bool hv_libvirt_alive(const struct hv *hv);
void hv_libvirt_close(struct hv *hv);
/* Which domain type to write in new domain XML: "kvm" when /dev/kvm works with this QEMU,
 * else "qemu" (TCG). Asks libvirt's capabilities, does not assume: "kvm" needs libvirt to list
 * domain type kvm for the host's arch, /dev/kvm to open read-write here, and on x86 the CPU
 * flag vmx or svm in /proc/cpuinfo. The last check is there because a VM without nested
 * virtualization can expose a /dev/kvm that opens and creates VMs while guests hang (tide's
 * CI machine: libvirt lists kvm there); no check short of booting a guest proves KVM works.
 * NULL hv or unreadable capabilities give "qemu". */
const char *hv_libvirt_domain_type(const struct hv *hv);

/* ---- recording fake (hv_fake.c), for unit tests ---- */

#define HV_FAKE_MAX_DOMAINS 512
#define HV_FAKE_MAX_CALLS 256

#define HV_FAKE_MAX_VCPUS 16
#define HV_FAKE_HOST_CPUS 8 /* host_cpus 0 means this many */

struct hv_fake_call {
        char op[32];        /* "set_balloon", "set_metadata", "get_memtune", ... */
        char uuid[HV_UUID_MAX];
        uint64_t value;     /* kib, seconds, flags: whatever the op takes; set_memtune: the hard
                             * limit; set_vcpu_pin: the vCPU */
        uint64_t value2;    /* set_memtune: the swap limit */
        unsigned flags;     /* set_memtune, set_vcpu_pin, set_emulator_pin: their flags */
        struct hv_cpuset cpus; /* set_vcpu_pin, set_emulator_pin: the set asked for */
};

/* Every call is recorded, reads too, including the ones that fail. The fake refuses what
 * libvirt refuses: live calls on a stopped domain, unknown flags (-EINVAL); a memory limit of 0
 * or above HV_MEMTUNE_MAX_KIB, a hard limit above the swap limit; an empty CPU set, a CPU at or
 * past host_cpus, a vCPU at or past vcpus[] (-EINVAL). It keeps live state only: a change with
 * HV_CONFIG alone (or 0 on a stopped domain) is checked and recorded, not kept. */
struct hv_fake {
        struct hv_domain domains[HV_FAKE_MAX_DOMAINS];
        struct hv_mem_stats stats[HV_FAKE_MAX_DOMAINS];
        char *metadata[HV_FAKE_MAX_DOMAINS];
        char *parking_metadata[HV_FAKE_MAX_DOMAINS]; /* HV_META_PARKING's element */
        /* hv_fake_add() sets: both limits unlimited, 1 vCPU, no pins, partition "/machine" (what
         * the qemu driver shows for a running domain). Tests change them directly. */
        struct hv_memtune memtune[HV_FAKE_MAX_DOMAINS];
        /* vCPUs online, also the maximum: the fake has no offline vCPUs. At most HV_FAKE_MAX_VCPUS. */
        unsigned vcpus[HV_FAKE_MAX_DOMAINS];
        /* An empty set is "not pinned" and reads as every host CPU, as libvirt answers. */
        struct hv_cpuset vcpu_pins[HV_FAKE_MAX_DOMAINS][HV_FAKE_MAX_VCPUS];
        struct hv_cpuset emulator_pin[HV_FAKE_MAX_DOMAINS];
        char partition[HV_FAKE_MAX_DOMAINS][HV_PARTITION_MAX];
        unsigned host_cpus;  /* CPUs 0..host_cpus-1 exist; 0: HV_FAKE_HOST_CPUS */
        size_t n_domains;
        struct hv_fake_call calls[HV_FAKE_MAX_CALLS];
        size_t n_calls;
        int fail_errno;     /* when non-zero, the next call fails with -fail_errno */
};

/* Adds a domain; returns its index. */
int hv_fake_add(struct hv_fake *f, const struct hv_domain *d, const struct hv_mem_stats *s);
/* An hv backed by the fake. */
struct hv hv_fake_hv(struct hv_fake *f);
/* Frees metadata strings. */
void hv_fake_done(struct hv_fake *f);
/* Number of recorded calls named op (and, if uuid non-NULL, for that domain). */
size_t hv_fake_count(const struct hv_fake *f, const char *op, const char *uuid);
/* Last recorded call named op, or NULL. */
const struct hv_fake_call *hv_fake_last(const struct hv_fake *f, const char *op);
