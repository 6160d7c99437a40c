#include <errno.h>
#include <inttypes.h>
#include <json.h>
#include <stdio.h>
#include <string.h>

#include "cli/jsonin.h"
#include "cli/simspec.h"
#include "common/macro.h"
#include "common/units.h"

/* Ten years: anything longer is a typo, and it keeps microsecond arithmetic far from overflow. */
#define MAX_SECONDS (10.0 * 365 * 86400)

void simspec_init(struct simspec *s) {
        *s = (struct simspec){ .trace = { .minimum_floor_kib = 256 * KIB_PER_MIB,
                                          .minimum_divisor = 16,
                                          .buffer_pct = POLICY_BUFFER_DEFAULT,
                                          .weight = POLICY_WEIGHT_DEFAULT },
                               .smart_paging = -1 };
}

size_t simspec_vms(const struct simspec *s) {
        size_t n = 0;
        for (size_t i = 0; i < s->n_groups; i++)
                n += s->groups[i].count;
        return n;
}

static int seconds(struct jsonin *c, json_object *o, const char *field, uint64_t *ret_usec) {
        double d;
        int r = jsonin_number(c, o, field, 0, MAX_SECONDS, &d);
        if (r == 0)
                *ret_usec = (uint64_t) (d * 1e6);
        return r;
}

static int find_name(const char *name, const void *base, size_t n, size_t stride) {
        for (size_t i = 0; i < n; i++)
                if (streq((const char *) base + i * stride, name))
                        return (int) i;
        return -1;
}

static int parse_host(struct jsonin *c, json_object *o, size_t i, struct simspec *s) {
        struct simspec_host *h = &s->hosts[i];
        char field[96], where[32];
        bool have_memory = false;
        int64_t v;
        int r = 0;

        snprintf(where, sizeof(where), "hosts[%zu]", i);
        if ((r = jsonin_object(c, o, where)) < 0)
                return r;
        *h = (struct simspec_host){ .reserve_auto = true };
        snprintf(h->name, sizeof(h->name), "host%zu", i);
        json_object_object_foreach(o, key, val) {
                snprintf(field, sizeof(field), "%s.%s", where, key);
                if (streq(key, "name"))
                        r = jsonin_name(c, val, field, h->name, sizeof(h->name));
                else if (streq(key, "memory")) {
                        r = jsonin_size(c, val, field, &h->memory_kib);
                        have_memory = true;
                } else if (streq(key, "reserve")) {
                        if (json_object_is_type(val, json_type_string) && streq(json_object_get_string(val), "auto"))
                                h->reserve_auto = true;
                        else if ((r = jsonin_size(c, val, field, &h->reserve_kib)) == 0)
                                h->reserve_auto = false;
                } else if (streq(key, "cores")) {
                        if ((r = jsonin_int(c, val, field, 1, 65536, &v)) == 0)
                                h->cores = (unsigned) v;
                } else if (streq(key, "paging_disk"))
                        r = jsonin_size(c, val, field, &h->paging_kib_per_sec);
                else
                        return jsonin_fail(c, field, "unknown field (known: name, memory, reserve, cores, paging_disk)");
                if (r < 0)
                        return r;
        }
        if (!have_memory || h->memory_kib == 0)
                return jsonin_fail(c, where, "missing memory (the host's RAM)");
        if (!h->reserve_auto && h->reserve_kib >= h->memory_kib)
                return jsonin_fail(c, where, "reserve is not below memory");
        if (find_name(h->name, s->hosts, i, sizeof(s->hosts[0])) >= 0)
                return jsonin_fail(c, where, "a second host named '%s'", h->name);
        return 0;
}

static int parse_boot(struct jsonin *c, json_object *o, const char *where, struct sim_vm_spec *vm) {
        char field[128];
        int r = jsonin_object(c, o, where);
        if (r < 0)
                return r;
        json_object_object_foreach(o, key, val) {
                snprintf(field, sizeof(field), "%s.%s", where, key);
                if (streq(key, "touch"))
                        r = jsonin_size(c, val, field, &vm->boot_touch_kib);
                else if (streq(key, "rate"))
                        r = jsonin_size(c, val, field, &vm->boot_touch_kib_per_sec);
                else if (streq(key, "seconds")) {
                        if ((r = seconds(c, val, field, &vm->boot_usec)) == 0 && vm->boot_usec == 0)
                                return jsonin_fail(c, field, "a boot takes some time (> 0)");
                } else
                        return jsonin_fail(c, field, "unknown field (known: touch, rate (per second), seconds)");
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_steps(struct jsonin *c, json_object *o, const char *field, struct sim_demand *d) {
        char f[160];
        int r;

        if (!json_object_is_type(o, json_type_array))
                return jsonin_fail(c, field, "expected an array of {\"at\": SECONDS, \"value\": SIZE}");
        size_t n = json_object_array_length(o);
        if (n == 0 || n > SIM_STEPS_MAX)
                return jsonin_fail(c, field, "%zu steps, expected 1-%d", n, SIM_STEPS_MAX);
        for (size_t k = 0; k < n; k++) {
                json_object *st = json_object_array_get_idx(o, k), *at = NULL, *value = NULL;
                snprintf(f, sizeof(f), "%s[%zu]", field, k);
                if ((r = jsonin_object(c, st, f)) < 0)
                        return r;
                json_object_object_foreach(st, key, val) {
                        if (streq(key, "at"))
                                at = val;
                        else if (streq(key, "value"))
                                value = val;
                        else
                                return jsonin_fail(c, f, "unknown field '%s' (known: at, value)", key);
                }
                if (!at || !value)
                        return jsonin_fail(c, f, "needs at and value");
                snprintf(f, sizeof(f), "%s[%zu].at", field, k);
                if ((r = seconds(c, at, f, &d->steps[k].at_usec)) < 0)
                        return r;
                if (k && d->steps[k].at_usec <= d->steps[k - 1].at_usec)
                        return jsonin_fail(c, f, "not after the previous step");
                snprintf(f, sizeof(f), "%s[%zu].value", field, k);
                if ((r = jsonin_size(c, value, f, &d->steps[k].kib)) < 0)
                        return r;
        }
        d->n_steps = n;
        return 0;
}

static int parse_demand(struct jsonin *c, json_object *o, const char *where, struct sim_demand *d) {
        char field[128];
        bool have_kind = false;
        int64_t v;
        int r = jsonin_object(c, o, where);
        if (r < 0)
                return r;
        *d = (struct sim_demand){ 0 };
        json_object_object_foreach(o, key, val) {
                snprintf(field, sizeof(field), "%s.%s", where, key);
                r = 0;
                if (streq(key, "kind")) {
                        /* In the order of enum sim_demand_kind. */
                        static const char *const kinds[] = { "constant", "steps", "ramp", "walk" };
                        int k;
                        if ((r = jsonin_choice(c, val, field, kinds, ELEMENTSOF(kinds), &k)) < 0)
                                return r;
                        d->kind = (enum sim_demand_kind) k;
                        have_kind = true;
                } else if (streq(key, "value") || streq(key, "base") || streq(key, "from"))
                        r = jsonin_size(c, val, field, &d->base_kib);
                else if (streq(key, "to"))
                        r = jsonin_size(c, val, field, &d->to_kib);
                else if (streq(key, "start"))
                        r = seconds(c, val, field, &d->from_usec);
                else if (streq(key, "length"))
                        r = seconds(c, val, field, &d->len_usec);
                else if (streq(key, "step"))
                        r = jsonin_size(c, val, field, &d->step_kib);
                else if (streq(key, "min"))
                        r = jsonin_size(c, val, field, &d->min_kib);
                else if (streq(key, "max"))
                        r = jsonin_size(c, val, field, &d->max_kib);
                else if (streq(key, "seed")) {
                        if ((r = jsonin_int(c, val, field, 0, INT64_MAX, &v)) == 0)
                                d->seed = (uint64_t) v;
                } else if (streq(key, "steps"))
                        r = parse_steps(c, val, field, d);
                else
                        return jsonin_fail(c, field,
                                           "unknown field (known: kind, value, base, from, to, start, length, step, "
                                           "min, max, seed, steps)");
                if (r < 0)
                        return r;
        }
        if (!have_kind)
                return jsonin_fail(c, where, "missing kind");
        if (d->kind == SIM_DEMAND_STEPS && d->n_steps == 0)
                return jsonin_fail(c, where, "steps needs a \"steps\" array");
        if (d->kind == SIM_DEMAND_WALK) {
                if (d->max_kib == 0)
                        d->max_kib = UINT64_MAX;
                if (d->min_kib > d->max_kib || d->base_kib < d->min_kib || d->base_kib > d->max_kib)
                        return jsonin_fail(c, where, "walk needs min <= base <= max");
        }
        return 0;
}

static int parse_agent(struct jsonin *c, json_object *o, const char *field, enum sim_agent *ret) {
        /* In the order of enum sim_agent (a silent agent is plan's, not a scenario's). */
        static const char *const agents[] = { "none", "honest", "late", "liar", "flood" };
        int k, r = jsonin_choice(c, o, field, agents, ELEMENTSOF(agents), &k);
        if (r == 0)
                *ret = (enum sim_agent) k;
        return r;
}

static int parse_group(struct jsonin *c, json_object *o, size_t i, struct simspec *s) {
        struct simspec_group *g = &s->groups[i];
        struct sim_vm_spec *vm = &g->vm;
        char field[96], where[48], perr[192];
        bool have_name = false, have_demand = false;
        int64_t v;
        double d;
        int r = 0;

        snprintf(where, sizeof(where), "groups[%zu]", i);
        if ((r = jsonin_object(c, o, where)) < 0)
                return r;
        *g = (struct simspec_group){ .count = 1, .host = -1 };
        *vm = (struct sim_vm_spec){ .node = -1, .have_policy = true, .balloon_stats = true,
                                    .uptime_usec = UINT64_C(86400) * USEC_PER_SEC, .lie_factor = 2 };
        policy_init(&vm->policy);
        json_object_object_foreach(o, key, val) {
                snprintf(field, sizeof(field), "%s.%s", where, key);
                r = 0;
                if (streq(key, "name")) {
                        r = jsonin_name(c, val, field, g->name, sizeof(g->name));
                        have_name = true;
                } else if (streq(key, "count")) {
                        if ((r = jsonin_int(c, val, field, 1, SIMSPEC_VMS_MAX, &v)) == 0)
                                g->count = (size_t) v;
                } else if (streq(key, "host")) {
                        if (!json_object_is_type(val, json_type_string))
                                return jsonin_fail(c, field, "expected a host's name");
                        g->host = find_name(json_object_get_string(val), s->hosts, s->n_hosts, sizeof(s->hosts[0]));
                        if (g->host < 0)
                                return jsonin_fail(c, field, "no host named '%s' in hosts", json_object_get_string(val));
                } else if ((r = jsonin_policy_field(c, key, val, field, &vm->policy)) <= 0) {
                        /* a policy field: parsed, or its error */
                } else if (streq(key, "boot"))
                        r = parse_boot(c, val, field, vm);
                else if (streq(key, "demand")) {
                        r = parse_demand(c, val, field, &vm->demand);
                        have_demand = true;
                } else if (streq(key, "agent"))
                        r = parse_agent(c, val, field, &vm->agent);
                else if (streq(key, "lag")) {
                        if ((r = seconds(c, val, field, &vm->lag_usec)) == 0 && vm->lag_usec >= (SIM_HISTORY - 1) * USEC_PER_SEC)
                                return jsonin_fail(c, field, "at most %d seconds (the guest remembers that much)",
                                                   SIM_HISTORY - 2);
                }
                else if (streq(key, "lie_factor"))
                        r = jsonin_number(c, val, field, 0, 1000, &vm->lie_factor);
                else if (streq(key, "psi")) {
                        if ((r = jsonin_number(c, val, field, 0, 100, &d)) == 0)
                                vm->psi_some_avg10 = d;
                } else if (streq(key, "deflate_on_oom"))
                        r = jsonin_bool(c, val, field, &vm->deflate_on_oom);
                else if (streq(key, "balloon_stats"))
                        r = jsonin_bool(c, val, field, &vm->balloon_stats);
                else
                        return jsonin_fail(c, field,
                                           "unknown field (known: name, count, host, startup, minimum, maximum, "
                                           "buffer, weight, dynamic, boot, demand, agent, lag, lie_factor, psi, "
                                           "deflate_on_oom, balloon_stats)");
                if (r < 0)
                        return r;
        }
        if (!have_name)
                return jsonin_fail(c, where, "missing name");
        if (!have_demand)
                return jsonin_fail(c, where, "missing demand (what the guests use over time)");
        snprintf(where, sizeof(where), "groups[%zu] (%.16s)", i, g->name);
        if (policy_validate(&vm->policy, perr, sizeof(perr)) < 0)
                return jsonin_fail(c, where, "%s", perr);
        if (find_name(g->name, s->groups, i, sizeof(s->groups[0])) >= 0)
                return jsonin_fail(c, where, "a second group named '%s'", g->name);
        /* A virtio-mem device makes up the maximum above the startup memory. */
        vm->boot_kib = vm->policy.startup_kib;
        if (vm->policy.maximum_kib > vm->policy.startup_kib) {
                vm->vmem_max_kib = vm->policy.maximum_kib - vm->policy.startup_kib;
                vm->vmem_block_kib = POLICY_ALIGN_KIB;
        }
        memcpy(vm->name, g->name, sizeof(g->name)); /* both NUL-terminated names, vm->name the larger */
        return 0;
}

static int parse_event(struct jsonin *c, json_object *o, size_t i, struct simspec *s) {
        struct simspec_event *e = &s->events[i];
        char field[96], where[32];
        bool have_kind = false;
        bool have_at = false;
        int r = 0;

        snprintf(where, sizeof(where), "events[%zu]", i);
        if ((r = jsonin_object(c, o, where)) < 0)
                return r;
        *e = (struct simspec_event){ .group = -1, .host = -1 };
        json_object_object_foreach(o, key, val) {
                snprintf(field, sizeof(field), "%s.%s", where, key);
                r = 0;
                if (streq(key, "kind")) {
                        /* In the order of enum simspec_event_kind. */
                        static const char *const kinds[] = { "restart", "staggered-start", "host-failure" };
                        int k;
                        if ((r = jsonin_choice(c, val, field, kinds, ELEMENTSOF(kinds), &k)) < 0)
                                return r;
                        e->kind = (enum simspec_event_kind) k;
                        have_kind = true;
                } else if (streq(key, "at")) {
                        r = seconds(c, val, field, &e->at_usec);
                        have_at = true;
                } else if (streq(key, "every"))
                        r = seconds(c, val, field, &e->every_usec);
                else if (streq(key, "group")) {
                        const char *n = json_object_is_type(val, json_type_string) ? json_object_get_string(val) : "";
                        e->group = find_name(n, s->groups, s->n_groups, sizeof(s->groups[0]));
                        if (e->group < 0)
                                return jsonin_fail(c, field, "no group named '%s' in groups", n);
                } else if (streq(key, "host")) {
                        const char *n = json_object_is_type(val, json_type_string) ? json_object_get_string(val) : "";
                        e->host = find_name(n, s->hosts, s->n_hosts, sizeof(s->hosts[0]));
                        if (e->host < 0)
                                return jsonin_fail(c, field, "no host named '%s' in hosts", n);
                } else
                        return jsonin_fail(c, field, "unknown field (known: kind, at, every, group, host)");
                if (r < 0)
                        return r;
        }
        if (!have_kind)
                return jsonin_fail(c, where, "missing kind");
        if (!have_at)
                return jsonin_fail(c, where, "missing at (seconds from the start)");
        if (e->kind == SIMSPEC_HOST_FAILURE && e->host < 0)
                return jsonin_fail(c, where, "a host-failure needs the host that fails");
        if (e->kind == SIMSPEC_HOST_FAILURE && s->n_hosts < 2)
                return jsonin_fail(c, where, "a host-failure needs another host for its VMs to restart on");
        return 0;
}

static int parse_trace_defaults(struct jsonin *c, json_object *o, struct simspec *s) {
        char field[64];
        int64_t v;
        int r = jsonin_object(c, o, "trace");
        if (r < 0)
                return r;
        json_object_object_foreach(o, key, val) {
                snprintf(field, sizeof(field), "trace.%s", key);
                if (streq(key, "minimum_floor"))
                        r = jsonin_size(c, val, field, &s->trace.minimum_floor_kib);
                else if (streq(key, "minimum_divisor")) {
                        if ((r = jsonin_int(c, val, field, 1, 1024, &v)) == 0)
                                s->trace.minimum_divisor = (unsigned) v;
                } else if (streq(key, "buffer")) {
                        if ((r = jsonin_int(c, val, field, POLICY_BUFFER_MIN, POLICY_BUFFER_MAX, &v)) == 0)
                                s->trace.buffer_pct = (unsigned) v;
                } else if (streq(key, "weight")) {
                        if ((r = jsonin_int(c, val, field, 0, POLICY_WEIGHT_MAX, &v)) == 0)
                                s->trace.weight = (unsigned) v;
                } else
                        return jsonin_fail(c, field, "unknown field (known: minimum_floor, minimum_divisor, buffer, weight)");
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Each array in its own pass, in the order names are needed: hosts, then groups, then events. */
static int parse_array(struct jsonin *c, json_object *a, const char *field, size_t max, size_t *n, struct simspec *s,
                       int (*one)(struct jsonin *, json_object *, size_t, struct simspec *)) {
        if (!json_object_is_type(a, json_type_array))
                return jsonin_fail(c, field, "expected an array, got %s", jsonin_type_name(a));
        size_t len = json_object_array_length(a);
        if (len > max)
                return jsonin_fail(c, field, "%zu entries, at most %zu", len, max);
        for (size_t i = 0; i < len; i++) {
                int r = one(c, json_object_array_get_idx(a, i), i, s);
                if (r < 0)
                        return r;
                *n = i + 1;
        }
        return 0;
}

static int parse_root(struct jsonin *c, json_object *root, struct simspec *s) {
        json_object *hosts = NULL, *groups = NULL, *events = NULL, *trace = NULL, *duration = NULL, *paging = NULL;
        int r;

        if ((r = jsonin_object(c, root, "(top level)")) < 0)
                return r;
        json_object_object_foreach(root, key, val) {
                if (streq(key, "hosts"))
                        hosts = val;
                else if (streq(key, "groups"))
                        groups = val;
                else if (streq(key, "events"))
                        events = val;
                else if (streq(key, "trace"))
                        trace = val;
                else if (streq(key, "duration"))
                        duration = val;
                else if (streq(key, "smart_paging"))
                        paging = val;
                else
                        return jsonin_fail(c, key,
                                           "unknown field (known: hosts, groups, events, trace, duration, smart_paging)");
        }
        /* In enum config_paging's order. */
        static const char *const paging_modes[] = { "restart", "always", "off" };
        if (paging && (r = jsonin_choice(c, paging, "smart_paging", paging_modes, ELEMENTSOF(paging_modes),
                                         &s->smart_paging)) < 0)
                return r;
        if (hosts && (r = parse_array(c, hosts, "hosts", SIMSPEC_HOSTS_MAX, &s->n_hosts, s, parse_host)) < 0)
                return r;
        if (groups && (r = parse_array(c, groups, "groups", SIMSPEC_GROUPS_MAX, &s->n_groups, s, parse_group)) < 0)
                return r;
        if (simspec_vms(s) > SIMSPEC_VMS_MAX)
                return jsonin_fail(c, "groups", "%zu VMs in all, at most %d", simspec_vms(s), SIMSPEC_VMS_MAX);
        if (events && (r = parse_array(c, events, "events", SIMSPEC_EVENTS_MAX, &s->n_events, s, parse_event)) < 0)
                return r;
        if (trace && (r = parse_trace_defaults(c, trace, s)) < 0)
                return r;
        if (duration && (r = seconds(c, duration, "duration", &s->duration_usec)) < 0)
                return r;
        if (duration && s->duration_usec < USEC_PER_SEC)
                return jsonin_fail(c, "duration", "at least one second");
        return 0;
}

int simspec_parse(const char *text, size_t len, const char *source, struct simspec *ret, char *err, size_t errlen) {
        struct jsonin c = { .source = source, .err = err, .errlen = errlen };
        json_object *root = NULL;
        int r;

        simspec_init(ret);
        if ((r = jsonin_parse(&c, text, len, &root)) < 0)
                return r;
        r = parse_root(&c, root, ret);
        json_object_put(root);
        return r;
}

int simspec_load(const char *path, struct simspec *ret, char *err, size_t errlen) {
        struct jsonin c = { .source = path, .err = err, .errlen = errlen };
        json_object *root = NULL;
        int r;

        simspec_init(ret);
        if ((r = jsonin_load(&c, path, SIMSPEC_FILE_MAX, &root)) < 0)
                return r;
        r = parse_root(&c, root, ret);
        json_object_put(root);
        return r;
}
