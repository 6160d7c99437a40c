/* The rules of the systems tide is measured against, as the simulator runs them (`tidectl
 * simulate --policies`): Hyper-V Dynamic Memory, oVirt MOM's balloon policy, Proxmox VE's
 * auto-ballooning, static sizing, and the oracle bound. Written from their documented rules and
 * code (../shared/PEERS.md; each rule's sources and our assumptions are in docs/SIMULATOR.md),
 * never from tide's engine: each sees what that system would see and sets balloon targets.
 *
 * Pure: no I/O, no clock (now_usec is passed in), no allocation. tide itself is not here: it
 * runs through the controller core (core/core.h) as tided does. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

enum peer_rule {
        PEER_HYPERV,  /* committed-memory demand + buffer, priority under contention, ~1 s */
        PEER_MOM,     /* oVirt MOM balloon.rules: 10 s policy over 5 s samples, host pressure at 20 % free */
        PEER_PROXMOX, /* Proxmox VE AutoBalloon alg1: 10 s, 80 % host target, 100 MiB per VM per cycle, shares */
        PEER_STATIC,  /* every VM at its startup memory, always */
        PEER_ORACLE,  /* assigned = demand at every instant: the bound no policy can beat */
        PEER_SWAP_ANYTIME, /* VMware ESXi-like: shares with an idle-memory tax, kept to minFree free;
                            * the hypervisor swaps what the balloon cannot reclaim, boots too */
        PEER_RULES,
};

/* "hyperv", "mom", "proxmox", "static", "oracle", "swap-anytime"; NULL for an unknown rule. */
const char *peer_rule_to_string(enum peer_rule r);
/* -EINVAL for an unknown name. */
int peer_rule_from_string(const char *s, enum peer_rule *ret);

/* How often a rule acts: 1 s for Hyper-V ("second by second") and swap-anytime, 10 s for MOM
 * and Proxmox, every tick for static and the oracle. */
uint64_t peer_rule_period_usec(enum peer_rule r);

/* What a rule remembers of a VM between its ticks (MOM's moving averages, when it last acted,
 * whether Proxmox saw it start). Zero: nothing yet. */
#define PEER_AVG_SAMPLES 10
struct peer_memo {
        uint64_t used_kib[PEER_AVG_SAMPLES];      /* MOM: balloon_cur - MemFree at each 5 s collection */
        uint64_t free_kib[PEER_AVG_SAMPLES];      /* MOM: MemFree (libvirt's "unused") at each collection */
        uint64_t host_free_kib[PEER_AVG_SAMPLES]; /* MOM: the host's free memory at each collection */
        unsigned n, pos;                          /* MOM: samples held, next slot */
        uint64_t last_sample_usec;                /* when MOM's collector last sampled */
        uint64_t last_act_usec;                   /* when the rule last acted on this VM */
        uint64_t uptime_usec;                     /* the uptime last seen: Proxmox sees a (re)start */
        bool seen;                                /* the rule has seen this VM before */
        bool done;                                /* Proxmox: a mark within one tick (compute_alg1's
                                                   * "done" set); meaningless between ticks */
        double sa_shares, sa_active, sa_lo, sa_hi; /* swap-anytime: its shares, working set,
                                                    * reservation and ceiling in KiB, worked
                                                    * out once a tick; meaningless between */
};

/* One VM as the rule sees it this tick. */
struct peer_vm {
        struct vm_policy policy;   /* startup, minimum, maximum, buffer %, weight (Hyper-V
                                    * priority, Proxmox shares = weight x 20, 1000 by default) */
        uint64_t assigned_kib;     /* what it holds now: balloon actual + plugged */
        uint64_t reachable_kib;    /* the most it can hold (boot size + virtio-mem) */
        bool reporting;            /* its balloon driver (and for Hyper-V its integration
                                    * services) reports; false while it boots */
        uint64_t uptime_usec;
        uint64_t used_kib;         /* MemTotal - MemAvailable in the guest: what it really uses */
        uint64_t cache_kib;        /* page cache the guest could drop (0 in the simulator's
                                    * model [assumed]); MOM and Proxmox count it as used */
        uint64_t committed_kib;    /* Committed_AS: Hyper-V's demand (plus hv_balloon's floor);
                                    * swap-anytime takes it as ESXi's working-set estimate */
        uint64_t demand_kib;       /* the truth, for the oracle only */
        struct peer_memo memo;     /* in: the last tick's; out: this tick's */
};

struct peer_host {
        uint64_t total_kib;        /* MemTotal */
        uint64_t free_kib;         /* MemFree (+ Buffers + Cached where the rule counts them) */
        uint64_t reserve_kib;      /* what the host keeps for itself (Hyper-V's host reserve) */
};

/* Decides one tick at now_usec for vms[0..n): targets[i] is the balloon target in KiB (the
 * total the VM should hold; for swap-anytime also the most it may hold in RAM, the rest swapped
 * by the simulated hypervisor), or PEER_NO_CHANGE when the rule leaves the VM alone this tick
 * (between its periods, no stats, a change it skips as too small). Every target is within
 * [minimum, reachable] except the oracle's (demand, within [1 MiB, reachable]); a VM whose
 * policy is not dynamic is left alone by Hyper-V, MOM, Proxmox and swap-anytime (static and the
 * oracle size it anyway). Updates each vms[i].memo. Returns 0, or -EINVAL for an unknown rule, a NULL host
 * or a host of 0 KiB, or NULL arrays with n > 0. */
#define PEER_NO_CHANGE UINT64_MAX
int peer_tick(enum peer_rule r, const struct peer_host *host, struct peer_vm *vms, size_t n, uint64_t now_usec,
              uint64_t *targets);
