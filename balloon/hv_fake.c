/* A recording fake behind hv_ops: domains and stats are plain arrays the test fills in; every
 * call that changes something is recorded, and changes the fake's state the way libvirt would
 * (set_balloon moves current_kib, not actual: the guest moves actual). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balloon/hv.h"
#include "common/macro.h"

static int find(struct hv_fake *f, const char *uuid) {
        for (size_t i = 0; i < f->n_domains; i++)
                if (streq(f->domains[i].uuid, uuid))
                        return (int) i;
        return -ENOENT;
}

static int enter(struct hv_fake *f, const char *op, const char *uuid, uint64_t value, char *err, size_t errlen) {
        if (f->n_calls < HV_FAKE_MAX_CALLS) {
                struct hv_fake_call *c = &f->calls[f->n_calls++];
                snprintf(c->op, sizeof(c->op), "%s", op);
                snprintf(c->uuid, sizeof(c->uuid), "%s", uuid ? uuid : "");
                c->value = value;
        }
        if (f->fail_errno) {
                int r = -f->fail_errno;
                f->fail_errno = 0;
                if (err && errlen)
                        snprintf(err, errlen, "fake failure of %s", op);
                return r;
        }
        if (!uuid)
                return 0;
        int i = find(f, uuid);
        if (i < 0 && err && errlen)
                snprintf(err, errlen, "Domain not found: no domain with matching uuid '%s'", uuid);
        return i;
}

static int fake_list(void *h, struct hv_domain **ret, size_t *ret_n, char *err, size_t errlen) {
        struct hv_fake *f = h;
        int r = enter(f, "list_domains", NULL, 0, err, errlen);
        if (r < 0)
                return r;
        struct hv_domain *a = calloc(f->n_domains ? f->n_domains : 1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        memcpy(a, f->domains, f->n_domains * sizeof(*a));
        /* As libvirt's layer lists one it cannot describe: by UUID and name alone. */
        for (size_t i = 0; i < f->n_domains; i++)
                if (a[i].undescribed) {
                        struct hv_domain only = { .id = -1, .numa_node = -1, .undescribed = true };
                        memcpy(only.uuid, a[i].uuid, sizeof(only.uuid));
                        memcpy(only.name, a[i].name, sizeof(only.name));
                        a[i] = only;
                        if (err && errlen)
                                snprintf(err, errlen, "fake: cannot describe %s", a[i].name);
                }
        *ret = a;
        *ret_n = f->n_domains;
        return 0;
}

static int fake_get(void *h, const char *uuid, struct hv_domain *ret, char *err, size_t errlen) {
        struct hv_fake *f = h;
        int i = enter(f, "get_domain", uuid, 0, err, errlen);
        if (i < 0)
                return i;
        *ret = f->domains[i];
        return 0;
}

static int fake_stats(void *h, const char *uuid, struct hv_mem_stats *ret, char *err, size_t errlen) {
        struct hv_fake *f = h;
        int i = enter(f, "memory_stats", uuid, 0, err, errlen);
        if (i < 0)
                return i;
        if (!f->domains[i].active)
                return -EINVAL;
        *ret = f->stats[i];
        return 0;
}

static int fake_period(void *h, const char *uuid, int seconds, char *err, size_t errlen) {
        return enter(h, "set_stats_period", uuid, (uint64_t) seconds, err, errlen) < 0 ? -ENOENT : 0;
}

static int fake_balloon(void *h, const char *uuid, uint64_t kib, char *err, size_t errlen) {
        struct hv_fake *f = h;
        int i = enter(f, "set_balloon", uuid, kib, err, errlen);
        if (i < 0)
                return i;
        if (kib > f->domains[i].max_kib)
                return -EINVAL;
        f->domains[i].current_kib = kib;
        return 0;
}

static int fake_boot(void *h, const char *uuid, uint64_t kib, char *err, size_t errlen) {
        int i = enter(h, "set_boot_memory", uuid, kib, err, errlen);
        return i < 0 ? i : 0;
}

static int fake_vmem(void *h, const char *uuid, uint64_t kib, char *err, size_t errlen) {
        struct hv_fake *f = h;
        int i = enter(f, "set_virtio_mem", uuid, kib, err, errlen);
        if (i < 0)
                return i;
        if (!f->domains[i].has_virtio_mem || kib > f->domains[i].virtio_mem_max_kib)
                return -EINVAL;
        f->domains[i].virtio_mem_requested_kib = kib;
        return 0;
}

static int fake_get_meta(void *h, const char *uuid, unsigned flags, char **ret, char *err, size_t errlen) {
        struct hv_fake *f = h;
        int i = enter(f, "get_metadata", uuid, flags, err, errlen);
        if (i < 0)
                return i;
        if (!f->metadata[i])
                return -ENODATA;
        *ret = strdup(f->metadata[i]);
        return *ret ? 0 : -ENOMEM;
}

static int fake_set_meta(void *h, const char *uuid, const char *xml, unsigned flags, char *err, size_t errlen) {
        struct hv_fake *f = h;
        int i = enter(f, xml ? "set_metadata" : "clear_metadata", uuid, flags, err, errlen);
        if (i < 0)
                return i;
        char *copy = NULL;
        if (xml && !(copy = strdup(xml)))
                return -ENOMEM;
        free(f->metadata[i]);
        f->metadata[i] = copy;
        return 0;
}

static const struct hv_ops fake_ops = {
        .list_domains = fake_list,
        .get_domain = fake_get,
        .memory_stats = fake_stats,
        .set_stats_period = fake_period,
        .set_balloon = fake_balloon,
        .set_boot_memory = fake_boot,
        .set_virtio_mem = fake_vmem,
        .get_metadata = fake_get_meta,
        .set_metadata = fake_set_meta,
};

int hv_fake_add(struct hv_fake *f, const struct hv_domain *d, const struct hv_mem_stats *s) {
        if (f->n_domains >= HV_FAKE_MAX_DOMAINS)
                return -E2BIG;
        f->domains[f->n_domains] = *d;
        f->stats[f->n_domains] = *s;
        return (int) f->n_domains++;
}

struct hv hv_fake_hv(struct hv_fake *f) {
        return (struct hv){ .ops = &fake_ops, .h = f };
}

void hv_fake_done(struct hv_fake *f) {
        for (size_t i = 0; i < HV_FAKE_MAX_DOMAINS; i++) {
                free(f->metadata[i]);
                f->metadata[i] = NULL;
        }
}

size_t hv_fake_count(const struct hv_fake *f, const char *op, const char *uuid) {
        size_t n = 0;
        for (size_t i = 0; i < f->n_calls; i++)
                if (streq(f->calls[i].op, op) && (!uuid || streq(f->calls[i].uuid, uuid)))
                        n++;
        return n;
}

const struct hv_fake_call *hv_fake_last(const struct hv_fake *f, const char *op) {
        for (size_t i = f->n_calls; i > 0; i--)
                if (streq(f->calls[i - 1].op, op))
                        return &f->calls[i - 1];
        return NULL;
}
