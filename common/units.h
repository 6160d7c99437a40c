/* Sizes and durations at the edges (config files, CLI, JSON scenarios).
 *
 * Inside tide every size is KiB (uint64_t, names end in _kib) and every time is microseconds
 * (names end in _usec). These functions are the only place human text is turned into those
 * units and back. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Largest size accepted anywhere: 1 EiB. Far above any host, far below overflow in the
 * arithmetic that follows (weights x sizes, sums over thousands of VMs). */
#define SIZE_MAX_KIB (UINT64_C(1) << 50)

/* Parses a size such as "512M", "512MiB", "1.5G", "2048K", "4g", "1T".
 * Suffixes follow libvirt: K/KiB, M/MiB, G/GiB, T/TiB are powers of 1024 (case-insensitive);
 * KB, MB, GB, TB are powers of 1000; B is bytes. A unit is required (a bare number is
 * ambiguous: bytes to some tools, KiB to virsh), even for 0. The result must be a whole number
 * of KiB ("1.3M" and "1GB" = 976562.5 KiB are refused; "2GB" is fine); it is computed exactly,
 * with any number of fraction digits, never through floating point.
 * Text: blanks (space, tab) around the value are ignored; at most one blank may separate the
 * number and the unit ("512 MiB"); the number is digits with an optional '.' and at least one
 * digit after it (no sign, no exponent, no ".5").
 * Returns 0 and sets *ret_kib on success. On failure returns -EINVAL (or -ERANGE for "too
 * large": above SIZE_MAX_KIB), leaves *ret_kib untouched and points *ret_error (if non-NULL)
 * at a static string that names what is wrong: "empty", "negative sizes are not allowed",
 * "not a number", "missing unit (...)", "unknown unit suffix (use K, KiB, ...)",
 * "trailing characters after the number", "trailing characters after the unit",
 * "unexpected space (...)", "not a whole number of KiB", "too large". Callers show the input
 * next to the message; the message does not repeat it. */
int size_parse(const char *s, uint64_t *ret_kib, const char **ret_error);

/* Longest text size_format_* writes, with the NUL. */
#define SIZE_FORMAT_MAX 32

/* Formats exactly, in the largest binary unit (KiB..TiB) that divides the value:
 * 524288 -> "512MiB", 1572864 -> "1536MiB", 0 -> "0KiB". size_parse() reads the text back to
 * the same value (for values up to SIZE_MAX_KIB). Returns buf. */
char *size_format_exact(uint64_t kib, char buf[static SIZE_FORMAT_MAX]);

/* Formats for people, rounded (half up) to one decimal in the largest unit (KiB..TiB) that
 * keeps the value >= 1; a ".0" is left out: 1572864 -> "1.5GiB", 1000 -> "1000KiB",
 * 1945600 -> "1.9GiB", 4194304 -> "4GiB", 1048575 -> "1GiB". Returns buf. */
char *size_format_human(uint64_t kib, char buf[static SIZE_FORMAT_MAX]);

/* Parses a duration: a number with a unit "us", "ms", "s", "m", "h" (case-sensitive: "M" is
 * not minutes), or a bare number of seconds ("45" == "45s"). Fractions allowed ("0.5s") if the
 * result is a whole number of microseconds. Same text rules and error contract as
 * size_parse(); the result is at most one year (365 days), else -ERANGE. */
int duration_parse(const char *s, uint64_t *ret_usec, const char **ret_error);

/* Formats exactly in the largest unit that divides the value: 45000000 -> "45s",
 * 1500000 -> "1500ms", 0 -> "0s". duration_parse() reads it back (up to one year). Returns buf. */
char *duration_format(uint64_t usec, char buf[static SIZE_FORMAT_MAX]);

/* Parses a percentage "20" or "20%" or "2.5%" into a double in [lo, hi]. Same text rules and
 * error contract as size_parse(), except that a leading '-' is accepted (the range decides) and
 * out-of-range values give -ERANGE with "below the allowed minimum" / "above the allowed
 * maximum". No exponent ("1e2"), "nan" or "inf". Conversion is correctly rounded, in the "C"
 * locale whatever the program's locale. */
int percent_parse(const char *s, double lo, double hi, double *ret, const char **ret_error);
