/* Where tide-agent's samples come from: the live kernel through libproc2 (meminfo, vmstat) and
 * /proc/pressure/memory, or, with --root, the text of the same files under a fixture tree
 * (libproc2 only ever reads the real /proc). */
#pragma once

#include "guest-agent/collect.h"

struct meminfo_info;
struct vmstat_info;

struct agent_source {
        const char *root; /* NULL: live */
        struct meminfo_info *meminfo;
        struct vmstat_info *vmstat;
};

/* root NULL or "": the live kernel. The libproc2 handles are made once and kept: each read then
 * costs one lseek+read per file instead of a new parse context. Returns 0 or -errno. */
int agent_source_open(struct agent_source *src, const char *root);
void agent_source_close(struct agent_source *src);

/* Takes one sample. Returns 0 or -errno when memory figures could not be read (nothing to
 * report). PSI and the fault counter are optional: when they cannot be read the sample says so
 * (has_psi / has_pgmajfault false) and *ret_psi_error / *ret_vmstat_error get why (-errno, 0 when
 * read). */
int agent_source_read(struct agent_source *src, struct agent_sample *ret, int *ret_psi_error, int *ret_vmstat_error);
