#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "sim/trace.h"

static int fail(char *err, size_t errlen, size_t line, const char *field, const char *what) {
        snprintf(err, errlen, "line %zu: %s: %s", line, field, what);
        return -EINVAL;
}

/* One unsigned decimal field up to the next comma (or the end); *p moves past it. */
static int field_u64(const char **p, uint64_t max, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;
        if (*s < '0' || *s > '9')
                return -EINVAL;
        for (; *s >= '0' && *s <= '9'; s++) {
                if (v > (max - (uint64_t) (*s - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        if (*s != ',' && *s != '\0' && *s != '\n' && *s != '\r')
                return -EINVAL;
        *p = *s == ',' ? s + 1 : s;
        *ret = v;
        return 0;
}

static int field_pct(const char **p, double *ret) {
        char *end;
        double v = strtod(*p, &end);
        if (end == *p || !isfinite(v) || v < 0 || v > 1e6 || (*end != ',' && *end != '\0' && *end != '\n'))
                return -EINVAL;
        *p = *end == ',' ? end + 1 : end;
        *ret = v;
        return 0;
}

/* The VM a row is for: the previous row's (rows come grouped by VM), else through an
 * open-addressing index on the id, so a trace whose rows interleave VMs stays O(rows). */
static int index_grow(struct sim_trace_set *t) {
        size_t cap = t->index_cap ? t->index_cap * 2 : 256;
        size_t *ix = malloc(cap * sizeof(*ix));
        if (!ix)
                return -ENOMEM;
        for (size_t k = 0; k < cap; k++)
                ix[k] = SIZE_MAX;
        for (size_t i = 0; i < t->n; i++) {
                size_t k = (size_t) ((uint64_t) t->vms[i].id * UINT64_C(0x9e3779b97f4a7c15) >> 20) & (cap - 1);
                while (ix[k] != SIZE_MAX)
                        k = (k + 1) & (cap - 1);
                ix[k] = i;
        }
        free(t->index);
        t->index = ix;
        t->index_cap = cap;
        return 0;
}

static struct sim_trace_vm *vm_for(struct sim_trace_set *t, long id, int *r) {
        if (t->last < t->n && t->vms[t->last].id == id)
                return &t->vms[t->last];
        if (t->index_cap < 2 * (t->n + 1) && (*r = index_grow(t)) < 0)
                return NULL;
        size_t k = (size_t) ((uint64_t) id * UINT64_C(0x9e3779b97f4a7c15) >> 20) & (t->index_cap - 1);
        for (; t->index[k] != SIZE_MAX; k = (k + 1) & (t->index_cap - 1))
                if (t->vms[t->index[k]].id == id) {
                        t->last = t->index[k];
                        return &t->vms[t->last];
                }
        if (t->n >= SIM_TRACE_MAX_VMS) {
                *r = -E2BIG;
                return NULL;
        }
        if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 64;
                struct sim_trace_vm *vms = realloc(t->vms, cap * sizeof(*vms));
                if (!vms) {
                        *r = -ENOMEM;
                        return NULL;
                }
                t->vms = vms;
                t->cap = cap;
        }
        t->index[k] = t->n;
        t->last = t->n;
        t->vms[t->n] = (struct sim_trace_vm){ .id = id };
        return &t->vms[t->n++];
}

static int push(struct sim_trace_vm *v, uint64_t t_s, uint64_t used, double cpu) {
        if (v->n == v->cap) {
                size_t cap = v->cap ? v->cap * 2 : 16;
                if (realloc_array(&v->t_s, cap, sizeof(*v->t_s)) < 0 ||
                    realloc_array(&v->used_kib, cap, sizeof(*v->used_kib)) < 0 ||
                    realloc_array(&v->cpu_pct, cap, sizeof(*v->cpu_pct)) < 0)
                        return -ENOMEM;
                v->cap = cap;
        }
        v->t_s[v->n] = t_s;
        v->used_kib[v->n] = used;
        v->cpu_pct[v->n] = cpu;
        v->n++;
        return 0;
}

int sim_trace_feed(struct sim_trace_set *t, const char *line, char *err, size_t errlen) {
        size_t no = ++t->lines;
        uint64_t id, t_s, cores, prov, used;
        double cpu;
        int r;

        if (no == 1) {
                size_t len = strcspn(line, "\r\n");
                if (len != strlen(SIM_TRACE_HEADER) || strncmp(line, SIM_TRACE_HEADER, len) != 0)
                        return fail(err, errlen, no, "header", "expected " SIM_TRACE_HEADER);
                return 0;
        }
        if (line[0] == '\0' || line[0] == '\n' || line[0] == '\r')
                return 0; /* a blank line (a trailing newline) */
        const char *p = line;
        if (field_u64(&p, INT32_MAX, &id) < 0)
                return fail(err, errlen, no, "vm", "expected a VM number");
        if (field_u64(&p, UINT32_MAX * UINT64_C(100), &t_s) < 0)
                return fail(err, errlen, no, "t_s", "expected Unix seconds");
        if (field_u64(&p, 65536, &cores) < 0)
                return fail(err, errlen, no, "cores", "expected a number of vCPUs (0-65536)");
        if (field_pct(&p, &cpu) < 0)
                return fail(err, errlen, no, "cpu_pct", "expected a percentage");
        if (field_u64(&p, SIM_TRACE_MAX_KIB, &prov) < 0)
                return fail(err, errlen, no, "mem_provisioned_kib", "expected KiB, at most 64 TiB");
        if (field_u64(&p, SIM_TRACE_MAX_KIB, &used) < 0)
                return fail(err, errlen, no, "mem_used_kib", "expected KiB, at most 64 TiB");
        if (*p != '\0' && *p != '\n' && *p != '\r')
                return fail(err, errlen, no, "mem_used_kib", "extra fields after it");
        /* The Bitbrains trace writes a VM that reported nothing (off, or its monitoring down)
         * as 0 KiB provisioned: no sample, a gap its neighbours bridge. */
        if (prov == 0) {
                t->gaps++;
                return 0;
        }
        /* A guest cannot use more than it has: a use above the provisioned size is the trace's
         * measurement, not demand any policy could meet (Bitbrains: 165 rows in 53 VMs, one
         * VM of 294 MiB "using" 15 GiB), so it counts as the provisioned size. */
        if (used > prov) {
                used = prov;
                t->capped++;
        }
        struct sim_trace_vm *v = vm_for(t, (long) id, &r);
        if (!v)
                return r == -E2BIG ? fail(err, errlen, no, "vm", "more VMs than the simulator takes") : r;
        if (v->n && t_s < v->t_s[v->n - 1])
                return fail(err, errlen, no, "t_s", "before this VM's previous sample");
        if (v->n && t_s == v->t_s[v->n - 1]) {
                /* The same instant twice (the Bitbrains trace has such rows): the later wins. */
                v->used_kib[v->n - 1] = used;
                v->cpu_pct[v->n - 1] = cpu;
                t->duplicates++;
                return 0;
        }
        v->cores = (unsigned) max_u64(v->cores, cores);
        v->provisioned_kib = max_u64(v->provisioned_kib, prov);
        if ((r = push(v, t_s, used, cpu)) < 0)
                return r;
        t->t0_s = t->have_t0 && t->t0_s < t_s ? t->t0_s : t_s;
        t->have_t0 = true;
        t->t_end_s = max_u64(t->t_end_s, t_s);
        return 0;
}

int sim_trace_finish(struct sim_trace_set *t, uint64_t max_usec, char *err, size_t errlen) {
        size_t kept = 0;
        for (size_t i = 0; i < t->n; i++) {
                struct sim_trace_vm *v = &t->vms[i];
                free(v->t_usec);
                v->t_usec = malloc((v->n ? v->n : 1) * sizeof(*v->t_usec));
                if (!v->t_usec)
                        return -ENOMEM;
                size_t k = 0;
                for (; k < v->n; k++) {
                        uint64_t rel = (v->t_s[k] - t->t0_s) * UINT64_C(1000000);
                        if (max_usec && rel >= max_usec)
                                break;
                        v->t_usec[k] = rel;
                }
                v->n = k;
                kept += k;
        }
        if (kept == 0) {
                snprintf(err, errlen, "no samples%s", max_usec ? " in the hours asked for" : "");
                return -EINVAL;
        }
        return 0;
}

struct sim_trace sim_trace_of(const struct sim_trace_vm *v, bool hold) {
        return (struct sim_trace){ .n = v->n, .t_usec = v->t_usec, .kib = v->used_kib, .hold = hold };
}

void sim_trace_set_done(struct sim_trace_set *t) {
        for (size_t i = 0; i < t->n; i++) {
                free(t->vms[i].t_s);
                free(t->vms[i].used_kib);
                free(t->vms[i].t_usec);
                free(t->vms[i].cpu_pct);
        }
        free(t->vms);
        free(t->index);
        *t = (struct sim_trace_set){ 0 };
}
