/* File reading under an injectable root, so collectors read fixture trees in tests
 * (tests/fixtures/proc/<scenario>/...) and "/" in production. */
#pragma once

#include <stddef.h>

/* Reads root + path into a NUL-terminated heap buffer. With a root, path is absolute
 * ("/proc/meminfo" under "tests/fixtures/proc/idle"); with root NULL or "", path is used as
 * given, relative to the working directory or absolute (files named on a command line). Files larger than max_bytes are refused with -EFBIG (proc files
 * are small; a huge one means we are reading the wrong thing). Returns 0 and fills *ret
 * (caller frees) and *ret_len (may be NULL) on success, -errno on failure. */
int read_file_at(const char *root, const char *path, size_t max_bytes, char **ret, size_t *ret_len);

/* Writes text[0..len) to path whole or not at all: into path + ".new" (0600, not through a
 * symlink), synced, then renamed over path, so a crash leaves the old file or the new one, never
 * half of one. Returns 0 or -errno (the temporary file removed). */
int write_file_atomic(const char *path, const char *text, size_t len);
