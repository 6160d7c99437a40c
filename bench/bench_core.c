/* bench_core: the decide phase of a tick (core_tick(): boot and quiet tracking, stats freshness,
 * demand choice, OOM detection, the engine, the balloon watch, actions) per VM, on the simulated
 * host, at sizes a host never reaches so the per-VM cost shows.
 *
 *   bench_core [--vms N] [--ticks T] [--short]
 *
 * Each tick the simulated guests move (balloons at 390 MiB/s, demand on a random walk, half of
 * them reporting through tide-agent), then only core_tick() is timed. --short sizes the host at
 * 30 % of the guests' boot sizes (they want ~40 %), so the weighted sharing runs every tick. Prints the median and
 * p95 ns per VM per tick. Goal (issue 8): <= 1,000 ns. For figures that do not move with this
 * machine's noise, count instructions:
 *   valgrind --tool=callgrind --toggle-collect=core_tick build/bin/bench_core --vms 1000 --ticks 20 */
#include <getopt.h>
#include <inttypes.h>

#include "bench/bench_common.h"
#include "common/log.h"

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "vms", required_argument, NULL, 'n' },
                { "ticks", required_argument, NULL, 't' },
                { "short", no_argument, NULL, 's' },
                { 0 },
        };
        unsigned long n = 1000, ticks = 200;
        bool short_host = false;
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
                char *end = NULL;
                unsigned long v = optarg ? strtoul(optarg, &end, 10) : 0;
                if (c == 's') {
                        short_host = true;
                        continue;
                }
                if (c == '?' || !optarg || *end || v == 0 || v > 1000000) {
                        fprintf(stderr, "Usage: bench_core [--vms 1-1000000] [--ticks T] [--short]\n");
                        return 2;
                }
                if (c == 'n')
                        n = v;
                else
                        ticks = v;
        }

        struct tide_config cfg;
        struct sim s;
        config_init(&cfg);
        /* Sum of boot sizes: the sizes cycle 1, 2, 4, 8 GiB. */
        uint64_t boots = (uint64_t) (n / 4) * 15 * KIB_PER_GIB + (n % 4 > 0) * KIB_PER_GIB +
                         (n % 4 > 1) * 2 * KIB_PER_GIB + (n % 4 > 2) * 4 * KIB_PER_GIB;
        uint64_t host = short_host ? boots * 3 / 10 : boots * 2;
        uint64_t *samples = calloc(ticks, sizeof(*samples));
        if (!samples || sim_init(&s, &cfg, host, 1000 * USEC_PER_SEC) < 0 || bench_add_guests(&s, n, 42, short_host) < 0)
                return 1;

        for (unsigned long t = 0; t < ticks; t++) {
                struct core_host_obs h;
                if (sim_observe(&s, &h) < 0)
                        return 1;
                uint64_t t0 = bench_nsec();
                int r = core_tick(s.core, &s.cfg, &h, s.frame.obs, s.n_vms, s.now_usec, false, s.frame.out, &s.host_out);
                samples[t] = (bench_nsec() - t0) / n;
                if (r < 0)
                        return 1;
                sim_apply(&s);
                sim_advance(&s, cfg.interval_usec);
        }
        uint64_t acted = s.balloon_ops;
        uint64_t median = bench_percentile(samples, ticks, 50), p95 = bench_percentile(samples, ticks, 95);
        printf("vms=%lu ticks=%lu host=%s ns_per_vm_tick median=%" PRIu64 " p95=%" PRIu64 " balloon_ops=%" PRIu64
               " peak_rss_kib=%ld\n",
               n, ticks, short_host ? "short" : "roomy", median, p95, acted, bench_status_kib("VmHWM"));
        sim_done(&s);
        free(samples);
        return 0;
}
