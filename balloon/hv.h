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
 * (libvirt reads one or the other; 0 is libvirt's "current": live when running). */

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

struct hv_fake_call {
        char op[32];        /* "set_balloon", "set_metadata", ... */
        char uuid[HV_UUID_MAX];
        uint64_t value;     /* kib, seconds, flags: whatever the op takes */
};

struct hv_fake {
        struct hv_domain domains[HV_FAKE_MAX_DOMAINS];
        struct hv_mem_stats stats[HV_FAKE_MAX_DOMAINS];
        char *metadata[HV_FAKE_MAX_DOMAINS];
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
