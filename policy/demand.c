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

struct demand_pick demand_pick(const struct demand_sources *in, uint64_t now_usec, uint64_t stale_usec,
                               uint64_t last_demand_usec) {
        struct demand_pick p = { .source = DEMAND_SOURCE_NONE };

        bool agent_fresh = in->has_agent && in->agent_usec <= now_usec && now_usec - in->agent_usec <= stale_usec;
        /* A stale report with nothing else is still handed over, with its time: the engine then
         * holds the VM and says its demand is stale, which is the truth, not that it has none. */
        bool agent_stale = in->has_agent && in->agent_usec <= now_usec && !agent_fresh && !in->balloon;
        if (agent_fresh || agent_stale) {
                p.source = agent_fresh ? DEMAND_SOURCE_AGENT : DEMAND_SOURCE_AGENT_STALE;
                p.usec = in->agent_usec;
                p.psi_some_avg10 = in->agent.has_psi ? in->agent.psi_some_avg10 : 0;
                if (agent_stale) {
                        /* Old pressure must not keep the VM under back-off, and the sample must
                         * not look older than one the engine already took (time running back). */
                        p.psi_some_avg10 = 0;
                        p.usec = in->agent_usec > last_demand_usec ? in->agent_usec : last_demand_usec;
                }
                if (in->agent.used_kib > 0 && (uint64_t) in->agent.used_kib > in->agent_total_kib) {
                        p.demand_kib = in->agent.used_kib;
                        p.total_kib = in->agent_total_kib;
                } else
                        p.demand_kib = demand_model(&in->agent);
        } else if (in->balloon) {
                p.source = DEMAND_SOURCE_BALLOON;
                p.demand_kib = in->balloon_demand_kib;
                p.total_kib = in->balloon_total_kib;
                p.usec = in->balloon_usec > last_demand_usec ? in->balloon_usec : last_demand_usec;
        }
        return p;
}

bool demand_agent_plausible(uint64_t used_kib, uint64_t rss_kib) {
        uint64_t slack = rss_kib / 4 > DEMAND_RSS_SLACK_MIN_KIB ? rss_kib / 4 : DEMAND_RSS_SLACK_MIN_KIB;
        return used_kib <= rss_kib + slack;
}
