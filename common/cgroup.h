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
