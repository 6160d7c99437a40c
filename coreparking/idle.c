#include "coreparking/idle.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/macro.h"

/* Every file read here is one number or one short name. */
#define SMALL_FILE 64

static int read_u64(const char *root, const char *path, uint64_t *ret) {
        _cleanup_free_ char *buf = NULL;
        int r = read_file_at(root, path, SMALL_FILE, &buf, NULL);
        if (r < 0)
                return r;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(buf, &end, 10);
        if (errno || end == buf || buf[0] == '-' || (*end && *end != '\n'))
                return -EINVAL;
        *ret = v;
        return 0;
}

int parking_idle_read(const char *root, unsigned cpu, struct parking_idle *ret) {
        char path[128];
        struct parking_idle idle = { 0 };

        if (!ret)
                return -EINVAL;
        for (unsigned k = 0;; k++) {
                snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%u/cpuidle/state%u/name", cpu, k);
                _cleanup_free_ char *name = NULL;
                int r = read_file_at(root, path, SMALL_FILE, &name, NULL);
                if (r == -ENOENT)
                        break; /* past the last state, or no cpuidle at all */
                if (r < 0)
                        return r;
                if (k >= PARKING_IDLE_STATES)
                        return -ERANGE;
                struct parking_idle_state *s = &idle.s[k];
                name[strcspn(name, "\n")] = '\0';
                snprintf(s->name, sizeof(s->name), "%s", name);
                static const char *const files[] = { "latency", "time", "usage" };
                uint64_t *into[] = { &s->latency_usec, &s->time_usec, &s->usage };
                for (unsigned f = 0; f < ELEMENTSOF(files); f++) {
                        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%u/cpuidle/state%u/%s", cpu, k, files[f]);
                        if ((r = read_u64(root, path, into[f])) < 0)
                                return r;
                }
                idle.n = k + 1;
        }
        *ret = idle;
        return 0;
}

bool parking_idle_residency(const struct parking_idle *before, const struct parking_idle *after,
                            uint64_t elapsed_usec, double *ret_idle, double *ret_deep, uint64_t *ret_entries) {
        if (!before || !after || !elapsed_usec || before->n != after->n || before->n == 0)
                return false;
        uint64_t idle = 0, deep = 0, entries = 0;
        for (unsigned k = 0; k < after->n; k++) {
                const struct parking_idle_state *a = &before->s[k], *b = &after->s[k];
                if (strcmp(a->name, b->name) || b->time_usec < a->time_usec || b->usage < a->usage)
                        return false;
                idle += b->time_usec - a->time_usec;
                entries += b->usage - a->usage;
                if (b->latency_usec >= PARKING_DEEP_LATENCY_USEC)
                        deep += b->time_usec - a->time_usec;
        }
        /* The counters and the clock are read a few microseconds apart: never more than all. */
        if (ret_idle)
                *ret_idle = idle >= elapsed_usec ? 1.0 : (double) idle / (double) elapsed_usec;
        if (ret_deep)
                *ret_deep = deep >= elapsed_usec ? 1.0 : (double) deep / (double) elapsed_usec;
        if (ret_entries)
                *ret_entries = entries;
        return true;
}

int parking_rapl_read(const char *root, uint64_t *ret_uj, uint64_t *ret_range_uj, unsigned *ret_packages) {
        char path[128];
        uint64_t sum = 0, range = 0;
        unsigned n = 0;

        if (!ret_uj)
                return -EINVAL;
        /* intel-rapl:N is package N; its subzones (intel-rapl:N:M, core and uncore) are inside it. */
        for (unsigned p = 0; p < 64; p++) {
                uint64_t uj, max;
                snprintf(path, sizeof(path), "/sys/class/powercap/intel-rapl:%u/energy_uj", p);
                int r = read_u64(root, path, &uj);
                if (r == -ENOENT)
                        break;
                if (r < 0)
                        return r;
                snprintf(path, sizeof(path), "/sys/class/powercap/intel-rapl:%u/max_energy_range_uj", p);
                if ((r = read_u64(root, path, &max)) < 0)
                        return r;
                /* A zone that is not a package (psys: the whole platform, on client parts) holds
                 * the packages' energy too: counting it would count them twice. */
                _cleanup_free_ char *name = NULL;
                snprintf(path, sizeof(path), "/sys/class/powercap/intel-rapl:%u/name", p);
                if (read_file_at(root, path, SMALL_FILE, &name, NULL) == 0 && strncmp(name, "package", 7) != 0)
                        continue;
                sum += uj;
                range = range ? min_u64(range, max) : max;
                n++;
        }
        if (!n)
                return -ENOENT;
        *ret_uj = sum;
        if (ret_range_uj)
                *ret_range_uj = range;
        if (ret_packages)
                *ret_packages = n;
        return 0;
}

int parking_idle_host_init(struct parking_idle_host *h, unsigned n) {
        *h = (struct parking_idle_host){ .n = n };
        h->prev = calloc(n ? n : 1, sizeof(*h->prev));
        h->prev_ok = calloc(n ? n : 1, sizeof(*h->prev_ok));
        h->idle = calloc(n ? n : 1, sizeof(*h->idle));
        h->deep = calloc(n ? n : 1, sizeof(*h->deep));
        if (!h->prev || !h->prev_ok || !h->idle || !h->deep) {
                parking_idle_host_done(h);
                return -ENOMEM;
        }
        for (unsigned c = 0; c < n; c++)
                h->idle[c] = h->deep[c] = -1;
        return 0;
}

void parking_idle_host_done(struct parking_idle_host *h) {
        if (!h)
                return;
        free(h->prev);
        free(h->prev_ok);
        free(h->idle);
        free(h->deep);
        *h = (struct parking_idle_host){ 0 };
}

/* The counters only (time, usage) of the states *io lists: a name or a latency does not change
 * while the cpuidle driver stays, and a read is four files a state against two. */
static int read_counters(const char *root, unsigned cpu, struct parking_idle *io) {
        char path[128];
        for (unsigned k = 0; k < io->n; k++) {
                snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%u/cpuidle/state%u/time", cpu, k);
                int r = read_u64(root, path, &io->s[k].time_usec);
                if (r < 0)
                        return r;
                snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%u/cpuidle/state%u/usage", cpu, k);
                if ((r = read_u64(root, path, &io->s[k].usage)) < 0)
                        return r;
        }
        return io->n ? 0 : -ENOENT;
}

static bool lists_deep(const struct parking_idle *i) {
        for (unsigned k = 0; k < i->n; k++)
                if (i->s[k].latency_usec >= PARKING_DEEP_LATENCY_USEC)
                        return true;
        return false;
}

int parking_idle_host_read(struct parking_idle_host *h, const char *root, const struct parking_core *cores,
                           size_t n_cores, const double *busy, uint64_t now_usec, struct parking_sample *ret) {
        if (!h || (n_cores && !cores) || !ret)
                return -EINVAL;
        uint64_t elapsed = h->read_usec && now_usec > h->read_usec ? now_usec - h->read_usec : 0;
        double secs = (double) elapsed / 1e6;
        *ret = (struct parking_sample){ .seconds = secs, .rapl_joules = -1 };

        for (size_t k = 0; k < n_cores; k++) {
                double core_idle = 1, core_deep = 1, core_busy = 0;
                bool whole = true;
                unsigned siblings = 0;
                for (unsigned c = 0; c < h->n; c++) {
                        struct parking_idle cur;
                        double idle, deep;
                        if (!hv_cpuset_test(&cores[k].cpus, c))
                                continue;
                        siblings++;
                        h->idle[c] = h->deep[c] = -1;
                        /* The states themselves are read again now and then: a driver changed
                         * since (cpuidle's sysfs switch) shows as other names, and is not compared. */
                        bool counters = h->prev_ok[c] && h->reads % PARKING_IDLE_FULL_EVERY != 0;
                        if (counters) {
                                cur = h->prev[c];
                                counters = read_counters(root, c, &cur) == 0;
                        }
                        if (!counters && (parking_idle_read(root, c, &cur) < 0 || !cur.n)) {
                                h->prev_ok[c] = false;
                                whole = false;
                                continue;
                        }
                        h->has_deep |= lists_deep(&cur);
                        if (h->prev_ok[c] && elapsed &&
                            parking_idle_residency(&h->prev[c], &cur, elapsed, &idle, &deep, NULL)) {
                                h->idle[c] = idle;
                                h->deep[c] = deep;
                                core_idle = idle < core_idle ? idle : core_idle;
                                core_deep = deep < core_deep ? deep : core_deep;
                                if (busy && busy[c] > core_busy)
                                        core_busy = busy[c];
                        } else
                                whole = false;
                        h->prev[c] = cur;
                        h->prev_ok[c] = true;
                }
                if (!whole || !siblings)
                        continue;
                ret->idle_cpu_s += core_idle * secs;
                ret->deep_cpu_s += core_deep * secs;
                ret->busy_cpu_s += core_busy * secs;
                ret->cores++;
        }

        uint64_t uj, range;
        if (parking_rapl_read(root, &uj, &range, NULL) == 0) {
                /* One package wrapped when the sum went back: once around its range (every
                 * package's is the same on the parts seen; a smaller one counts short). */
                if (h->rapl_ok && elapsed)
                        ret->rapl_joules = (double) (uj >= h->rapl_prev_uj ? uj - h->rapl_prev_uj
                                                                           : uj + h->rapl_range_uj - h->rapl_prev_uj) /
                                           1e6;
                h->rapl_prev_uj = uj;
                h->rapl_range_uj = range;
                h->rapl_ok = true;
        } else
                h->rapl_ok = false;
        h->read_usec = now_usec;
        h->reads++;
        return 0;
}
