/* bench_manager: tided's own cost per managed domain and tick (collect -> core -> act ->
 * publish) and its memory, with the manager tided runs on simulated domains (sim/sim_hv.c), so
 * libvirt's RPCs are not in the figure (measure those with bench/tided-footprint.sh on real
 * guests).
 *
 *   bench_manager [--domains N] [--ticks T]
 *
 * Each tick the simulated guests move (balloons, demand on a random walk). Prints the median and
 * p95 ns per domain per tick, this process's RSS before the manager exists, after the ticks and
 * at its peak, and the simulated host's own share of it (which tided does not have). Goal
 * (issue 8): tided's RSS with 1,000 domains <= 16 MiB. */
#include <getopt.h>
#include <inttypes.h>

#include "bench/bench_common.h"
#include "common/log.h"
#include "daemon/manager.h"

static int host_mem(struct manager_host *h, void *userdata) {
        const struct sim *s = userdata;
        uint64_t held = 0;
        for (size_t i = 0; i < s->n_vms; i++)
                held += sim_vm_assigned_kib(&s->vms[i]);
        *h = (struct manager_host){ .total_kib = s->total_kib, .available_kib = sat_sub_u64(s->total_kib, held) };
        return 0;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "domains", required_argument, NULL, 'n' },
                { "ticks", required_argument, NULL, 't' },
                { 0 },
        };
        unsigned long n = 1000, ticks = 100;
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
                char *end = NULL;
                unsigned long v = optarg ? strtoul(optarg, &end, 10) : 0;
                if (c == '?' || !optarg || *end || v == 0 || v > 100000) {
                        fprintf(stderr, "Usage: bench_manager [--domains 1-100000] [--ticks T]\n");
                        return 2;
                }
                if (c == 'n')
                        n = v;
                else
                        ticks = v;
        }
        log_set_max_level(LOG_LEVEL_WARNING); /* a balloon line per domain per tick is not the figure */

        struct tide_config cfg;
        struct sim s;
        config_init(&cfg);
        /* Found running, every guest would sit out a quiet period first: no action to measure. */
        cfg.quiet_usec = 0;
        uint64_t *samples = calloc(ticks, sizeof(*samples));
        if (!samples || sim_init(&s, &cfg, (uint64_t) n * 8 * KIB_PER_GIB, 1000 * USEC_PER_SEC) < 0 ||
            bench_add_guests(&s, n, 42, false) < 0)
                return 1;
        struct hv hv = sim_hv(&s);

        long rss_before = bench_status_kib("VmRSS");
        struct manager *m = NULL;
        if (manager_new(&hv, &cfg, host_mem, &s, &m) < 0)
                return 1;
        for (unsigned long t = 0; t < ticks; t++) {
                uint64_t t0 = bench_nsec();
                manager_tick(m, s.now_usec);
                samples[t] = (bench_nsec() - t0) / n;
                sim_advance(&s, cfg.interval_usec);
        }
        long rss_after = bench_status_kib("VmRSS"), peak = bench_status_kib("VmHWM");
        long anon = bench_status_kib("RssAnon"), file = bench_status_kib("RssFile");
        size_t sim_kib = (s.cap * sizeof(struct sim_vm) + s.frame.cap * (sizeof(*s.frame.obs) + sizeof(*s.frame.out))) / 1024;
        uint64_t median = bench_percentile(samples, ticks, 50), p95 = bench_percentile(samples, ticks, 95);
        printf("domains=%lu ticks=%lu ns_per_domain_tick median=%" PRIu64 " p95=%" PRIu64
               " rss_kib before=%ld after=%ld peak=%ld (anon %ld, files %ld) sim_kib=%zu"
               " manager_kib_per_domain=%.1f balloon_ops=%" PRIu64 "\n",
               n, ticks, median, p95, rss_before, rss_after, peak, anon, file, sim_kib,
               (double) (rss_after - rss_before) / (double) n, s.balloon_ops);
        manager_free(m);
        sim_done(&s);
        free(samples);
        return 0;
}
