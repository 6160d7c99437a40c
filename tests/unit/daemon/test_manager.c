/* tided's manager and control protocol against the recording fake: discovery, policies in
 * metadata, the tick acting on fresh stats only, restarts, reboots, and bad requests. */
#include <criterion/criterion.h>
#include <errno.h>
#include <json.h>
#include <stdlib.h>
#include <string.h>

#include "balloon/metadata.h"
#include "common/macro.h"
#include "daemon/control.h"
#include "daemon/manager.h"
#include "policy/engine.h"
#include "sim/sim.h"

#define MIB(x) ((uint64_t) (x) * KIB_PER_MIB)
#define SEC(x) ((uint64_t) (x) * USEC_PER_SEC)

static struct hv_fake fake;
static struct hv hv;
static struct tide_config cfg;
static struct manager *m;

static int host_mem(struct manager_host *h, void *userdata) {
        h->total_kib = MIB(16384);
        h->available_kib = MIB(12000);
        return 0;
}

/* The guest kernel keeps 20 MiB outside MemTotal; what it uses is `demand` of the rest. The
 * guest side is the simulator's one model (sim_guest_meminfo). */
#define KERNEL MIB(20)
static uint64_t used[HV_FAKE_MAX_DOMAINS];

static void guest_shows(int i) {
        sim_guest_meminfo(&fake.domains[i], fake.stats[i].actual_kib, KERNEL, used[i], &fake.stats[i].available_kib,
                          &fake.stats[i].usable_kib);
}

static void add_vm(const char *uuid, const char *name, uint64_t mem, uint64_t actual, uint64_t demand) {
        struct hv_domain d = { .active = true, .persistent = true, .id = 1, .max_kib = mem, .current_kib = actual,
                               .has_balloon = true, .numa_node = -1 };
        snprintf(d.uuid, sizeof(d.uuid), "%s", uuid);
        snprintf(d.name, sizeof(d.name), "%s", name);
        struct hv_mem_stats s;
        memset(&s, 0xff, sizeof(s));
        s.actual_kib = actual;
        s.rss_kib = actual / 2;
        s.last_update_sec = 1000;
        int i = hv_fake_add(&fake, &d, &s);
        cr_assert_geq(i, 0);
        used[i] = demand;
        guest_shows(i);
}

/* The guest reports again: last_update moves, with new demand. */
static void report(int i, uint64_t demand) {
        fake.stats[i].last_update_sec++;
        used[i] = demand;
        guest_shows(i);
}

static void setup(void) {
        memset(&fake, 0, sizeof(fake));
        hv = hv_fake_hv(&fake);
        config_init(&cfg);
        m = NULL;
}

static void teardown(void) {
        m = manager_free(m);
        hv_fake_done(&fake);
}

TestSuite(manager, .init = setup, .fini = teardown);
TestSuite(control, .init = setup, .fini = teardown);

static json_object *call(const char *line, bool root, uint64_t now) {
        char *reply = NULL;
        cr_assert_eq(control_handle(m, line, strlen(line), root, now, &reply), 0);
        json_object *o = json_tokener_parse(reply);
        cr_assert_not_null(o, "reply is not JSON: %s", reply);
        free(reply);
        return o;
}

static bool ok(json_object *o) {
        return json_object_get_boolean(json_object_object_get(o, "ok"));
}

static const char *error_of(json_object *o) {
        return json_object_get_string(json_object_object_get(o, "error"));
}

static void set_policy(const char *name, uint64_t min, uint64_t startup, uint64_t max) {
        char line[256];
        snprintf(line, sizeof(line),
                 "{\"cmd\":\"policy-set\",\"domain\":\"%s\",\"minimum_kib\":%" PRIu64 ",\"startup_kib\":%" PRIu64
                 ",\"maximum_kib\":%" PRIu64 "}",
                 name, min, startup, max);
        json_object *o = call(line, true, SEC(100));
        cr_assert(ok(o), "policy-set failed: %s", error_of(o));
        json_object_put(o);
}

Test(manager, domains_without_policy_are_listed_unmanaged_and_never_touched) {
        add_vm("u1", "plain", MIB(1024), MIB(1024), MIB(100));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        for (int t = 0; t < 5; t++) {
                report(0, MIB(100));
                cr_assert_eq(manager_tick(m, SEC(100 + t)), 0);
        }
        cr_assert_eq(hv_fake_count(&fake, "set_balloon", NULL), 0);
        cr_assert_eq(hv_fake_count(&fake, "set_stats_period", NULL), 0);
        const struct snapshot *s = manager_snapshot(m);
        cr_assert_eq(s->n_domains, 1);
        cr_assert(!s->domains[0].managed);
        cr_assert_str_eq(s->domains[0].status, "unmanaged");
}

Test(manager, policy_goes_to_metadata_and_boot_size) {
        add_vm("u1", "web", MIB(1024), MIB(1024), MIB(100));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", MIB(256), MIB(1024), MIB(1024));

        cr_assert_eq(hv_fake_count(&fake, "set_metadata", "u1"), 1);
        cr_assert_eq(hv_fake_last(&fake, "set_metadata")->value, HV_LIVE | HV_CONFIG);
        cr_assert_eq(hv_fake_last(&fake, "set_boot_memory")->value, MIB(1024));
        struct vm_policy p;
        char err[256];
        cr_assert_eq(metadata_parse(fake.metadata[0], &p, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(p.minimum_kib, MIB(256));
}

Test(manager, acts_only_on_fresh_stats_then_shrinks_slowly_toward_demand) {
        add_vm("u1", "web", MIB(1024), MIB(1024), MIB(100));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", MIB(256), MIB(1024), MIB(1024));

        cr_assert_eq(manager_tick(m, SEC(101)), 0);
        cr_assert_eq(hv_fake_count(&fake, "set_balloon", NULL), 0, "the stats have not advanced yet");
        cr_assert_str_eq(manager_snapshot(m)->domains[0].reason, "hold: no demand data");

        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(102)), 0);
        cr_assert_eq(hv_fake_count(&fake, "set_balloon", NULL), 1);
        uint64_t first = hv_fake_last(&fake, "set_balloon")->value;
        cr_assert_lt(first, MIB(1024));
        cr_assert_geq(first, MIB(1024) - cfg.shrink_step_max_kib, "a bounded step");
        cr_assert_eq(manager_snapshot(m)->domains[0].target_kib, first);
}

Test(manager, grows_at_once_when_demand_rises) {
        add_vm("u1", "web", MIB(2048), MIB(512), MIB(100));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", MIB(256), MIB(512), MIB(2048));
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(101)), 0);
        report(0, MIB(480)); /* the guest sees 492 MiB (its kernel keeps 20); 480 used */
        cr_assert_eq(manager_tick(m, SEC(102)), 0);
        cr_assert_not_null(hv_fake_last(&fake, "set_balloon"));
        cr_assert_eq(hv_fake_last(&fake, "set_balloon")->value, MIB(600), "(480 + 20) x 1.2");
}

/* The guest's balloon moves where tided set it (the fake leaves actual to the test). */
static void balloon_reaches_target(int i) {
        fake.stats[i].actual_kib = hv_fake_last(&fake, "set_balloon")->value;
        guest_shows(i);
}

/* A managed 1 GiB guest (with or without deflate-on-oom) shrunk to its target and sampled there. */
static void guest_at_target(bool doo, uint64_t minimum, uint64_t maximum) {
        add_vm("u1", "web", MIB(1024), MIB(1024), MIB(100));
        fake.domains[0].balloon_deflate_on_oom = doo;
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", minimum, maximum, maximum);
        cr_assert_eq(manager_tick(m, SEC(101)), 0);
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(102)), 0);
        cr_assert_not_null(hv_fake_last(&fake, "set_balloon"));
        balloon_reaches_target(0);
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(103)), 0);
        balloon_reaches_target(0);
}

Test(manager, a_guest_that_deflates_its_balloon_out_of_memory_is_grown_and_not_shrunk_back) {
        guest_at_target(true, MIB(256), MIB(1024));
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(104)), 0); /* the sample at the target */
        size_t calls = hv_fake_count(&fake, "set_balloon", NULL);

        /* The guest runs out and its driver gives itself 8 MiB of the balloon. */
        fake.stats[0].actual_kib += MIB(8);
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(105)), 0);
        cr_assert_eq(hv_fake_count(&fake, "set_balloon", NULL), calls + 1);
        uint64_t grown = hv_fake_last(&fake, "set_balloon")->value;
        cr_assert_gt(grown, fake.stats[0].actual_kib, "grown beyond what the guest took");
        const struct snapshot_domain *sd = &manager_snapshot(m)->domains[0];
        cr_assert_str_eq(sd->reason, "at maximum 1GiB: guest deflated its balloon (out of memory)");
        cr_assert_eq(sd->guest_oom_deflates, 1);
        cr_assert(sd->flags & ENGINE_FLAG_GUEST_OOM);

        /* Demand still says 100 MiB, but tided does not shrink it back into the OOM. */
        balloon_reaches_target(0);
        for (int t = 6; t < 22; t++) {
                report(0, MIB(100));
                cr_assert_eq(manager_tick(m, SEC(100 + t)), 0);
                cr_assert_geq(hv_fake_last(&fake, "set_balloon")->value, grown, "shrunk %d s after the OOM", t - 5);
        }
        cr_assert_str_eq(manager_snapshot(m)->domains[0].reason,
                         "hold: guest ran out of memory (deflated its balloon) 16 s ago");
}

Test(manager, a_balloon_reset_by_a_reboot_or_a_missed_start_is_no_oom) {
        guest_at_target(true, MIB(256), MIB(1024));
        manager_on_event(m, HV_EVENT_REBOOTED, "u1", SEC(104));
        fake.stats[0].actual_kib = MIB(1024); /* the device reset: no balloon until the driver loads */
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(105)), 0);
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(106)), 0);
        cr_assert_eq(manager_snapshot(m)->domains[0].guest_oom_deflates, 0);

        /* A stop and start tided saw only through the refresh (events lost). */
        balloon_reaches_target(0);
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(107)), 0);
        fake.domains[0].active = false;
        cr_assert_eq(manager_refresh(m, SEC(108)), 0);
        fake.domains[0].active = true;
        fake.stats[0].actual_kib = MIB(1024);
        cr_assert_eq(manager_refresh(m, SEC(109)), 0);
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(110)), 0);
        cr_assert_eq(manager_snapshot(m)->domains[0].guest_oom_deflates, 0);
        cr_assert_str_eq(manager_snapshot(m)->domains[0].reason, "booting: startup 1GiB");
}

Test(manager, a_balloon_reset_while_booting_is_no_oom) {
        /* Startup 512 MiB below the 1 GiB boot size, the guest shrunk below it: the booting tick
         * raises the balloon to 512 MiB, then the device reset shows the full 1 GiB before the
         * new driver reports. */
        guest_at_target(true, MIB(256), MIB(512));
        for (int t = 4; t < 10; t++) {
                report(0, MIB(100));
                cr_assert_eq(manager_tick(m, SEC(100 + t)), 0);
                balloon_reaches_target(0);
        }
        cr_assert_lt(fake.stats[0].actual_kib, MIB(500), "shrunk toward the minimum first");
        manager_on_event(m, HV_EVENT_REBOOTED, "u1", SEC(110));
        cr_assert_eq(manager_tick(m, SEC(111)), 0);
        cr_assert_eq(hv_fake_last(&fake, "set_balloon")->value, MIB(512), "startup memory");
        fake.stats[0].actual_kib = MIB(1024);
        cr_assert_eq(manager_tick(m, SEC(112)), 0); /* stats have not advanced: still booting */
        cr_assert_eq(manager_snapshot(m)->domains[0].guest_oom_deflates, 0);
}

Test(manager, a_guest_that_deflates_above_its_maximum_is_sent_back_to_it) {
        guest_at_target(true, MIB(512), MIB(512)); /* pinned: the target never changes */
        cr_assert_eq(hv_fake_last(&fake, "set_balloon")->value, MIB(512), "lowered to its maximum");
        size_t calls = hv_fake_count(&fake, "set_balloon", NULL);
        fake.stats[0].actual_kib = MIB(600);
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(104)), 0);
        cr_assert_eq(manager_snapshot(m)->domains[0].guest_oom_deflates, 1);
        cr_assert_eq(hv_fake_count(&fake, "set_balloon", NULL), calls + 1, "the same target is sent again");
        cr_assert_eq(hv_fake_last(&fake, "set_balloon")->value, MIB(512));
}

Test(manager, a_rising_balloon_without_deflate_on_oom_is_not_believed) {
        guest_at_target(false, MIB(256), MIB(1024));
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(104)), 0);
        fake.stats[0].actual_kib += MIB(8);
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(105)), 0);
        const struct snapshot_domain *sd = &manager_snapshot(m)->domains[0];
        cr_assert_eq(sd->guest_oom_deflates, 1, "counted");
        cr_assert_not(sd->flags & ENGINE_FLAG_GUEST_OOM, "but not taken as pressure");
}

Test(manager, restart_rebuilds_from_metadata_and_moves_nothing_until_stats_advance) {
        add_vm("u1", "web", MIB(1024), MIB(700), MIB(100));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", MIB(256), MIB(1024), MIB(1024));
        m = manager_free(m);
        fake.n_calls = 0;

        /* a new tided: policies come back from metadata */
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        for (int t = 0; t < 3; t++)
                cr_assert_eq(manager_tick(m, SEC(200 + t)), 0);
        cr_assert(manager_snapshot(m)->domains[0].managed);
        cr_assert_eq(hv_fake_count(&fake, "set_balloon", NULL), 0);
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(203)), 0);
        cr_assert_eq(hv_fake_count(&fake, "set_balloon", NULL), 0,
                     "found running: it may have booted a second ago, so the quiet period counts from now");
        cr_assert_str_eq(manager_snapshot(m)->domains[0].reason, "hold: quiet period 42 s left");
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(200) + cfg.quiet_usec), 0);
        cr_assert_eq(hv_fake_count(&fake, "set_balloon", NULL), 1);
}

Test(manager, reboot_gives_startup_memory) {
        add_vm("u1", "web", MIB(1024), MIB(300), MIB(100));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", MIB(256), MIB(1024), MIB(1024));
        manager_on_event(m, HV_EVENT_REBOOTED, "u1", SEC(150));
        cr_assert_eq(manager_tick(m, SEC(151)), 0);
        cr_assert_eq(hv_fake_last(&fake, "set_balloon")->value, MIB(1024));
        cr_assert_str_eq(manager_snapshot(m)->domains[0].reason, "booting: startup 1GiB");
}

Test(manager, a_migrated_in_or_restored_vm_keeps_its_memory_and_waits_for_fresh_stats) {
        add_vm("u1", "web", MIB(1024), MIB(300), MIB(100));
        fake.domains[0].active = false;
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", MIB(256), MIB(1024), MIB(1024));
        fake.domains[0].active = true; /* arrives by migration */
        manager_on_event(m, HV_EVENT_RESUMED, "u1", SEC(150));
        cr_assert_eq(manager_tick(m, SEC(151)), 0);
        cr_assert_null(hv_fake_last(&fake, "set_balloon"), "no startup memory: it is not booting");
        cr_assert_str_eq(manager_snapshot(m)->domains[0].reason, "hold: no demand data");
        report(0, MIB(250));
        cr_assert_eq(manager_tick(m, SEC(152)), 0);
        cr_assert_eq(hv_fake_last(&fake, "set_balloon")->value, MIB(324), "grows to (250 + 20) x 1.2");
}

Test(manager, never_below_minimum_even_with_tiny_demand) {
        add_vm("u1", "web", MIB(1024), MIB(1024), MIB(1));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", MIB(600), MIB(1024), MIB(1024));
        for (int t = 0; t < 200; t++) {
                report(0, MIB(1));
                cr_assert_eq(manager_tick(m, SEC(101 + t)), 0);
                /* the guest follows the balloon; without deflate-on-oom its MemTotal shrinks too */
                fake.stats[0].actual_kib = fake.domains[0].current_kib;
                guest_shows(0);
        }
        cr_assert_eq(fake.domains[0].current_kib, MIB(600));
}

Test(manager, clear_releases_the_balloon_once_and_unmanages) {
        add_vm("u1", "web", MIB(1024), MIB(400), MIB(100));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", MIB(256), MIB(1024), MIB(1024));
        json_object *o = call("{\"cmd\":\"policy-clear\",\"domain\":\"web\"}", true, SEC(110));
        cr_assert(ok(o), "%s", error_of(o));
        json_object_put(o);
        cr_assert_null(fake.metadata[0]);
        cr_assert_eq(manager_tick(m, SEC(111)), 0);
        cr_assert_eq(hv_fake_last(&fake, "set_balloon")->value, MIB(1024));
        cr_assert_eq(manager_tick(m, SEC(112)), 0);
        cr_assert_eq(hv_fake_count(&fake, "set_balloon", NULL), 1, "released once, then never touched");
}

Test(manager, a_failing_hypervisor_call_is_logged_and_the_tick_goes_on) {
        add_vm("u1", "a", MIB(1024), MIB(1024), MIB(100));
        add_vm("u2", "b", MIB(1024), MIB(1024), MIB(100));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("a", MIB(256), MIB(1024), MIB(1024));
        set_policy("b", MIB(256), MIB(1024), MIB(1024));
        report(0, MIB(100));
        report(1, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(101)), 0);
        report(0, MIB(100));
        report(1, MIB(100));
        fake.n_calls = 0;
        fake.fail_errno = EIO; /* the first call of the tick (a's stats) fails */
        cr_assert_eq(manager_tick(m, SEC(102)), 0);
        cr_assert_eq(fake.fail_errno, 0, "the failure was used");
        cr_assert_eq(hv_fake_count(&fake, "set_balloon", "u1"), 0, "a, without stats, is held");
        cr_assert_eq(hv_fake_count(&fake, "set_balloon", "u2"), 1, "b still handled");
}

static int host_two_nodes(struct manager_host *h, void *userdata) {
        h->total_kib = MIB(16384);
        h->available_kib = MIB(12000);
        h->n_nodes = 2;
        h->node_free_kib[0] = MIB(150); /* node 0 is nearly full */
        h->node_free_kib[1] = MIB(8000);
        return 0;
}

Test(manager, a_vm_bound_to_a_full_numa_node_is_capped_by_that_node) {
        add_vm("u1", "pinned", MIB(2048), MIB(300), MIB(100));
        add_vm("u2", "free", MIB(2048), MIB(512), MIB(100));
        fake.domains[0].numa_node = 0;
        cr_assert_eq(manager_new(&hv, &cfg, host_two_nodes, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("pinned", MIB(256), MIB(512), MIB(2048));
        set_policy("free", MIB(256), MIB(512), MIB(2048));
        report(0, MIB(100));
        report(1, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(101)), 0);
        report(0, MIB(270)); /* wants (270 + 20) x 1.2 = 348 MiB */
        report(1, MIB(480));
        cr_assert_eq(manager_tick(m, SEC(102)), 0);
        /* node 0 has 150 MiB free + the 150 MiB pinned has resident: 300 MiB at most */
        const struct snapshot *s = manager_snapshot(m);
        cr_assert_eq(s->domains[0].target_kib, MIB(300), "target %" PRIu64 " reason %s", s->domains[0].target_kib,
                     s->domains[0].reason);
        cr_assert_not_null(strstr(s->domains[0].reason, "capped by node 0 share"), "%s", s->domains[0].reason);
        cr_assert_eq(s->domains[1].target_kib, MIB(600));
}

/* The balloon's actual is the guest's word (QEMU derives it from what the guest's driver
 * writes): a guest claiming to hold 1 TiB in a 1 GiB VM is taken at 1 GiB, so the host does not
 * look full and its neighbour still grows. */
Test(manager, a_guest_reporting_a_huge_balloon_actual_does_not_starve_the_others) {
        add_vm("u1", "web", MIB(2048), MIB(512), MIB(100));
        add_vm("u2", "liar", MIB(1024), MIB(1024), MIB(100));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", MIB(256), MIB(512), MIB(2048));
        set_policy("liar", MIB(256), MIB(1024), MIB(1024));
        report(0, MIB(100));
        report(1, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(101)), 0);
        fake.stats[1].actual_kib = MIB(1024) * 1024; /* 1 TiB */
        report(0, MIB(480));
        report(1, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(102)), 0);
        const struct snapshot *s = manager_snapshot(m);
        cr_expect_eq(s->domains[1].assigned_kib, MIB(1024), "the liar counted at %" PRIu64 " KiB", s->domains[1].assigned_kib);
        cr_assert_eq(s->domains[0].target_kib, MIB(600), "web's target %" PRIu64 " KiB: %s", s->domains[0].target_kib,
                     s->domains[0].reason);
}

/* One domain libvirt cannot describe neither hides the others nor is taken for gone. */
Test(manager, a_domain_that_cannot_be_described_is_kept_and_does_not_block_the_listing) {
        add_vm("u1", "web", MIB(1024), MIB(1024), MIB(100));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", MIB(256), MIB(1024), MIB(1024));

        fake.domains[0].undescribed = true;
        add_vm("u2", "db", MIB(2048), MIB(2048), MIB(100));
        cr_assert_eq(manager_refresh(m, SEC(2)), 0);
        cr_assert_eq(manager_tick(m, SEC(101)), 0);
        const struct snapshot *s = manager_snapshot(m);
        cr_assert_eq(s->n_domains, 2, "%zu domains", s->n_domains);
        for (size_t i = 0; i < s->n_domains; i++) {
                const struct snapshot_domain *d = &s->domains[i];
                cr_assert(d->active, "%s taken for stopped", d->name);
                if (streq(d->name, "web"))
                        cr_assert(d->managed, "web lost its policy");
        }
}

/* policy-clear releases before it forgets: with the metadata removed first, a failed release
 * (or tided stopped before its next tick) left the VM ballooned down for good. */
Test(manager, a_clear_whose_release_fails_keeps_the_policy_and_says_so) {
        add_vm("u1", "web", MIB(1024), MIB(400), MIB(100));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", MIB(256), MIB(1024), MIB(1024));

        fake.fail_errno = EIO; /* the release's set_balloon */
        json_object *o = call("{\"cmd\":\"policy-clear\",\"domain\":\"web\"}", true, SEC(110));
        cr_assert(!ok(o));
        cr_assert_not_null(strstr(error_of(o), "policy is kept"), "%s", error_of(o));
        json_object_put(o);
        cr_assert_not_null(fake.metadata[0], "the policy stays until the balloon is released");

        /* Done at once when it works: nothing waits for a tick that may never come. */
        o = call("{\"cmd\":\"policy-clear\",\"domain\":\"web\"}", true, SEC(111));
        cr_assert(ok(o), "%s", error_of(o));
        json_object_put(o);
        cr_assert_null(fake.metadata[0]);
        cr_assert_eq(hv_fake_last(&fake, "set_balloon")->value, MIB(1024), "released before the next tick");
}

/* A policy removed behind tided's back (virsh metadata --remove) is a release too, asked again
 * every tick until libvirt takes it. */
Test(manager, a_policy_removed_outside_tided_is_released_and_retried_until_it_works) {
        add_vm("u1", "web", MIB(1024), MIB(400), MIB(100));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", MIB(256), MIB(1024), MIB(1024));
        cr_assert_eq(manager_tick(m, SEC(101)), 0);

        free(fake.metadata[0]);
        fake.metadata[0] = NULL;
        manager_on_event(m, HV_EVENT_METADATA, "u1", SEC(102));
        cr_assert_eq(manager_refresh(m, SEC(102)), 0);
        fake.n_calls = 0;
        fake.fail_errno = EIO; /* the first call of the tick: the release */
        cr_assert_eq(manager_tick(m, SEC(103)), 0);
        cr_assert_eq(hv_fake_count(&fake, "set_balloon", "u1"), 1);
        cr_assert_eq(manager_tick(m, SEC(104)), 0);
        cr_assert_eq(hv_fake_count(&fake, "set_balloon", "u1"), 2, "asked again");
        cr_assert_eq(hv_fake_last(&fake, "set_balloon")->value, MIB(1024));
        cr_assert_eq(manager_tick(m, SEC(105)), 0);
        cr_assert_eq(hv_fake_count(&fake, "set_balloon", "u1"), 2, "released once, then never touched");
}

/* `virsh create` of a domain with a policy: the start event arrives before any listing knows
 * the domain. It is a boot (startup memory, then the quiet period), not a domain found running. */
Test(manager, a_domain_created_and_started_within_one_tick_is_booting) {
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        add_vm("u1", "web", MIB(1024), MIB(1024), MIB(100));
        struct vm_policy p;
        char xml[METADATA_XML_MAX];
        policy_init(&p);
        p.startup_kib = p.maximum_kib = MIB(1024);
        p.minimum_kib = MIB(256);
        cr_assert_geq(metadata_format(&p, xml, sizeof(xml)), 0);
        fake.metadata[0] = strdup(xml);

        manager_on_event(m, HV_EVENT_STARTED, "u1", SEC(2));
        cr_assert_eq(manager_tick(m, SEC(2)), 0);
        cr_assert_str_eq(manager_snapshot(m)->domains[0].reason, "booting: startup 1GiB");
}

/* VMs fenced into a cgroup partition with a memory limit (a libvirt <resource><partition>)
 * get at most what the partition allows, however much the host has free. */
Test(manager, a_cgroup_partition_limit_bounds_the_vms_below_the_hosts_memory) {
        add_vm("u1", "web", MIB(1024), MIB(1024), MIB(100));
        snprintf(fake.partition[0], sizeof(fake.partition[0]), "/machine/tenant");
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", MIB(256), MIB(1024), MIB(1024));
        cr_assert_eq(manager_tick(m, SEC(101)), 0);
        uint64_t host_only = manager_snapshot(m)->host.usable_kib;

        /* 2 GiB limit, 1.5 GiB used: 512 MiB left + the 512 MiB the VM has resident. */
        manager_set_cgroup_root(m, "tests/fixtures/cgroup/v1-limited");
        cr_assert_eq(manager_tick(m, SEC(102)), 0);
        const struct snapshot *s = manager_snapshot(m);
        cr_assert_eq(s->host.usable_kib, MIB(512) + MIB(512) + s->host.reserve_kib);
        cr_assert_lt(s->host.usable_kib, host_only);
        cr_assert_eq(s->host.capacity_kib, MIB(1024));
}

/* A start is a start from the moment its event arrives: a clear right after it releases and
 * removes the live policy too, not only the stored one. */
Test(manager, a_clear_right_after_a_start_event_removes_the_live_policy) {
        add_vm("u1", "web", MIB(1024), MIB(1024), MIB(100));
        fake.domains[0].active = false;
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        set_policy("web", MIB(256), MIB(1024), MIB(1024));
        cr_assert_eq(manager_tick(m, SEC(100)), 0);
        fake.domains[0].active = true;
        manager_on_event(m, HV_EVENT_STARTED, "u1", SEC(100) + 500000);
        json_object *o = call("{\"cmd\":\"policy-clear\",\"domain\":\"web\"}", true, SEC(101));
        cr_assert(ok(o), "%s", error_of(o));
        json_object_put(o);
        const struct hv_fake_call *c = hv_fake_last(&fake, "clear_metadata");
        cr_assert_not_null(c);
        cr_assert(c->value & HV_LIVE, "flags %llu: the live policy stayed on a running domain",
                  (unsigned long long) c->value);
}

/* A migrated-in VM keeps what it brought, even when the listing after its event fails. */
Test(manager, a_resume_survives_a_failed_listing) {
        add_vm("u1", "mig", MIB(2048), MIB(2048), MIB(100));
        fake.domains[0].active = false;
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        set_policy("mig", MIB(256), MIB(2048), MIB(2048));
        cr_assert_eq(manager_tick(m, SEC(100)), 0);
        fake.domains[0].active = true;
        fake.domains[0].current_kib = MIB(512);
        fake.stats[0].actual_kib = MIB(512);
        guest_shows(0);
        manager_on_event(m, HV_EVENT_RESUMED, "u1", SEC(100) + 500000);
        fake.fail_errno = EIO; /* the tick's listing */
        (void) manager_tick(m, SEC(101));
        for (int t = 2; t < 5; t++) {
                report(0, MIB(100));
                cr_assert_eq(manager_tick(m, SEC(100 + t)), 0);
        }
        const struct hv_fake_call *c = hv_fake_last(&fake, "set_balloon");
        cr_assert(!c || c->value != MIB(2048), "a migrated-in VM was taken for a boot and given its startup memory");
}

static bool host_fails;
static int host_mem_failing(struct manager_host *h, void *userdata) {
        if (host_fails) {
                host_fails = false;
                return -EIO;
        }
        return host_mem(h, userdata);
}

/* Events are the core's only once a tick gets through: a reboot is not forgotten because the
 * tick after it failed. */
Test(manager, a_reboot_is_kept_across_a_failed_tick) {
        guest_at_target(false, MIB(256), MIB(1024));
        m = manager_free(m);
        cr_assert_eq(manager_new(&hv, &cfg, host_mem_failing, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(103)), 0);
        cr_assert_eq(manager_tick(m, SEC(104)), 0);
        manager_on_event(m, HV_EVENT_REBOOTED, "u1", SEC(105));
        host_fails = true;
        cr_assert_lt(manager_tick(m, SEC(105)), 0);
        cr_assert_eq(manager_tick(m, SEC(106)), 0);
        cr_assert_str_eq(manager_snapshot(m)->domains[0].reason, "booting: startup 1GiB");
}

/* A domain without a balloon device was never ballooned: clearing its policy needs no release
 * (libvirt would refuse one, and the policy could never be cleared). */
Test(manager, a_domain_without_a_balloon_can_be_cleared) {
        add_vm("u1", "web", MIB(1024), MIB(1024), MIB(100));
        fake.domains[0].has_balloon = false;
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", MIB(256), MIB(1024), MIB(1024));
        fake.fail_errno = EIO; /* would hit a set_balloon */
        json_object *o = call("{\"cmd\":\"policy-clear\",\"domain\":\"web\"}", true, SEC(110));
        json_object_put(o);
        cr_assert_eq(hv_fake_count(&fake, "set_balloon", NULL), 0);
}

/* Domains are found by UUID through an index: after half of 300 domains are gone (the others
 * move in the table), an event and a policy still reach the right one. */
Test(manager, domains_are_found_after_others_are_swept) {
        char uuid[HV_UUID_MAX], name[32];
        for (int i = 0; i < 300; i++) {
                snprintf(uuid, sizeof(uuid), "00000000-0000-0000-0000-%012d", i);
                snprintf(name, sizeof(name), "vm%d", i);
                add_vm(uuid, name, MIB(1024), MIB(1024), MIB(100));
        }
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        /* The first 150 are undefined: the fake's arrays shift down. */
        for (int i = 0; i < 150; i++)
                free(fake.metadata[i]);
        memmove(fake.domains, fake.domains + 150, 150 * sizeof(fake.domains[0]));
        memmove(fake.stats, fake.stats + 150, 150 * sizeof(fake.stats[0]));
        memmove(fake.metadata, fake.metadata + 150, 150 * sizeof(fake.metadata[0]));
        memset(fake.metadata + 150, 0, 150 * sizeof(fake.metadata[0]));
        fake.n_domains = 150;
        cr_assert_eq(manager_refresh(m, SEC(2)), 0);
        cr_assert_eq(manager_snapshot(m)->n_domains, 0, "no tick yet");
        set_policy("vm250", MIB(256), MIB(1024), MIB(1024));
        cr_assert_not_null(fake.metadata[100], "vm250 is now the fake's 100th");
        manager_on_event(m, HV_EVENT_REBOOTED, "00000000-0000-0000-0000-000000000250", SEC(3));
        cr_assert_eq(manager_tick(m, SEC(3)), 0);
        const struct snapshot *s = manager_snapshot(m);
        cr_assert_eq(s->n_domains, 150);
        for (size_t i = 0; i < s->n_domains; i++)
                if (streq(s->domains[i].name, "vm250"))
                        cr_assert_str_eq(s->domains[i].reason, "booting: startup 1GiB");
}

Test(control, non_root_may_read_but_not_change) {
        add_vm("u1", "web", MIB(1024), MIB(1024), MIB(100));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_tick(m, SEC(1)), 0);
        json_object *o = call("{\"cmd\":\"policy-set\",\"domain\":\"web\",\"weight\":10}", false, SEC(2));
        cr_assert(!ok(o));
        cr_assert_str_eq(error_of(o), "permission denied: only root may change policies");
        json_object_put(o);
        cr_assert_eq(hv_fake_count(&fake, "set_metadata", NULL), 0);
        o = call("{\"cmd\":\"stats\"}", false, SEC(2));
        cr_assert(ok(o));
        json_object_put(o);
}

Test(control, stats_have_the_documented_fields) {
        add_vm("u1", "web", MIB(1024), MIB(1024), MIB(100));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        set_policy("web", MIB(256), MIB(1024), MIB(1024));
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(101)), 0); /* the first sample is only a baseline */
        report(0, MIB(100));
        cr_assert_eq(manager_tick(m, SEC(102)), 0);
        json_object *o = call("{\"cmd\":\"stats\",\"domain\":\"web\"}", false, SEC(103)), *doms, *d, *v;
        cr_assert(ok(o));
        cr_assert(json_object_object_get_ex(o, "domains", &doms));
        d = json_object_array_get_idx(doms, 0);
        static const char *keys[] = { "name", "managed", "assigned_kib", "demand_kib", "target_kib", "pressure_pct",
                                      "available_buffer_pct", "status", "minimum_kib", "startup_kib", "maximum_kib",
                                      "agent", "reason" };
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                cr_assert(json_object_object_get_ex(d, keys[i], &v), "missing %s", keys[i]);
        cr_assert_eq(json_object_get_int64(json_object_object_get(d, "demand_kib")), (int64_t) MIB(100 + 20),
                     "100 used + the 20 the guest kernel keeps outside MemTotal");
        json_object_put(o);
}

Test(control, bad_requests_get_error_replies) {
        add_vm("u1", "web", MIB(1024), MIB(1024), MIB(100));
        cr_assert_eq(manager_new(&hv, &cfg, host_mem, NULL, &m), 0);
        cr_assert_eq(manager_refresh(m, SEC(1)), 0);
        static const struct {
                const char *line, *error;
        } cases[] = {
                { "not json", "malformed request: expected one JSON object" },
                { "[1,2]", "malformed request: expected one JSON object" },
                { "{\"cmd\":\"stats\"", "malformed request: expected one JSON object" },
                { "{}", "cmd: missing" },
                { "{\"cmd\":\"reboot-host\"}",
                  "cmd: unknown command 'reboot-host' (known: ping, stats, policy-show, policy-set, policy-clear)" },
                { "{\"cmd\":\"stats\",\"domain\":\"nope\"}", "no domain named 'nope'" },
                { "{\"cmd\":\"stats\",\"domain\":42}", "domain: expected a domain name or UUID" },
                { "{\"cmd\":\"policy-set\",\"domain\":\"web\",\"minimum_kib\":-5}",
                  "minimum_kib: expected a positive whole number of KiB" },
                { "{\"cmd\":\"policy-set\",\"domain\":\"web\",\"weight\":101}", "weight: expected a whole number 0-100" },
                { "{\"cmd\":\"policy-set\",\"domain\":\"web\",\"minimum_kib\":16384}",
                  "minimum: 16MiB is below the lowest allowed minimum 32MiB" },
                { "{\"cmd\":\"policy-set\",\"domain\":\"web\",\"colour\":\"blue\"}", "colour: unknown field" },
                { "{\"cmd\":\"policy-set\",\"domain\":\"ghost\"}", "no domain named 'ghost'" },
                { "{\"cmd\":\"policy-clear\",\"domain\":\"web\"}", "'web' has no tide policy" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_object *o = call(cases[i].line, true, SEC(2));
                cr_assert(!ok(o), "%s: accepted", cases[i].line);
                cr_expect_str_eq(error_of(o), cases[i].error, "%s", cases[i].line);
                json_object_put(o);
        }
        cr_assert_eq(hv_fake_count(&fake, "set_metadata", NULL), 0);

        /* Oversized: refused before parsing. */
        size_t big = CONTROL_MSG_MAX + 10;
        char *line = malloc(big);
        memset(line, ' ', big);
        char *reply = NULL;
        cr_assert_eq(control_handle(m, line, big, true, SEC(3), &reply), 0);
        cr_assert_not_null(strstr(reply, "\"ok\":false"));
        free(reply);
        free(line);
}
