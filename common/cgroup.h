/* The memory limit of the cgroup a libvirt partition maps to, read under an injectable root
 * (normally /sys/fs/cgroup; tests pass fixture trees under tests/fixtures/cgroup/).
 *
 * libvirt names partitions like "/machine" or "/machine/tenant" (<resource><partition>); their
 * cgroup depends on how libvirt drives cgroups:
 *   without systemd: machine, machine/tenant.partition   (libvirt appends ".partition" to
 *                     every component below the first; vircgroup.c, virCgroupPartitionEscape)
 *   with systemd:    machine.slice, machine.slice/machine-tenant.slice (virSystemdMakeSliceName)
 * and on the hierarchy: cgroup v1 under <root>/memory/, v2 directly under <root>/. The first
 * directory that exists is used. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define CGROUP_PATH_MAX 512

/* A v1 limit this large is the kernel's "no limit" (PAGE_COUNTER_MAX pages, rounded). */
#define CGROUP_V1_UNLIMITED_BYTES (UINT64_C(1) << 62)

#define CGROUP_UNLIMITED UINT64_MAX

/* Parses one memory control file: a number of bytes, or "max" (v2's no limit). Returns 0 and
 * *ret_kib (CGROUP_UNLIMITED for no limit; 0 is a limit of nothing), or -EINVAL for anything
 * else. */
int cgroup_parse_bytes(const char *text, uint64_t *ret_kib);

/* Reads the partition's memory limit and usage. The limit is the lowest of the partition's and
 * its parents' (a child cannot use more than its parent allows), CGROUP_UNLIMITED when none has
 * one. Returns 0; -ENOENT when no cgroup for it exists under root; -EINVAL for an unreadable
 * value or a partition that is not an absolute path without "..". */
int cgroup_partition_memory_at(const char *root, const char *partition, uint64_t *ret_limit_kib,
                               uint64_t *ret_usage_kib);

/* The partition's cgroup for its cpuset (core parking's mode = partition), as a path under root
 * into ret_dir. cgroup v2 only: there a cgroup's cpuset.cpus bounds every cgroup below it (their
 * effective CPUs are what it allows), as intel-lpmd confines machine.slice. On v1 a parent's
 * cpuset must hold each child's, and libvirt writes every host CPU into each new VM's cpuset
 * cgroup: a narrowed partition would make VM starts fail, so v1 is refused. Returns 0;
 * -EOPNOTSUPP for v1 (<root>/cpuset exists) or a v2 cgroup without the cpuset controller
 * (no cpuset.cpus); -ENOENT when no cgroup for it exists; -EINVAL for a bad partition. */
int cgroup_partition_cpuset_dir(const char *root, const char *partition, char ret_dir[static CGROUP_PATH_MAX]);
/* dir's cpuset.cpus (a CPU list; "" when it takes its parent's) into buf, without the newline.
 * Returns 0, -errno, or -ENAMETOOLONG when it does not fit. */
int cgroup_cpuset_read(const char *root, const char *dir, char *buf, size_t len);
/* Writes list ("" for its parent's) to dir's cpuset.cpus. Returns 0 or -errno. */
int cgroup_cpuset_write(const char *root, const char *dir, const char *list);
