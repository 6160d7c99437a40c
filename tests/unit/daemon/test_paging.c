/* tided's Smart Paging against the recording fake: a reboot on a host short of its startup
 * memory gets a paging file and memory limits, shows as paging, and is released (limits first,
 * then the file, off the loop) once its guest has come down; faults leave it booting; a tided
 * restart adopts a file left on. Files are made, never switched on: "on" here writes a line to
 * a fake /proc/swaps. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "daemon/manager.h"
#include "smartpaging/file.h"

#define MIB(x) ((uint64_t) (x) * KIB_PER_MIB)
#define SEC(x) ((uint64_t) (x) * USEC_PER_SEC)
#define UUID "6f1c2a5e-0000-4000-8000-00000000000a"

static struct hv_fake fake;
static struct hv hv;
static struct tide_config cfg;
static struct manager *m;
static char root[64], dir[128], swaps[160];
static uint64_t free_mib; /* what the host has available above its reserve */
static int on_calls, off_calls, on_fails;
static bool refuse_limits; /* libvirt refuses the memtune that follows a file switched on */
static bool off_under_limit; /* a file was switched off while its domain was still limited */

static int host_tight(struct manager_host *h, void *userdata) {
        struct tide_config c;
        config_init(&c);
        h->total_kib = MIB(16384);
        h->available_kib = MIB(free_mib) + config_reserve_kib(&c, h->total_kib);
        return 0;
}

/* Returns -errno; the test thread asserts on it, a switch-off's worker thread does not: it may
 * still be running after the test's teardown removed the directory. */
static int try_write_swaps(const char *line) {
        FILE *f = fopen(swaps, "w");
        if (!f)
                return -errno;
        fprintf(f, "Filename\tType\tSize\tUsed\tPriority\n%s", line);
        fclose(f);
        return 0;
}

static void write_swaps(const char *line) {
        cr_assert_eq(try_write_swaps(line), 0, "%s: %s", swaps, strerror(errno));
}

/* "On": the file is made (so the sweep and the names are real) and listed in /proc/swaps. */
static int fake_on(const char *path, uint64_t kib, char *err, size_t errlen) {
        on_calls++;
        if (on_fails) {
                snprintf(err, errlen, "%s: cannot allocate: %s", path, strerror(on_fails));
                return -on_fails;
        }
        FILE *f = fopen(path, "w");
        if (!f)
                return -errno;
        fclose(f);
        if (refuse_limits)
                fake.fail_errno = EPERM;
        char line[PAGING_PATH_MAX + 64];
        snprintf(line, sizeof(line), "%s file %" PRIu64 " %" PRIu64 " -2\n", path, kib, kib / 4);
        write_swaps(line);
        return 0;
}

static int fake_off(const char *path, char *err, size_t errlen) {
        /* Never under a limit: the pages coming back would OOM-kill QEMU. Read on the worker
         * thread; the manager wrote it before starting the job (pthread_create orders them). */
        if (fake.n_domains && fake.domains[0].active && fake.memtune[0].hard_limit_kib != HV_MEMTUNE_UNLIMITED)
                off_under_limit = true;
        off_calls++;
        if (try_write_swaps("") < 0)
                return -ENOENT; /* the test is over */
        /* As paging_file_off(): the record goes with the file. */
        char rec[PAGING_PATH_MAX];
        snprintf(rec, sizeof(rec), "%.*s.state", (int) (strlen(path) - strlen(".swap")), path);
        (void) unlink(rec);
        return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

static const struct manager_paging_files files = { fake_on, fake_off };

/* The switch-offs so far. One runs on a worker thread: a switch-off the last tick asked for has
 * had half a second to show before "none" is believed. (A slower machine can only make a check
 * for none pass wrongly, never fail wrongly; checks for one wait on the call itself.) */
static int switch_offs_seen(void) {
        for (int i = 0; i < 50 && off_calls == 0; i++)
                usleep(10000);
        return off_calls;
}

static void setup(void) {
        char cmd[256];
        memset(&fake, 0, sizeof(fake));
        hv = hv_fake_hv(&fake);
        config_init(&cfg);
        cfg.qemu_overhead_kib = 0;
        m = NULL;
        on_calls = off_calls = on_fails = 0;
        refuse_limits = false;
        off_under_limit = false;
        snprintf(root, sizeof(root), "/tmp/tide-mgr-paging-XXXXXX");
        cr_assert_not_null(mkdtemp(root));
        snprintf(dir, sizeof(dir), "%s/paging", root);
        snprintf(cfg.paging_dir, sizeof(cfg.paging_dir), "%s", dir);
        snprintf(cmd, sizeof(cmd), "mkdir -p %s/proc", root);
        cr_assert_eq(system(cmd), 0);
        snprintf(swaps, sizeof(swaps), "%s/proc/swaps", root);
        write_swaps("");
}

static void teardown(void) {
        char cmd[128];
        m = manager_free(m);
        hv_fake_done(&fake);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
        cr_expect_eq(system(cmd), 0);
}

TestSuite(paging, .init = setup, .fini = teardown);

static void sample(uint64_t actual, uint64_t rss) {
        fake.stats[0].actual_kib = actual;
        fake.stats[0].rss_kib = rss;
        fake.stats[0].available_kib = actual - MIB(100);
        fake.stats[0].usable_kib = actual - MIB(100);
        fake.stats[0].last_update_sec++;
}

/* A running 1 GiB domain, its balloon at `current`, no sample yet. */
static void add_domain(const char *uuid, const char *name, int id, uint64_t current) {
        struct hv_domain d = { .active = true, .persistent = true, .id = id, .max_kib = MIB(1024),
                               .current_kib = current, .has_balloon = true, .numa_node = -1 };
        snprintf(d.uuid, sizeof(d.uuid), "%s", uuid);
        snprintf(d.name, sizeof(d.name), "%s", name);
        struct hv_mem_stats s;
        memset(&s, 0xff, sizeof(s));
        s.last_update_sec = 1000;
        cr_assert_geq(hv_fake_add(&fake, &d, &s), 0);
}

/* "web" (UUID). */
static void add_web(uint64_t current) {
        add_domain(UUID, "web", 1, current);
}

/* A managed 1 GiB guest (minimum 256 MiB) ballooned to 300 MiB (150 resident) on a host with
 * 100 MiB above its reserve, rebooted at 104 s. */
static void reboot_on_a_short_host(void) {
        add_web(MIB(300));
        free_mib = 100;
        cr_assert_eq(manager_new(&hv, &cfg, host_tight, NULL, &m), 0);
        cr_assert_eq(manager_enable_paging(m, root, &files), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        char note[256], err[256];
        struct policy_change c = { .have_minimum = true, .minimum_kib = MIB(256) };
        cr_assert_eq(manager_policy_set(m, "web", &c, SEC(100), note, sizeof(note), err, sizeof(err)), 0, "%s", err);
        sample(MIB(300), MIB(150));
        cr_assert_eq(manager_tick(m, SEC(101)), 0);
        manager_on_event(m, HV_EVENT_REBOOTED, UUID, SEC(104));
        sample(MIB(300), MIB(150));
        cr_assert_eq(manager_tick(m, SEC(105)), 0);
}

Test(paging, a_reboot_on_a_short_host_pages_its_shortfall_under_limits) {
        char path[PAGING_PATH_MAX];
        reboot_on_a_short_host();
        /* Wants 1024, has 150 resident, 100 free: 774 MiB short, file 774 + 32, RAM 250. */
        cr_assert_eq(on_calls, 1);
        cr_assert_eq(paging_file_path(dir, UUID, path, sizeof(path)), 0);
        cr_expect_eq(access(path, F_OK), 0);
        cr_expect_eq(fake.memtune[0].hard_limit_kib, MIB(250));
        cr_expect_eq(fake.memtune[0].swap_hard_limit_kib, HV_MEMTUNE_UNLIMITED);
        const struct snapshot *s = manager_snapshot(m);
        cr_expect_str_eq(s->domains[0].status, "paging");
        cr_expect_str_eq(s->domains[0].paging, "paging");
        cr_expect_eq(s->domains[0].paging_kib, MIB(806));
        cr_expect_eq(s->host.paging_files, 1);
        cr_expect_eq(s->host.unfunded_kib, 0, "a file covers it (the engine still calls the floors overcommitted)");

        /* The next tick reads the file's use from /proc/swaps. */
        sample(MIB(1024), MIB(250));
        cr_assert_eq(manager_tick(m, SEC(106)), 0);
        cr_expect_eq(manager_snapshot(m)->domains[0].paging_used_kib, MIB(806) / 4);
}

Test(paging, released_once_the_guest_has_come_down_limits_first_then_the_file) {
        char path[PAGING_PATH_MAX];
        reboot_on_a_short_host();
        cr_assert_eq(paging_file_path(dir, UUID, path, sizeof(path)), 0);
        /* Its driver reports (a first sample after the boot is a baseline, the second counts). */
        sample(MIB(1024), MIB(250));
        cr_assert_eq(manager_tick(m, SEC(110)), 0);
        sample(MIB(1024), MIB(250));
        cr_assert_eq(manager_tick(m, SEC(111)), 0);
        cr_expect_eq(switch_offs_seen(), 0, "still holding its startup: not down yet");
        /* Ballooned down to 300 MiB: fits its RAM plus the free memory, but its file holds 201 MiB
         * (fake /proc/swaps) and only 100 are free: switching it off would not fit. */
        sample(MIB(300), MIB(250));
        cr_assert_eq(manager_tick(m, SEC(112)), 0);
        cr_expect_eq(switch_offs_seen(), 0, "what the file holds must fit too");
        free_mib = 300;
        sample(MIB(300), MIB(250));
        cr_assert_eq(manager_tick(m, SEC(113)), 0);
        cr_expect_eq(fake.memtune[0].hard_limit_kib, HV_MEMTUNE_UNLIMITED, "limits lifted as they were");
        for (int t = 0; t < 500 && access(path, F_OK) == 0; t++)
                usleep(1000); /* the worker thread */
        cr_expect_eq(off_calls, 1);
        cr_expect_not(off_under_limit, "limits lifted before the file is switched off");
        cr_expect_neq(access(path, F_OK), 0, "file removed");
        sample(MIB(300), MIB(250));
        cr_assert_eq(manager_tick(m, SEC(114)), 0);
        const struct snapshot *s = manager_snapshot(m);
        cr_expect_str_eq(s->domains[0].paging, "none");
        cr_expect_neq(strcmp(s->domains[0].status, "paging"), 0);
        cr_expect_eq(s->host.paging_files, 0);
}

Test(paging, a_file_that_cannot_be_made_leaves_the_guest_booting_on_an_overcommitted_host) {
        on_fails = ENOSPC;
        reboot_on_a_short_host();
        cr_expect_eq(on_calls, 1);
        cr_expect_eq(fake.memtune[0].hard_limit_kib, HV_MEMTUNE_UNLIMITED, "no limit without a file");
        cr_assert_eq(manager_tick(m, SEC(106)), 0);
        const struct snapshot *s = manager_snapshot(m);
        cr_expect_str_eq(s->domains[0].paging, "failed");
        cr_expect(s->host.overcommitted);
        cr_expect_eq(s->host.unfunded_kib, MIB(774));
        cr_assert_not_null(hv_fake_last(&fake, "set_balloon"));
        cr_expect_eq(hv_fake_last(&fake, "set_balloon")->value, MIB(1024), "still given its startup memory");
}

Test(paging, limits_refused_take_the_file_back) {
        refuse_limits = true;
        reboot_on_a_short_host();
        cr_expect_eq(on_calls, 1);
        cr_expect_eq(off_calls, 1, "switched off again at once");
        cr_assert_eq(manager_tick(m, SEC(106)), 0);
        cr_expect_str_eq(manager_snapshot(m)->domains[0].paging, "failed");
}

Test(paging, a_restarted_tided_adopts_a_file_left_on_and_removes_strays) {
        char path[PAGING_PATH_MAX], stray[PAGING_PATH_MAX], line[PAGING_PATH_MAX + 64];
        add_web(MIB(1024));
        fake.memtune[0] = (struct hv_memtune){ MIB(250), MIB(1024) };
        cr_assert_eq(mkdir(dir, 0700), 0);
        cr_assert_eq(paging_file_path(dir, UUID, path, sizeof(path)), 0);
        cr_assert_eq(paging_file_path(dir, "6f1c2a5e-0000-4000-8000-00000000000b", stray, sizeof(stray)), 0);
        fclose(fopen(path, "w"));
        fclose(fopen(stray, "w"));
        snprintf(line, sizeof(line), "%s file %" PRIu64 " 1024 -2\n", path, MIB(806));
        write_swaps(line);

        free_mib = 0; /* web has no policy: its file would go as soon as what it holds fits */
        cr_assert_eq(manager_new(&hv, &cfg, host_tight, NULL, &m), 0);
        cr_assert_eq(manager_enable_paging(m, root, &files), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        cr_assert_eq(manager_tick(m, SEC(2)), 0);
        cr_expect_neq(access(stray, F_OK), 0, "a file not on is removed");
        cr_expect_eq(access(path, F_OK), 0, "the one on is kept");
        cr_expect_str_eq(manager_snapshot(m)->domains[0].paging, "paging");
        cr_expect_eq(manager_snapshot(m)->domains[0].paging_kib, MIB(806));

        /* tided stops: no VM stays limited. */
        manager_stop_paging(m);
        cr_expect_eq(fake.memtune[0].hard_limit_kib, HV_MEMTUNE_UNLIMITED);
}

Test(paging, an_adopted_files_record_gives_back_the_operators_own_limit) {
        char path[PAGING_PATH_MAX], line[PAGING_PATH_MAX + 64], err[PAGING_ERR_MAX] = "";
        add_web(MIB(1024));
        fake.memtune[0] = (struct hv_memtune){ MIB(250), HV_MEMTUNE_UNLIMITED }; /* tide's */
        cr_assert_eq(mkdir(dir, 0700), 0);
        cr_assert_eq(paging_file_path(dir, UUID, path, sizeof(path)), 0);
        fclose(fopen(path, "w"));
        struct paging_record rec = { MIB(2048), HV_MEMTUNE_UNLIMITED, MIB(1024), MIB(250) };
        cr_assert_eq(paging_record_write(path, &rec, err, sizeof(err)), 0, "%s", err);
        snprintf(line, sizeof(line), "%s file %" PRIu64 " 1024 -2\n", path, MIB(806));
        write_swaps(line);

        free_mib = 0;
        cr_assert_eq(manager_new(&hv, &cfg, host_tight, NULL, &m), 0);
        cr_assert_eq(manager_enable_paging(m, root, &files), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        cr_assert_eq(manager_tick(m, SEC(2)), 0);
        cr_expect_str_eq(manager_snapshot(m)->domains[0].paging, "paging");
        cr_expect_eq(access(path, F_OK), 0, "kept: it is on");
        manager_stop_paging(m);
        cr_expect_eq(fake.memtune[0].hard_limit_kib, MIB(2048), "the operator's limit, not none");
}

/* tided stopped (limits lifted, file and record kept), then started again with memory free: the
 * record's grant no longer holds, so no limit is put back on a guest that took its pages back. */
Test(paging, a_record_whose_limit_is_gone_raises_nothing) {
        char path[PAGING_PATH_MAX], line[PAGING_PATH_MAX + 64], err[PAGING_ERR_MAX] = "";
        add_web(MIB(1024));
        fake.memtune[0] = (struct hv_memtune){ HV_MEMTUNE_UNLIMITED, HV_MEMTUNE_UNLIMITED };
        cr_assert_eq(mkdir(dir, 0700), 0);
        cr_assert_eq(paging_file_path(dir, UUID, path, sizeof(path)), 0);
        fclose(fopen(path, "w"));
        struct paging_record rec = { HV_MEMTUNE_UNLIMITED, HV_MEMTUNE_UNLIMITED, MIB(1024), MIB(250) };
        cr_assert_eq(paging_record_write(path, &rec, err, sizeof(err)), 0, "%s", err);
        snprintf(line, sizeof(line), "%s file %" PRIu64 " 1024 -2\n", path, MIB(806));
        write_swaps(line);

        free_mib = 2000;
        cr_assert_eq(manager_new(&hv, &cfg, host_tight, NULL, &m), 0);
        cr_assert_eq(manager_enable_paging(m, root, &files), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        for (int t = 2; t < 6; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        cr_expect_eq(fake.memtune[0].hard_limit_kib, HV_MEMTUNE_UNLIMITED, "no limit put back");
}

Test(paging, a_stopped_domains_file_found_on_waits_for_room) {
        char path[PAGING_PATH_MAX], line[PAGING_PATH_MAX + 64];
        add_web(MIB(1024));
        fake.domains[0].active = false;
        cr_assert_eq(mkdir(dir, 0700), 0);
        cr_assert_eq(paging_file_path(dir, UUID, path, sizeof(path)), 0);
        fclose(fopen(path, "w"));
        /* It holds 500 MiB of other processes' pages; 100 MiB free. */
        snprintf(line, sizeof(line), "%s file %" PRIu64 " %" PRIu64 " -2\n", path, MIB(806), MIB(500));
        write_swaps(line);

        free_mib = 100;
        cr_assert_eq(manager_new(&hv, &cfg, host_tight, NULL, &m), 0);
        cr_assert_eq(manager_enable_paging(m, root, &files), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        cr_assert_eq(manager_tick(m, SEC(2)), 0);
        cr_assert_eq(manager_tick(m, SEC(7)), 0);
        cr_expect_eq(switch_offs_seen(), 0, "500 MiB would come back into 100 free");
        free_mib = 1000;
        cr_assert_eq(manager_tick(m, SEC(12)), 0);
        for (int i = 0; i < 200 && off_calls == 0; i++)
                usleep(10000);
        cr_expect_eq(off_calls, 1);
}

/* A restarted tided that cannot describe the domain of a file left on (libvirt lists it, its
 * XML does not come): the file stays on, the limit stays, until the domain can be read; then
 * it is adopted as any other. Switched off at once, the pages would come back into a QEMU still
 * under tide's limit. */
Test(paging, a_file_whose_domain_cannot_be_read_yet_waits_for_it) {
        char path[PAGING_PATH_MAX], line[PAGING_PATH_MAX + 64];
        add_web(MIB(1024));
        fake.memtune[0] = (struct hv_memtune){ MIB(250), HV_MEMTUNE_UNLIMITED };
        fake.domains[0].undescribed = true;
        cr_assert_eq(mkdir(dir, 0700), 0);
        cr_assert_eq(paging_file_path(dir, UUID, path, sizeof(path)), 0);
        fclose(fopen(path, "w"));
        snprintf(line, sizeof(line), "%s file %" PRIu64 " %" PRIu64 " -2\n", path, MIB(806), MIB(200));
        write_swaps(line);

        free_mib = 2000; /* room for every page: only the missing description holds it */
        cr_assert_eq(manager_new(&hv, &cfg, host_tight, NULL, &m), 0);
        cr_assert_eq(manager_enable_paging(m, root, &files), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        for (int t = 2; t < 5; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        cr_expect_eq(manager_snapshot(m)->n_domains, 0, "nothing known of it");
        cr_expect_eq(access(path, F_OK), 0, "the file is kept");
        cr_expect_eq(switch_offs_seen(), 0);
        cr_expect_eq(fake.memtune[0].hard_limit_kib, MIB(250), "its limit is left as it is");

        /* Readable again: adopted, then released as any other file once it fits. */
        fake.domains[0].undescribed = false;
        manager_on_event(m, HV_EVENT_DEFINED, UUID, SEC(5));
        cr_assert_eq(manager_tick(m, SEC(6)), 0);
        cr_assert_eq(manager_snapshot(m)->n_domains, 1);
        cr_expect_str_neq(manager_snapshot(m)->domains[0].paging, "none", "adopted");
}

/* Two guests page; "web" comes down while "db" is still under its limit, and the host's free
 * swap is not known: web's limits are lifted at once, its file waits (it may hold db's pages,
 * which could not come back under db's limit); once db has come down too, db's file goes, then
 * web's. */
#define UUID_DB "6f1c2a5e-0000-4000-8000-00000000000b"

static void sample_at(size_t i, uint64_t actual, uint64_t rss) {
        fake.stats[i].actual_kib = actual;
        fake.stats[i].rss_kib = rss;
        fake.stats[i].available_kib = actual - MIB(100);
        fake.stats[i].usable_kib = actual - MIB(100);
        fake.stats[i].last_update_sec++;
}

static void tick_both(uint64_t t, uint64_t web_actual, uint64_t db_actual) {
        sample_at(0, web_actual, MIB(250));
        sample_at(1, db_actual, MIB(250));
        cr_assert_eq(manager_tick(m, SEC(t)), 0);
}

Test(paging, a_guest_come_down_while_another_is_limited_is_lifted_and_its_file_waits) {
        char note[256], err[256];
        add_web(MIB(300));
        add_domain(UUID_DB, "db", 2, MIB(300));
        free_mib = 100;
        cr_assert_eq(manager_new(&hv, &cfg, host_tight, NULL, &m), 0);
        cr_assert_eq(manager_enable_paging(m, root, &files), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        struct policy_change c = { .have_minimum = true, .minimum_kib = MIB(256) };
        cr_assert_eq(manager_policy_set(m, "web", &c, SEC(100), note, sizeof(note), err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(manager_policy_set(m, "db", &c, SEC(100), note, sizeof(note), err, sizeof(err)), 0, "%s", err);
        tick_both(101, MIB(300), MIB(300));
        manager_on_event(m, HV_EVENT_REBOOTED, UUID, SEC(104));
        manager_on_event(m, HV_EVENT_REBOOTED, UUID_DB, SEC(104));
        tick_both(105, MIB(300), MIB(300));
        cr_assert_eq(on_calls, 2, "both page");
        tick_both(110, MIB(1024), MIB(1024));
        tick_both(111, MIB(1024), MIB(1024));

        /* web down to 300 MiB, db still holding its startup; room for web's pages. */
        free_mib = 400;
        tick_both(112, MIB(300), MIB(1024));
        cr_expect_eq(fake.memtune[0].hard_limit_kib, HV_MEMTUNE_UNLIMITED, "web's limits lifted");
        cr_expect_neq(fake.memtune[1].hard_limit_kib, HV_MEMTUNE_UNLIMITED, "db still limited");
        cr_expect_eq(switch_offs_seen(), 0, "web's file waits: it may hold db's pages");
        tick_both(113, MIB(300), MIB(1024));
        cr_expect_eq(switch_offs_seen(), 0);
        cr_expect_str_eq(manager_snapshot(m)->domains[0].paging, "releasing");

        /* db comes down: its own file goes first (it is the only one limited: lifted, then off),
         * then web's. */
        free_mib = 1500;
        tick_both(114, MIB(300), MIB(300));
        cr_expect_eq(fake.memtune[1].hard_limit_kib, HV_MEMTUNE_UNLIMITED);
        for (int t = 115; t < 130 && off_calls < 2; t++) {
                usleep(20000); /* the switch-off's worker thread */
                tick_both((uint64_t) t, MIB(300), MIB(300));
        }
        cr_expect_eq(off_calls, 2, "both files switched off, one at a time");
        cr_expect_not(off_under_limit);
        /* The last switch-off is collected by a tick after its worker thread is done. */
        for (int t = 130; t < 180 && manager_snapshot(m)->host.paging_files; t++) {
                usleep(20000);
                tick_both((uint64_t) t, MIB(300), MIB(300));
        }
        cr_expect_eq(manager_snapshot(m)->host.paging_files, 0);
}
