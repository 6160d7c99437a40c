#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/jsonin.h"
#include "cli/scenario.h"
#include "common/fileio.h"
#include "common/macro.h"
#include "common/units.h"

/* Uptime when a scenario does not say: a VM long past its post-boot quiet period. */
#define DEFAULT_UPTIME_USEC (UINT64_C(86400) * USEC_PER_SEC)
/* Ten years: anything longer is a typo, and it keeps microsecond arithmetic far from overflow. */
#define MAX_SECONDS (UINT64_C(10) * 365 * 86400)

static int parse_host(struct jsonin *c, json_object *o, const struct tide_config *cfg, struct scenario *s) {
        bool have_memory = false, have_reserve = false;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return jsonin_fail(c, "host", "expected an object, got %s", jsonin_type_name(o));
        json_object_object_foreach(o, key, val) {
                char field[96];
                snprintf(field, sizeof(field), "host.%s", key);
                if (streq(key, "memory")) {
                        if ((r = jsonin_size(c, val, field, &s->host_memory_kib)) < 0)
                                return r;
                        have_memory = true;
                } else if (streq(key, "reserve")) {
                        if ((r = jsonin_size(c, val, field, &s->host.reserve_kib)) < 0)
                                return r;
                        have_reserve = true;
                } else if (streq(key, "nodes")) {
                        if (!json_object_is_type(val, json_type_array))
                                return jsonin_fail(c, field, "expected an array, got %s", jsonin_type_name(val));
                        size_t n = json_object_array_length(val);
                        if (n > ENGINE_NODE_MAX)
                                return jsonin_fail(c, field, "%zu nodes, at most %d", n, ENGINE_NODE_MAX);
                        for (size_t i = 0; i < n; i++) {
                                json_object *node = json_object_array_get_idx(val, i), *mem = NULL;
                                snprintf(field, sizeof(field), "host.nodes[%zu].memory", i);
                                if (!json_object_is_type(node, json_type_object) || json_object_object_length(node) != 1 ||
                                    !json_object_object_get_ex(node, "memory", &mem))
                                        return jsonin_fail(c, field, "each node is {\"memory\": SIZE}");
                                if ((r = jsonin_size(c, mem, field, &s->host.node_usable_kib[i])) < 0)
                                        return r;
                        }
                        s->host.n_nodes = (unsigned) n;
                } else
                        return jsonin_fail(c, field, "unknown field (known: memory, reserve, nodes)");
        }
        if (!have_memory)
                return jsonin_fail(c, "host.memory", "missing (the memory VMs and the host reserve share)");
        if (!have_reserve)
                s->host.reserve_kib = config_reserve_kib(cfg, s->host_memory_kib);
        if (s->host.reserve_kib > s->host_memory_kib)
                return jsonin_fail(c, "host.reserve", "larger than host.memory");
        s->host.usable_kib = s->host_memory_kib;
        return 0;
}

static int parse_vm(struct jsonin *c, json_object *o, size_t i, const struct scenario *s, struct scenario_vm *out) {
        char field[128], where[32];
        bool have_assigned = false, have_name = false;
        int64_t v;
        double d;
        int r;

        snprintf(where, sizeof(where), "vms[%zu]", i);
        if (!json_object_is_type(o, json_type_object))
                return jsonin_fail(c, where, "expected an object, got %s", jsonin_type_name(o));

        struct engine_vm *vm = &out->vm;
        *vm = (struct engine_vm){ .state = ENGINE_VM_RUNNING, .uptime_usec = DEFAULT_UPTIME_USEC, .node = ENGINE_NODE_NONE };
        policy_init(&vm->policy);

        json_object_object_foreach(o, key, val) {
                snprintf(field, sizeof(field), "%s.%s", where, key);
                if (streq(key, "name")) {
                        r = jsonin_name(c, val, field, out->name, SCENARIO_NAME_MAX);
                        have_name = true;
                } else if ((r = jsonin_policy_field(c, key, val, field, &vm->policy)) <= 0) {
                        /* a policy field: parsed, or its error */
                } else if (streq(key, "assigned")) {
                        r = jsonin_size(c, val, field, &vm->assigned_kib);
                        have_assigned = true;
                } else if (streq(key, "demand")) {
                        uint64_t kib;
                        if ((r = jsonin_size(c, val, field, &kib)) == 0) {
                                vm->demand_kib = (int64_t) kib;
                                vm->has_demand = true;
                        }
                } else if (streq(key, "demand_age")) {
                        if ((r = jsonin_number(c, val, field, 0, (double) MAX_SECONDS, &d)) == 0)
                                out->demand_age_usec = (uint64_t) (d * USEC_PER_SEC);
                } else if (streq(key, "guest_total"))
                        r = jsonin_size(c, val, field, &vm->guest_total_kib);
                else if (streq(key, "uptime")) {
                        if ((r = jsonin_number(c, val, field, 0, (double) MAX_SECONDS, &d)) == 0)
                                vm->uptime_usec = (uint64_t) (d * USEC_PER_SEC);
                } else if (streq(key, "psi_some_avg10"))
                        r = jsonin_number(c, val, field, 0, 100, &vm->psi_some_avg10);
                else if (streq(key, "guest_oom")) {
                        if (!json_object_is_type(val, json_type_boolean))
                                return jsonin_fail(c, field, "expected true or false");
                        vm->guest_reclaimed = json_object_get_boolean(val);
                        r = 0;
                }
                else if (streq(key, "state")) {
                        const char *st = json_object_is_type(val, json_type_string) ? json_object_get_string(val) : "";
                        if (streq(st, "running"))
                                vm->state = ENGINE_VM_RUNNING;
                        else if (streq(st, "booting"))
                                vm->state = ENGINE_VM_BOOTING;
                        else
                                return jsonin_fail(c, field, "expected \"running\" or \"booting\"");
                        r = 0;
                } else if (streq(key, "node")) {
                        if ((r = jsonin_int(c, val, field, 0, ENGINE_NODE_MAX - 1, &v)) == 0) {
                                if ((unsigned) v >= s->host.n_nodes)
                                        return jsonin_fail(c, field, "node %" PRId64 " is not in host.nodes (%u nodes)", v,
                                                    s->host.n_nodes);
                                vm->node = (int) v;
                        }
                } else
                        return jsonin_fail(c, field,
                                    "unknown field (known: name, startup, minimum, maximum, buffer, weight, dynamic, "
                                    "assigned, demand, demand_age, guest_total, uptime, psi_some_avg10, guest_oom, state, node)");
                if (r < 0)
                        return r;
        }
        if (!have_name)
                return jsonin_fail(c, where, "missing name");

        char perr[192];
        snprintf(where, sizeof(where), "vms[%zu] (%.16s)", i, out->name);
        if (policy_validate(&vm->policy, perr, sizeof(perr)) < 0)
                return jsonin_fail(c, where, "%s", perr);
        if (!have_assigned)
                vm->assigned_kib = vm->policy.startup_kib;
        return 0;
}

static int parse_root(struct jsonin *c, json_object *root, const struct tide_config *cfg, struct scenario *s) {
        json_object *host = NULL, *vms = NULL;
        int r;

        if (!json_object_is_type(root, json_type_object))
                return jsonin_fail(c, "(top level)", "expected an object with \"host\" and \"vms\"");
        json_object_object_foreach(root, key, val) {
                if (streq(key, "host"))
                        host = val;
                else if (streq(key, "vms"))
                        vms = val;
                else
                        return jsonin_fail(c, key, "unknown field (known: host, vms)");
        }
        if (!host)
                return jsonin_fail(c, "host", "missing");
        if (!vms)
                return jsonin_fail(c, "vms", "missing");
        if ((r = parse_host(c, host, cfg, s)) < 0)
                return r;
        if (!json_object_is_type(vms, json_type_array))
                return jsonin_fail(c, "vms", "expected an array, got %s", jsonin_type_name(vms));

        size_t n = json_object_array_length(vms);
        if (n > SCENARIO_VMS_MAX)
                return jsonin_fail(c, "vms", "%zu VMs, at most %d", n, SCENARIO_VMS_MAX);
        s->vms = calloc(n ? n : 1, sizeof(*s->vms));
        if (!s->vms)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if ((r = parse_vm(c, json_object_array_get_idx(vms, i), i, s, &s->vms[i])) < 0)
                        return r;
                s->n_vms = i + 1;
                for (size_t j = 0; j < i; j++)
                        if (streq(s->vms[j].name, s->vms[i].name)) {
                                char field[32];
                                snprintf(field, sizeof(field), "vms[%zu].name", i);
                                return jsonin_fail(c, field, "\"%s\" is also the name of vms[%zu]", s->vms[i].name, j);
                        }
        }
        return 0;
}

int scenario_parse(const char *text, size_t len, const char *source, const struct tide_config *cfg,
                   struct scenario *ret, char *err, size_t errlen) {
        struct jsonin c = { .source = source, .err = err, .errlen = errlen };
        struct scenario s = { 0 };
        json_object *root = NULL;
        int r;

        if ((r = jsonin_parse(&c, text, len, &root)) < 0)
                return r;
        r = parse_root(&c, root, cfg, &s);
        json_object_put(root);
        if (r < 0) {
                scenario_done(&s);
                return r;
        }
        *ret = s;
        return 0;
}

int scenario_load(const char *path, const struct tide_config *cfg, struct scenario *ret, char *err, size_t errlen) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r;

        r = read_file_at(NULL, path, SCENARIO_FILE_MAX, &text, &len);
        if (r < 0) {
                snprintf(err, errlen, "%s: %s", path, r == -EFBIG ? "file too large" : strerror(-r));
                return r;
        }
        return scenario_parse(text, len, path, cfg, ret, err, errlen);
}

void scenario_done(struct scenario *s) {
        if (!s)
                return;
        free(s->vms);
        *s = (struct scenario){ 0 };
}
