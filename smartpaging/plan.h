/* Smart Paging's decisions: which (re)starting VM pages how much of its startup memory, how
 * much RAM the host grants it meanwhile, and when the paging ends. Hyper-V's rule (docs/POLICY.md
 * "Smart Paging", ../shared/PEERS.md): a VM that restarts on a host that cannot fund its startup
 * memory, from free memory or from what the other VMs give back, boots anyway; the shortfall
 * goes to a swap file of its own, and the file goes once the guest has ballooned down to what
 * the host can hold.
 *
 * Pure: no I/O, no clock (now_usec is passed in), no allocation. The controller core
 * (core/core.h) calls paging_plan() every tick before the engine; tided makes and removes the
 * files and sets the memory limits (smartpaging/file.h, hv_ops memtune); the simulator carries
 * them out on its simulated host (sim/sim.c), and runs this plan for its Hyper-V too. The caller
 * keeps a `struct paging_vm_state` per domain and reports back what it did. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/config.h"

/* A shortfall smaller than this is left to the host reserve: a swap file, a memory limit and a
 * release for a few MiB cost more than they save. */
#define PAGING_MIN_SHORTFALL_KIB (UINT64_C(16) * 1024)
/* The file holds the shortfall and this much more: QEMU's own pages beyond the configured
 * overhead page there too, rather than the cgroup OOM-killing QEMU. */
#define PAGING_FILE_SLACK_KIB (UINT64_C(32) * 1024)
/* A grant rises only by steps of at least this (or to the whole startup): a memory limit is a
 * libvirt call, not worth making for every MiB the host frees. */
#define PAGING_RAISE_MIN_KIB (UINT64_C(64) * 1024)
/* Hyper-V expects Smart Paging to be over within ~10 minutes; past that tided says so, once. */
#define PAGING_LONG_USEC (UINT64_C(600) * 1000000)
/* A release that failed (swapoff refused, a limit not lifted) is asked again after this. */
#define PAGING_RETRY_USEC (UINT64_C(30) * 1000000)

enum paging_phase {
        PAGING_NONE,      /* not paging */
        PAGING_ACTIVE,    /* its file is (being) switched on and its RAM capped at grant_kib */
        PAGING_RELEASING, /* asked to end: limits lifted, file switched off and removed; or
                           * lifted only, its file waiting for its turn, room and swap room */
        PAGING_FAILED,    /* it should have paged and could not (fail_errno); ends with its boot */
};

/* What carries from tick to tick for one domain. All zero: not paging. */
struct paging_vm_state {
        enum paging_phase phase;
        uint64_t startup_kib;  /* what it boots with */
        uint64_t grant_kib;    /* RAM the host grants it while paging (0: unknown, adopted) */
        uint64_t file_kib;     /* its paging file's size */
        uint64_t since_usec;   /* when paging began (or was adopted) */
        uint64_t release_usec; /* when the release was asked */
        uint64_t retry_usec;   /* a release waiting for its turn, for room and for swap room (a
                                * failed one, a stopped VM's file, a lifted VM's file) is asked
                                * from then; 0: none waiting */
        bool lifted;           /* its limits are off (a retried release only switches the file off) */
        bool long_warned;      /* PAGING_LONG_USEC passed and was reported */
        int fail_errno;        /* PAGING_FAILED, or the last failed release: why (positive errno) */
};

/* How a domain started since the previous tick. */
enum paging_start {
        PAGING_START_NONE,
        PAGING_START_COLD,    /* a start of a stopped domain (a cold start, a failover restart) */
        PAGING_START_RESTART, /* a reboot or reset of a running one */
};

/* One domain as the plan sees it this tick. Every domain the caller knows is handed in. */
struct paging_vm {
        struct paging_vm_state *state;
        bool active;              /* running */
        bool managed;             /* running with a policy */
        bool dynamic;             /* its policy lets tide size it */
        enum paging_start start;
        bool booting;             /* started, its balloon driver not yet reporting */
        bool reporting;           /* its balloon statistics are current: assigned_kib is known */
        uint64_t startup_kib, minimum_kib;
        unsigned weight;          /* 0-100: starts in one tick are funded by weight */
        uint64_t assigned_kib;    /* balloon actual + plugged */
        uint64_t held_kib;        /* what its QEMU has resident now (RSS: guest memory in RAM and
                                   * QEMU's own; a reboot keeps it), 0 unknown or not started */
        uint64_t file_used_kib;   /* how much of its paging file is in use (/proc/swaps), 0 unknown */
};

struct paging_host {
        /* Memory the VMs can still take now: capacity (usable - reserve) less what is resident.
         * Grows as the others give memory back. */
        uint64_t free_kib;
        /* The caller can page (tided: its paging directory is usable). false: a shortfall is
         * unfunded, as with smart_paging = off. */
        bool can_page;
        /* What is out in swap and not also in RAM, host-wide, when swap_known. A file's use in
         * /proc/swaps counts pages swapped back in and still kept there (SwapCached: 56 of 240 MiB
         * in a storm here); switching it off brings back no more than this. */
        bool swap_known;
        uint64_t swapped_kib;
        /* Free swap space host-wide (/proc/meminfo SwapFree), when swap_known: where the pages
         * a VM still under its limit has in a file must go again when that file is switched off
         * (they cannot come back into its RAM). */
        uint64_t swap_free_kib;
};

/* What the caller does for one domain, in this order. */
struct paging_action {
        /* start: make a file of file_kib in paging_dir named by the domain's UUID, switch it on,
         * then set the domain's memtune (hard_limit_kib, swap_hard_limit_kib); report with
         * paging_started(). The swap limit is none (HV_MEMTUNE_UNLIMITED): memory + swap needs
         * no bound of its own, and one at startup + overhead OOM-killed QEMU here when its real
         * overhead (TCG: ~135 MiB) passed the configured one. */
        bool start;
        /* raise: the host can give it more RAM: set hard_limit_kib (swap_hard_limit_kib as
         * before); report a failure with paging_started() (the grant stays as it was). */
        bool raise;
        /* release: lift its limits (lift_limits: the domain still runs), switch the file off
         * (off the event loop: it can take minutes) and remove it; report with
         * paging_released(). lift_limits without release: lift its limits only, the file
         * stays on until its turn and room (another VM still under its limit has pages in
         * it); report with paging_lifted(). */
        bool release, lift_limits;
        bool warn_long;           /* paging for PAGING_LONG_USEC: say so, once */
        bool start_seen;          /* a start this tick whose startup memory was looked at */
        uint64_t file_kib, hard_limit_kib, swap_hard_limit_kib;
        uint64_t grant_kib;       /* start, raise: the RAM the limit grants (hard limit - overhead) */
        uint64_t shortfall_kib;   /* start: what it pages; also set when it could not page */
};

struct paging_summary {
        unsigned files;           /* domains paging (active or releasing) */
        uint64_t file_kib;        /* their files' sizes */
        uint64_t unfunded_kib;    /* startup memory no RAM and no file covers (paging off, not
                                   * allowed for this start, or failed): the host is overcommitted */
        uint64_t on_disk_kib;     /* what paging VMs hold beyond their grants (their startup while
                                   * booting, else what they are assigned): memory their files
                                   * back, which the engine may count as capacity */
};

/* Decides one tick for vms[0..n) into out[0..n) (zeroed first) and *summary (may be NULL).
 * Starts are funded first, by weight (highest first, then in the order given): each takes what
 * it still lacks of its startup plus cfg->qemu_overhead_kib beyond its resident set from the free
 * memory plus what the other running, booted, dynamic VMs can give back above their minimums
 * within cfg->reclaim_usec at the engine's shrink pace; what is still missing, when at least
 * PAGING_MIN_SHORTFALL_KIB, pages, if the host can page, cfg->smart_paging allows this kind of
 * start and the VM can ever come down (dynamic, minimum below startup). Free memory already
 * promised is not counted again: what booting VMs still lack of their startup, and paging VMs
 * of their grant (plus the overhead), beyond their resident sets. Its hard limit is what
 * it holds plus what it took (at least the overhead); the grant is that less the overhead. A VM
 * releasing its file when it starts again is not funded (its file is still being switched off).
 * A paging VM is released once its balloon reports and what comes back fits the free memory
 * (with what it was promised and has not taken): what its file holds, at least what the engine
 * counted on disk for it (summary.on_disk_kib), which stops counting as capacity, and all that
 * every file holds (a lifted VM takes its pages back from any file as it touches them). Swap
 * areas are host-wide: a file holds pages of any process the kernel paged there, and switching
 * it off brings all of them back (three released in one tick brought a partition to OOM here).
 * So files go one at a time host-wide (none while another is being switched off, and no grant
 * is raised meanwhile): a release waiting for its turn first (a failed one retried, a stopped
 * VM's file, a lifted VM's), in the order given, then of the VMs that may go the one whose file
 * holds least. While another VM runs under tide's limit (paging, or its lift failed), a file
 * goes only if the host's free swap outside it can take everything it holds: that VM's pages
 * in it cannot come back into its RAM and must be paged out again elsewhere (swapoff of a
 * file holding them, with the last other file full, failed with ENOMEM and OOM-killed the
 * limited QEMU here). A VM that may go but whose file may not yet has its limits lifted only;
 * its file waits. The VMs under a limit only ever come down, so the files all go in the end.
 * Updates each state.
 * Returns 0, or -EINVAL on NULL arguments (n > 0 with NULL arrays, a NULL state). */
int paging_plan(const struct tide_config *cfg, const struct paging_host *host, const struct paging_vm *vms, size_t n,
                uint64_t now_usec, struct paging_action *out, struct paging_summary *summary);

/* The outcome of a start or raise: 0, or a negative errno. A failed start leaves the VM
 * PAGING_FAILED (it boots unprotected: tide never blocks a boot); a failed raise keeps the grant
 * it had. `a` is the action that was carried out. */
void paging_started(struct paging_vm_state *s, const struct paging_action *a, int error);
/* The outcome of a release: 0 (the file is gone: not paging), or a negative errno (asked again
 * after PAGING_RETRY_USEC; lifted says whether the limits at least came off). */
void paging_released(struct paging_vm_state *s, bool lifted, int error, uint64_t now_usec);
/* The outcome of lifting the limits only (lift_limits without release): 0 (its file waits for
 * its turn and room), or a negative errno (the whole release is asked again after
 * PAGING_RETRY_USEC). */
void paging_lifted(struct paging_vm_state *s, int error, uint64_t now_usec);
/* A paging file found in use for this domain when tided started (/proc/swaps): paging resumes
 * from it, to be released as any other. grant_kib, startup_kib: from its record (0 unknown: its
 * limit is then left as found, never raised). A domain that is not running has its file
 * switched off in its turn, when what the file holds fits and there is swap room for it. */
void paging_adopt(struct paging_vm_state *s, uint64_t file_kib, uint64_t grant_kib, uint64_t startup_kib,
                  uint64_t now_usec);

/* Whether the domain shows as paging (Hyper-V's status "Paging"). */
bool paging_in_use(const struct paging_vm_state *s);
const char *paging_phase_to_string(enum paging_phase p);
