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

struct vm_policy {
        uint64_t startup_kib; /* memory at every (re)boot */
        uint64_t minimum_kib; /* floor after boot */
        uint64_t maximum_kib; /* ceiling */
        unsigned buffer_pct;  /* headroom over demand, POLICY_BUFFER_MIN..MAX */
        unsigned weight;      /* share under contention, 0..POLICY_WEIGHT_MAX; 0 is served last */
        bool dynamic;         /* false: the VM stays at startup, as Hyper-V's static memory */
};

/* Defaults for everything but the sizes (which have no sensible default): buffer 20 %,
 * weight 50, dynamic on. The sizes are 0 and must be filled in before validation. */
void policy_init(struct vm_policy *p);

/* Checks the policy. Returns 0 when valid; otherwise -EINVAL and writes a message naming the
 * field into err (e.g. "minimum: 16MiB is below the lowest allowed minimum 32MiB",
 * "startup: 1GiB is above maximum 512MiB"). */
int policy_validate(const struct vm_policy *p, char *err, size_t errlen);
