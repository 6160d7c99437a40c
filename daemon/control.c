#include <errno.h>
#include <fcntl.h>
#include <json.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "balloon/hv.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/macro.h"
#include "daemon/control.h"
#include "policy/engine.h"

#ifndef TIDE_VERSION
#define TIDE_VERSION "unknown"
#endif

static char *reply_error(const char *msg) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "ok", json_object_new_boolean(false));
        json_object_object_add(o, "error", json_object_new_string(msg));
        char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        return s;
}

static json_object *kib(uint64_t v) {
        return json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t) v);
}

static bool matches(const struct snapshot_domain *d, const char *filter) {
        return !filter || streq(d->name, filter) || streq(d->uuid, filter);
}

static json_object *stats_domain(const struct snapshot_domain *d) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(d->name));
        json_object_object_add(o, "uuid", json_object_new_string(d->uuid));
        json_object_object_add(o, "managed", json_object_new_boolean(d->managed));
        json_object_object_add(o, "active", json_object_new_boolean(d->active));
        json_object_object_add(o, "assigned_kib", kib(d->assigned_kib));
        json_object_object_add(o, "demand_kib", d->has_demand ? kib(d->demand_kib) : NULL);
        json_object_object_add(o, "target_kib", d->managed && d->active && d->target_kib ? kib(d->target_kib) : NULL);
        json_object_object_add(o, "pressure_pct", d->has_demand ? json_object_new_double(d->pressure_pct) : NULL);
        json_object_object_add(o, "available_buffer_pct",
                               d->managed && d->has_demand ? json_object_new_double(d->available_buffer_pct) : NULL);
        json_object_object_add(o, "status", json_object_new_string(d->status));
        json_object_object_add(o, "minimum_kib", d->managed ? kib(d->minimum_kib) : NULL);
        json_object_object_add(o, "startup_kib", d->managed ? kib(d->startup_kib) : NULL);
        json_object_object_add(o, "maximum_kib", d->managed ? kib(d->maximum_kib) : NULL);
        json_object_object_add(o, "buffer_pct", d->managed ? json_object_new_int((int) d->buffer_pct) : NULL);
        json_object_object_add(o, "weight", d->managed ? json_object_new_int((int) d->weight) : NULL);
        json_object_object_add(o, "dynamic", d->managed ? json_object_new_boolean(d->dynamic) : NULL);
        json_object_object_add(o, "latency_sensitive", d->managed ? json_object_new_boolean(d->latency_sensitive) : NULL);
        json_object_object_add(o, "parking", d->parking ? json_object_new_string(d->parking) : NULL);
        json_object_object_add(o, "agent", json_object_new_string(d->agent));
        json_object_object_add(o, "demand_source",
                               json_object_new_string(!d->has_demand ? "none" : d->agent_demand ? "agent" : "balloon"));
        json_object_object_add(o, "agent_report_age_ms",
                               d->agent_report_age_ms >= 0 ? json_object_new_int64(d->agent_report_age_ms) : NULL);
        json_object_object_add(o, "agent_rejected", kib(d->agent_rejected));
        json_object_object_add(o, "agent_rate_dropped", kib(d->agent_rate_dropped));
        json_object_object_add(o, "agent_error", json_object_new_string(d->agent_error));
        json_object_object_add(o, "balloon", json_object_new_string(d->balloon));
        json_object_object_add(o, "balloon_actions", kib(d->balloon_actions));
        json_object_object_add(o, "guest_oom_deflates", kib(d->guest_oom_deflates));
        json_object_object_add(o, "rss_kib", kib(d->rss_kib));
        json_object_object_add(o, "paging", json_object_new_string(d->paging ? d->paging : "none"));
        json_object_object_add(o, "paging_kib", kib(d->paging_kib));
        json_object_object_add(o, "paging_used_kib", kib(d->paging_used_kib));
        json_object_object_add(o, "reason", json_object_new_string(d->reason));
        json_object_object_add(o, "pending", json_object_new_string(d->pending));
        return o;
}

/* A share 0..1, null when not measured (< 0). */
static json_object *share(double v) {
        return v >= 0 ? json_object_new_double(v) : NULL;
}

/* What parking is worth, and the host's CPUs (snapshot.h). */
static json_object *stats_parking_measured(const struct snapshot *s) {
        const struct snapshot_host *h = &s->host;
        json_object *o = json_object_new_object(), *e = NULL, *last = NULL, *n = json_object_new_object(),
                    *cpus = json_object_new_array();
        json_object_object_add(o, "has_deep_state", json_object_new_boolean(h->parking_has_deep));
        json_object_object_add(o, "never_pays", json_object_new_boolean(h->parking_never_pays));
        if (h->parking_verdict) {
                e = json_object_new_object();
                json_object_object_add(e, "verdict", json_object_new_string(h->parking_verdict));
                json_object_object_add(e, "deep_before", json_object_new_double(h->parking_deep_before));
                json_object_object_add(e, "deep_during", json_object_new_double(h->parking_deep_during));
                json_object_object_add(e, "watts_saved", json_object_new_double(h->parking_watts_saved));
                json_object_object_add(e, "rapl_watts_saved",
                                       h->parking_rapl_known ? json_object_new_double(h->parking_rapl_watts_saved)
                                                             : NULL);
        }
        json_object_object_add(o, "episode", e);
        json_object_object_add(n, "paid", kib(h->parking_episodes_paid));
        json_object_object_add(n, "did_not_pay", kib(h->parking_episodes_not_paid));
        json_object_object_add(n, "unknown", kib(h->parking_episodes_unknown));
        json_object_object_add(o, "episodes", n);
        json_object_object_add(o, "joules_saved", json_object_new_double(h->parking_joules_saved));
        if (h->parking_last_verdict) {
                last = json_object_new_object();
                json_object_object_add(last, "verdict", json_object_new_string(h->parking_last_verdict));
                json_object_object_add(last, "watts_saved", json_object_new_double(h->parking_last_watts_saved));
                json_object_object_add(last, "seconds", json_object_new_double(h->parking_last_seconds));
        }
        json_object_object_add(o, "last_episode", last);
        for (size_t i = 0; i < s->n_cpus; i++) {
                const struct snapshot_cpu *c = &s->cpus[i];
                json_object *j = json_object_new_object();
                json_object_object_add(j, "cpu", json_object_new_int64(c->cpu));
                json_object_object_add(j, "parked", json_object_new_boolean(c->parked));
                json_object_object_add(j, "busy", share(c->busy));
                json_object_object_add(j, "idle", share(c->idle));
                json_object_object_add(j, "deep", share(c->deep));
                json_object_array_add(cpus, j);
        }
        json_object_object_add(o, "cpus", cpus);
        return o;
}

static json_object *stats_host(const struct snapshot *s) {
        const struct snapshot_host *h = &s->host;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "total_kib", kib(h->total_kib));
        json_object_object_add(o, "available_kib", kib(h->available_kib));
        json_object_object_add(o, "usable_kib", kib(h->usable_kib));
        json_object_object_add(o, "reserve_kib", kib(h->reserve_kib));
        json_object_object_add(o, "capacity_kib", kib(h->capacity_kib));
        json_object_object_add(o, "assigned_kib", kib(h->assigned_kib));
        json_object_object_add(o, "target_kib", kib(h->target_kib));
        json_object_object_add(o, "short", json_object_new_boolean(h->short_host));
        json_object_object_add(o, "overcommitted", json_object_new_boolean(h->overcommitted));
        json_object_object_add(o, "paging_files", kib(h->paging_files));
        json_object_object_add(o, "unfunded_kib", kib(h->unfunded_kib));
        if (h->parking_on) {
                json_object *p = json_object_new_object();
                json_object_object_add(p, "parked", json_object_new_string(h->parked));
                json_object_object_add(p, "parked_cpus", kib(h->parked_cpus));
                json_object_object_add(p, "unparked_cpus", kib(h->unparked_cpus));
                json_object_object_add(p, "needed_cpus", kib(h->parking_needed_cpus));
                json_object_object_add(p, "load_cpus", json_object_new_double(h->parking_load_cpus));
                json_object_object_add(p, "reason", json_object_new_string(h->parking_reason ? h->parking_reason : ""));
                json_object_object_add(p, "reversals", kib(h->parking_reversals));
                json_object_object_add(p, "measured", h->parking_measured ? stats_parking_measured(s) : NULL);
                json_object_object_add(o, "parking", p);
        } else
                json_object_object_add(o, "parking", NULL);
        json_object_object_add(o, "ticks", kib(h->ticks));
        json_object_object_add(o, "tick_usec", kib(h->tick_usec));
        return o;
}

/* Reads an optional size in KiB. Returns 1 when present, 0 when absent, -EINVAL (with err). */
static int opt_kib(json_object *req, const char *key, uint64_t *ret, char *err, size_t errlen) {
        json_object *v;
        if (!json_object_object_get_ex(req, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) <= 0) {
                snprintf(err, errlen, "%s: expected a positive whole number of KiB", key);
                return -EINVAL;
        }
        *ret = (uint64_t) json_object_get_int64(v);
        return 1;
}

static int opt_uint(json_object *req, const char *key, unsigned max, unsigned *ret, char *err, size_t errlen) {
        json_object *v;
        if (!json_object_object_get_ex(req, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
            json_object_get_int64(v) > (int64_t) max) {
                snprintf(err, errlen, "%s: expected a whole number 0-%u", key, max);
                return -EINVAL;
        }
        *ret = (unsigned) json_object_get_int64(v);
        return 1;
}

static int parse_change(json_object *req, struct policy_change *c, char *err, size_t errlen) {
        static const char *known[] = { "cmd", "domain", "startup_kib", "minimum_kib", "maximum_kib",
                                       "buffer", "weight", "dynamic", "latency_sensitive" };
        int r;

        json_object_object_foreach(req, key, val) {
                (void) val;
                bool ok = false;
                for (size_t i = 0; i < ELEMENTSOF(known); i++)
                        ok |= streq(key, known[i]);
                if (!ok) {
                        snprintf(err, errlen, "%.64s: unknown field", key);
                        return -EINVAL;
                }
        }
        *c = (struct policy_change){ 0 };
        if ((r = opt_kib(req, "startup_kib", &c->startup_kib, err, errlen)) < 0)
                return r;
        c->have_startup = r;
        if ((r = opt_kib(req, "minimum_kib", &c->minimum_kib, err, errlen)) < 0)
                return r;
        c->have_minimum = r;
        if ((r = opt_kib(req, "maximum_kib", &c->maximum_kib, err, errlen)) < 0)
                return r;
        c->have_maximum = r;
        if ((r = opt_uint(req, "buffer", POLICY_BUFFER_MAX, &c->buffer_pct, err, errlen)) < 0)
                return r;
        c->have_buffer = r;
        if ((r = opt_uint(req, "weight", POLICY_WEIGHT_MAX, &c->weight, err, errlen)) < 0)
                return r;
        c->have_weight = r;
        json_object *v;
        if (json_object_object_get_ex(req, "dynamic", &v)) {
                if (!json_object_is_type(v, json_type_boolean)) {
                        snprintf(err, errlen, "dynamic: expected true or false");
                        return -EINVAL;
                }
                c->have_dynamic = true;
                c->dynamic = json_object_get_boolean(v);
        }
        if (json_object_object_get_ex(req, "latency_sensitive", &v)) {
                if (!json_object_is_type(v, json_type_boolean)) {
                        snprintf(err, errlen, "latency_sensitive: expected true or false");
                        return -EINVAL;
                }
                c->have_latency_sensitive = true;
                c->latency_sensitive = json_object_get_boolean(v);
        }
        return 0;
}

/* Parses a request: one JSON object with a string "cmd" and an optional "domain". On a bad
 * one returns NULL with the reason in err. */
static json_object *parse_request(const char *line, size_t len, const char **ret_cmd, const char **ret_domain,
                                  char *err, size_t errlen) {
        json_object *req, *v;

        json_tokener *tok = json_tokener_new();
        if (!tok) {
                snprintf(err, errlen, "out of memory");
                return NULL;
        }
        req = len <= CONTROL_MSG_MAX ? json_tokener_parse_ex(tok, line, (int) len) : NULL;
        bool complete = json_tokener_get_error(tok) == json_tokener_success;
        json_tokener_free(tok);
        if (!req || !complete || !json_object_is_type(req, json_type_object)) {
                snprintf(err, errlen, "malformed request: expected one JSON object");
                json_object_put(req);
                return NULL;
        }
        if (!json_object_object_get_ex(req, "cmd", &v) || !json_object_is_type(v, json_type_string)) {
                snprintf(err, errlen, "cmd: missing");
                json_object_put(req);
                return NULL;
        }
        *ret_cmd = json_object_get_string(v);
        *ret_domain = NULL;
        if (json_object_object_get_ex(req, "domain", &v)) {
                if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0 ||
                    json_object_get_string_len(v) >= HV_NAME_MAX) {
                        snprintf(err, errlen, "domain: expected a domain name or UUID");
                        json_object_put(req);
                        return NULL;
                }
                *ret_domain = json_object_get_string(v);
        }
        return req;
}

/* stats and policy-show: the published snapshot, all domains or one. */
static int handle_stats(struct manager *m, const char *domain, json_object *reply, char *err, size_t errlen) {
        const struct snapshot *s = manager_snapshot(m);
        json_object *arr = json_object_new_array();
        bool found = false;

        for (size_t i = 0; i < s->n_domains; i++) {
                if (!matches(&s->domains[i], domain))
                        continue;
                found = true;
                json_object_array_add(arr, stats_domain(&s->domains[i]));
        }
        if (domain && !found) {
                snprintf(err, errlen, "no domain named '%.200s'", domain);
                json_object_put(arr);
                return -ENOENT;
        }
        json_object_object_add(reply, "host", stats_host(s));
        json_object_object_add(reply, "domains", arr);
        return 0;
}

/* policy-set and policy-clear: root only, for one domain. */
static int handle_policy(struct manager *m, const char *cmd, const char *domain, json_object *req, bool privileged,
                         uint64_t now_usec, json_object *reply, char *err, size_t errlen) {
        char note[512] = "";
        int r;

        if (!privileged) {
                snprintf(err, errlen, "permission denied: only root may change policies");
                return -EPERM;
        }
        if (!domain) {
                snprintf(err, errlen, "domain: missing");
                return -EINVAL;
        }
        if (streq(cmd, "policy-set")) {
                struct policy_change c;
                if ((r = parse_change(req, &c, err, errlen)) < 0)
                        return r;
                r = manager_policy_set(m, domain, &c, now_usec, note, sizeof(note), err, errlen);
        } else
                r = manager_policy_clear(m, domain, now_usec, note, sizeof(note), err, errlen);
        if (r < 0)
                return r;
        json_object_object_add(reply, "note", json_object_new_string(note));
        return 0;
}

int control_handle(struct manager *m, const char *line, size_t len, bool privileged, uint64_t now_usec,
                   char **ret_reply) {
        char err[512] = "";
        const char *cmd, *domain;
        int r;

        json_object *req = parse_request(line, len, &cmd, &domain, err, sizeof(err));
        if (!req) {
                *ret_reply = reply_error(err);
                return *ret_reply ? 0 : -ENOMEM;
        }
        json_object *reply = json_object_new_object();
        json_object_object_add(reply, "ok", json_object_new_boolean(true));
        if (streq(cmd, "ping")) {
                json_object_object_add(reply, "version", json_object_new_string(TIDE_VERSION));
                r = 0;
        } else if (streq(cmd, "stats") || streq(cmd, "policy-show"))
                r = handle_stats(m, domain, reply, err, sizeof(err));
        else if (streq(cmd, "policy-set") || streq(cmd, "policy-clear"))
                r = handle_policy(m, cmd, domain, req, privileged, now_usec, reply, err, sizeof(err));
        else {
                snprintf(err, sizeof(err),
                         "cmd: unknown command '%.64s' (known: ping, stats, policy-show, policy-set, policy-clear)", cmd);
                r = -EINVAL;
        }
        *ret_reply = r < 0 ? reply_error(err) : strdup(json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN));
        json_object_put(reply);
        json_object_put(req);
        return *ret_reply ? 0 : -ENOMEM;
}

/* ---- the socket ---- */

struct client {
        int fd;
        int watch;
        uid_t uid;
        bool privileged;
        uint64_t since_usec;
        char *buf;
        size_t len;
        char *out;
        size_t out_len, out_off;
};

struct control {
        char path[sizeof(((struct sockaddr_un *) 0)->sun_path)];
        int fd;
        int watch;
        struct manager *m;
        struct client clients[CONTROL_CLIENTS_MAX];
};

static void client_close(struct client *cl) {
        if (cl->watch >= 0)
                hv_event_remove_fd(cl->watch);
        if (cl->fd >= 0)
                close(cl->fd);
        free(cl->buf);
        free(cl->out);
        *cl = (struct client){ .fd = -1, .watch = -1 };
}

/* Queues reply (owned, NULL: out of memory) as the client's one answer line; the connection
 * closes once it is sent. */
static void client_send(struct client *cl, char *reply) {
        _cleanup_free_ char *owned = reply;

        if (!owned) {
                client_close(cl);
                return;
        }
        /* A copy, not realloc: the sanitizer build's GCC flags any use of a realloc'd pointer
         * (-Wuse-after-free), even the free() its failure needs. */
        size_t n = strlen(owned);
        cl->out = malloc(n + 2);
        if (!cl->out) {
                client_close(cl);
                return;
        }
        memcpy(cl->out, owned, n);
        cl->out[n] = '\n';
        cl->out[n + 1] = '\0';
        cl->out_len = n + 1;
        cl->out_off = 0;
        hv_event_update_fd(cl->watch, HV_FD_WRITABLE);
}

static void client_reply(struct control *c, struct client *cl, const char *line, size_t len) {
        char *reply = NULL;
        if (control_handle(c->m, line, len, cl->privileged, clock_now_usec(), &reply) < 0) {
                client_close(cl);
                return;
        }
        client_send(cl, reply);
}

static void on_client(int id, int fd, int events, void *userdata) {
        struct control *c = userdata;
        struct client *cl = NULL;

        for (size_t i = 0; i < CONTROL_CLIENTS_MAX; i++)
                if (c->clients[i].watch == id)
                        cl = &c->clients[i];
        if (!cl)
                return;
        if (cl->out) {
                if (events & (HV_FD_ERROR | HV_FD_HANGUP)) {
                        client_close(cl);
                        return;
                }
                ssize_t n = send(fd, cl->out + cl->out_off, cl->out_len - cl->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return;
                if (n <= 0) {
                        client_close(cl);
                        return;
                }
                cl->out_off += (size_t) n;
                if (cl->out_off == cl->out_len)
                        client_close(cl);
                return;
        }
        char chunk[4096];
        ssize_t n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                /* EOF without a newline: answer what came, if anything (a client may shut
                 * down its write side instead of sending "\n"). */
                if (n == 0 && cl->len > 0)
                        client_reply(c, cl, cl->buf, cl->len);
                else
                        client_close(cl);
                return;
        }
        char *nl = memchr(chunk, '\n', (size_t) n);
        size_t take = nl ? (size_t) (nl - chunk) : (size_t) n;
        if (cl->len + take > CONTROL_MSG_MAX) {
                char msg[64];
                free(cl->buf);
                cl->buf = NULL;
                cl->len = 0;
                snprintf(msg, sizeof(msg), "request larger than %d bytes", CONTROL_MSG_MAX);
                client_send(cl, reply_error(msg));
                return;
        }
        char *grown = realloc(cl->buf, cl->len + take + 1);
        if (!grown) {
                client_close(cl);
                return;
        }
        cl->buf = grown;
        memcpy(cl->buf + cl->len, chunk, take);
        cl->len += take;
        cl->buf[cl->len] = '\0';
        if (nl)
                client_reply(c, cl, cl->buf, cl->len);
}

/* A free slot for a client of uid, or NULL: root may take any; another user none of the last
 * CONTROL_CLIENTS_ROOT_RESERVED, and at most CONTROL_CLIENTS_PER_UID. */
static struct client *admit(struct control *c, uid_t uid) {
        struct client *free_slot = NULL;
        size_t others = 0, mine = 0;

        for (size_t i = 0; i < CONTROL_CLIENTS_MAX; i++) {
                const struct client *cl = &c->clients[i];
                if (cl->fd < 0) {
                        free_slot = free_slot ? free_slot : &c->clients[i];
                        continue;
                }
                others += !cl->privileged;
                mine += cl->uid == uid;
        }
        if (uid != 0 && (others >= CONTROL_CLIENTS_MAX - CONTROL_CLIENTS_ROOT_RESERVED || mine >= CONTROL_CLIENTS_PER_UID))
                return NULL;
        return free_slot;
}

static void on_accept(int id, int fd, int events, void *userdata) {
        struct control *c = userdata;
        struct ucred cred;
        socklen_t credlen = sizeof(cred);

        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
                return;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) < 0) {
                close(cfd);
                return;
        }
        struct client *cl = admit(c, cred.uid);
        if (!cl) {
                /* Full, for this user: tell the client rather than leave it hanging. */
                static const char busy[] = "{\"ok\":false,\"error\":\"tided is busy: too many connections\"}\n";
                (void) !send(cfd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                close(cfd);
                return;
        }
        *cl = (struct client){
                .fd = cfd, .watch = -1, .uid = cred.uid, .privileged = cred.uid == 0, .since_usec = clock_now_usec()
        };
        cl->watch = hv_event_add_fd(cfd, HV_FD_READABLE, on_client, c);
        if (cl->watch < 0)
                client_close(cl);
}

bool control_in_use(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return false;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0)
                return false;
        bool live = connect(probe, (struct sockaddr *) &sa, sizeof(sa)) == 0;
        close(probe);
        return live;
}

int control_start(const char *path, struct manager *m, struct control **ret, char *err, size_t errlen) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct control *c;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path)) {
                snprintf(err, errlen, "%s: socket path too long", path);
                return -ENAMETOOLONG;
        }
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->m = m;
        c->watch = -1;
        for (size_t i = 0; i < CONTROL_CLIENTS_MAX; i++)
                c->clients[i] = (struct client){ .fd = -1, .watch = -1 };
        snprintf(c->path, sizeof(c->path), "%s", path);
        memcpy(sa.sun_path, path, strlen(path) + 1);

        char dir[sizeof(c->path)];
        snprintf(dir, sizeof(dir), "%s", path);
        /* A directory made here is for every local user (tidectl reads stats as anyone), whatever
         * the umask (the unit's is 0077); one that exists is the administrator's, left as it is. */
        const char *d = dirname(dir);
        if (mkdir(d, 0755) == 0)
                (void) chmod(d, 0755);

        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
                r = -errno;
                snprintf(err, errlen, "socket: %s", strerror(errno));
                free(c);
                return r;
        }
        /* A socket file left by a tided that died; a live tided would answer a connect. */
        if (control_in_use(path)) {
                close(c->fd);
                free(c);
                snprintf(err, errlen, "%s: another tided is running", path);
                return -EADDRINUSE;
        }
        (void) unlink(path);

        mode_t old = umask(0111); /* srw-rw-rw-: reading stats is open to all local users */
        r = bind(c->fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old);
        if (r < 0 || listen(c->fd, 16) < 0) {
                r = -errno;
                snprintf(err, errlen, "%s: %s", path, strerror(errno));
                close(c->fd);
                free(c);
                return r;
        }
        c->watch = hv_event_add_fd(c->fd, HV_FD_READABLE, on_accept, c);
        if (c->watch < 0) {
                snprintf(err, errlen, "%s: cannot watch the socket", path);
                r = c->watch;
                close(c->fd);
                unlink(path);
                free(c);
                return r;
        }
        *ret = c;
        return 0;
}

void control_expire(struct control *c, uint64_t now_usec) {
        for (size_t i = 0; i < CONTROL_CLIENTS_MAX; i++)
                if (c->clients[i].fd >= 0 && now_usec - c->clients[i].since_usec > CONTROL_CLIENT_TIMEOUT_USEC)
                        client_close(&c->clients[i]);
}

struct control *control_stop(struct control *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < CONTROL_CLIENTS_MAX; i++)
                if (c->clients[i].fd >= 0)
                        client_close(&c->clients[i]);
        if (c->watch >= 0)
                hv_event_remove_fd(c->watch);
        if (c->fd >= 0)
                close(c->fd);
        unlink(c->path);
        free(c);
        return NULL;
}
