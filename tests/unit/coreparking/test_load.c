/* Per-CPU load (coreparking/load.h): the share on hand-made tics, and /proc/stat read twice on
 * this host with a busy loop pinned to CPU 0 in between. */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "coreparking/load.h"

Test(load, busy_share_counts_user_system_and_interrupts_against_idle) {
        /* 30 user + 10 system + 5 irq + 5 softirq busy, 40 idle + 10 iowait idle: 50 / 100. */
        struct parking_tics d = { .user = 30, .system = 10, .irq = 5, .softirq = 5, .idle = 40, .iowait = 10 };
        cr_expect_float_eq(parking_busy_share(&d), 0.5, 1e-9);
        /* Steal is neither: 20 stolen change nothing. */
        d.steal = 20;
        cr_expect_float_eq(parking_busy_share(&d), 0.5, 1e-9);
        struct parking_tics none = { 0 };
        cr_expect_eq(parking_busy_share(&none), -1, "no tic: unknown");
        struct parking_tics back = { .user = -5, .idle = 10 };
        cr_expect_eq(parking_busy_share(&back), -1, "a counter that went back: unknown");
        cr_expect_eq(parking_busy_share(NULL), -1);
}

/* Spins on the calling thread for about ms milliseconds of CPU. */
static void spin(long ms) {
        struct timespec a, b;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
        do
                clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
        while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < ms);
}

Test(load, this_host_reads_every_online_cpu_and_sees_a_busy_one) {
        struct parking_load *l = NULL;
        double busy[1024];
        bool known = true;
        cr_assert_eq(parking_load_new(&l), 0);
        int n = parking_load_read(l, busy, 1024, &known);
        cr_assert_gt(n, 0);
        cr_expect_not(known, "nothing to compare the first read with");
        cr_expect_eq(busy[0], -1);

        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(0, &one);
        cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
        /* 500 ms of CPU on CPU 0: whatever else the host does, CPU 0 was busy for most of it. */
        spin(500);
        n = parking_load_read(l, busy, 1024, &known);
        cr_assert_gt(n, 0);
        cr_expect(known);
        unsigned listed = 0;
        for (int c = 0; c < n; c++)
                if (busy[c] >= 0) {
                        cr_expect_leq(busy[c], 1.0, "CPU %d", c);
                        listed++;
                }
        cr_expect_eq(listed, (unsigned) sysconf(_SC_NPROCESSORS_ONLN));
        cr_expect_gt(busy[0], 0.5, "CPU 0 spun: %.2f", busy[0]);
        l = parking_load_free(l);
        cr_expect_eq(parking_load_read(NULL, busy, 1, &known), -EINVAL);
}
