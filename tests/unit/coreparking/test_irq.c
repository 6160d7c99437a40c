/* irqbalance's socket: the live one found among stale ones and other files, its own ban read
 * from its "setup" answer, a ban sent; none running is -ENOENT (tests/unit/fake_irqbalance.h). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coreparking/irq.h"
#include "coreparking/plan.h"
#include "../fake_irqbalance.h"

static void touch(const char *dir, const char *name) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        fclose(f);
}

/* A socket bound and closed: what a dead irqbalance leaves. */
static void stale(const char *dir, const char *name) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", dir, name);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        cr_assert_eq(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
        close(fd);
}

static void up_none(void) {
        fake_irqb_up("0");
}

Test(irq, finds_the_live_irqbalance_among_stale_sockets_and_other_files, .init = up_none, .fini = fake_irqb_down) {
        touch(fake_irqb.dir, "irqbalance.sock");
        touch(fake_irqb.dir, "irqbalance12.socket");
        touch(fake_irqb.dir, "irqbalance13.sock"); /* a plain file */
        stale(fake_irqb.dir, "irqbalance1.sock");
        struct hv_cpuset s = { 0 };
        hv_cpuset_set(&s, 1);
        hv_cpuset_set(&s, 5);
        hv_cpuset_set(&s, 6);
        cr_assert_eq(parking_irqbalance_ban(fake_irqb.dir, &s), 0);
        cr_expect_str_eq(fake_irqb_wait(1), "settings cpus 1,5-6");
        cr_assert_eq(parking_irqbalance_ban(fake_irqb.dir, NULL), 0);
        cr_expect_str_eq(fake_irqb_wait(2), "settings cpus NULL");
        cr_expect_eq(fake_irqb.not_root, 0);
}

Test(irq, reads_its_own_ban_from_its_setup_answer, .fini = fake_irqb_down) {
        fake_irqb_up("00000001,80000003");
        struct hv_cpuset s;
        cr_assert_eq(parking_irqbalance_banned(fake_irqb.dir, &s), 0);
        char list[64];
        cr_expect_str_eq(parking_cpulist_format(&s, list, sizeof(list)), "0-1,31-32");
        snprintf(fake_irqb.own, sizeof(fake_irqb.own), "zz");
        cr_expect_eq(parking_irqbalance_banned(fake_irqb.dir, &s), -EPROTO, "no mask it can read");
}

Test(irq, none_running_is_enoent) {
        char dir[] = "/tmp/tide-irq-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        stale(dir, "irqbalance77.sock");
        struct hv_cpuset s = { 0 };
        cr_expect_eq(parking_irqbalance_ban(dir, &s), -ENOENT, "only a dead one's socket");
        cr_expect_eq(parking_irqbalance_banned(dir, &s), -ENOENT);
        cr_expect_eq(parking_irqbalance_ban("/nonexistent-tide-dir", &s), -ENOENT);
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        cr_expect_eq(system(cmd), 0);
}
