/* bench_engine: cost of one engine tick, per VM.
 *
 *   bench_engine [--vms N] [--ticks T] [--seed S]
 *
 * Runs two host situations over the same synthetic VMs: "roomy" (everyone gets demand + buffer,
 * the common case) and "short" (capacity at 70 % of what the VMs want, so every tick runs the
 * weighted water-filling with its sorts). Demand takes a bounded random walk each tick and
 * assigned follows the targets, as tided would make it. Prints the median and p95 ns per VM per
 * tick for each, and the process's peak RSS. Wall-clock figures on a shared 2-core machine are
 * noisy: compare medians from one run, or count instructions with
 *   valgrind --tool=callgrind build/bin/bench_engine --vms 10000 --ticks 20 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/macro.h"
#include "policy/config.h"
#include "policy/engine.h"

static uint64_t rng_state;

/* xorshift64*: deterministic, so runs compare across builds. */
static uint64_t rng(void) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * UINT64_C(2685821657736338717);
}

static uint64_t mono_nsec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static void make_vms(struct engine_vm *vms, size_t n) {
        static const uint64_t sizes_mib[] = { 512, 1024, 2048, 4096, 8192, 16384 };
        for (size_t i = 0; i < n; i++) {
                struct engine_vm *vm = &vms[i];
                uint64_t startup = sizes_mib[rng() % ELEMENTSOF(sizes_mib)] * KIB_PER_MIB;
                *vm = (struct engine_vm){ .state = ENGINE_VM_RUNNING, .node = ENGINE_NODE_NONE };
                policy_init(&vm->policy);
                vm->policy.startup_kib = startup;
                vm->policy.minimum_kib = startup / 4;
                vm->policy.maximum_kib = startup * 4;
                vm->policy.buffer_pct = 10 + (unsigned) (rng() % 40);
                vm->policy.weight = (unsigned) (rng() % 101);
                vm->assigned_kib = startup;
                vm->has_demand = true;
                vm->demand_kib = (int64_t) (startup / 8 + rng() % startup);
                vm->uptime_usec = 3600 * USEC_PER_SEC;
        }
}

static uint64_t wanted_kib(const struct engine_vm *vms, size_t n) {
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++)
                sum += engine_desired_kib(&vms[i].policy, (uint64_t) vms[i].demand_kib);
        return sum;
}

/* Returns the per-tick ns/VM samples sorted, in samples[0..ticks). */
static int run(const char *label, size_t n, size_t ticks, double capacity_share, uint64_t *samples) {
        struct engine_vm *vms = calloc(n, sizeof(*vms));
        struct engine_decision *out = calloc(n, sizeof(*out));
        struct engine *e = engine_new(n);
        struct tide_config cfg;
        struct engine_host host = { 0 };
        uint64_t now = 1000 * USEC_PER_SEC;
        size_t short_ticks = 0;

        if (!vms || !out || !e) {
                free(vms);
                free(out);
                engine_free(e);
                return -ENOMEM;
        }
        config_init(&cfg);
        make_vms(vms, n);
        host.reserve_kib = 4 * KIB_PER_GIB;
        host.usable_kib = (uint64_t) ((double) wanted_kib(vms, n) * capacity_share) + host.reserve_kib;

        for (size_t t = 0; t < ticks; t++) {
                struct engine_summary sum;
                for (size_t i = 0; i < n; i++) {
                        struct engine_vm *vm = &vms[i];
                        int64_t span = (int64_t) (vm->policy.startup_kib / 16);
                        int64_t step = (int64_t) (rng() % (uint64_t) (2 * span + 1)) - span;
                        int64_t d = vm->demand_kib + step;
                        int64_t lo = (int64_t) (vm->policy.startup_kib / 16), hi = (int64_t) vm->policy.maximum_kib;
                        vm->demand_kib = d < lo ? lo : d > hi ? hi : d;
                        vm->demand_usec = now;
                }
                uint64_t t0 = mono_nsec();
                engine_step(e, &host, vms, n, &cfg, now, out, &sum);
                uint64_t t1 = mono_nsec();
                samples[t] = (t1 - t0) / n;
                short_ticks += sum.short_host;
                for (size_t i = 0; i < n; i++) {
                        vms[i].assigned_kib = out[i].target_kib;
                        vms[i].memo = out[i].memo;
                        vms[i].uptime_usec += cfg.interval_usec;
                }
                now += cfg.interval_usec;
        }
        qsort(samples, ticks, sizeof(*samples), cmp_u64);
        printf("%-6s vms=%zu ticks=%zu short_ticks=%zu ns_per_vm_tick median=%" PRIu64 " p95=%" PRIu64
               " tick_usec_median=%.1f\n",
               label, n, ticks, short_ticks, samples[ticks / 2], samples[ticks * 95 / 100],
               (double) samples[ticks / 2] * (double) n / 1000.0);
        free(vms);
        free(out);
        engine_free(e);
        return 0;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "vms", required_argument, NULL, 'n' },
                { "ticks", required_argument, NULL, 't' },
                { "seed", required_argument, NULL, 's' },
                { 0 },
        };
        unsigned long long n = 10000, ticks = 100, seed = 42;
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
                char *end;
                unsigned long long v;
                if (c == '?')
                        goto usage;
                errno = 0;
                v = strtoull(optarg, &end, 10);
                if (errno || *end || end == optarg || v == 0 || v > 10000000)
                        goto usage;
                if (c == 'n')
                        n = v;
                else if (c == 't')
                        ticks = v;
                else
                        seed = v;
        }
        rng_state = seed;

        uint64_t *samples = calloc(ticks, sizeof(*samples));
        if (!samples)
                return 1;
        if (run("roomy", n, ticks, 1.5, samples) < 0 || run("short", n, ticks, 0.7, samples) < 0) {
                fprintf(stderr, "bench_engine: out of memory\n");
                free(samples);
                return 1;
        }
        free(samples);

        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("max_rss_kib %ld\n", ru.ru_maxrss);
        return 0;

usage:
        fprintf(stderr, "Usage: bench_engine [--vms N] [--ticks T] [--seed S] (each 1-10000000)\n");
        return 2;
}
