/* Smart Paging's files: one swap file per paging domain in the paging directory, named by the
 * domain's UUID ("<uuid>.swap"), mode 0600, fully allocated, with a swap signature, switched on
 * below every other swap area, and found again in /proc/swaps after a tided restart.
 *
 * Linux swap areas are host-wide: once a paging file is on, the kernel may page out any
 * process to it under host-wide pressure, not only the domain it was made for. tide keeps
 * that rare (the file gets the lowest priority, so it is used only when every other swap area
 * is full, and it lives only while its domain boots) and switches it off as soon as the domain
 * has come down (docs/POLICY.md "Smart Paging").
 *
 * paging_swaps_parse() is pure; the rest does file and system-call I/O and is what tided's
 * manager calls (paging_file_off() from a worker thread: swapoff can take minutes). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAGING_PATH_MAX 512
#define PAGING_ERR_MAX 256

/* One line of /proc/swaps. */
struct paging_swap {
        char path[PAGING_PATH_MAX]; /* unescaped (/proc/swaps writes a space as \040) */
        bool is_file;               /* "file", not "partition" */
        uint64_t size_kib, used_kib;
        int priority;
};

/* Parses /proc/swaps text into out[0..max): *ret_n entries (lines past max are counted in
 * *ret_n but not stored). Returns 0, or -EINVAL for text that is not /proc/swaps (no header, a
 * malformed line), naming the line in err. */
int paging_swaps_parse(const char *text, struct paging_swap *out, size_t max, size_t *ret_n, char *err,
                       size_t errlen);
/* Reads root + /proc/swaps (root NULL or "": the real one) and parses it. */
int paging_swaps_read(const char *root, struct paging_swap *out, size_t max, size_t *ret_n, char *err,
                      size_t errlen);

/* dir/<uuid>.swap into buf. -ENAMETOOLONG when it does not fit, -EINVAL for a uuid that is not
 * a UUID (a name from libvirt still must not walk out of the directory). */
int paging_file_path(const char *dir, const char *uuid, char *buf, size_t len);
/* The UUID a path in dir names ("<dir>/<uuid>.swap"), into uuid[37]; false when it is not one of
 * tide's paging files. */
bool paging_file_uuid(const char *dir, const char *path, char uuid[static 37]);

/* Makes dir (0700; the parents it makes 0755) when missing and checks that tide can write there. Sets
 * *ret_on_root when it is on the root filesystem (Hyper-V's analyzer warns of paging files on
 * the system disk: a full root filesystem takes the host down). Returns 0 or -errno (err says
 * what failed). */
int paging_dir_prepare(const char *dir, bool *ret_on_root, char *err, size_t errlen);

/* Makes path a swap area of kib (rounded up to whole pages, at least 10 pages, as mkswap wants):
 * created 0600 (an old file of that name is replaced), every block allocated (fallocate, and
 * zeros written where it leaves holes or is not supported, since swapon refuses a file with
 * holes), a swap signature (the version-1 header of the kernel's union swap_header:
 * include/linux/swap.h), fsync'd. On failure nothing is left behind. Returns 0 or -errno
 * (ENOSPC: the directory's filesystem is full; err says which step failed). */
int paging_file_make(const char *path, uint64_t kib, char *err, size_t errlen);
/* paging_file_make(), then switches it on with the kernel's next automatic priority, which is
 * below every area switched on before it (an explicit priority cannot go below 0, the automatic
 * ones start at -2 and go down). On failure nothing is left behind. */
int paging_file_on(const char *path, uint64_t kib, char *err, size_t errlen);

/* Switches path off and removes it. May take as long as paging the file's pages back in.
 * -EINVAL from swapoff (it is not on) is not an error: it is only removed, with its record
 * (paging_record_write()). The domain's memory
 * limits must be lifted first: a limited domain whose pages come back is OOM-killed. Returns 0
 * or -errno (the file is kept when swapoff fails). */
int paging_file_off(const char *path, char *err, size_t errlen);

/* Removes the paging files in dir that are not on (not in swaps[0..n)), and the records of files
 * that are not on: what a tided killed between making a file and switching it on, or while
 * removing one, left. Returns how many paging files, or -errno when dir cannot be read (a
 * missing dir: 0). */
int paging_dir_sweep(const char *dir, const struct paging_swap *swaps, size_t n);

/* What a tided started after a crash must know of a paging file it finds on, and cannot read
 * back from libvirt: the domain's own limits before tide set its own (an operator's hard_limit
 * is put back on release, not dropped), and the startup and RAM grant the plan paged it with
 * (so the grant is still raised as memory frees). Kept next to the file as "<uuid>.state",
 * 0600, written whole (a temporary file renamed over it), removed with the file. */
struct paging_record {
        uint64_t orig_hard_limit_kib;      /* PAGING_NO_LIMIT: none was set */
        uint64_t orig_swap_hard_limit_kib; /* PAGING_NO_LIMIT: none was set */
        uint64_t startup_kib, grant_kib;
};
#define PAGING_NO_LIMIT UINT64_MAX

/* The record's text (INI: "key = <n>KiB" a line, "none" for no limit) into buf. Returns its
 * length, or -ENOBUFS when it does not fit. */
int paging_record_format(const struct paging_record *r, char *buf, size_t len);
/* Parses a record's text: every key once, nothing else, sizes as size_parse() takes them.
 * Returns 0, or -EINVAL naming the line and key in err. Pure. */
int paging_record_parse(const char *text, struct paging_record *r, char *err, size_t errlen);
/* The record for path (a paging file: "<dir>/<uuid>.swap") is "<dir>/<uuid>.state". */
int paging_record_write(const char *path, const struct paging_record *r, char *err, size_t errlen);
/* Returns 0, -ENOENT when there is none, -EINVAL for one that does not parse (err says why), or
 * another -errno. */
int paging_record_read(const char *path, struct paging_record *r, char *err, size_t errlen);
