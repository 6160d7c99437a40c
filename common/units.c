#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/units.h"

/* One year of 365 days: longer than any interval tide has a use for, and small enough that
 * sums of a few durations cannot overflow. */
#define DURATION_MAX_USEC (UINT64_C(365) * 24 * 3600 * USEC_PER_SEC)

/* The text shared by sizes, durations and percentages: "<number>[ ]<suffix>", where
 * number is digits with an optional '.' and at least one digit after it. The parts are kept
 * as text/integers so that sizes and durations are computed exactly, never through double. */
struct number {
        uint64_t int_part; /* saturates at UINT64_MAX, see int_overflow */
        bool int_overflow;
        const char *frac;  /* the digits after '.', n_frac of them */
        size_t n_frac;
        const char *start, *end_of_number; /* for strtod() in percent_parse() */
        const char *suffix, *end;          /* suffix is [suffix, end), may be empty */
};

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool is_alpha(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Splits s into number and suffix. Surrounding blanks are dropped; one blank may separate
 * the number from the suffix ("512 MiB"), since that is how people write sizes in prose and
 * it is unambiguous. Two blanks or a blank inside the number ("1 024M") usually mean a typo,
 * so they are refused. */
static int number_scan(const char *s, const char *what_negative, struct number *ret, const char **ret_error) {
        struct number n = { 0 };
        const char *p, *end;

        if (!s) {
                *ret_error = "empty";
                return -EINVAL;
        }

        p = s;
        while (is_blank(*p))
                p++;
        end = p + strlen(p);
        while (end > p && is_blank(end[-1]))
                end--;
        if (p == end) {
                *ret_error = "empty";
                return -EINVAL;
        }

        n.start = p;
        if (*p == '-') {
                if (p + 1 < end && (is_digit(p[1]) || p[1] == '.')) {
                        if (what_negative) {
                                *ret_error = what_negative;
                                return -EINVAL;
                        }
                        p++; /* kept in [start, end_of_number) for strtod() */
                } else {
                        *ret_error = "not a number";
                        return -EINVAL;
                }
        }

        if (p == end || !is_digit(*p)) {
                *ret_error = "not a number";
                return -EINVAL;
        }
        for (; p < end && is_digit(*p); p++) {
                unsigned d = (unsigned) (*p - '0');

                if (n.int_part > (UINT64_MAX - d) / 10) {
                        n.int_overflow = true;
                        n.int_part = UINT64_MAX;
                } else if (!n.int_overflow)
                        n.int_part = n.int_part * 10 + d;
        }

        if (p < end && *p == '.') {
                p++;
                n.frac = p;
                while (p < end && is_digit(*p))
                        p++;
                n.n_frac = (size_t) (p - n.frac);
                if (n.n_frac == 0) {
                        *ret_error = "not a number";
                        return -EINVAL;
                }
        }
        n.end_of_number = p;

        /* "1.2.3G", "1,5G" */
        if (p < end && (*p == '.' || *p == ',')) {
                *ret_error = "not a number";
                return -EINVAL;
        }

        if (p < end && is_blank(*p)) {
                p++;
                if (p < end && (is_blank(*p) || is_digit(*p))) {
                        *ret_error = "unexpected space (at most one may separate the number and the unit)";
                        return -EINVAL;
                }
        }

        n.suffix = p;
        n.end = end;
        *ret = n;
        return 0;
}

/* Computes (int_part + 0.frac) * mult exactly. The fraction is multiplied digit by digit from
 * the last one, as on paper; every digit that falls below the units place must be 0, else the
 * result is not whole. Works for any number of fraction digits ("0.000000000931322574615478515625T"
 * is exactly 1 KiB) and never overflows: each step stays below 10 * mult.
 * Returns 0, -ERANGE when the result exceeds max, -EDOM when it is not a whole number. */
static int number_scale(const struct number *n, uint64_t mult, uint64_t max, uint64_t *ret) {
        uint64_t frac = 0, carry = 0;

        if (n->int_overflow || n->int_part > max / mult)
                return -ERANGE;

        for (size_t i = n->n_frac; i > 0; i--) {
                uint64_t t = (uint64_t) (n->frac[i - 1] - '0') * mult + carry;

                if (t % 10 != 0)
                        return -EDOM;
                carry = t / 10;
        }
        frac = carry; /* < mult, since 0.frac < 1 */

        if (n->int_part * mult > max - frac)
                return -ERANGE;
        *ret = n->int_part * mult + frac;
        return 0;
}

struct unit {
        const char *name;
        uint64_t mult;
};

/* libvirt's suffixes (virScaleInteger), matched case-insensitively as libvirt does: the binary
 * ones are what people mean by "4G"; the decimal ones exist because disk vendors and some
 * tools use them, and a user copying such a figure must get what it says. */
static const struct unit size_units[] = {
        { "B", 1 },
        { "K", UINT64_C(1) << 10 },
        { "KiB", UINT64_C(1) << 10 },
        { "M", UINT64_C(1) << 20 },
        { "MiB", UINT64_C(1) << 20 },
        { "G", UINT64_C(1) << 30 },
        { "GiB", UINT64_C(1) << 30 },
        { "T", UINT64_C(1) << 40 },
        { "TiB", UINT64_C(1) << 40 },
        { "KB", UINT64_C(1000) },
        { "MB", UINT64_C(1000000) },
        { "GB", UINT64_C(1000000000) },
        { "TB", UINT64_C(1000000000000) },
};

/* Case-sensitive on purpose: "m" is minutes and "M" would read as months to some. */
static const struct unit duration_units[] = {
        { "us", 1 },
        { "ms", USEC_PER_MSEC },
        { "s", USEC_PER_SEC },
        { "m", 60 * USEC_PER_SEC },
        { "h", 3600 * USEC_PER_SEC },
};

static const struct unit *unit_find(const struct unit *units, size_t n_units, const char *name, size_t len,
                                    bool ignore_case) {
        for (size_t i = 0; i < n_units; i++) {
                if (strlen(units[i].name) != len)
                        continue;
                if ((ignore_case ? strncasecmp(units[i].name, name, len) : strncmp(units[i].name, name, len)) == 0)
                        return &units[i];
        }
        return NULL;
}

/* Splits the suffix into a run of letters (the unit) and what follows it. */
static int suffix_unit(const struct number *n, const struct unit *units, size_t n_units, bool ignore_case,
                       const char *unknown_msg, const struct unit **ret, const char **ret_error) {
        const char *p = n->suffix;

        while (p < n->end && is_alpha(*p))
                p++;
        if (p == n->suffix) {
                /* "512%", "512/s": nothing that could be a unit */
                *ret_error = "trailing characters after the number";
                return -EINVAL;
        }
        *ret = unit_find(units, n_units, n->suffix, (size_t) (p - n->suffix), ignore_case);
        if (!*ret) {
                *ret_error = unknown_msg;
                return -EINVAL;
        }
        if (p != n->end) {
                *ret_error = "trailing characters after the unit";
                return -EINVAL;
        }
        return 0;
}

int size_parse(const char *s, uint64_t *ret_kib, const char **ret_error) {
        const struct unit *u;
        struct number n;
        const char *error = NULL;
        uint64_t bytes;
        int r;

        r = number_scan(s, "negative sizes are not allowed", &n, &error);
        if (r < 0)
                goto fail;
        if (n.suffix == n.end) {
                /* A bare number means bytes to some tools and KiB to virsh: refuse to guess. */
                error = "missing unit (use K, M, G or T, e.g. 512MiB)";
                r = -EINVAL;
                goto fail;
        }
        r = suffix_unit(&n, size_units, ELEMENTSOF(size_units), true,
                        "unknown unit suffix (use K, KiB, M, MiB, G, GiB, T, TiB, KB, MB, GB, TB or B)", &u, &error);
        if (r < 0)
                goto fail;

        /* In bytes, so that "1.5KB" and "2048B" are exact too; the byte limit is 2^60, well
         * inside uint64_t. */
        r = number_scale(&n, u->mult, SIZE_MAX_KIB * 1024, &bytes);
        if (r == -ERANGE) {
                error = "too large";
                goto fail;
        }
        if (r < 0 || bytes % 1024 != 0) {
                error = "not a whole number of KiB";
                r = -EINVAL;
                goto fail;
        }

        *ret_kib = bytes / 1024;
        return 0;

fail:
        if (ret_error)
                *ret_error = error;
        return r;
}

static const char *const binary_names[] = { "KiB", "MiB", "GiB", "TiB" };

char *size_format_exact(uint64_t kib, char buf[static SIZE_FORMAT_MAX]) {
        size_t i = 0;

        if (kib != 0)
                while (i + 1 < ELEMENTSOF(binary_names) && kib % 1024 == 0) {
                        kib /= 1024;
                        i++;
                }
        snprintf(buf, SIZE_FORMAT_MAX, "%" PRIu64 "%s", kib, binary_names[i]);
        return buf;
}

char *size_format_human(uint64_t kib, char buf[static SIZE_FORMAT_MAX]) {
        uint64_t unit = 1, whole, tenths;
        size_t i = 0;

        while (i + 1 < ELEMENTSOF(binary_names) && kib / unit >= 1024) {
                unit *= 1024;
                i++;
        }

        /* Integer rounding (half up) so that the text never depends on double precision. */
        whole = kib / unit;
        tenths = (kib % unit * 10 + unit / 2) / unit;
        if (tenths == 10) {
                whole++;
                tenths = 0;
                /* 1048575 KiB rounds to 1024.0 MiB: say 1GiB instead. */
                if (whole == 1024 && i + 1 < ELEMENTSOF(binary_names)) {
                        whole = 1;
                        i++;
                }
        }

        if (tenths == 0)
                snprintf(buf, SIZE_FORMAT_MAX, "%" PRIu64 "%s", whole, binary_names[i]);
        else
                snprintf(buf, SIZE_FORMAT_MAX, "%" PRIu64 ".%" PRIu64 "%s", whole, tenths, binary_names[i]);
        return buf;
}

int duration_parse(const char *s, uint64_t *ret_usec, const char **ret_error) {
        const struct unit *u = &duration_units[2]; /* a bare number is seconds */
        struct number n;
        const char *error = NULL;
        uint64_t usec;
        int r;

        r = number_scan(s, "negative durations are not allowed", &n, &error);
        if (r < 0)
                goto fail;
        if (n.suffix != n.end) {
                r = suffix_unit(&n, duration_units, ELEMENTSOF(duration_units), false,
                                "unknown unit suffix (use us, ms, s, m or h)", &u, &error);
                if (r < 0)
                        goto fail;
        }

        r = number_scale(&n, u->mult, DURATION_MAX_USEC, &usec);
        if (r == -ERANGE) {
                error = "too large (at most one year)";
                goto fail;
        }
        if (r < 0) {
                error = "not a whole number of microseconds";
                r = -EINVAL;
                goto fail;
        }

        *ret_usec = usec;
        return 0;

fail:
        if (ret_error)
                *ret_error = error;
        return r;
}

char *duration_format(uint64_t usec, char buf[static SIZE_FORMAT_MAX]) {
        const struct unit *u = &duration_units[2];

        if (usec != 0)
                for (size_t i = ELEMENTSOF(duration_units); i > 0; i--)
                        if (usec % duration_units[i - 1].mult == 0) {
                                u = &duration_units[i - 1];
                                break;
                        }
        snprintf(buf, SIZE_FORMAT_MAX, "%" PRIu64 "%s", usec / u->mult, u->name);
        return buf;
}

int percent_parse(const char *s, double lo, double hi, double *ret, const char **ret_error) {
        _cleanup_free_ char *copy = NULL;
        const char *error = NULL;
        struct number n;
        locale_t c_locale;
        double v;
        int r;

        r = number_scan(s, NULL, &n, &error);
        if (r < 0)
                goto fail;
        if (n.suffix != n.end && !(*n.suffix == '%' && n.suffix + 1 == n.end)) {
                error = n.suffix[0] == '%' ? "trailing characters after '%'"
                                           : "trailing characters after the number (use e.g. 20 or 20%)";
                r = -EINVAL;
                goto fail;
        }

        /* The grammar is already checked, so strtod() only converts, and converts with correct
         * rounding; the "C" locale keeps '.' the decimal point whatever the program set. */
        copy = strndup(n.start, (size_t) (n.end_of_number - n.start));
        if (!copy) {
                r = -ENOMEM;
                error = "out of memory";
                goto fail;
        }
        c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t) 0);
        if (c_locale == (locale_t) 0) {
                r = -errno;
                error = "out of memory";
                goto fail;
        }
        errno = 0;
        v = strtod_l(copy, NULL, c_locale);
        r = errno;
        freelocale(c_locale);
        if (r == ERANGE && isinf(v)) {
                error = "too large";
                r = -ERANGE;
                goto fail;
        }
        if (v == 0.0)
                v = 0.0; /* "-0" is 0, not a negative zero that prints as "-0" */

        if (v < lo) {
                error = "below the allowed minimum";
                r = -ERANGE;
                goto fail;
        }
        if (v > hi) {
                error = "above the allowed maximum";
                r = -ERANGE;
                goto fail;
        }

        *ret = v;
        return 0;

fail:
        if (ret_error)
                *ret_error = error;
        return r;
}
