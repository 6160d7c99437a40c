/* A recording fake behind hv_ops: domains and stats are plain arrays the test fills in; every
 * call is recorded, and a change moves the fake's state the way libvirt would (set_balloon moves
 * current_kib, not actual: the guest moves actual). Memory limits and CPU pins are refused where
 * libvirt refuses them (hv.h, struct hv_fake), so code tested on the fake cannot lean on a
 * change the real layer would reject. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
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

/* The call's record, or NULL once the log is full (calls are still answered). */
static struct hv_fake_call *record(struct hv_fake *f, const char *op, const char *uuid, uint64_t value) {
        if (f->n_calls >= HV_FAKE_MAX_CALLS)
                return NULL;
        struct hv_fake_call *c = &f->calls[f->n_calls++];
        *c = (struct hv_fake_call){.value = value};
        snprintf(c->op, sizeof(c->op), "%s", op);
        snprintf(c->uuid, sizeof(c->uuid), "%s", uuid ? uuid : "");
        return c;
}

/* After the call is recorded: the injected failure, then the domain's index or -ENOENT. */
static int answer(struct hv_fake *f, const char *op, const char *uuid, char *err, size_t errlen) {
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

static int enter(struct hv_fake *f, const char *op, const char *uuid, uint64_t value, char *err, size_t errlen) {
        record(f, op, uuid, value);
        return answer(f, op, uuid, err, errlen);
}

/* answer() for an op on one domain: no UUID is the caller's mistake (-EINVAL, as in
 * hv_libvirt), not domain 0. */
static int answer_domain(struct hv_fake *f, const char *op, const char *uuid, char *err, size_t errlen) {
        int i = answer(f, op, uuid, err, errlen);
        if (i >= 0 && !uuid) {
                if (err && errlen)
                        snprintf(err, errlen, "no domain UUID given");
                return -EINVAL;
        }
        return i;
}

static int enter_domain(struct hv_fake *f, const char *op, const char *uuid, uint64_t value, char *err,
                        size_t errlen) {
        record(f, op, uuid, value);
        return answer_domain(f, op, uuid, err, errlen);
}

static int refuse(int r, char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int refuse(int r, char *err, size_t errlen, const char *fmt, ...) {
        if (err && errlen) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err, errlen, fmt, ap);
                va_end(ap);
        }
        return r;
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
        char *have = flags & HV_META_PARKING ? f->parking_metadata[i] : f->metadata[i];
        if (!have)
                return -ENODATA;
        *ret = strdup(have);
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
        char **slot = flags & HV_META_PARKING ? &f->parking_metadata[i] : &f->metadata[i];
        free(*slot);
        *slot = copy;
        return 0;
}

/* ---- memory limits and CPU placement ---- */

/* libvirt's live reads fail on a stopped domain with "domain is not running" (-EINVAL). */
static int need_running(struct hv_fake *f, int i, char *err, size_t errlen) {
        if (!f->domains[i].active)
                return refuse(-EINVAL, err, errlen, "Requested operation is not valid: domain is not running");
        return 0;
}

/* A live read: recorded, the domain found (its index) and running, or -errno. */
static int enter_running(struct hv_fake *f, const char *op, const char *uuid, uint64_t value, char *err,
                         size_t errlen) {
        int i = enter_domain(f, op, uuid, value, err, errlen), r;
        if (i >= 0 && (r = need_running(f, i, err, errlen)) < 0)
                return r;
        return i;
}

/* Whether a change with these flags reaches the live state the fake keeps: HV_LIVE on a stopped
 * domain is refused, 0 is libvirt's "current" (live when running), HV_CONFIG alone is not. */
static int affects_live(struct hv_fake *f, int i, unsigned flags, bool *ret, char *err, size_t errlen) {
        if (flags & ~(HV_LIVE | HV_CONFIG))
                return refuse(-EINVAL, err, errlen, "unknown flags 0x%x", flags);
        if ((flags & HV_LIVE) && !f->domains[i].active)
                return refuse(-EINVAL, err, errlen, "Requested operation is not valid: domain is not running");
        *ret = (flags & HV_LIVE) || (flags == 0 && f->domains[i].active);
        return 0;
}

static unsigned host_cpus(const struct hv_fake *f) {
        unsigned n = f->host_cpus ? f->host_cpus : HV_FAKE_HOST_CPUS;
        return n < HV_CPUSET_MAX ? n : HV_CPUSET_MAX;
}

/* What an unpinned vCPU or emulator reads as: every host CPU. */
static struct hv_cpuset pin_or_all(const struct hv_fake *f, const struct hv_cpuset *pin) {
        struct hv_cpuset all = {0};
        if (hv_cpuset_count(pin) > 0)
                return *pin;
        for (unsigned c = 0; c < host_cpus(f); c++)
                hv_cpuset_set(&all, c);
        return all;
}

static int check_cpus(const struct hv_fake *f, const struct hv_cpuset *cpus, char *err, size_t errlen) {
        if (!cpus || hv_cpuset_count(cpus) == 0)
                return refuse(-EINVAL, err, errlen, "empty CPU set");
        if ((unsigned) hv_cpuset_last(cpus) >= host_cpus(f))
                return refuse(-EINVAL, err, errlen, "CPU %d is not on this host (CPUs 0-%u)", hv_cpuset_last(cpus),
                              host_cpus(f) - 1);
        return 0;
}

static int check_limit(uint64_t kib, const char *what, char *err, size_t errlen) {
        if (kib != HV_MEMTUNE_UNLIMITED && (kib == 0 || kib > HV_MEMTUNE_MAX_KIB))
                return refuse(-EINVAL, err, errlen, "memory %s %" PRIu64 " KiB out of range", what, kib);
        return 0;
}

static int fake_get_memtune(void *h, const char *uuid, struct hv_memtune *ret, char *err, size_t errlen) {
        struct hv_fake *f = h;
        int i = enter_running(f, "get_memtune", uuid, 0, err, errlen);
        if (i < 0)
                return i;
        *ret = f->memtune[i];
        return 0;
}

static int fake_set_memtune(void *h, const char *uuid, const struct hv_memtune *m, unsigned flags, char *err,
                            size_t errlen) {
        struct hv_fake *f = h;
        struct hv_fake_call *c = record(f, "set_memtune", uuid, m ? m->hard_limit_kib : 0);
        bool live;
        int i, r;

        if (c) {
                c->value2 = m ? m->swap_hard_limit_kib : 0;
                c->flags = flags;
        }
        if ((i = answer_domain(f, "set_memtune", uuid, err, errlen)) < 0)
                return i;
        if (!m)
                return refuse(-EINVAL, err, errlen, "no memory limits given");
        if ((r = affects_live(f, i, flags, &live, err, errlen)) < 0 ||
            (r = check_limit(m->hard_limit_kib, "hard_limit", err, errlen)) < 0 ||
            (r = check_limit(m->swap_hard_limit_kib, "swap_hard_limit", err, errlen)) < 0)
                return r;
        /* libvirt's rule on the pair the call leaves (hv.h, set_memtune). */
        if (m->hard_limit_kib > m->swap_hard_limit_kib)
                return refuse(-EINVAL, err, errlen,
                              "invalid argument: memory hard_limit tunable value must be lower than or equal to "
                              "swap_hard_limit");
        if (live)
                f->memtune[i] = *m;
        return 0;
}

static int fake_get_vcpu_count(void *h, const char *uuid, unsigned *ret, char *err, size_t errlen) {
        struct hv_fake *f = h;
        int i = enter_running(f, "get_vcpu_count", uuid, 0, err, errlen);
        if (i < 0)
                return i;
        *ret = f->vcpus[i];
        return 0;
}

static int fake_get_vcpu_pins(void *h, const char *uuid, struct hv_cpuset *ret, unsigned max, unsigned *ret_n,
                              char *err, size_t errlen) {
        struct hv_fake *f = h;
        int i = enter_domain(f, "get_vcpu_pins", uuid, max, err, errlen); /* stopped: as configured */
        if (i < 0)
                return i;
        unsigned n = f->vcpus[i] < HV_FAKE_MAX_VCPUS ? f->vcpus[i] : HV_FAKE_MAX_VCPUS;
        if (n > max)
                return refuse(-ENOBUFS, err, errlen, "the domain has %u vCPUs, more than the %u asked for", n, max);
        for (unsigned v = 0; v < n; v++)
                ret[v] = pin_or_all(f, &f->vcpu_pins[i][v]);
        *ret_n = n;
        return 0;
}

static int fake_set_vcpu_pin(void *h, const char *uuid, unsigned vcpu, const struct hv_cpuset *cpus, unsigned flags,
                             char *err, size_t errlen) {
        struct hv_fake *f = h;
        struct hv_fake_call *c = record(f, "set_vcpu_pin", uuid, vcpu);
        bool live;
        int i, r;

        if (c) {
                c->flags = flags;
                if (cpus)
                        c->cpus = *cpus;
        }
        if ((i = answer_domain(f, "set_vcpu_pin", uuid, err, errlen)) < 0)
                return i;
        if ((r = affects_live(f, i, flags, &live, err, errlen)) < 0 || (r = check_cpus(f, cpus, err, errlen)) < 0)
                return r;
        if (vcpu >= f->vcpus[i] || vcpu >= HV_FAKE_MAX_VCPUS)
                return refuse(-EINVAL, err, errlen,
                              "invalid argument: requested vcpu '%u' is not present in the domain", vcpu);
        if (live)
                f->vcpu_pins[i][vcpu] = *cpus;
        return 0;
}

static int fake_get_emulator_pin(void *h, const char *uuid, struct hv_cpuset *ret, char *err, size_t errlen) {
        struct hv_fake *f = h;
        int i = enter_domain(f, "get_emulator_pin", uuid, 0, err, errlen); /* stopped: as configured */
        if (i < 0)
                return i;
        *ret = pin_or_all(f, &f->emulator_pin[i]);
        return 0;
}

static int fake_set_emulator_pin(void *h, const char *uuid, const struct hv_cpuset *cpus, unsigned flags, char *err,
                                 size_t errlen) {
        struct hv_fake *f = h;
        struct hv_fake_call *c = record(f, "set_emulator_pin", uuid, 0);
        bool live;
        int i, r;

        if (c) {
                c->flags = flags;
                if (cpus)
                        c->cpus = *cpus;
        }
        if ((i = answer_domain(f, "set_emulator_pin", uuid, err, errlen)) < 0)
                return i;
        if ((r = affects_live(f, i, flags, &live, err, errlen)) < 0 || (r = check_cpus(f, cpus, err, errlen)) < 0)
                return r;
        if (live)
                f->emulator_pin[i] = *cpus;
        return 0;
}

static int fake_get_partition(void *h, const char *uuid, char *ret, size_t len, char *err, size_t errlen) {
        struct hv_fake *f = h;
        int i = enter_domain(f, "get_partition", uuid, 0, err, errlen);
        if (i < 0)
                return i;
        if (!ret || len == 0)
                return refuse(-EINVAL, err, errlen, "no buffer for the partition");
        size_t l = strnlen(f->partition[i], sizeof(f->partition[i]));
        if (l >= len)
                return refuse(-ENAMETOOLONG, err, errlen, "partition longer than %zu bytes", len - 1);
        memcpy(ret, f->partition[i], l);
        ret[l] = '\0';
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
        .get_memtune = fake_get_memtune,
        .set_memtune = fake_set_memtune,
        .get_vcpu_count = fake_get_vcpu_count,
        .get_vcpu_pins = fake_get_vcpu_pins,
        .set_vcpu_pin = fake_set_vcpu_pin,
        .get_emulator_pin = fake_get_emulator_pin,
        .set_emulator_pin = fake_set_emulator_pin,
        .get_partition = fake_get_partition,
};

int hv_fake_add(struct hv_fake *f, const struct hv_domain *d, const struct hv_mem_stats *s) {
        if (f->n_domains >= HV_FAKE_MAX_DOMAINS)
                return -E2BIG;
        size_t i = f->n_domains;
        f->domains[i] = *d;
        f->stats[i] = *s;
        /* A domain as libvirt shows a fresh one: no limits, one vCPU, nothing pinned, and the
         * qemu driver's default partition. */
        f->memtune[i] = (struct hv_memtune){HV_MEMTUNE_UNLIMITED, HV_MEMTUNE_UNLIMITED};
        f->vcpus[i] = 1;
        memset(f->vcpu_pins[i], 0, sizeof(f->vcpu_pins[i]));
        f->emulator_pin[i] = (struct hv_cpuset){0};
        snprintf(f->partition[i], sizeof(f->partition[i]), "/machine");
        return (int) f->n_domains++;
}

struct hv hv_fake_hv(struct hv_fake *f) {
        return (struct hv){ .ops = &fake_ops, .h = f };
}

void hv_fake_done(struct hv_fake *f) {
        for (size_t i = 0; i < HV_FAKE_MAX_DOMAINS; i++) {
                free(f->metadata[i]);
                f->metadata[i] = NULL;
                free(f->parking_metadata[i]);
                f->parking_metadata[i] = NULL;
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
