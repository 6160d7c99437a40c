#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/psi.h"

#define FIXTURES "tests/fixtures/proc/"

static const char memory_text[] = "some avg10=1.53 avg60=0.87 avg300=0.21 total=1234567\n"
                                  "full avg10=0.40 avg60=0.10 avg300=0.02 total=345678\n";

static void expect_invalid(const char *text) {
        struct psi p = { .some.total_usec = 4242 };

        cr_assert_eq(psi_parse(text, &p), -EINVAL, "psi_parse(\"%s\") accepted it", text ? text : "(null)");
        cr_assert_eq(p.some.total_usec, 4242, "psi_parse(\"%s\") wrote its result on failure", text ? text : "");
}

Test(psi, parses_memory_with_a_full_line) {
        struct psi p;

        cr_assert_eq(psi_parse(memory_text, &p), 0);
        cr_assert_float_eq(p.some.avg10, 1.53, 1e-9);
        cr_assert_float_eq(p.some.avg60, 0.87, 1e-9);
        cr_assert_float_eq(p.some.avg300, 0.21, 1e-9);
        cr_assert_eq(p.some.total_usec, 1234567);
        cr_assert(p.has_full);
        cr_assert_float_eq(p.full.avg10, 0.40, 1e-9);
        cr_assert_float_eq(p.full.avg60, 0.10, 1e-9);
        cr_assert_float_eq(p.full.avg300, 0.02, 1e-9);
        cr_assert_eq(p.full.total_usec, 345678);
}

Test(psi, parses_cpu_without_a_full_line) {
        struct psi p;

        cr_assert_eq(psi_parse("some avg10=0.12 avg60=0.08 avg300=0.05 total=98410217\n", &p), 0);
        cr_assert_float_eq(p.some.avg10, 0.12, 1e-9);
        cr_assert_eq(p.some.total_usec, 98410217);
        cr_assert_not(p.has_full);
        cr_assert_eq(p.full.total_usec, 0);
        cr_assert_eq(p.full.avg10, 0);
}

Test(psi, accepts_text_without_a_final_newline) {
        struct psi p;

        cr_assert_eq(psi_parse("some avg10=0.00 avg60=0.00 avg300=0.00 total=7", &p), 0);
        cr_assert_eq(p.some.total_usec, 7);
}

Test(psi, ignores_keys_a_newer_kernel_may_add) {
        struct psi p;

        cr_assert_eq(psi_parse("some avg10=1.00 avg1=9.99 avg60=2.00 avg300=3.00 total=4 peak=x\n", &p), 0);
        cr_assert_float_eq(p.some.avg10, 1.0, 1e-9);
        cr_assert_float_eq(p.some.avg60, 2.0, 1e-9);
        cr_assert_float_eq(p.some.avg300, 3.0, 1e-9);
        cr_assert_eq(p.some.total_usec, 4);
}

Test(psi, accepts_the_bounds_of_0_and_100) {
        struct psi p;

        cr_assert_eq(psi_parse("some avg10=100.00 avg60=100 avg300=0 total=0\n", &p), 0);
        cr_assert_eq(p.some.avg10, 100);
        cr_assert_eq(p.some.avg60, 100);
        cr_assert_eq(p.some.avg300, 0);
}

Test(psi, accepts_the_largest_total) {
        struct psi p;

        cr_assert_eq(psi_parse("some avg10=0 avg60=0 avg300=0 total=18446744073709551615\n", &p), 0);
        cr_assert_eq(p.some.total_usec, UINT64_MAX);
}

Test(psi, rejects_averages_out_of_range) {
        expect_invalid("some avg10=100.01 avg60=0.00 avg300=0.00 total=0\n");
        expect_invalid("some avg10=0.00 avg60=101.00 avg300=0.00 total=0\n");
        expect_invalid("some avg10=0.00 avg60=0.00 avg300=99999999999999999999999.00 total=0\n");
        expect_invalid("some avg10=-1.00 avg60=0.00 avg300=0.00 total=0\n");
}

Test(psi, rejects_malformed_numbers) {
        expect_invalid("some avg10=abc avg60=0.00 avg300=0.00 total=0\n");
        expect_invalid("some avg10=nan avg60=0.00 avg300=0.00 total=0\n");
        expect_invalid("some avg10=inf avg60=0.00 avg300=0.00 total=0\n");
        expect_invalid("some avg10=1e1 avg60=0.00 avg300=0.00 total=0\n");
        expect_invalid("some avg10=.5 avg60=0.00 avg300=0.00 total=0\n");
        expect_invalid("some avg10=5. avg60=0.00 avg300=0.00 total=0\n");
        expect_invalid("some avg10=0,5 avg60=0.00 avg300=0.00 total=0\n");
        expect_invalid("some avg10=+1.00 avg60=0.00 avg300=0.00 total=0\n");
        expect_invalid("some avg10= avg60=0.00 avg300=0.00 total=0\n");
        expect_invalid("some avg10=0.00 avg60=0.00 avg300=0.00 total=-1\n");
        expect_invalid("some avg10=0.00 avg60=0.00 avg300=0.00 total=12x\n");
        expect_invalid("some avg10=0.00 avg60=0.00 avg300=0.00 total=18446744073709551616\n");
}

Test(psi, rejects_missing_fields_and_lines) {
        expect_invalid("");
        expect_invalid(NULL);
        expect_invalid("\n\n");
        expect_invalid("some\n");
        expect_invalid("some avg10=0.00 avg60=0.00 avg300=0.00\n");
        expect_invalid("some avg10=0.00 avg60=0.00 total=0\n");
        expect_invalid("full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
}

Test(psi, rejects_repeated_lines_and_keys) {
        expect_invalid("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                       "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
        expect_invalid("some avg10=0.00 avg10=1.00 avg60=0.00 avg300=0.00 total=0\n");
}

Test(psi, rejects_garbage) {
        expect_invalid("<html><body>502 Bad Gateway</body></html>\n");
        expect_invalid("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nhello world\n");
        expect_invalid("somex avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
        expect_invalid("some avg10=0.00 avg60=0.00 avg300=0.00 total=0 junk\n");
        expect_invalid("some =1 avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
}

Test(psi, survives_every_truncation_of_a_real_file) {
        char buf[sizeof(memory_text)];

        /* Cut at every byte: the parser must never read past the end, and whatever it accepts
         * must carry a complete "some" line. */
        for (size_t n = 0; n < sizeof(memory_text); n++) {
                struct psi p;
                int r;

                memcpy(buf, memory_text, n);
                buf[n] = '\0';
                r = psi_parse(buf, &p);
                cr_assert(r == 0 || r == -EINVAL, "cut at %zu: %d", n, r);
                if (n < strlen("some avg10=1.53 avg60=0.87 avg300=0.21 total=1"))
                        cr_assert_eq(r, -EINVAL, "cut at %zu was accepted", n);
        }
}

Test(psi, reads_memory_pressure_from_a_fixture_root) {
        struct psi p;

        cr_assert_eq(psi_read(FIXTURES "idle", "memory", &p), 0);
        cr_assert(p.has_full);
        cr_assert_eq(p.some.total_usec, 81632);
        cr_assert_eq(p.full.total_usec, 53075);

        cr_assert_eq(psi_read(FIXTURES "contended", "memory", &p), 0);
        cr_assert_float_eq(p.some.avg10, 42.17, 1e-9);
        cr_assert_float_eq(p.full.avg300, 4.66, 1e-9);
}

Test(psi, reads_cpu_pressure_with_and_without_full) {
        struct psi p;

        cr_assert_eq(psi_read(FIXTURES "idle", "cpu", &p), 0);
        cr_assert_not(p.has_full, "kernels before 5.13 have no full line for cpu");
        cr_assert_float_eq(p.some.avg10, 0.12, 1e-9);

        cr_assert_eq(psi_read(FIXTURES "contended", "cpu", &p), 0);
        cr_assert(p.has_full);
        cr_assert_eq(p.some.avg10, 100);
}

Test(psi, rejects_broken_fixture_files) {
        static const char *const scenarios[] = { "psi-truncated", "psi-out-of-range", "psi-garbage" };

        for (size_t i = 0; i < ELEMENTSOF(scenarios); i++) {
                char root[128];
                struct psi p;

                snprintf(root, sizeof(root), FIXTURES "%s", scenarios[i]);
                cr_assert_eq(psi_read(root, "memory", &p), -EINVAL, "%s", scenarios[i]);
        }
}

Test(psi, reports_a_missing_file) {
        struct psi p;

        cr_assert_eq(psi_read(FIXTURES "idle", "io", &p), -ENOENT);
}

Test(psi, refuses_a_resource_that_is_a_path) {
        struct psi p;

        cr_assert_eq(psi_read(FIXTURES "idle", "../meminfo", &p), -EINVAL);
        cr_assert_eq(psi_read(FIXTURES "idle", "..", &p), -EINVAL);
        cr_assert_eq(psi_read(FIXTURES "idle", "", &p), -EINVAL);
        cr_assert_eq(psi_read(FIXTURES "idle", NULL, &p), -EINVAL);
}

Test(psi, reads_the_live_kernel_when_it_has_psi) {
        struct psi p;
        int r = psi_read(NULL, "memory", &p);

        /* Kernels without CONFIG_PSI, or booted with psi=0, have no such file. */
        if (r == -ENOENT || r == -EOPNOTSUPP)
                cr_skip_test("no PSI on this kernel");
        cr_assert_eq(r, 0);
        cr_assert(p.has_full);
}
