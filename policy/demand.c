#include <math.h>

#include "policy/demand.h"

int64_t demand_model(const struct demand_input *in) {
        if (in->used_kib < 0)
                return in->used_kib;
        double used = (double) in->used_kib;
        if (in->has_psi && isfinite(in->psi_some_avg10) && in->psi_some_avg10 > 0)
                used *= 1.0 + fmin(in->psi_some_avg10, DEMAND_PSI_RAISE_MAX_PCT) / 100.0;
        int64_t demand = (int64_t) used;
        /* The floor is the guest's claim about itself; it only ever raises demand, and the
         * engine clamps every target to the VM's maximum, so a lying floor gains nothing more
         * than a lying MemAvailable would. */
        if (in->floor_kib <= INT64_MAX && demand < (int64_t) in->floor_kib)
                demand = (int64_t) in->floor_kib;
        return demand;
}
