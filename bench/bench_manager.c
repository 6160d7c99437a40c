/* bench_manager: tided's own cost per managed domain and tick (collect -> engine -> act ->
 * snapshot), against the recording fake, so libvirt's RPCs are not in the figure (measure those
 * with bench/tided-footprint.sh on real guests).
 *
 *   bench_manager [--domains N] [--ticks T]     (N <= 512)
 *
 * Each tick every guest "reports" (its stats advance) with demand on a bounded random walk, and
 * follows its balloon target, as a real guest does within a tick. Prints the median and p95 ns
 * per domain per tick, and the heap growth per domain (RSS before/after the manager exists). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "balloon/metadata.h"
#include "common/log.h"
#include "common/macro.h"
#include "daemon/manager.h"

static uint64_t mono_nsec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static long rss_kib(void) {
        FILE *f = fopen("/proc/self/statm", "re");
        long pages = 0, resident = 0;
        if (f) {
                if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
                        resident = 0;
                fclose(f);
        }
        return resident * 4;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static int host_mem(struct manager_host *h, void *userdata) {
        h->total_kib = UINT64_C(256) * KIB_PER_GIB;
        h->available_kib = UINT64_C(200) * KIB_PER_GIB;
        return 0;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "domains", required_argument, NULL, 'n' },
                { "ticks", required_argument, NULL, 't' },
                { 0 },
        };
        unsigned long n = 256, ticks = 200;
        uint64_t seed = 42;
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
                char *end;
                unsigned long v = optarg ? strtoul(optarg, &end, 10) : 0;
                if (c == '?' || !optarg || *end || v == 0 || (c == 'n' && v > HV_FAKE_MAX_DOMAINS) || v > 1000000) {
                        fprintf(stderr, "Usage: bench_manager [--domains 1-%d] [--ticks T]\n", HV_FAKE_MAX_DOMAINS);
                        return 2;
                }
                if (c == 'n')
                        n = v;
                else
                        ticks = v;
        }
        log_set_max_level(LOG_LEVEL_WARNING); /* a balloon line per domain per tick is not the figure */

        struct hv_fake *fake = calloc(1, sizeof(*fake));
        uint64_t *samples = calloc(ticks, sizeof(*samples));
        if (!fake || !samples)
                return 1;
        struct hv hv = hv_fake_hv(fake);
        struct vm_policy p;
        char xml[METADATA_XML_MAX];
        policy_init(&p);
        for (unsigned long i = 0; i < n; i++) {
                uint64_t mem = (UINT64_C(1) << (i % 4)) * KIB_PER_GIB;
                struct hv_domain d = { .active = true, .persistent = true, .max_kib = mem, .current_kib = mem,
                                       .has_balloon = true, .numa_node = -1 };
                snprintf(d.uuid, sizeof(d.uuid), "00000000-0000-0000-0000-%012u", (unsigned) (i % 1000000));
                snprintf(d.name, sizeof(d.name), "vm%lu", i);
                struct hv_mem_stats s;
                memset(&s, 0xff, sizeof(s));
                s.actual_kib = mem;
                s.available_kib = mem - 20 * KIB_PER_MIB;
                s.usable_kib = s.available_kib / 2;
                s.rss_kib = mem / 2;
                s.last_update_sec = 1;
                hv_fake_add(fake, &d, &s);
                p.startup_kib = p.maximum_kib = mem;
                p.minimum_kib = mem / 4;
                metadata_format(&p, xml, sizeof(xml));
                fake->metadata[i] = strdup(xml);
        }

        long rss_before = rss_kib();
        struct manager *m = NULL;
        struct tide_config cfg;
        config_init(&cfg);
        if (manager_new(&hv, &cfg, host_mem, NULL, &m) < 0)
                return 1;
        uint64_t now = 1000 * USEC_PER_SEC;
        for (unsigned long t = 0; t < ticks; t++) {
                for (unsigned long i = 0; i < n; i++) {
                        struct hv_mem_stats *s = &fake->stats[i];
                        seed = seed * 6364136223846793005u + 1442695040888963407u;
                        /* The guest follows its balloon; without deflate-on-oom its MemTotal too. */
                        uint64_t used = s->available_kib - s->usable_kib;
                        s->actual_kib = fake->domains[i].current_kib;
                        s->available_kib = s->actual_kib - 20 * KIB_PER_MIB;
                        uint64_t total = s->available_kib, span = total / 32;
                        used = used + (seed >> 33) % (2 * span + 1) - span;
                        used = clamp_u64(used, total / 16, total - total / 16);
                        s->usable_kib = total - used;
                        s->last_update_sec++;
                }
                fake->n_calls = 0; /* the fake records; keep its log from filling */
                uint64_t t0 = mono_nsec();
                manager_tick(m, now);
                samples[t] = (mono_nsec() - t0) / n;
                now += cfg.interval_usec;
        }
        long rss_after = rss_kib();
        qsort(samples, ticks, sizeof(*samples), cmp_u64);
        printf("domains=%lu ticks=%lu ns_per_domain_tick median=%" PRIu64 " p95=%" PRIu64
               " heap_kib_per_domain=%.1f\n",
               n, ticks, samples[ticks / 2], samples[ticks * 95 / 100],
               (double) (rss_after - rss_before) / (double) n);
        manager_free(m);
        hv_fake_done(fake);
        free(fake);
        free(samples);
        return 0;
}
