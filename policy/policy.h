/* A VM's dynamic-memory policy, in Hyper-V's words (see docs/POLICY.md). Pure: no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hyper-V requires memory sizes in 2 MiB multiples; so do we, which also keeps every target
 * the engine computes on a huge-page boundary. */
#define POLICY_ALIGN_KIB UINT64_C(2048)
/* Below 32 MiB even a busybox guest cannot run its kernel. */
#define POLICY_MINIMUM_FLOOR_KIB UINT64_C(32768)
#define POLICY_BUFFER_MIN 5
#define POLICY_BUFFER_MAX 2000
#define POLICY_BUFFER_DEFAULT 20
#define POLICY_WEIGHT_MAX 100
#define POLICY_WEIGHT_DEFAULT 50
/* The minimum a domain without a policy gets when the operator names none: a boot size nobody
 * would run a VM with below tide's lowest minimum. */
#define POLICY_MINIMUM_DEFAULT_KIB (UINT64_C(512) * 1024)

struct vm_policy {
        uint64_t startup_kib; /* memory at every (re)boot */
        uint64_t minimum_kib; /* floor after boot */
        uint64_t maximum_kib; /* ceiling */
        unsigned buffer_pct;  /* headroom over demand, POLICY_BUFFER_MIN..MAX */
        unsigned weight;      /* share under contention, 0..POLICY_WEIGHT_MAX; 0 is served last */
        bool dynamic;         /* false: the VM stays at startup, as Hyper-V's static memory */
        bool latency_sensitive; /* core parking never packs it: its vCPUs keep their own affinity */
};

/* Defaults for everything but the sizes (which have no sensible default): buffer 20 %,
 * weight 50, dynamic on, not latency-sensitive. The sizes are 0 and must be filled in before validation. */
void policy_init(struct vm_policy *p);

/* Checks the policy. Returns 0 when valid; otherwise -EINVAL and writes a message naming the
 * field into err (e.g. "minimum: 16MiB is below the lowest allowed minimum 32MiB",
 * "startup: 1GiB is above maximum 512MiB"). */
int policy_validate(const struct vm_policy *p, char *err, size_t errlen);

/* kib rounded down to POLICY_ALIGN_KIB. */
static inline uint64_t policy_align_down_kib(uint64_t kib) {
        return kib / POLICY_ALIGN_KIB * POLICY_ALIGN_KIB;
}

/* An operator's change: the fields with their have_* flag set replace the current ones. */
struct policy_change {
        bool have_startup, have_minimum, have_maximum, have_buffer, have_weight, have_dynamic;
        bool have_latency_sensitive;
        uint64_t startup_kib, minimum_kib, maximum_kib;
        unsigned buffer_pct, weight;
        bool dynamic, latency_sensitive;
};

/* The policy after change c: on cur, or for a domain without one (cur NULL) on the defaults
 * startup = boot size, minimum = min(startup, POLICY_MINIMUM_DEFAULT_KIB), maximum = reachable
 * (boot size + virtio-mem), buffer 20, weight 50, dynamic, both sizes aligned down. A default
 * the operator's own values contradict moves with them ("--minimum 2GiB" alone on a 1 GiB
 * domain raises startup, not an error about a startup never given). Not validated. */
struct vm_policy policy_apply_change(const struct vm_policy *cur, uint64_t boot_kib, uint64_t reachable_kib,
                                     const struct policy_change *c);

/* The policy the engine works with on a domain that can reach reachable_kib now (0: unknown):
 * a maximum beyond it waits for a restart with a bigger domain, and startup and minimum follow
 * it down. */
struct vm_policy policy_within_reach(const struct vm_policy *p, uint64_t reachable_kib);
