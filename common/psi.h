/* Pressure stall information (/proc/pressure/{memory,cpu,io}, cgroup *.pressure).
 * Format (Documentation/accounting/psi.rst):
 *   some avg10=0.00 avg60=0.00 avg300=0.00 total=0
 *   full avg10=0.00 avg60=0.00 avg300=0.00 total=0
 * The "full" line is absent for cpu on kernels before 5.13. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct psi_line {
        double avg10, avg60, avg300; /* percent of wall time, 0-100 */
        uint64_t total_usec;         /* cumulative stall time */
};

struct psi {
        struct psi_line some;
        struct psi_line full;
        bool has_full;
};

/* Parses the text of a pressure file. Unknown keys on a line are ignored (newer kernels may add
 * some); a missing "some" line, a missing avg10/avg60/avg300/total, a value out of 0-100 or
 * malformed numbers give -EINVAL, and so do a line that is neither "some" nor "full", a
 * repeated line or key, and a word without '=' (none of which the kernel writes). Returns 0
 * and fills *ret on success; has_full is false and full all zero when there is no "full". */
int psi_parse(const char *text, struct psi *ret);

/* Reads root + "/proc/pressure/<resource>" ("memory", "cpu", "io") and parses it. */
int psi_read(const char *root, const char *resource, struct psi *ret);
