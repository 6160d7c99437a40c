/* The host's cores for the parking plan, from hwloc: each core's CPUs (SMT siblings), its NUMA
 * node, package and kind (hwloc's CPU kinds: a hybrid part's efficient and performance cores).
 * I/O: reads this host (sysfs, through hwloc) or an hwloc XML file (tests, and `tidectl plan`
 * for another machine). */
#pragma once

#include <stddef.h>

#include "coreparking/plan.h"

#define PARKING_TOPO_ERR_MAX 256

/* Loads the topology of this host (xml_path NULL) or of an hwloc XML export (`lstopo --of xml`):
 * *ret (malloc'd, the caller frees) holds its cores in the order of their first CPU. A PU
 * outside any core is a core of its own. Offline and disallowed CPUs are not there. Returns the
 * number of cores (> 0), or -errno with err filled: -ENOENT (no such file), -EINVAL (a file
 * hwloc cannot read, or a topology without a CPU), -ERANGE (a CPU numbered past HV_CPUSET_MAX),
 * -ENOMEM. */
int parking_topology_load(const char *xml_path, struct parking_core **ret, char *err, size_t errlen);
