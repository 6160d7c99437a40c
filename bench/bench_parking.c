/* bench_parking: what measuring core parking costs tided each regular tick
 * (parking_idle_host_read(): every CPU's cpuidle states and RAPL, read from sysfs), per CPU, on
 * this host or a copy of a sysfs tree.
 *
 *   bench_parking [--root DIR] [--reads N]
 *
 * Prints the median and p95 ns per CPU per read, and beside it, in the same run, a read of every
 * state's name, latency and counters (parking_idle_read(), what one read in
 * PARKING_IDLE_FULL_EVERY costs): the ratio holds on a noisy machine where the figures do not.
 * The cost is system calls, so the figure is this machine's: compare it with the tick (1 s)
 * times the host's CPUs. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>

#include "bench/bench_common.h"
#include "coreparking/idle.h"
#include "coreparking/topology.h"

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "root", required_argument, NULL, 'r' },
                { "reads", required_argument, NULL, 'n' },
                { 0 },
        };
        const char *root = "/";
        unsigned long reads = 200;
        int c;
        while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
                char *end = NULL;
                if (c == 'r') {
                        root = optarg;
                        continue;
                }
                unsigned long v = optarg ? strtoul(optarg, &end, 10) : 0;
                if (c == '?' || !optarg || *end || v == 0 || v > 1000000) {
                        fprintf(stderr, "Usage: bench_parking [--root DIR] [--reads 1-1000000]\n");
                        return 2;
                }
                reads = v;
        }
        char err[PARKING_TOPO_ERR_MAX];
        struct parking_core *cores = NULL;
        int n = parking_topology_load(NULL, &cores, err, sizeof(err));
        if (n <= 0) {
                fprintf(stderr, "bench_parking: %s\n", err);
                return 1;
        }
        struct hv_cpuset all = { 0 };
        for (int k = 0; k < n; k++)
                hv_cpuset_or(&all, &cores[k].cpus);
        unsigned cpus = hv_cpuset_count(&all);
        struct parking_idle_host h;
        if (parking_idle_host_init(&h, (unsigned) hv_cpuset_last(&all) + 1) < 0)
                return 1;
        uint64_t *ns = calloc(reads, sizeof(*ns));
        if (!ns)
                return 1;
        uint64_t *full = calloc(reads, sizeof(*full));
        if (!full)
                return 1;
        struct parking_sample s;
        struct parking_idle one;
        /* Interleaved, so both see the same noise. */
        for (unsigned long i = 0; i < reads; i++) {
                uint64_t t0 = bench_nsec();
                (void) parking_idle_host_read(&h, root, cores, (size_t) n, NULL, (i + 1) * 1000000, &s);
                ns[i] = (bench_nsec() - t0) / cpus;
                t0 = bench_nsec();
                for (unsigned cpu = 0; cpu < h.n; cpu++)
                        if (hv_cpuset_test(&all, cpu))
                                (void) parking_idle_read(root, cpu, &one);
                full[i] = (bench_nsec() - t0) / cpus;
        }
        uint64_t med = bench_percentile(ns, reads, 50), med_full = bench_percentile(full, reads, 50);
        printf("parking measure: %u CPUs (%d cores, %u idle states) under %s, %lu reads: median %" PRIu64
               " ns, p95 %" PRIu64 " ns per CPU per read; a full read of the states %" PRIu64 " ns (x%.2f); %s\n",
               cpus, n, h.prev[0].n, root, reads, med, bench_percentile(ns, reads, 95), med_full,
               med ? (double) med_full / (double) med : 0.0, h.has_deep ? "deep idle states listed" : "no deep idle state listed");
        free(full);
        parking_idle_host_done(&h);
        free(ns);
        free(cores);
        return 0;
}
