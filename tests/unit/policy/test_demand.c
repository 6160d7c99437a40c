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
