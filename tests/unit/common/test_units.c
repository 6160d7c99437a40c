#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "common/macro.h"
#include "common/units.h"

/* Sentinel written before each failing call: the contract says *ret is left untouched. */
#define UNTOUCHED UINT64_C(0xdeadbeef)

static void expect_size(const char *s, uint64_t kib) {
        const char *e = NULL;
        uint64_t v = UNTOUCHED;
        int r = size_parse(s, &v, &e);

        cr_assert_eq(r, 0, "size_parse(\"%s\") = %d (%s)", s, r, e ? e : "no message");
        cr_assert_eq(v, kib, "size_parse(\"%s\") = %" PRIu64 " KiB, expected %" PRIu64, s, v, kib);
}

static void expect_size_error(const char *s, int err, const char *msg) {
        const char *e = NULL;
        uint64_t v = UNTOUCHED;
        int r = size_parse(s, &v, &e);

        cr_assert_eq(r, err, "size_parse(\"%s\") = %d, expected %d", s ? s : "(null)", r, err);
        cr_assert_eq(v, UNTOUCHED, "size_parse(\"%s\") wrote its result on failure", s ? s : "(null)");
        cr_assert_not_null(e, "size_parse(\"%s\") gave no message", s ? s : "(null)");
        cr_assert_str_eq(e, msg, "size_parse(\"%s\")", s ? s : "(null)");
}

Test(size, parses_each_binary_suffix) {
        expect_size("2048K", 2048);
        expect_size("2048KiB", 2048);
        expect_size("512M", 524288);
        expect_size("512MiB", 524288);
        expect_size("4G", 4 * KIB_PER_GIB);
        expect_size("4GiB", 4 * KIB_PER_GIB);
        expect_size("1T", UINT64_C(1) << 30);
        expect_size("1TiB", UINT64_C(1) << 30);
}

Test(size, matches_suffixes_case_insensitively) {
        expect_size("4g", 4 * KIB_PER_GIB);
        expect_size("512mib", 524288);
        expect_size("1KIB", 1);
        expect_size("2tib", UINT64_C(2) << 30);
        expect_size("1k", 1);
}

Test(size, parses_decimal_suffixes_as_powers_of_1000) {
        expect_size("1024KB", 1000);
        expect_size("16MB", 15625);
        expect_size("2GB", 1953125);
        expect_size("1TB", 976562500);
        expect_size("2gb", 1953125);
}

Test(size, rejects_decimal_size_that_is_not_whole_kib) {
        /* 10^9 bytes is 976562.5 KiB */
        expect_size_error("1GB", -EINVAL, "not a whole number of KiB");
        expect_size_error("1KB", -EINVAL, "not a whole number of KiB");
}

Test(size, parses_bytes) {
        expect_size("1048576B", 1024);
        expect_size("1024b", 1);
        expect_size("0B", 0);
        expect_size_error("1000B", -EINVAL, "not a whole number of KiB");
}

Test(size, parses_zero) {
        expect_size("0K", 0);
        expect_size("0G", 0);
        expect_size("0.0T", 0);
}

Test(size, parses_fractional_gib) {
        expect_size("1.5G", 1572864);
        expect_size("1.25GiB", 1310720);
        expect_size("0.5M", 512);
        expect_size("2.75T", (UINT64_C(11) << 30) / 4);
        expect_size("1.50000000000000000000000000000000G", 1572864);
}

Test(size, parses_long_exact_fractions) {
        /* 2^-30 TiB is exactly 1 KiB; the parser must not give up on 30 digits. */
        expect_size("0.000000000931322574615478515625T", 1);
        expect_size("0.00000095367431640625G", 1);
}

Test(size, rejects_fraction_that_is_not_whole_kib) {
        expect_size_error("1.3M", -EINVAL, "not a whole number of KiB");
        expect_size_error("1.5K", -EINVAL, "not a whole number of KiB");
        expect_size_error("0.1K", -EINVAL, "not a whole number of KiB");
        expect_size_error("0.0000000009313225746154785156251T", -EINVAL, "not a whole number of KiB");
}

Test(size, rejects_empty) {
        expect_size_error("", -EINVAL, "empty");
        expect_size_error("   ", -EINVAL, "empty");
        expect_size_error("\t", -EINVAL, "empty");
        expect_size_error(NULL, -EINVAL, "empty");
}

Test(size, rejects_negative_naming_it) {
        expect_size_error("-5M", -EINVAL, "negative sizes are not allowed");
        expect_size_error("-0.5G", -EINVAL, "negative sizes are not allowed");
        expect_size_error(" -1K", -EINVAL, "negative sizes are not allowed");
}

Test(size, requires_a_unit) {
        expect_size_error("512", -EINVAL, "missing unit (use K, M, G or T, e.g. 512MiB)");
        expect_size_error("0", -EINVAL, "missing unit (use K, M, G or T, e.g. 512MiB)");
        expect_size_error("1.5 ", -EINVAL, "missing unit (use K, M, G or T, e.g. 512MiB)");
}

Test(size, rejects_unknown_suffix_listing_the_known_ones) {
        static const char msg[] = "unknown unit suffix (use K, KiB, M, MiB, G, GiB, T, TiB, KB, MB, GB, TB or B)";

        expect_size_error("4X", -EINVAL, msg);
        expect_size_error("4PiB", -EINVAL, msg);
        expect_size_error("4GIG", -EINVAL, msg);
        expect_size_error("4kibs", -EINVAL, msg);
        expect_size_error("4 bytes", -EINVAL, msg);
        expect_size_error("0x10M", -EINVAL, msg);
}

Test(size, rejects_trailing_junk_naming_it) {
        expect_size_error("4G foo", -EINVAL, "trailing characters after the unit");
        expect_size_error("512MiB!", -EINVAL, "trailing characters after the unit");
        expect_size_error("4Mb/s", -EINVAL, "trailing characters after the unit");
        expect_size_error("4G4", -EINVAL, "trailing characters after the unit");
        expect_size_error("512%", -EINVAL, "trailing characters after the number");
        expect_size_error("512#M", -EINVAL, "trailing characters after the number");
}

Test(size, rejects_what_is_not_a_number) {
        expect_size_error("abc", -EINVAL, "not a number");
        expect_size_error("M", -EINVAL, "not a number");
        expect_size_error("+5M", -EINVAL, "not a number");
        expect_size_error(".5G", -EINVAL, "not a number");
        expect_size_error("5.G", -EINVAL, "not a number");
        expect_size_error("1.2.3G", -EINVAL, "not a number");
        expect_size_error("1,5G", -EINVAL, "not a number");
        expect_size_error("-", -EINVAL, "not a number");
        expect_size_error("-M", -EINVAL, "not a number");
}

Test(size, allows_one_space_between_number_and_unit) {
        expect_size("512 MiB", 524288);
        expect_size("1.5\tG", 1572864);
}

Test(size, ignores_surrounding_blanks) {
        expect_size(" 4G", 4 * KIB_PER_GIB);
        expect_size("4G ", 4 * KIB_PER_GIB);
        expect_size("\t 512 MiB \t", 524288);
}

Test(size, rejects_spaces_inside_the_value) {
        static const char msg[] = "unexpected space (at most one may separate the number and the unit)";

        expect_size_error("512  MiB", -EINVAL, msg);
        expect_size_error("1 024M", -EINVAL, msg);
        expect_size_error("1 .5G", -EINVAL, "trailing characters after the number");
}

Test(size, accepts_exactly_the_limit) {
        expect_size("1048576T", SIZE_MAX_KIB);
        expect_size("1073741824G", SIZE_MAX_KIB);
        expect_size("1125899906842624K", SIZE_MAX_KIB);
        expect_size("1152921504606846976B", SIZE_MAX_KIB);
}

Test(size, rejects_values_above_the_limit_as_too_large) {
        expect_size_error("1048577T", -ERANGE, "too large");
        expect_size_error("1048576.5T", -ERANGE, "too large");
        expect_size_error("1073741825G", -ERANGE, "too large");
        expect_size_error("1125899906842625K", -ERANGE, "too large");
        expect_size_error("1152921504606848000B", -ERANGE, "too large");
        expect_size_error("99999999999999999999999999999K", -ERANGE, "too large");
        expect_size_error("18446744073709551616T", -ERANGE, "too large");
}

Test(size, accepts_null_error_pointer) {
        uint64_t v = UNTOUCHED;

        cr_assert_eq(size_parse("junk", &v, NULL), -EINVAL);
        cr_assert_eq(v, UNTOUCHED);
        cr_assert_eq(size_parse("2K", &v, NULL), 0);
        cr_assert_eq(v, 2);
}

static void expect_exact(uint64_t kib, const char *text) {
        char buf[SIZE_FORMAT_MAX];

        cr_assert_str_eq(size_format_exact(kib, buf), text, "size_format_exact(%" PRIu64 ")", kib);
}

Test(size, formats_exactly_in_the_largest_dividing_unit) {
        expect_exact(0, "0KiB");
        expect_exact(1, "1KiB");
        expect_exact(1023, "1023KiB");
        expect_exact(1024, "1MiB");
        expect_exact(1536, "1536KiB");
        expect_exact(524288, "512MiB");
        expect_exact(1572864, "1536MiB");
        expect_exact(KIB_PER_GIB, "1GiB");
        expect_exact(UINT64_C(1) << 30, "1TiB");
        expect_exact(SIZE_MAX_KIB, "1048576TiB");
}

Test(size, formats_any_uint64_within_the_buffer) {
        char buf[SIZE_FORMAT_MAX];

        cr_assert_str_eq(size_format_exact(UINT64_MAX, buf), "18446744073709551615KiB");
        cr_assert_str_eq(size_format_human(UINT64_MAX, buf), "17179869184TiB");
}

static void expect_round_trip(uint64_t kib) {
        char buf[SIZE_FORMAT_MAX];
        const char *e = NULL;
        uint64_t back = UNTOUCHED;

        size_format_exact(kib, buf);
        cr_assert_eq(size_parse(buf, &back, &e), 0, "\"%s\" (from %" PRIu64 ") does not parse: %s", buf, kib, e);
        cr_assert_eq(back, kib, "\"%s\" parses to %" PRIu64 ", formatted from %" PRIu64, buf, back, kib);
}

Test(size, exact_format_round_trips_through_parse) {
        uint64_t x = 0x9e3779b97f4a7c15;

        for (uint64_t kib = 0; kib <= 4096; kib++)
                expect_round_trip(kib);
        for (unsigned shift = 0; shift <= 50; shift++) {
                uint64_t p = UINT64_C(1) << shift;

                expect_round_trip(p);
                expect_round_trip(p - 1);
                if (p + 1 <= SIZE_MAX_KIB)
                        expect_round_trip(p + 1);
                expect_round_trip(p * 3 / 2 > SIZE_MAX_KIB ? SIZE_MAX_KIB : p * 3 / 2);
        }
        /* A fixed xorshift sequence: the same "random" sizes on every run. */
        for (int i = 0; i < 10000; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                expect_round_trip(x % (SIZE_MAX_KIB + 1));
                expect_round_trip((x % (UINT64_C(1) << 20)) << (x % 31));
        }
}

static void expect_human(uint64_t kib, const char *text) {
        char buf[SIZE_FORMAT_MAX];

        cr_assert_str_eq(size_format_human(kib, buf), text, "size_format_human(%" PRIu64 ")", kib);
}

Test(size, formats_for_people_with_one_decimal) {
        expect_human(0, "0KiB");
        expect_human(1, "1KiB");
        expect_human(1000, "1000KiB");
        expect_human(1023, "1023KiB");
        expect_human(1024, "1MiB");
        expect_human(1536, "1.5MiB");
        expect_human(1572864, "1.5GiB");
        expect_human(1945600, "1.9GiB");
        expect_human(4 * KIB_PER_GIB, "4GiB");
        expect_human(UINT64_C(3) << 29, "1.5TiB");
        expect_human(SIZE_MAX_KIB, "1048576TiB");
}

Test(size, human_format_rounds_half_up_and_carries_into_the_next_unit) {
        expect_human(1075, "1MiB");    /* 1.0498 MiB: no "1.0" */
        expect_human(1076, "1.1MiB");  /* 1.0508 MiB */
        expect_human(1048575, "1GiB"); /* 1023.999 MiB, not "1024MiB" */
        expect_human(1048063, "1023.5MiB");
}

static void expect_duration(const char *s, uint64_t usec) {
        const char *e = NULL;
        uint64_t v = UNTOUCHED;
        int r = duration_parse(s, &v, &e);

        cr_assert_eq(r, 0, "duration_parse(\"%s\") = %d (%s)", s, r, e ? e : "no message");
        cr_assert_eq(v, usec, "duration_parse(\"%s\") = %" PRIu64 " usec, expected %" PRIu64, s, v, usec);
}

static void expect_duration_error(const char *s, int err, const char *msg) {
        const char *e = NULL;
        uint64_t v = UNTOUCHED;
        int r = duration_parse(s, &v, &e);

        cr_assert_eq(r, err, "duration_parse(\"%s\") = %d, expected %d", s ? s : "(null)", r, err);
        cr_assert_eq(v, UNTOUCHED, "duration_parse(\"%s\") wrote its result on failure", s ? s : "(null)");
        cr_assert_str_eq(e, msg, "duration_parse(\"%s\")", s ? s : "(null)");
}

#define YEAR_USEC (UINT64_C(365) * 24 * 3600 * USEC_PER_SEC)

Test(duration, parses_each_unit) {
        expect_duration("250us", 250);
        expect_duration("20ms", 20 * USEC_PER_MSEC);
        expect_duration("45s", 45 * USEC_PER_SEC);
        expect_duration("5m", 300 * USEC_PER_SEC);
        expect_duration("2h", 7200 * USEC_PER_SEC);
        expect_duration("0s", 0);
}

Test(duration, treats_a_bare_number_as_seconds) {
        expect_duration("45", 45 * USEC_PER_SEC);
        expect_duration("0.5", 500000);
        expect_duration("0", 0);
}

Test(duration, parses_fractions_exactly) {
        expect_duration("0.5s", 500000);
        expect_duration("1.5ms", 1500);
        expect_duration("0.25h", 900 * USEC_PER_SEC);
        expect_duration("0.000001s", 1);
        expect_duration("1.5 m", 90 * USEC_PER_SEC);
}

Test(duration, rejects_sub_microsecond_precision) {
        expect_duration_error("1.5us", -EINVAL, "not a whole number of microseconds");
        expect_duration_error("0.0000001s", -EINVAL, "not a whole number of microseconds");
}

Test(duration, matches_units_case_sensitively) {
        static const char msg[] = "unknown unit suffix (use us, ms, s, m or h)";

        expect_duration_error("5S", -EINVAL, msg);
        expect_duration_error("5M", -EINVAL, msg);
        expect_duration_error("5d", -EINVAL, msg);
        expect_duration_error("5min", -EINVAL, msg);
        expect_duration_error("5 seconds", -EINVAL, msg);
}

Test(duration, rejects_negative_naming_it) {
        expect_duration_error("-1s", -EINVAL, "negative durations are not allowed");
        expect_duration_error("-0.5", -EINVAL, "negative durations are not allowed");
}

Test(duration, accepts_up_to_one_year) {
        expect_duration("8760h", YEAR_USEC);
        expect_duration("31536000", YEAR_USEC);
        expect_duration("525600m", YEAR_USEC);
}

Test(duration, rejects_more_than_a_year_as_too_large) {
        expect_duration_error("8761h", -ERANGE, "too large (at most one year)");
        expect_duration_error("31536000.000001s", -ERANGE, "too large (at most one year)");
        expect_duration_error("99999999999999999999999h", -ERANGE, "too large (at most one year)");
}

Test(duration, rejects_malformed_text) {
        expect_duration_error("", -EINVAL, "empty");
        expect_duration_error(NULL, -EINVAL, "empty");
        expect_duration_error("s", -EINVAL, "not a number");
        expect_duration_error("1.s", -EINVAL, "not a number");
        expect_duration_error("5s!", -EINVAL, "trailing characters after the unit");
        expect_duration_error("5s5", -EINVAL, "trailing characters after the unit");
        expect_duration_error("5/s", -EINVAL, "trailing characters after the number");
        expect_duration_error("5  s", -EINVAL, "unexpected space (at most one may separate the number and the unit)");
}

static void expect_duration_text(uint64_t usec, const char *text) {
        char buf[SIZE_FORMAT_MAX];

        cr_assert_str_eq(duration_format(usec, buf), text, "duration_format(%" PRIu64 ")", usec);
}

Test(duration, formats_exactly_in_the_largest_dividing_unit) {
        expect_duration_text(0, "0s");
        expect_duration_text(1, "1us");
        expect_duration_text(1500, "1500us");
        expect_duration_text(2000, "2ms");
        expect_duration_text(1500000, "1500ms");
        expect_duration_text(45000000, "45s");
        expect_duration_text(60 * USEC_PER_SEC, "1m");
        expect_duration_text(90 * USEC_PER_SEC, "90s");
        expect_duration_text(3600 * USEC_PER_SEC, "1h");
        expect_duration_text(5400 * USEC_PER_SEC, "90m");
        expect_duration_text(UINT64_MAX, "18446744073709551615us");
}

Test(duration, format_round_trips_through_parse) {
        static const uint64_t values[] = {
                0, 1, 999, 1000, 1001, 999999, USEC_PER_SEC, 1500000, 59 * USEC_PER_SEC, 60 * USEC_PER_SEC,
                61 * USEC_PER_SEC, 3600 * USEC_PER_SEC, 86400 * USEC_PER_SEC, YEAR_USEC - 1, YEAR_USEC,
        };
        uint64_t x = 88172645463325252;

        for (size_t i = 0; i < ELEMENTSOF(values) + 5000; i++) {
                char buf[SIZE_FORMAT_MAX];
                uint64_t v, back = UNTOUCHED;
                const char *e = NULL;

                if (i < ELEMENTSOF(values))
                        v = values[i];
                else {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        /* Mostly round values, as configs hold, plus arbitrary ones. */
                        v = (x % (YEAR_USEC + 1)) / (i % 2 ? 1 : USEC_PER_SEC) * (i % 2 ? 1 : USEC_PER_SEC);
                }
                duration_format(v, buf);
                cr_assert_eq(duration_parse(buf, &back, &e), 0, "\"%s\" does not parse: %s", buf, e);
                cr_assert_eq(back, v, "\"%s\" parses to %" PRIu64 ", formatted from %" PRIu64, buf, back, v);
        }
}

static void expect_percent(const char *s, double lo, double hi, double want) {
        const char *e = NULL;
        double v = -12345;
        int r = percent_parse(s, lo, hi, &v, &e);

        cr_assert_eq(r, 0, "percent_parse(\"%s\") = %d (%s)", s, r, e ? e : "no message");
        cr_assert_eq(v, want, "percent_parse(\"%s\") = %g, expected %g", s, v, want);
}

static void expect_percent_error(const char *s, double lo, double hi, int err, const char *msg) {
        const char *e = NULL;
        double v = -12345;
        int r = percent_parse(s, lo, hi, &v, &e);

        cr_assert_eq(r, err, "percent_parse(\"%s\") = %d, expected %d", s ? s : "(null)", r, err);
        cr_assert_eq(v, -12345, "percent_parse(\"%s\") wrote its result on failure", s ? s : "(null)");
        cr_assert_str_eq(e, msg, "percent_parse(\"%s\")", s ? s : "(null)");
}

Test(percent, parses_with_or_without_the_sign) {
        expect_percent("20", 0, 100, 20);
        expect_percent("20%", 0, 100, 20);
        expect_percent("2.5%", 0, 100, 2.5);
        expect_percent("20 %", 0, 100, 20);
        expect_percent(" 0.1 ", 0, 100, 0.1);
        expect_percent("0", 0, 100, 0);
        expect_percent("2000%", 5, 2000, 2000);
}

Test(percent, includes_both_bounds) {
        expect_percent("5", 5, 2000, 5);
        expect_percent("2000", 5, 2000, 2000);
}

Test(percent, rejects_values_outside_the_range) {
        expect_percent_error("4.9", 5, 2000, -ERANGE, "below the allowed minimum");
        expect_percent_error("2000.1%", 5, 2000, -ERANGE, "above the allowed maximum");
        expect_percent_error("-5%", 0, 100, -ERANGE, "below the allowed minimum");
}

Test(percent, allows_negative_values_when_the_range_does) {
        expect_percent("-5", -10, 10, -5);
        expect_percent("-0.5%", -10, 10, -0.5);
}

Test(percent, reads_negative_zero_as_zero) {
        double v = -1;

        cr_assert_eq(percent_parse("-0", -1, 1, &v, NULL), 0);
        cr_assert_eq(v, 0);
        cr_assert_not(signbit(v));
}

Test(percent, rejects_malformed_text) {
        expect_percent_error("", 0, 100, -EINVAL, "empty");
        expect_percent_error(NULL, 0, 100, -EINVAL, "empty");
        expect_percent_error("abc", 0, 100, -EINVAL, "not a number");
        expect_percent_error("%", 0, 100, -EINVAL, "not a number");
        expect_percent_error("+5", 0, 100, -EINVAL, "not a number");
        expect_percent_error("nan", 0, 100, -EINVAL, "not a number");
        expect_percent_error("inf", 0, 100, -EINVAL, "not a number");
        expect_percent_error("20%%", 0, 100, -EINVAL, "trailing characters after '%'");
        expect_percent_error("1e2", 0, 100, -EINVAL, "trailing characters after the number (use e.g. 20 or 20%)");
        expect_percent_error("20 percent", 0, 100, -EINVAL,
                             "trailing characters after the number (use e.g. 20 or 20%)");
}

Test(percent, converts_like_strtod_in_the_c_locale) {
        expect_percent("0.1", 0, 100, 0.1);
        expect_percent("12.3456789", 0, 100, 12.3456789);
        expect_percent("0.10000000000000001", 0, 100, 0.1);
        expect_percent("33.333333333333336", 0, 100, 100.0 / 3);
}
