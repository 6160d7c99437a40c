/* Host and guest memory counters, in KiB, from /proc/meminfo. */
#pragma once

#include <stdint.h>

struct meminfo {
        uint64_t total_kib;        /* MemTotal */
        uint64_t free_kib;         /* MemFree */
        uint64_t available_kib;    /* MemAvailable */
        uint64_t buffers_kib;      /* Buffers */
        uint64_t cached_kib;       /* Cached */
        uint64_t swap_total_kib;   /* SwapTotal */
        uint64_t swap_free_kib;    /* SwapFree */
        uint64_t swap_cached_kib;  /* SwapCached: in RAM and still in swap (free to switch off) */
        uint64_t committed_as_kib; /* Committed_AS */
};

/* Parses the text of /proc/meminfo. MemTotal, MemFree and MemAvailable are required (tide does
 * not run on kernels older than 3.14); the others default to 0 when absent. Values must carry
 * the " kB" unit. Lines for fields not in struct meminfo are ignored whatever they hold.
 * Returns 0 and fills *ret, or -EINVAL for a malformed or repeated field of struct meminfo or a
 * missing required one. */
int meminfo_parse(const char *text, struct meminfo *ret);

/* Reads root + "/proc/meminfo" and parses it (for fixtures and guests' files). */
int meminfo_read(const char *root, struct meminfo *ret);

/* Reads this machine's live counters through libproc2. Returns 0 or -errno. */
int meminfo_read_live(struct meminfo *ret);

/* The same through a libproc2 handle the caller keeps (procps_meminfo_new), for a program that
 * reads every second: one select, so all fields describe one instant and a failure is an error,
 * not a 0. Returns 0, -errno, or -EIO when the library read nothing useful (MemTotal 0). */
struct meminfo_info;
int meminfo_read_info(struct meminfo_info *info, struct meminfo *ret);
