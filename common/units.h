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
 * ambiguous: bytes to some tools, KiB to virsh). The result must be a whole number of KiB.
 * Returns 0 and sets *ret_kib on success. On failure returns -EINVAL or -ERANGE, leaves
 * *ret_kib untouched and points *ret_error (if non-NULL) at a static message that names what
 * is wrong ("empty", "negative", "unknown suffix 'X'", "trailing characters after the unit",
 * "too large", ...). */
int size_parse(const char *s, uint64_t *ret_kib, const char **ret_error);

/* Longest text size_format_* writes, with the NUL. */
#define SIZE_FORMAT_MAX 32

/* Formats exactly, in the largest binary unit that divides the value: 524288 -> "512MiB",
 * 1572864 -> "1536MiB", 0 -> "0KiB". size_parse() reads the text back to the same value.
 * Returns buf. */
char *size_format_exact(uint64_t kib, char buf[static SIZE_FORMAT_MAX]);

/* Formats for people, rounded to one decimal in the largest unit that keeps the value >= 1:
 * 1572864 -> "1.5GiB", 1000 -> "1000KiB", 1945600 -> "1.9GiB". Returns buf. */
char *size_format_human(uint64_t kib, char buf[static SIZE_FORMAT_MAX]);

/* Parses a duration: a number with a unit "us", "ms", "s", "m", "h", or a bare number of
 * seconds ("45" == "45s"). Fractions allowed ("0.5s"). Same error contract as size_parse();
 * the result is at most one year. */
int duration_parse(const char *s, uint64_t *ret_usec, const char **ret_error);

/* Formats exactly in the largest unit that divides the value: 45000000 -> "45s",
 * 1500000 -> "1500ms", 0 -> "0s". Returns buf. */
char *duration_format(uint64_t usec, char buf[static SIZE_FORMAT_MAX]);

/* Parses a percentage "20" or "20%" or "2.5%" into a double in [lo, hi]. Same error contract. */
int percent_parse(const char *s, double lo, double hi, double *ret, const char **ret_error);
