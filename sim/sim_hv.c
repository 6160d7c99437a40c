/* hv_ops over the simulated host: what libvirt would answer for the simulated domains. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balloon/metadata.h"
#include "common/macro.h"
#include "sim/sim.h"

static struct sim_vm *find(struct sim *s, const char *uuid, char *err, size_t errlen) {
        /* sim_add_vm() writes the index into the UUID's last 12 hex digits: O(1), so a
         * benchmark of 10,000 domains measures tided, not this lookup. */
        size_t len = strlen(uuid);
        if (len == 36) {
                size_t i = (size_t) strtoull(uuid + 24, NULL, 16);
                if (i < s->n_vms && streq(s->vms[i].info.uuid, uuid))
                        return &s->vms[i];
        }
        snprintf(err, errlen, "Domain not found: no domain with matching uuid '%s'", uuid);
        return NULL;
}

/* As libvirt describes a domain; the agent's channel is not reachable in a simulation. */
static struct hv_domain describe(const struct sim_vm *v) {
        struct hv_domain d = v->info;
        d.current_kib = v->actual_kib;
        d.agent_socket[0] = '\0';
        return d;
}

static int sh_list(void *h, struct hv_domain **ret, size_t *ret_n, char *err, size_t errlen) {
        struct sim *s = h;
        struct hv_domain *a = calloc(s->n_vms ? s->n_vms : 1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_vms; i++)
                a[i] = describe(&s->vms[i]);
        *ret = a;
        *ret_n = s->n_vms;
        return 0;
}

static int sh_get(void *h, const char *uuid, struct hv_domain *ret, char *err, size_t errlen) {
        struct sim_vm *v = find(h, uuid, err, errlen);
        if (!v)
                return -ENOENT;
        *ret = describe(v);
        return 0;
}

static int sh_stats(void *h, const char *uuid, struct hv_mem_stats *ret, char *err, size_t errlen) {
        struct sim_vm *v = find(h, uuid, err, errlen);
        if (!v)
                return -ENOENT;
        sim_vm_stats(h, v, ret);
        return 0;
}

static int sh_period(void *h, const char *uuid, int seconds, char *err, size_t errlen) {
        return find(h, uuid, err, errlen) ? 0 : -ENOENT;
}

static int sh_balloon(void *h, const char *uuid, uint64_t kib, char *err, size_t errlen) {
        struct sim *s = h;
        struct sim_vm *v = find(s, uuid, err, errlen);
        if (!v)
                return -ENOENT;
        if (kib == 0 || kib > v->info.max_kib) {
                snprintf(err, errlen, "invalid argument: cannot set memory higher than max memory");
                return -EINVAL;
        }
        v->balloon_target_kib = kib;
        s->balloon_ops++;
        return 0;
}

static int sh_boot(void *h, const char *uuid, uint64_t kib, char *err, size_t errlen) {
        return find(h, uuid, err, errlen) ? 0 : -ENOENT;
}

static int sh_vmem(void *h, const char *uuid, uint64_t kib, char *err, size_t errlen) {
        struct sim *s = h;
        struct sim_vm *v = find(s, uuid, err, errlen);
        if (!v)
                return -ENOENT;
        if (!v->info.has_virtio_mem)
                return -ENODEV;
        if (kib > v->info.virtio_mem_max_kib || kib % v->info.virtio_mem_block_kib) {
                snprintf(err, errlen, "virtio-mem size %llu KiB is not a multiple of its block or above its size",
                         (unsigned long long) kib);
                return -EINVAL;
        }
        v->info.virtio_mem_requested_kib = kib;
        s->vmem_ops++;
        return 0;
}

static int sh_get_metadata(void *h, const char *uuid, unsigned flags, char **ret, char *err, size_t errlen) {
        struct sim_vm *v = find(h, uuid, err, errlen);
        char xml[METADATA_XML_MAX];
        if (!v)
                return -ENOENT;
        /* The simulated host pins nothing: no VM carries core parking's record. */
        if (!v->spec.have_policy || (flags & HV_META_PARKING))
                return -ENODATA;
        if (metadata_format(&v->spec.policy, xml, sizeof(xml)) < 0)
                return -EINVAL;
        *ret = strdup(xml);
        return *ret ? 0 : -ENOMEM;
}

static int sh_set_metadata(void *h, const char *uuid, const char *xml, unsigned flags, char *err, size_t errlen) {
        struct sim_vm *v = find(h, uuid, err, errlen);
        struct vm_policy p;
        if (!v)
                return -ENOENT;
        if (flags & HV_META_PARKING)
                return -EOPNOTSUPP; /* the simulated host pins nothing (sim/sim.h) */
        if (!xml) {
                v->spec.have_policy = false;
                return 0;
        }
        if (metadata_parse(xml, &p, err, errlen) < 0)
                return -EINVAL;
        v->spec.policy = p;
        v->spec.have_policy = true;
        return 0;
}

static const struct hv_ops sim_ops = {
        .list_domains = sh_list,
        .get_domain = sh_get,
        .memory_stats = sh_stats,
        .set_stats_period = sh_period,
        .set_balloon = sh_balloon,
        .set_boot_memory = sh_boot,
        .set_virtio_mem = sh_vmem,
        .get_metadata = sh_get_metadata,
        .set_metadata = sh_set_metadata,
};

struct hv sim_hv(struct sim *s) {
        return (struct hv){ .ops = &sim_ops, .h = s };
}
