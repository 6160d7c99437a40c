/* tided's core parking against the recording fake: a 4-CPU host (four cores of one CPU, one
 * node), a VM that floats and one its administrator pinned to CPU 3. Idle: cores 2, 1 and 0 are
 * parked one per dwell (3 is the pinned VM's, and one core stays), the floating VM is confined
 * with it to CPU 3 after its record is written; load: everything unparked at once and its own CPUs back, record gone; tided stopping
 * or a tided that died: the same. The pinned VM is never touched. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/macro.h"
#include "daemon/manager.h"
#include "daemon/metrics.h"
#include "../fake_irqbalance.h"

#define SEC(x) ((uint64_t) (x) * USEC_PER_SEC)
#define FLOAT "6f1c2a5e-0000-4000-8000-0000000000f1"
#define PINNED "6f1c2a5e-0000-4000-8000-0000000000f2"

static struct hv_fake fake;
static struct hv hv;
static struct tide_config cfg;
static struct manager *m;
static struct parking_core cores[4];
static double load_now[4];
static int load_calls;

static int fake_load(double *busy, unsigned n, bool *ret_known, void *userdata) {
        (void) userdata;
        for (unsigned c = 0; c < n; c++)
                busy[c] = c < 4 ? load_now[c] : -1;
        *ret_known = load_calls++ > 0; /* as /proc/stat: nothing to compare the first read with */
        return 0;
}

static int host_plenty(struct manager_host *h, void *userdata) {
        (void) userdata;
        h->total_kib = 16 * KIB_PER_GIB;
        h->available_kib = 12 * KIB_PER_GIB;
        return 0;
}

static void add(const char *uuid, const char *name) {
        struct hv_domain d = { .active = true, .persistent = true, .id = 1, .max_kib = KIB_PER_GIB,
                               .current_kib = KIB_PER_GIB, .has_balloon = true, .numa_node = -1 };
        snprintf(d.uuid, sizeof(d.uuid), "%s", uuid);
        snprintf(d.name, sizeof(d.name), "%s", name);
        struct hv_mem_stats s;
        memset(&s, 0xff, sizeof(s));
        cr_assert_geq(hv_fake_add(&fake, &d, &s), 0);
}

static void setup(void) {
        memset(&fake, 0, sizeof(fake));
        hv = hv_fake_hv(&fake);
        fake.host_cpus = 4;
        config_init(&cfg);
        load_calls = 0;
        memset(load_now, 0, sizeof(load_now));
        memset(cores, 0, sizeof(cores));
        for (unsigned c = 0; c < 4; c++)
                hv_cpuset_set(&cores[c].cpus, c);
        add(FLOAT, "float");
        add(PINNED, "pinned");
        fake.vcpus[0] = fake.vcpus[1] = 2;
        hv_cpuset_set(&fake.vcpu_pins[1][0], 3);
        hv_cpuset_set(&fake.vcpu_pins[1][1], 3);
        m = NULL;
}

static void start(void) {
        cr_assert_eq(manager_new(&hv, &cfg, host_plenty, NULL, &m), 0);
        cr_assert_eq(manager_enable_parking(m, cores, 4, fake_load, NULL), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
}

static void teardown(void) {
        m = manager_free(m);
        hv_fake_done(&fake);
}

TestSuite(parking, .init = setup, .fini = teardown);

static struct hv_cpuset cpus(const char *list) {
        struct hv_cpuset s;
        cr_assert_eq(parking_cpulist_parse(list, &s, NULL), 0);
        return s;
}

/* Where the fake says a VM's vCPU v may run (an empty set is every host CPU). */
static bool vcpu_on(int dom, unsigned v, const char *list) {
        struct hv_cpuset want = cpus(list), have = fake.vcpu_pins[dom][v];
        if (!hv_cpuset_count(&have))
                have = cpus("0-3");
        return hv_cpuset_equal(&have, &want);
}

static void confined_idle(void) {
        start();
        for (int t = 2; t <= 30; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
}

Test(parking, an_idle_host_confines_the_floating_vm_and_never_touches_the_pinned_one) {
        confined_idle();
        cr_expect(vcpu_on(0, 0, "3") && vcpu_on(0, 1, "3"), "both vCPUs on the unparked CPU");
        struct hv_cpuset emu = fake.emulator_pin[0], three = cpus("3");
        cr_expect(hv_cpuset_equal(&emu, &three), "the emulator too");
        cr_assert_not_null(fake.parking_metadata[0], "its record");
        cr_expect(strstr(fake.parking_metadata[0], "<own>all</own>"), "%s", fake.parking_metadata[0]);
        /* The record went in before the first pin: a tided killed in between still undoes it. */
        size_t record_at = SIZE_MAX, pin_at = SIZE_MAX;
        for (size_t i = 0; i < fake.n_calls; i++) {
                const struct hv_fake_call *c = &fake.calls[i];
                if (!streq(c->uuid, FLOAT))
                        continue;
                if (record_at == SIZE_MAX && streq(c->op, "set_metadata") && (c->value & HV_META_PARKING))
                        record_at = i;
                if (pin_at == SIZE_MAX && streq(c->op, "set_vcpu_pin"))
                        pin_at = i;
        }
        cr_assert_neq(pin_at, SIZE_MAX);
        cr_expect_lt(record_at, pin_at, "record at call %zu, first pin at %zu", record_at, pin_at);
        cr_expect_eq(hv_fake_count(&fake, "set_vcpu_pin", PINNED), 0);
        cr_expect_eq(hv_fake_count(&fake, "set_emulator_pin", PINNED), 0);
        cr_expect(vcpu_on(1, 0, "3"), "the administrator's pin stands");
        cr_expect_null(fake.parking_metadata[1]);
        /* What stats show. */
        const struct snapshot *snap = manager_snapshot(m);
        cr_assert(snap->host.parking_on);
        cr_expect_str_eq(snap->host.parked, "0-2");
        cr_expect_eq(snap->host.unparked_cpus, 1);
        cr_expect_str_eq(snap->domains[0].parking, "confined");
        cr_expect_str_eq(snap->domains[1].parking, "pinned");
}

Test(parking, load_unparks_at_once_and_gives_the_vm_its_own_cpus_back) {
        confined_idle();
        load_now[3] = 1.0;
        cr_assert_eq(manager_tick(m, SEC(31)), 0);
        cr_expect(vcpu_on(0, 0, "0-3") && vcpu_on(0, 1, "0-3"));
        cr_expect_null(fake.parking_metadata[0], "record removed once it is back");
}

Test(parking, tided_stopping_gives_every_confined_vm_its_own_cpus_back) {
        confined_idle();
        manager_stop_parking(m);
        cr_expect(vcpu_on(0, 0, "0-3") && vcpu_on(0, 1, "0-3"));
        cr_expect_null(fake.parking_metadata[0]);
        cr_expect_eq(hv_fake_count(&fake, "set_vcpu_pin", PINNED), 0);
}

/* A tided killed while the VM was confined: the next one finds the record and gives the VM its
 * own CPUs back on its first tick, before any load is known. */
Test(parking, a_tided_that_died_is_undone_by_the_next) {
        confined_idle();
        m = manager_free(m); /* no stop: as after kill -9 */
        cr_assert(vcpu_on(0, 0, "3"));
        load_calls = 0;
        start();
        cr_assert_eq(manager_tick(m, SEC(40)), 0);
        cr_expect(vcpu_on(0, 0, "0-3") && vcpu_on(0, 1, "0-3"), "given back");
        cr_expect_null(fake.parking_metadata[0]);
        cr_expect(vcpu_on(1, 0, "3"), "not the administrator's VM");
}

Test(parking, a_latency_sensitive_vm_is_never_confined) {
        char note[256], err[256];
        start();
        struct policy_change c = { .have_latency_sensitive = true, .latency_sensitive = true };
        cr_assert_eq(manager_policy_set(m, "float", &c, SEC(1), note, sizeof(note), err, sizeof(err)), 0, "%s", err);
        for (int t = 2; t <= 30; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        cr_expect_eq(hv_fake_count(&fake, "set_vcpu_pin", FLOAT), 0);
        cr_expect_null(fake.parking_metadata[0]);
}

/* Made latency-sensitive while confined: given its CPUs back on the next tick. */
Test(parking, made_latency_sensitive_while_confined_it_gets_its_cpus_back) {
        char note[256], err[256];
        confined_idle();
        cr_assert(vcpu_on(0, 0, "3"));
        struct policy_change c = { .have_latency_sensitive = true, .latency_sensitive = true };
        cr_assert_eq(manager_policy_set(m, "float", &c, SEC(31), note, sizeof(note), err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(manager_tick(m, SEC(32)), 0);
        cr_expect(vcpu_on(0, 0, "0-3") && vcpu_on(0, 1, "0-3"));
        cr_expect_null(fake.parking_metadata[0]);
}

/* An administrator pins the confined VM themselves (virsh vcpupin --live): at the next change
 * tide sees pins it did not set, leaves them, drops its record and never touches the VM again. */
Test(parking, an_administrator_pinning_a_confined_vm_takes_it_over) {
        confined_idle();
        fake.vcpu_pins[0][0] = cpus("1");
        load_now[3] = 1.0;
        cr_assert_eq(manager_tick(m, SEC(31)), 0);
        cr_expect(vcpu_on(0, 0, "1"), "the administrator's pin stands");
        cr_expect(vcpu_on(0, 1, "3"), "the rest as it was: theirs now");
        cr_expect_null(fake.parking_metadata[0], "tide's record dropped");
        cr_expect_str_eq(manager_snapshot(m)->domains[0].parking, "pinned");
        size_t pins = hv_fake_count(&fake, "set_vcpu_pin", FLOAT);
        load_now[3] = 0;
        for (int t = 32; t < 80; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        cr_expect_eq(hv_fake_count(&fake, "set_vcpu_pin", FLOAT), pins, "never touched again");
}

/* A tided killed while confining, started again with parking off: it still gives the VM back. */
Test(parking, a_tided_with_parking_off_still_undoes_a_dead_tideds_pins) {
        confined_idle();
        m = manager_free(m);
        cr_assert_eq(manager_new(&hv, &cfg, host_plenty, NULL, &m), 0);
        cr_assert_eq(manager_enable_parking(m, cores, 4, NULL, NULL), 0);
        cr_assert_eq(manager_refresh(m, SEC(40)), 0);
        cr_assert_eq(manager_tick(m, SEC(41)), 0);
        cr_expect(vcpu_on(0, 0, "0-3") && vcpu_on(0, 1, "0-3"));
        cr_expect_null(fake.parking_metadata[0]);
        cr_expect(vcpu_on(1, 0, "3"));
        cr_expect_null(manager_snapshot(m)->domains[0].parking, "parking off: not shown");
}

/* A pin libvirt refuses: the other vCPUs and the emulator are still tried, the record stays, and
 * the next tick tries again until it is all given back. */
Test(parking, a_refused_pin_is_retried_and_the_record_kept_until_it_is_back) {
        confined_idle();
        load_now[3] = 1.0;
        fake.host_cpus = 3; /* libvirt now refuses CPU 3 in every pin: none can be given back */
        cr_assert_eq(manager_tick(m, SEC(31)), 0);
        cr_expect_gt(hv_fake_count(&fake, "set_emulator_pin", FLOAT), 1, "the emulator tried after the vCPUs failed");
        cr_expect_not_null(fake.parking_metadata[0], "not back yet: the record stays");
        fake.host_cpus = 4;
        cr_assert_eq(manager_tick(m, SEC(32)), 0);
        cr_expect(vcpu_on(0, 0, "0-3") && vcpu_on(0, 1, "0-3"));
        cr_expect_null(fake.parking_metadata[0]);
}

/* Stopped and started while confined: the new QEMU has no pins of tide's; it is read again and
 * confined again. */
Test(parking, a_vm_started_again_is_read_again) {
        confined_idle();
        manager_on_event(m, HV_EVENT_STOPPED, FLOAT, SEC(31));
        memset(fake.vcpu_pins[0], 0, sizeof(fake.vcpu_pins[0]));
        memset(&fake.emulator_pin[0], 0, sizeof(fake.emulator_pin[0]));
        free(fake.parking_metadata[0]);
        fake.parking_metadata[0] = NULL;
        manager_on_event(m, HV_EVENT_STARTED, FLOAT, SEC(32));
        for (int t = 33; t < 36; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        cr_expect(vcpu_on(0, 0, "3"), "confined again");
        cr_expect_not_null(fake.parking_metadata[0]);
}

/* Parking off and nothing to undo: each running VM is looked at once, not every tick. */
Test(parking, parking_off_asks_libvirt_once_per_vm) {
        cr_assert_eq(manager_new(&hv, &cfg, host_plenty, NULL, &m), 0);
        cr_assert_eq(manager_enable_parking(m, cores, 4, NULL, NULL), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        for (int t = 2; t < 12; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        size_t records_read = 0;
        for (size_t i = 0; i < fake.n_calls; i++)
                records_read += streq(fake.calls[i].op, "get_metadata") && streq(fake.calls[i].uuid, FLOAT) &&
                                (fake.calls[i].value & HV_META_PARKING);
        cr_expect_eq(records_read, 1);
        cr_expect_eq(hv_fake_count(&fake, "get_vcpu_pins", FLOAT), 0);
        cr_expect_eq(hv_fake_count(&fake, "set_vcpu_pin", NULL), 0);
}

/* ---- what parking is worth, measured: a sysfs tree whose idle counters the test moves ---- */

static char sys_root[64];
static uint64_t idle_time[4][2]; /* per CPU: µs in the shallow state (0) and the deep one (1) */

/* Each CPU's cpuidle: a shallow state (latency 2 us) and, when deep, one of 100 us. */
static void sys_write(bool deep) {
        char path[256];
        for (unsigned c = 0; c < 4; c++)
                for (unsigned k = 0; k < (deep ? 2u : 1u); k++) {
                        snprintf(path, sizeof(path), "%s/sys/devices/system/cpu/cpu%u/cpuidle/state%u", sys_root, c, k);
                        char cmd[400];
                        snprintf(cmd, sizeof(cmd), "mkdir -p %s", path);
                        cr_assert_eq(system(cmd), 0);
                        static const char *const names[] = { "name", "latency", "time", "usage" };
                        for (size_t f = 0; f < ELEMENTSOF(names); f++) {
                                char file[320];
                                snprintf(file, sizeof(file), "%s/%s", path, names[f]);
                                FILE *o = fopen(file, "w");
                                cr_assert_not_null(o, "%s", file);
                                if (f == 0)
                                        fprintf(o, "%s\n", k ? "C6" : "C1");
                                else if (f == 1)
                                        fprintf(o, "%u\n", k ? 100u : 2u);
                                else if (f == 2)
                                        fprintf(o, "%llu\n", (unsigned long long) idle_time[c][k]);
                                else
                                        fprintf(o, "%llu\n", (unsigned long long) idle_time[c][k] / 1000);
                                fclose(o);
                        }
                }
}

static void measured(bool deep) {
        snprintf(sys_root, sizeof(sys_root), "/tmp/tide-park-sys-XXXXXX");
        cr_assert_not_null(mkdtemp(sys_root));
        memset(idle_time, 0, sizeof(idle_time));
        sys_write(deep);
        start();
        cr_assert_eq(manager_measure_parking(m, sys_root), 0);
}

static void sys_rm(void) {
        char cmd[96];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", sys_root);
        cr_expect_eq(system(cmd), 0);
}

/* One second of the host: a parked CPU sleeps deep all of it, an unparked one idles in the
 * shallow state for what its load leaves; then a tick. */
static void second(uint64_t t, bool deep) {
        const struct snapshot *s = manager_snapshot(m);
        struct hv_cpuset parked = { 0 };
        if (s->host.parking_on)
                cr_assert_eq(parking_cpulist_parse(s->host.parked, &parked, NULL), 0);
        for (unsigned c = 0; c < 4; c++) {
                uint64_t idle = (uint64_t) ((1 - load_now[c]) * 1e6);
                if (deep && hv_cpuset_test(&parked, c))
                        idle_time[c][1] += idle;
                else
                        idle_time[c][0] += idle;
        }
        sys_write(deep);
        cr_assert_eq(manager_tick(m, SEC(t)), 0);
}

Test(parking, each_episode_is_measured_and_judged_on_its_baseline, .fini = sys_rm) {
        measured(true);
        for (unsigned c = 0; c < 4; c++)
                load_now[c] = 0.6; /* busy: nothing parked, the baseline fills */
        for (int t = 2; t <= 30; t++)
                second((uint64_t) t, true);
        const struct snapshot *s = manager_snapshot(m);
        cr_assert(s->host.parking_measured);
        cr_expect_str_eq(s->host.parked, "none");
        cr_expect_null(s->host.parking_verdict, "no episode yet");
        cr_expect(s->host.parking_has_deep);
        memset(load_now, 0, sizeof(load_now)); /* idle: cores parked one per dwell */
        for (int t = 31; t <= 60; t++)
                second((uint64_t) t, true);
        s = manager_snapshot(m);
        cr_expect_neq(strcmp(s->host.parked, "none"), 0);
        cr_assert_not_null(s->host.parking_verdict, "an episode under way");
        cr_expect_gt(s->host.parking_deep_during, s->host.parking_deep_before);
        cr_expect_gt(s->host.parking_watts_saved, 0);
        cr_assert_eq(s->n_cpus, 4);
        bool deep_seen = false;
        for (size_t i = 0; i < s->n_cpus; i++)
                if (s->cpus[i].parked)
                        deep_seen |= s->cpus[i].deep > 0.9;
        cr_expect(deep_seen, "a parked CPU's last second was deep idle");

        char *text = NULL;
        size_t len = 0;
        cr_assert_eq(metrics_render(s, &text, &len), 0);
        cr_expect(strstr(text, "tide_cpu_idle_residency{cpu=\"0\",state=\"deep\"} 1\n"), "%s", text);
        cr_expect(strstr(text, "tide_parking_watts_saved_estimate "));
        cr_expect(strstr(text, "tide_parking_pays 1\n"));
        free(text);

        load_now[3] = 1.0; /* load: everything unparked, the episode is over */
        second(61, true);
        second(62, true);
        s = manager_snapshot(m);
        cr_expect_str_eq(s->host.parked, "none");
        cr_expect_null(s->host.parking_verdict);
        cr_expect_eq(s->host.parking_episodes_paid, 1);
        cr_expect_str_eq(s->host.parking_last_verdict, "paid");
        cr_expect_gt(s->host.parking_last_watts_saved, 0);
        cr_expect_gt(s->host.parking_joules_saved, 0);
}

Test(parking, a_host_without_deep_idle_is_shown_as_one_where_parking_cannot_pay, .fini = sys_rm) {
        measured(false);
        for (int t = 2; t <= 40; t++)
                second((uint64_t) t, false);
        const struct snapshot *s = manager_snapshot(m);
        cr_expect_neq(strcmp(s->host.parked, "none"), 0, "parking goes on: the operator chose it");
        cr_expect_not(s->host.parking_has_deep);
        cr_expect(s->host.parking_never_pays);
        char *text = NULL;
        size_t len = 0;
        cr_assert_eq(metrics_render(s, &text, &len), 0);
        cr_expect(strstr(text, "tide_parking_pays 0\n"), "%s", text);
        free(text);
}

Test(parking, measuring_needs_parking_on) {
        cr_assert_eq(manager_new(&hv, &cfg, host_plenty, NULL, &m), 0);
        cr_expect_eq(manager_measure_parking(m, "/"), -EINVAL);
        cr_expect_eq(manager_measure_parking(NULL, "/"), -EINVAL);
}

/* ---- mode = partition: libvirt's /machine cgroup (v2) confined instead of each VM ---- */

static char cg_root[64], record[128];

static void cg_file(const char *rel, const char *text) {
        char path[256];
        snprintf(path, sizeof(path), "%s%s", cg_root, rel);
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f, "%s", path);
        fputs(text, f);
        fclose(f);
}

static char *cg_read(const char *rel) {
        static char buf[256];
        char path[256];
        snprintf(path, sizeof(path), "%s%s", cg_root, rel);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s", path);
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        return buf;
}

/* A cgroup v2 tree: /machine with the cpuset controller, its list "" (its parent's). */
static void cg_v2(void) {
        char cmd[160];
        snprintf(cg_root, sizeof(cg_root), "/tmp/tide-park-cg-XXXXXX");
        cr_assert_not_null(mkdtemp(cg_root));
        snprintf(cmd, sizeof(cmd), "mkdir -p %s/machine", cg_root);
        cr_assert_eq(system(cmd), 0);
        cg_file("/machine/cpuset.cpus", "\n");
        snprintf(record, sizeof(record), "%s/parking-partition.state", cg_root);
        cfg.parking.mode = PARKING_PARTITION;
}

static void cg_rm(void) {
        char cmd[96];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", cg_root);
        cr_expect_eq(system(cmd), 0);
}

Test(parking, partition_mode_confines_the_partition_and_gives_its_own_list_back, .fini = cg_rm) {
        cg_v2();
        start();
        cr_assert_eq(manager_enable_partition_parking(m, cg_root, "/machine", record), 0);
        for (int t = 2; t <= 30; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        cr_expect_str_eq(cg_read("/machine/cpuset.cpus"), "3", "the unparked CPU (the pinned VM's)");
        cr_expect_eq(hv_fake_count(&fake, "set_vcpu_pin", FLOAT), 0, "no VM pinned one by one");
        cr_expect_null(fake.parking_metadata[0]);
        cr_expect_not_null(strstr(cg_read("/parking-partition.state"), "\ncpus=\n"), "its own list kept first");

        load_now[3] = 1.0;
        cr_assert_eq(manager_tick(m, SEC(31)), 0);
        cr_expect_str_eq(cg_read("/machine/cpuset.cpus"), "\n", "its parent's again");
        cr_expect_neq(access(record, F_OK), 0, "record removed");
}

/* A stopped VM configured to run on CPU 1: its start would fail were CPU 1 outside the confined
 * partition, so CPU 1 is never parked. */
Test(parking, partition_mode_never_parks_a_cpu_a_stopped_vm_is_configured_to_run_on, .fini = cg_rm) {
        cg_v2();
        struct hv_domain d = { .active = false, .persistent = true, .max_kib = KIB_PER_GIB, .current_kib = KIB_PER_GIB,
                               .has_balloon = true, .numa_node = -1 };
        snprintf(d.uuid, sizeof(d.uuid), "6f1c2a5e-0000-4000-8000-0000000000f3");
        snprintf(d.name, sizeof(d.name), "stopped");
        struct hv_mem_stats st;
        memset(&st, 0xff, sizeof(st));
        int i = hv_fake_add(&fake, &d, &st);
        cr_assert_geq(i, 0);
        fake.vcpus[i] = 1;
        hv_cpuset_set(&fake.vcpu_pins[i][0], 1);
        start();
        cr_assert_eq(manager_enable_partition_parking(m, cg_root, "/machine", record), 0);
        for (int t = 2; t <= 40; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        cr_expect_str_eq(cg_read("/machine/cpuset.cpus"), "1,3", "CPU 1 (the stopped VM's) and 3 (the pinned one's)");
        /* pin mode confines VMs one by one: a stopped one's configuration is none of its business. */
        cfg.parking.mode = PARKING_PIN;
        manager_set_config(m, &cfg);
        load_now[3] = 1.0;
        cr_assert_eq(manager_tick(m, SEC(41)), 0);
        load_now[3] = 0;
        for (int t = 42 + 11 * 60; t <= 42 + 11 * 60 + 40; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        cr_expect(vcpu_on(0, 0, "3"), "CPU 1 parked in pin mode");
}

Test(parking, partition_mode_a_dead_tideds_confinement_is_undone_at_start, .fini = cg_rm) {
        cg_v2();
        cg_file("/machine/cpuset.cpus", "3\n");
        cg_file("/parking-partition.state", "# tided\ndir=/machine\ncpus=0-3\n");
        start();
        cr_assert_eq(manager_enable_partition_parking(m, cg_root, "/machine", record), 0);
        cr_expect_str_eq(cg_read("/machine/cpuset.cpus"), "0-3");
        cr_expect_neq(access(record, F_OK), 0);
        /* A record that is not tided's is left alone, and so is the partition. */
        cg_file("/machine/cpuset.cpus", "3\n");
        cg_file("/parking-partition.state", "cpus=not a list\n");
        cr_expect_eq(manager_enable_partition_parking(m, cg_root, "/machine", record), -EINVAL);
        cr_expect_str_eq(cg_read("/machine/cpuset.cpus"), "3\n");
}

Test(parking, partition_mode_tided_stopping_and_a_latency_sensitive_vm_give_it_back, .fini = cg_rm) {
        char note[256], err[256];
        cg_v2();
        cg_file("/machine/cpuset.cpus", "0-3\n");
        start();
        cr_assert_eq(manager_enable_partition_parking(m, cg_root, "/machine", record), 0);
        for (int t = 2; t <= 30; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        cr_assert_str_eq(cg_read("/machine/cpuset.cpus"), "3");
        /* It confines every VM in it: one that must not be packed unparks everything. */
        struct policy_change c = { .have_latency_sensitive = true, .latency_sensitive = true };
        cr_assert_eq(manager_policy_set(m, "float", &c, SEC(31), note, sizeof(note), err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(manager_tick(m, SEC(32)), 0);
        cr_expect_str_eq(cg_read("/machine/cpuset.cpus"), "0-3");
        cr_expect_str_eq(manager_snapshot(m)->host.parking_reason,
                         "a latency-sensitive VM runs in the confined partition: nothing parked");
        c.latency_sensitive = false;
        cr_assert_eq(manager_policy_set(m, "float", &c, SEC(33), note, sizeof(note), err, sizeof(err)), 0, "%s", err);
        for (int t = 34; t <= 34 + 11 * 60; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        cr_assert_str_eq(cg_read("/machine/cpuset.cpus"), "3", "parked again after the reversal hold");
        manager_stop_parking(m);
        cr_expect_str_eq(cg_read("/machine/cpuset.cpus"), "0-3");
        cr_expect_neq(access(record, F_OK), 0);
}

Test(parking, partition_mode_needs_cgroup_v2s_cpuset, .fini = cg_rm) {
        char cmd[200];
        cg_v2();
        start();
        snprintf(cmd, sizeof(cmd), "mkdir -p %s/cpuset/machine", cg_root);
        cr_assert_eq(system(cmd), 0);
        cr_expect_eq(manager_enable_partition_parking(m, cg_root, "/machine", record), -EOPNOTSUPP, "cgroup v1");
        snprintf(cmd, sizeof(cmd), "rm -rf %s/cpuset %s/machine/cpuset.cpus", cg_root, cg_root);
        cr_assert_eq(system(cmd), 0);
        cr_expect_eq(manager_enable_partition_parking(m, cg_root, "/machine", record), -EOPNOTSUPP,
                     "no cpuset controller");
        cr_expect_eq(manager_enable_partition_parking(m, cg_root, "/elsewhere", record), -ENOENT);
}

/* ---- irqbalance: a fake one listening as the real one does (tests/unit/fake_irqbalance.h) ---- */

static char irq_rec[128];

static void irq_up(void) {
        fake_irqb_up("00000000");
        snprintf(irq_rec, sizeof(irq_rec), "%s/parking-irqbalance.state", fake_irqb.dir);
}

/* The host's own irqbalance setup keeps interrupts off CPU 3 (isolated, say). */
static void irq_up_own(void) {
        fake_irqb_up("00000000,00000008");
        snprintf(irq_rec, sizeof(irq_rec), "%s/parking-irqbalance.state", fake_irqb.dir);
}

Test(parking, irqbalance_keeps_interrupts_off_the_parked_cpus_while_they_are, .init = irq_up, .fini = fake_irqb_down) {
        start();
        cr_assert_eq(manager_enable_irqbalance(m, fake_irqb.dir, irq_rec), 0);
        for (int t = 2; t <= 12; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        cr_expect_str_eq(fake_irqb_wait(1), "settings cpus 2", "the first core parked");
        cr_expect_eq(fake_irqb.setups, 1, "its own ban read first");
        cr_expect_eq(access(irq_rec, F_OK), 0, "a ban is out: recorded");
        for (int t = 13; t <= 30; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        cr_expect_str_eq(fake_irqb_wait(3), "settings cpus 0-2");
        load_now[3] = 1.0;
        cr_assert_eq(manager_tick(m, SEC(31)), 0);
        cr_expect_str_eq(fake_irqb_wait(4), "settings cpus NULL", "unparked: its own choice again");
        cr_expect_neq(access(irq_rec, F_OK), 0);
        cr_expect_eq(fake_irqb.not_root, 0, "irqbalance acts only for root, on the credentials sent");
}

Test(parking, irqbalance_keeps_its_own_bans_in_ours, .init = irq_up_own, .fini = fake_irqb_down) {
        start();
        cr_assert_eq(manager_enable_irqbalance(m, fake_irqb.dir, irq_rec), 0);
        for (int t = 2; t <= 12; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        cr_expect_str_eq(fake_irqb_wait(1), "settings cpus 2-3", "the parked CPU and its own (3)");
}

Test(parking, irqbalance_a_ban_left_by_a_dead_tided_is_lifted_and_stopping_lifts_ours, .init = irq_up,
     .fini = fake_irqb_down) {
        FILE *f = fopen(irq_rec, "w");
        cr_assert_not_null(f);
        fclose(f);
        start();
        cr_assert_eq(manager_enable_irqbalance(m, fake_irqb.dir, irq_rec), 0);
        cr_expect_str_eq(fake_irqb_wait(1), "settings cpus NULL");
        cr_expect_neq(access(irq_rec, F_OK), 0);
        for (int t = 2; t <= 12; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        cr_expect_str_eq(fake_irqb_wait(2), "settings cpus 2");
        manager_stop_parking(m);
        cr_expect_str_eq(fake_irqb_wait(3), "settings cpus NULL");
        /* Switched off in the config: nothing is told. */
        cfg.parking.irqbalance = false;
        manager_set_config(m, &cfg);
        for (int t = 13; t <= 40; t++)
                cr_assert_eq(manager_tick(m, SEC(t)), 0);
        cr_expect_eq(fake_irqb.settings, 3);
}
