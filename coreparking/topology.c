#include "coreparking/topology.h"

#include <errno.h>
#include <hwloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"

static int fail(char *err, size_t errlen, int r, const char *fmt, ...) {
        if (err && errlen) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err, errlen, fmt, ap);
                va_end(ap);
        }
        return r;
}

/* hwloc's efficiency when it knows one, else the kind's rank (kinds come ordered by it); 0 on a
 * host hwloc sees as of one kind or none. */
static int kind_of(hwloc_topology_t t, hwloc_const_cpuset_t cpus) {
        if (hwloc_cpukinds_get_nr(t, 0) <= 1)
                return 0;
        int k = hwloc_cpukinds_get_by_cpuset(t, cpus, 0);
        if (k < 0)
                return 0;
        int efficiency = -1;
        if (hwloc_cpukinds_get_info(t, (unsigned) k, NULL, &efficiency, NULL, NULL, 0) == 0 && efficiency >= 0)
                return efficiency;
        return k;
}

static int os_index_of(hwloc_topology_t t, hwloc_obj_t o, hwloc_obj_type_t type) {
        hwloc_obj_t a = hwloc_get_ancestor_obj_by_type(t, type, o);
        return a && a->os_index != HWLOC_UNKNOWN_INDEX ? (int) a->os_index : -1;
}

/* The core of one PU: its Core ancestor's CPUs, or the PU alone. */
static int fill_core(hwloc_topology_t t, hwloc_obj_t pu, struct parking_core *c, char *err, size_t errlen) {
        hwloc_obj_t core = hwloc_get_ancestor_obj_by_type(t, HWLOC_OBJ_CORE, pu);
        hwloc_const_cpuset_t cpus = core ? core->cpuset : pu->cpuset;
        *c = (struct parking_core){ .node = -1, .package = os_index_of(t, pu, HWLOC_OBJ_PACKAGE) };
        int cpu;
        hwloc_bitmap_foreach_begin(cpu, cpus) {
                if (cpu >= HV_CPUSET_MAX)
                        return fail(err, errlen, -ERANGE, "CPU %d is past the %d tide can park", cpu, HV_CPUSET_MAX);
                hv_cpuset_set(&c->cpus, (unsigned) cpu);
        }
        hwloc_bitmap_foreach_end();
        /* Its NUMA node: the first of the nodes local to it (one, but on odd platforms). */
        hwloc_const_nodeset_t nodes = core ? core->nodeset : pu->nodeset;
        if (nodes && !hwloc_bitmap_iszero(nodes))
                c->node = hwloc_bitmap_first(nodes);
        c->kind = kind_of(t, cpus);
        return 0;
}

int parking_topology_load(const char *xml_path, struct parking_core **ret, char *err, size_t errlen) {
        hwloc_topology_t t;
        struct parking_core *cores = NULL;
        int r;

        if (!ret)
                return fail(err, errlen, -EINVAL, "no place for the result");
        if (xml_path && access(xml_path, R_OK) < 0)
                return fail(err, errlen, -errno, "%s: %s", xml_path, strerror(errno));
        if (hwloc_topology_init(&t) < 0)
                return fail(err, errlen, -ENOMEM, "hwloc: cannot start");
        if (xml_path && hwloc_topology_set_xml(t, xml_path) < 0) {
                r = fail(err, errlen, -EINVAL, "%s: hwloc cannot read it as a topology", xml_path);
                goto out;
        }
        if (hwloc_topology_load(t) < 0) {
                r = fail(err, errlen, -EINVAL, "%s: hwloc cannot load it: %s", xml_path ? xml_path : "this host",
                         strerror(errno));
                goto out;
        }
        int n_pu = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
        if (n_pu <= 0) {
                r = fail(err, errlen, -EINVAL, "%s: no CPU in the topology", xml_path ? xml_path : "this host");
                goto out;
        }
        cores = calloc((size_t) n_pu, sizeof(*cores));
        if (!cores) {
                r = fail(err, errlen, -ENOMEM, "out of memory");
                goto out;
        }
        /* PUs in os_index order (hwloc's logical order follows the hierarchy); a core is taken at
         * its first PU, so the cores come in the order of their first CPU. */
        struct hv_cpuset seen = { 0 };
        size_t n = 0;
        int cpu;
        hwloc_bitmap_foreach_begin(cpu, hwloc_topology_get_topology_cpuset(t)) {
                if (cpu >= HV_CPUSET_MAX) {
                        r = fail(err, errlen, -ERANGE, "CPU %d is past the %d tide can park", cpu, HV_CPUSET_MAX);
                        goto out;
                }
                if (hv_cpuset_test(&seen, (unsigned) cpu))
                        continue;
                hwloc_obj_t pu = hwloc_get_pu_obj_by_os_index(t, (unsigned) cpu);
                if (!pu)
                        continue;
                if ((r = fill_core(t, pu, &cores[n], err, errlen)) < 0)
                        goto out;
                for (unsigned w = 0; w < HV_CPUSET_WORDS; w++)
                        seen.bits[w] |= cores[n].cpus.bits[w];
                n++;
        }
        hwloc_bitmap_foreach_end();
        *ret = TAKE_PTR(cores);
        r = (int) n;
out:
        free(cores);
        hwloc_topology_destroy(t);
        return r;
}
