/* The demand model: from what a guest reports to the demand the engine works with. Pure.
 * docs/POLICY.md ("Demand from tide-agent") states it for users. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Memory pressure raises demand by this share of used memory per percent of PSI some avg10,
 * up to DEMAND_PSI_RAISE_MAX_PCT: a guest that stalls 10 % of the time needs ~10 % more than it
 * has, whatever MemAvailable says (reclaim is already eating into its working set). */
#define DEMAND_PSI_RAISE_MAX_PCT 100.0

struct demand_input {
        int64_t used_kib;    /* MemTotal - MemAvailable in the host's frame (balloon/collect.h) */
        uint64_t floor_kib;  /* the guest's own safe floor; 0 when unknown */
        bool has_psi;
        double psi_some_avg10; /* percent */
};

/* demand = used x (1 + min(psi some avg10, 100) / 100), never below the guest's floor.
 * A negative used (garbage) is passed through for the engine to reject. Returns the demand. */
int64_t demand_model(const struct demand_input *in);
