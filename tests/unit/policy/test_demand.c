/* The demand model for tide-agent reports. */
#include <criterion/criterion.h>

#include "common/macro.h"
#include "policy/demand.h"

#define MIB(x) ((int64_t) (x) * 1024)

Test(demand, is_used_memory_when_calm) {
        struct demand_input in = { .used_kib = MIB(300), .floor_kib = (uint64_t) MIB(100) };
        cr_assert_eq(demand_model(&in), MIB(300));
}

Test(demand, is_raised_under_memory_pressure) {
        struct demand_input in = { .used_kib = MIB(300), .has_psi = true, .psi_some_avg10 = 10 };
        cr_assert_eq(demand_model(&in), MIB(330));
        in.psi_some_avg10 = 250; /* nonsense PSI is capped: at most double */
        cr_assert_eq(demand_model(&in), MIB(600));
}

Test(demand, never_below_the_guests_floor) {
        struct demand_input in = { .used_kib = MIB(20), .floor_kib = (uint64_t) MIB(104) };
        cr_assert_eq(demand_model(&in), MIB(104));
}

Test(demand, passes_garbage_through_for_the_engine_to_reject) {
        struct demand_input in = { .used_kib = -MIB(5), .floor_kib = (uint64_t) MIB(104) };
        cr_assert_lt(demand_model(&in), 0);
}

Test(demand, ignores_psi_a_guest_does_not_have) {
        struct demand_input in = { .used_kib = MIB(300), .has_psi = false, .psi_some_avg10 = 50 };
        cr_assert_eq(demand_model(&in), MIB(300));
}

/* Choosing the source: the agent while fresh, then balloon statistics, then nothing. */
#define SEC(x) ((uint64_t) (x) * 1000000)
#define STALE SEC(10)

static struct demand_sources both(void) {
        return (struct demand_sources){ .has_agent = true, .agent_usec = SEC(100),
                                        .agent = { .used_kib = MIB(300), .floor_kib = (uint64_t) MIB(100) },
                                        .agent_total_kib = (uint64_t) MIB(1000),
                                        .balloon = true, .balloon_usec = SEC(105), .balloon_demand_kib = MIB(250),
                                        .balloon_total_kib = (uint64_t) MIB(1000) };
}

Test(demand_pick, prefers_a_fresh_agent_report_and_gives_the_engine_no_total) {
        struct demand_sources s = both();
        s.agent.has_psi = true;
        s.agent.psi_some_avg10 = 10;
        struct demand_pick p = demand_pick(&s, SEC(105), STALE, 0);
        cr_assert_eq(p.source, DEMAND_SOURCE_AGENT);
        cr_assert_eq(p.demand_kib, MIB(330), "the model: used raised by PSI");
        cr_assert_eq(p.total_kib, 0u, "a pressured guest may rightly need more than its total");
        cr_assert_eq(p.usec, SEC(100));
        cr_assert_float_eq(p.psi_some_avg10, 10.0, 1e-9);
}

Test(demand_pick, hands_a_use_above_the_total_over_raw_for_the_engine_to_reject) {
        struct demand_sources s = both();
        s.agent.used_kib = MIB(1200);
        struct demand_pick p = demand_pick(&s, SEC(105), STALE, 0);
        cr_assert_eq(p.source, DEMAND_SOURCE_AGENT);
        cr_assert_eq(p.demand_kib, MIB(1200));
        cr_assert_eq(p.total_kib, (uint64_t) MIB(1000));
}

Test(demand_pick, falls_back_to_balloon_stats_when_the_agent_is_stale_or_absent) {
        struct demand_sources s = both();
        struct demand_pick p = demand_pick(&s, SEC(100) + STALE + 1, STALE, 0);
        cr_assert_eq(p.source, DEMAND_SOURCE_BALLOON);
        cr_assert_eq(p.demand_kib, MIB(250));
        cr_assert_eq(p.total_kib, (uint64_t) MIB(1000));
        cr_assert_eq(p.usec, SEC(105));
        cr_assert_float_eq(p.psi_some_avg10, 0.0, 1e-9);
        s.has_agent = false;
        cr_assert_eq(demand_pick(&s, SEC(106), STALE, 0).source, DEMAND_SOURCE_BALLOON);
}

Test(demand_pick, a_balloon_sample_never_goes_back_before_the_last_accepted_one) {
        struct demand_sources s = both();
        s.has_agent = false;
        struct demand_pick p = demand_pick(&s, SEC(120), STALE, SEC(110));
        cr_assert_eq(p.usec, SEC(110), "the agent's last report was newer than this sample");
}

Test(demand_pick, an_agent_report_from_the_future_is_not_fresh) {
        struct demand_sources s = both();
        s.agent_usec = SEC(200);
        cr_assert_eq(demand_pick(&s, SEC(105), STALE, 0).source, DEMAND_SOURCE_BALLOON);
        cr_assert_eq(demand_pick(&s, SEC(105), UINT64_MAX, 0).source, DEMAND_SOURCE_BALLOON,
                     "not by unsigned wrap-around: even with no staleness limit");
}

Test(demand_pick, a_stale_agent_with_nothing_else_is_handed_over_for_the_engine_to_hold) {
        struct demand_sources s = both();
        s.balloon = false;
        struct demand_pick p = demand_pick(&s, SEC(100) + STALE + 1, STALE, 0);
        cr_assert_eq(p.source, DEMAND_SOURCE_AGENT_STALE);
        cr_assert_eq(p.usec, SEC(100), "its own time, so the engine sees how old it is");
        s.agent_usec = SEC(200);
        cr_assert_eq(demand_pick(&s, SEC(105), STALE, 0).source, DEMAND_SOURCE_NONE, "never one from the future");
        /* Its old pressure holds nothing, and its time never goes back behind the last sample. */
        s.agent_usec = SEC(100);
        s.agent.has_psi = true;
        s.agent.psi_some_avg10 = 40;
        p = demand_pick(&s, SEC(200), STALE, SEC(150));
        cr_assert_float_eq(p.psi_some_avg10, 0.0, 1e-9);
        cr_assert_eq(p.usec, SEC(150));
}

Test(demand_pick, nothing_usable_means_none) {
        struct demand_sources s = { 0 };
        cr_assert_eq(demand_pick(&s, SEC(1), STALE, 0).source, DEMAND_SOURCE_NONE);
}

Test(demand_agent_plausible, use_above_qemus_resident_memory_plus_slack_is_a_lie) {
        cr_assert(demand_agent_plausible((uint64_t) MIB(600), (uint64_t) MIB(500)), "within 128 MiB of RSS");
        cr_assert_not(demand_agent_plausible((uint64_t) MIB(629), (uint64_t) MIB(500)));
        cr_assert(demand_agent_plausible((uint64_t) MIB(2500), (uint64_t) MIB(2048)), "a quarter of a large RSS");
        cr_assert_not(demand_agent_plausible((uint64_t) MIB(2561), (uint64_t) MIB(2048)));
}
