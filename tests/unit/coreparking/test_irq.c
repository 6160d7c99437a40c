/* irqbalance's socket found among what /run/irqbalance holds, and a ban to nobody refused (the
 * ban itself, sent to a listening fake irqbalance, is in tests/unit/daemon/test_parking.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coreparking/irq.h"

static char dir[64];

static void touch(const char *name) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        fclose(f);
}

static void mkdir_tmp(void) {
        snprintf(dir, sizeof(dir), "/tmp/tide-irq-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void) {
        char cmd[96];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        cr_expect_eq(system(cmd), 0);
}

Test(irq, finds_irqbalances_socket_and_nothing_else, .init = mkdir_tmp, .fini = rm_tmp) {
        char path[PARKING_IRQBALANCE_PATH_MAX];
        cr_expect_eq(parking_irqbalance_find(dir, path), -ENOENT, "empty");
        touch("irqbalance.sock");
        touch("irqbalance12.socket");
        touch("irqbalance-1.sock");
        touch("irqbalancex.sock");
        cr_expect_eq(parking_irqbalance_find(dir, path), -ENOENT, "none of those is one");
        touch("irqbalance4242.sock");
        cr_assert_eq(parking_irqbalance_find(dir, path), 0);
        char want[128];
        snprintf(want, sizeof(want), "%s/irqbalance4242.sock", dir);
        cr_expect_str_eq(path, want);
        cr_expect_eq(parking_irqbalance_find("/nonexistent-tide-dir", path), -ENOENT);
}

Test(irq, a_ban_to_nobody_is_refused) {
        struct hv_cpuset s = { 0 };
        hv_cpuset_set(&s, 1);
        cr_expect_eq(parking_irqbalance_ban("/nonexistent-tide-dir/irqbalance1.sock", &s), -ENOENT);
        char longpath[200];
        memset(longpath, 'a', sizeof(longpath) - 1);
        longpath[sizeof(longpath) - 1] = '\0';
        cr_expect_eq(parking_irqbalance_ban(longpath, &s), -EINVAL);
        cr_expect_eq(parking_irqbalance_ban(NULL, &s), -EINVAL);
}
