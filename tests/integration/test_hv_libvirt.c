/* The libvirt layer against libvirt's built-in test driver: no daemon, no VMs.
 *
 * test:///default is one running domain "test" whose state lives in the connection, so every
 * test opens its own. Domains the default node lacks (virtio-mem, a NUMA binding, the agent
 * channel, a shut-off domain) come from a node file written to a temporary path and opened as
 * test:///PATH. Where libvirt's own answer is the reference, the test asks virsh for it rather
 * than repeating numbers here. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "balloon/hv.h"
#include "balloon/metadata.h"
#include "common/macro.h"

#define NODE_VM1_UUID "11111111-2222-3333-4444-555555555555"
#define NODE_OFF_UUID "22222222-2222-3333-4444-555555555555"
#define NODE_CPUS_UUID "33333333-2222-3333-4444-555555555555"
#define MISSING_UUID "00000000-0000-0000-0000-00000000dead"

/* What the event callback saw. */
struct seen {
        int n;
        enum hv_event_kind kind;
        char uuid[HV_UUID_MAX];
};

static void on_event(enum hv_event_kind kind, const char *uuid, void *userdata) {
        struct seen *s = userdata;
        s->n++;
        s->kind = kind;
        snprintf(s->uuid, sizeof(s->uuid), "%s", uuid);
}

static struct hv open_uri(const char *uri, struct seen *seen) {
        struct hv hv = {0};
        char err[HV_ERR_MAX] = "";
        cr_assert_eq(hv_event_init(), 0);
        int r = hv_libvirt_open(uri, seen ? on_event : NULL, seen, &hv, err, sizeof(err));
        cr_assert_eq(r, 0, "hv_libvirt_open(%s) = %d: %s", uri, r, err);
        cr_assert_not_null(hv.ops);
        return hv;
}

static struct hv open_default(struct seen *seen) {
        return open_uri("test:///default", seen);
}

/* The UUID of the domain called name, found through list_domains. */
static void uuid_of(struct hv *hv, const char *name, char uuid[static HV_UUID_MAX]) {
        struct hv_domain *d = NULL;
        size_t n = 0;
        char err[HV_ERR_MAX] = "";
        cr_assert_eq(hv->ops->list_domains(hv->h, &d, &n, err, sizeof(err)), 0, "%s", err);
        for (size_t i = 0; i < n; i++)
                if (streq(d[i].name, name)) {
                        memcpy(uuid, d[i].uuid, HV_UUID_MAX);
                        free(d);
                        return;
                }
        free(d);
        cr_assert_fail("no domain %s", name);
}

/* ---- the node file ---- */

static const char node_xml[] =
        "<node>\n"
        "  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
        "    <name>vm1</name>\n"
        "    <uuid>" NODE_VM1_UUID "</uuid>\n"
        "    <maxMemory slots='4' unit='KiB'>4194304</maxMemory>\n"
        "    <memory unit='KiB'>1572864</memory>\n"
        "    <currentMemory unit='KiB'>524288</currentMemory>\n"
        "    <vcpu>1</vcpu>\n"
        "    <numatune><memory mode='strict' nodeset='1'/></numatune>\n"
        "    <os><type arch='i686'>hvm</type></os>\n"
        "    <cpu><numa><cell id='0' cpus='0' memory='524288' unit='KiB'/></numa></cpu>\n"
        "    <devices>\n"
        "      <channel type='unix'><source mode='bind' path='/run/tide/vm1.sock'/>"
        "<target type='virtio' name='org.tide.agent.0'/></channel>\n"
        "      <channel type='unix'><source mode='bind' path='/run/other.sock'/>"
        "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>\n"
        "      <memballoon model='virtio'/>\n"
        "      <memory model='virtio-mem'>\n"
        "        <target><size unit='KiB'>1048576</size><node>0</node><block unit='KiB'>2048</block>"
        "<requested unit='KiB'>262144</requested></target>\n"
        "        <alias name='ua-vmem0'/>\n"
        "      </memory>\n"
        "    </devices>\n"
        "  </domain>\n"
        "  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
        "    <name>off</name>\n"
        "    <uuid>" NODE_OFF_UUID "</uuid>\n"
        "    <memory unit='MiB'>1024</memory>\n"
        "    <currentMemory unit='MiB'>512</currentMemory>\n"
        "    <os><type arch='i686'>hvm</type></os>\n"
        "    <numatune><memory mode='strict' nodeset='0-1'/></numatune>\n"
        "    <test:runstate>5</test:runstate>\n" /* VIR_DOMAIN_SHUTOFF */
        "  </domain>\n"
        /* Tuning as an operator would write it: 2 of 4 vCPUs online, vCPU 0 and the offline
         * vCPU 3 pinned, the emulator pinned, both memory limits, its own cgroup partition. */
        "  <domain type='test'>\n"
        "    <name>cpus</name>\n"
        "    <uuid>" NODE_CPUS_UUID "</uuid>\n"
        "    <memory unit='MiB'>1024</memory>\n"
        "    <vcpu placement='static' current='2'>4</vcpu>\n"
        "    <cputune>\n"
        "      <vcpupin vcpu='0' cpuset='2-3'/>\n"
        "      <vcpupin vcpu='3' cpuset='7'/>\n"
        "      <emulatorpin cpuset='5'/>\n"
        "    </cputune>\n"
        "    <memtune>\n"
        "      <hard_limit unit='KiB'>1048576</hard_limit>\n"
        "      <swap_hard_limit unit='KiB'>2097152</swap_hard_limit>\n"
        "    </memtune>\n"
        "    <resource><partition>/tide/cpus</partition></resource>\n"
        "    <os><type arch='i686'>hvm</type></os>\n"
        "  </domain>\n"
        "</node>\n";

static char node_path[64];

static void node_setup(void) {
        snprintf(node_path, sizeof(node_path), "/tmp/tide-test-node-XXXXXX");
        int fd = mkstemp(node_path);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, node_xml, sizeof(node_xml) - 1), (ssize_t) (sizeof(node_xml) - 1));
        close(fd);
}

static void node_teardown(void) {
        unlink(node_path);
}

static struct hv open_node(struct seen *seen) {
        char uri[96];
        snprintf(uri, sizeof(uri), "test://%s", node_path);
        return open_uri(uri, seen);
}

/* ---- libvirt's own answers, through virsh ---- */

/* The number in the first line of `cmd`'s output that starts with prefix, or UINT64_MAX. */
static uint64_t virsh_value(const char *cmd, const char *prefix) {
        _cleanup_free_ char *line = NULL;
        size_t n = 0;
        uint64_t v = UINT64_MAX;
        FILE *f = popen(cmd, "r");
        cr_assert_not_null(f, "cannot run %s", cmd);
        while (getline(&line, &n, f) > 0) {
                const char *s = line + strspn(line, " ");
                if (strncmp(s, prefix, strlen(prefix)) == 0) {
                        v = strtoull(s + strlen(prefix), NULL, 10);
                        break;
                }
        }
        pclose(f);
        return v;
}

/* ---- tests ---- */

Test(hv_libvirt, lists_the_test_domain) {
        struct seen seen = {0};
        struct hv hv = open_default(&seen);
        struct hv_domain *d = NULL;
        size_t n = 0;
        char err[HV_ERR_MAX] = "";

        cr_assert_eq(hv.ops->list_domains(hv.h, &d, &n, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(n, 1);
        cr_assert_str_eq(d[0].name, "test");
        cr_assert_eq(strlen(d[0].uuid), 36);
        cr_assert(d[0].active);
        cr_assert(d[0].persistent);
        cr_assert_geq(d[0].id, 0);
        cr_assert(d[0].has_balloon);
        free(d);
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, get_domain_matches_virsh_dumpxml) {
        struct seen seen = {0};
        struct hv hv = open_default(&seen);
        struct hv_domain d;
        char uuid[HV_UUID_MAX], err[HV_ERR_MAX] = "";

        uuid_of(&hv, "test", uuid);
        cr_assert_eq(hv.ops->get_domain(hv.h, uuid, &d, err, sizeof(err)), 0, "%s", err);
        uint64_t max = virsh_value("virsh -c test:///default dumpxml test", "<memory unit='KiB'>");
        uint64_t cur = virsh_value("virsh -c test:///default dumpxml test", "<currentMemory unit='KiB'>");
        cr_assert_neq(max, UINT64_MAX, "virsh gave no <memory>");
        cr_assert_eq(d.max_kib, max);
        cr_assert_eq(d.current_kib, cur);
        cr_assert_str_eq(d.uuid, uuid);
        cr_assert_str_eq(d.name, "test");
        cr_assert(d.has_balloon);
        cr_assert_not(d.has_virtio_mem);
        cr_assert_eq(d.numa_node, -1);
        cr_assert_str_eq(d.agent_socket, "");
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, reads_virtio_mem_numa_binding_and_agent_channel, .init = node_setup, .fini = node_teardown) {
        struct seen seen = {0};
        struct hv hv = open_node(&seen);
        struct hv_domain d;
        char err[HV_ERR_MAX] = "";

        cr_assert_eq(hv.ops->get_domain(hv.h, NODE_VM1_UUID, &d, err, sizeof(err)), 0, "%s", err);
        cr_assert_str_eq(d.name, "vm1");
        cr_assert(d.active);
        cr_assert(d.has_balloon);
        cr_assert(d.has_virtio_mem);
        cr_assert_str_eq(d.virtio_mem_alias, "ua-vmem0");
        cr_assert_eq(d.virtio_mem_max_kib, 1048576);
        cr_assert_eq(d.virtio_mem_block_kib, 2048);
        cr_assert_eq(d.virtio_mem_requested_kib, 262144);
        cr_assert_eq(d.virtio_mem_current_kib, 0);
        /* <memory> 1536 MiB counts the 1 GiB device; the boot size is the rest. */
        cr_assert_eq(d.max_kib, 1572864 - 1048576);
        cr_assert_eq(d.current_kib, 524288);
        cr_assert_eq(d.numa_node, 1);
        cr_assert_str_eq(d.agent_socket, "/run/tide/vm1.sock");

        cr_assert_eq(hv.ops->get_domain(hv.h, NODE_OFF_UUID, &d, err, sizeof(err)), 0, "%s", err);
        cr_assert_not(d.active);
        cr_assert(d.persistent);
        cr_assert_eq(d.id, -1);
        cr_assert_eq(d.max_kib, 1024 * KIB_PER_MIB, "unit='MiB' read as MiB");
        cr_assert_eq(d.current_kib, 512 * KIB_PER_MIB);
        cr_assert_eq(d.numa_node, -1, "a two-node nodeset binds to no single node");
        cr_assert_not(d.has_balloon);
        hv_libvirt_close(&hv);
}

static void expect_policy(struct hv *hv, const char *uuid, unsigned flags, const struct vm_policy *want) {
        _cleanup_free_ char *xml = NULL;
        struct vm_policy got;
        char err[HV_ERR_MAX] = "";
        int r = hv->ops->get_metadata(hv->h, uuid, flags, &xml, err, sizeof(err));
        cr_assert_eq(r, 0, "get_metadata(flags %u) = %d: %s", flags, r, err);
        cr_assert_eq(metadata_parse(xml, &got, err, sizeof(err)), 0, "%s\n%s", err, xml);
        cr_assert_eq(got.startup_kib, want->startup_kib);
        cr_assert_eq(got.minimum_kib, want->minimum_kib);
        cr_assert_eq(got.maximum_kib, want->maximum_kib);
        cr_assert_eq(got.buffer_pct, want->buffer_pct);
        cr_assert_eq(got.weight, want->weight);
        cr_assert_eq(got.dynamic, want->dynamic);
}

static void expect_no_policy(struct hv *hv, const char *uuid, unsigned flags) {
        char *xml = NULL;
        char err[HV_ERR_MAX] = "";
        cr_assert_eq(hv->ops->get_metadata(hv->h, uuid, flags, &xml, err, sizeof(err)), -ENODATA);
        cr_assert_null(xml, "*ret set on failure");
}

Test(hv_libvirt, metadata_round_trips_live_and_config_separately) {
        struct seen seen = {0};
        struct hv hv = open_default(&seen);
        char uuid[HV_UUID_MAX], err[HV_ERR_MAX] = "", xml[METADATA_XML_MAX];
        struct vm_policy live, config;

        uuid_of(&hv, "test", uuid);
        policy_init(&live);
        live.startup_kib = KIB_PER_GIB;
        live.minimum_kib = 512 * KIB_PER_MIB;
        live.maximum_kib = 4 * KIB_PER_GIB;
        live.weight = 70;
        config = live;
        config.buffer_pct = 50;
        config.dynamic = false;

        expect_no_policy(&hv, uuid, HV_LIVE);
        expect_no_policy(&hv, uuid, HV_CONFIG);

        cr_assert_eq(metadata_format(&live, xml, sizeof(xml)), 0);
        cr_assert_eq(hv.ops->set_metadata(hv.h, uuid, xml, HV_LIVE, err, sizeof(err)), 0, "%s", err);
        expect_policy(&hv, uuid, HV_LIVE, &live);
        expect_policy(&hv, uuid, 0, &live); /* libvirt's "current" of a running domain is live */
        expect_no_policy(&hv, uuid, HV_CONFIG);

        cr_assert_eq(metadata_format(&config, xml, sizeof(xml)), 0);
        cr_assert_eq(hv.ops->set_metadata(hv.h, uuid, xml, HV_CONFIG, err, sizeof(err)), 0, "%s", err);
        expect_policy(&hv, uuid, HV_CONFIG, &config);
        expect_policy(&hv, uuid, HV_LIVE, &live);

        cr_assert_eq(hv.ops->set_metadata(hv.h, uuid, NULL, HV_LIVE, err, sizeof(err)), 0, "%s", err);
        expect_no_policy(&hv, uuid, HV_LIVE);
        expect_policy(&hv, uuid, HV_CONFIG, &config);
        cr_assert_eq(hv.ops->set_metadata(hv.h, uuid, NULL, HV_CONFIG, err, sizeof(err)), 0, "%s", err);
        expect_no_policy(&hv, uuid, HV_CONFIG);
        /* Removing what is not there is not an error. */
        cr_assert_eq(hv.ops->set_metadata(hv.h, uuid, NULL, HV_LIVE | HV_CONFIG, err, sizeof(err)), 0, "%s", err);
        hv_libvirt_close(&hv);
}

/* Core parking's record lives in a namespace of its own: written live next to a live policy, it
 * leaves the policy as it was, and each reads back alone. */
Test(hv_libvirt, parking_metadata_is_its_own_element_beside_the_policy) {
        struct seen seen = {0};
        struct hv hv = open_default(&seen);
        char uuid[HV_UUID_MAX], err[HV_ERR_MAX] = "", xml[METADATA_XML_MAX];
        struct vm_policy live;

        uuid_of(&hv, "test", uuid);
        policy_init(&live);
        live.startup_kib = KIB_PER_GIB;
        live.minimum_kib = 512 * KIB_PER_MIB;
        live.maximum_kib = 4 * KIB_PER_GIB;
        cr_assert_eq(metadata_format(&live, xml, sizeof(xml)), 0);
        cr_assert_eq(hv.ops->set_metadata(hv.h, uuid, xml, HV_LIVE, err, sizeof(err)), 0, "%s", err);
        expect_no_policy(&hv, uuid, HV_LIVE | HV_META_PARKING);

        const char *rec = "<parking version=\"1\"><own>0-7</own></parking>";
        cr_assert_eq(hv.ops->set_metadata(hv.h, uuid, rec, HV_LIVE | HV_META_PARKING, err, sizeof(err)), 0, "%s", err);
        expect_policy(&hv, uuid, HV_LIVE, &live);
        _cleanup_free_ char *got = NULL;
        cr_assert_eq(hv.ops->get_metadata(hv.h, uuid, HV_LIVE | HV_META_PARKING, &got, err, sizeof(err)), 0, "%s", err);
        cr_expect(strstr(got, "<own>0-7</own>"), "%s", got);
        cr_assert_eq(hv.ops->set_metadata(hv.h, uuid, NULL, HV_LIVE | HV_META_PARKING, err, sizeof(err)), 0, "%s", err);
        expect_no_policy(&hv, uuid, HV_LIVE | HV_META_PARKING);
        expect_policy(&hv, uuid, HV_LIVE, &live);
        cr_assert_eq(hv.ops->set_metadata(hv.h, uuid, NULL, HV_LIVE, err, sizeof(err)), 0, "%s", err);
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, metadata_refuses_bad_flags_and_xml) {
        struct seen seen = {0};
        struct hv hv = open_default(&seen);
        char uuid[HV_UUID_MAX], err[HV_ERR_MAX] = "";
        char *xml = NULL;

        uuid_of(&hv, "test", uuid);
        cr_assert_eq(hv.ops->get_metadata(hv.h, uuid, 1u << 5, &xml, err, sizeof(err)), -EINVAL);
        /* libvirt reads one of the two, never both at once. */
        cr_assert_eq(hv.ops->get_metadata(hv.h, uuid, HV_LIVE | HV_CONFIG, &xml, err, sizeof(err)), -EINVAL);
        cr_assert_null(xml);
        err[0] = '\0';
        cr_assert_eq(hv.ops->set_metadata(hv.h, uuid, "<policy>", HV_LIVE, err, sizeof(err)), -EINVAL);
        cr_assert_neq(err[0], '\0', "libvirt's message is passed on");
        hv_libvirt_close(&hv);
}

/* virDomainEventStartedDetailType, libvirt's include/libvirt/libvirt-domain.h (9.0 here): BOOTED
 * 0, MIGRATED 1, RESTORED 2, FROM_SNAPSHOT 3, WAKEUP 4. The numbers are libvirt's ABI; this file
 * does not include libvirt. */
Test(hv_libvirt, only_migration_restore_and_wakeup_keep_the_memory_of_a_start) {
        cr_assert_eq(hv_libvirt_started_kind(0), HV_EVENT_STARTED, "booted");
        cr_assert_eq(hv_libvirt_started_kind(1), HV_EVENT_RESUMED, "migrated in");
        cr_assert_eq(hv_libvirt_started_kind(2), HV_EVENT_RESUMED, "restored");
        cr_assert_eq(hv_libvirt_started_kind(3), HV_EVENT_STARTED, "from a snapshot: may start cold");
        cr_assert_eq(hv_libvirt_started_kind(4), HV_EVENT_RESUMED, "woken up");
        cr_assert_eq(hv_libvirt_started_kind(5), HV_EVENT_STARTED, "a detail newer than this libvirt: a boot, the safe side");
}

Test(hv_libvirt, metadata_change_is_an_event) {
        struct seen seen = {0};
        struct hv hv = open_default(&seen);
        char uuid[HV_UUID_MAX], err[HV_ERR_MAX] = "", xml[METADATA_XML_MAX];
        struct vm_policy p;

        uuid_of(&hv, "test", uuid);
        policy_init(&p);
        p.startup_kib = p.minimum_kib = p.maximum_kib = KIB_PER_GIB;
        cr_assert_eq(metadata_format(&p, xml, sizeof(xml)), 0);
        cr_assert_eq(hv.ops->set_metadata(hv.h, uuid, xml, HV_LIVE, err, sizeof(err)), 0, "%s", err);
        /* libvirt queues domain events and delivers them from the loop; bounded so a missing
         * event fails instead of hanging. */
        for (int i = 0; i < 100 && seen.n == 0; i++)
                cr_assert_eq(hv_event_run_once(), 0);
        cr_assert_eq(seen.n, 1);
        cr_assert_eq(seen.kind, HV_EVENT_METADATA);
        cr_assert_str_eq(seen.uuid, uuid);
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, set_balloon_moves_current_and_actual) {
        struct seen seen = {0};
        struct hv hv = open_default(&seen);
        char uuid[HV_UUID_MAX], err[HV_ERR_MAX] = "";
        struct hv_domain d;
        struct hv_mem_stats s;

        uuid_of(&hv, "test", uuid);
        cr_assert_eq(hv.ops->set_balloon(hv.h, uuid, KIB_PER_GIB, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(hv.ops->get_domain(hv.h, uuid, &d, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(d.current_kib, KIB_PER_GIB);
        /* The test driver's balloon arrives at once; a real guest's takes its time. */
        cr_assert_eq(hv.ops->memory_stats(hv.h, uuid, &s, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(s.actual_kib, KIB_PER_GIB);

        err[0] = '\0';
        cr_assert_eq(hv.ops->set_balloon(hv.h, uuid, d.max_kib + 1024, err, sizeof(err)), -EINVAL);
        cr_assert_neq(err[0], '\0');
        cr_assert_eq(hv.ops->set_balloon(hv.h, uuid, 0, err, sizeof(err)), -EINVAL);
        hv_libvirt_close(&hv);
}

/* Every field virsh prints lands in its own field; fields virsh does not print are "absent". */
Test(hv_libvirt, memory_stats_map_each_libvirt_tag) {
        struct seen seen = {0};
        struct hv hv = open_default(&seen);
        char uuid[HV_UUID_MAX], err[HV_ERR_MAX] = "";
        struct hv_mem_stats s;
        static const char cmd[] = "virsh -c test:///default dommemstat test";

        uuid_of(&hv, "test", uuid);
        cr_assert_eq(hv.ops->memory_stats(hv.h, uuid, &s, err, sizeof(err)), 0, "%s", err);
        const struct {
                const char *tag;
                uint64_t ours;
        } map[] = {
                {"actual ", s.actual_kib},
                {"unused ", s.unused_kib},
                {"available ", s.available_kib},
                {"usable ", s.usable_kib},
                {"disk_caches ", s.disk_caches_kib},
                {"swap_in ", s.swap_in_kib},
                {"swap_out ", s.swap_out_kib},
                {"major_fault ", s.major_faults},
                {"minor_fault ", s.minor_faults},
                {"rss ", s.rss_kib},
                {"last_update ", s.last_update_sec},
        };
        size_t present = 0;
        for (size_t i = 0; i < ELEMENTSOF(map); i++) {
                uint64_t v = virsh_value(cmd, map[i].tag);
                cr_assert_eq(map[i].ours, v, "%s: ours %" PRIu64 ", virsh %" PRIu64, map[i].tag, map[i].ours, v);
                present += v != UINT64_MAX;
        }
        cr_assert_gt(present, 0, "virsh printed no statistics: is virsh installed?");
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, memory_stats_of_a_stopped_domain_fail, .init = node_setup, .fini = node_teardown) {
        struct seen seen = {0};
        struct hv hv = open_node(&seen);
        char err[HV_ERR_MAX] = "";
        struct hv_mem_stats s;
        cr_assert_eq(hv.ops->memory_stats(hv.h, NODE_OFF_UUID, &s, err, sizeof(err)), -EINVAL);
        cr_assert_neq(err[0], '\0');
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, set_stats_period_is_live) {
        struct seen seen = {0};
        struct hv hv = open_default(&seen);
        char uuid[HV_UUID_MAX], err[HV_ERR_MAX] = "";
        uuid_of(&hv, "test", uuid);
        cr_assert_eq(hv.ops->set_stats_period(hv.h, uuid, 2, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(hv.ops->set_stats_period(hv.h, uuid, -1, err, sizeof(err)), -EINVAL);
        hv_libvirt_close(&hv);
}

/* On a shut-off domain get_domain reads the config, so the boot size is visible. */
Test(hv_libvirt, set_boot_memory_changes_the_config_and_raises_the_ceiling, .init = node_setup,
     .fini = node_teardown) {
        struct seen seen = {0};
        struct hv hv = open_node(&seen);
        char err[HV_ERR_MAX] = "";
        struct hv_domain d;

        cr_assert_eq(hv.ops->set_boot_memory(hv.h, NODE_OFF_UUID, 768 * KIB_PER_MIB, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(hv.ops->get_domain(hv.h, NODE_OFF_UUID, &d, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(d.current_kib, 768 * KIB_PER_MIB);
        cr_assert_eq(d.max_kib, 1024 * KIB_PER_MIB, "below the ceiling it stays");

        cr_assert_eq(hv.ops->set_boot_memory(hv.h, NODE_OFF_UUID, 2 * KIB_PER_GIB, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(hv.ops->get_domain(hv.h, NODE_OFF_UUID, &d, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(d.current_kib, 2 * KIB_PER_GIB);
        cr_assert_eq(d.max_kib, 2 * KIB_PER_GIB, "raised to fit");
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, set_boot_memory_leaves_a_running_domain_alone) {
        struct seen seen = {0};
        struct hv hv = open_default(&seen);
        char uuid[HV_UUID_MAX], err[HV_ERR_MAX] = "";
        struct hv_domain before, after;

        uuid_of(&hv, "test", uuid);
        cr_assert_eq(hv.ops->get_domain(hv.h, uuid, &before, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(hv.ops->set_boot_memory(hv.h, uuid, 16 * KIB_PER_GIB, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(hv.ops->get_domain(hv.h, uuid, &after, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(after.current_kib, before.current_kib);
        cr_assert_eq(after.max_kib, before.max_kib);
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, set_virtio_mem_checks_before_asking_libvirt, .init = node_setup, .fini = node_teardown) {
        struct seen seen = {0};
        struct hv hv = open_node(&seen);
        char err[HV_ERR_MAX] = "";
        struct hv_domain d;

        cr_assert_eq(hv.ops->set_virtio_mem(hv.h, NODE_VM1_UUID, 3 * 1024, err, sizeof(err)), -EINVAL);
        cr_assert_str_eq(err, "virtio-mem requested size 3072 KiB must be a multiple of the 2048 KiB block and at "
                              "most the 1048576 KiB device size");
        cr_assert_eq(hv.ops->set_virtio_mem(hv.h, NODE_VM1_UUID, 2 * KIB_PER_GIB, err, sizeof(err)), -EINVAL);
        cr_assert_eq(hv.ops->set_virtio_mem(hv.h, NODE_OFF_UUID, 0, err, sizeof(err)), -ENODEV);

        /* libvirt 9.0's test driver has no virDomainUpdateDeviceFlags; the request gets that far.
         * A driver that has it must show the new size. */
        int r = hv.ops->set_virtio_mem(hv.h, NODE_VM1_UUID, 512 * KIB_PER_MIB, err, sizeof(err));
        if (r == -EOPNOTSUPP)
                cr_assert(strstr(err, "virDomainUpdateDeviceFlags") != NULL, "%s", err);
        else {
                cr_assert_eq(r, 0, "%s", err);
                cr_assert_eq(hv.ops->get_domain(hv.h, NODE_VM1_UUID, &d, err, sizeof(err)), 0, "%s", err);
                cr_assert_eq(d.virtio_mem_requested_kib, 512 * KIB_PER_MIB);
        }
        hv_libvirt_close(&hv);
}

/* ---- memory limits, vCPUs, pinning, partition ---- */

/* The test driver's host: virNodeGetCPUMap says 8 CPUs present ("virsh nodecpumap"), though
 * virNodeGetInfo says 16; cpumaps are sized by the former, as virsh sizes them. */
#define TEST_HOST_CPUS 8

static struct hv_cpuset cpus_of(const char *list) {
        struct hv_cpuset s = {0};
        /* "2-3,7": enough of libvirt's syntax for the sets written here. */
        for (const char *p = list; *p;) {
                char *end;
                unsigned long a = strtoul(p, &end, 10), b = a;
                if (*end == '-')
                        b = strtoul(end + 1, &end, 10);
                for (unsigned long c = a; c <= b; c++)
                        hv_cpuset_set(&s, (unsigned) c);
                p = *end == ',' ? end + 1 : end;
        }
        return s;
}

static struct hv_cpuset all_host_cpus(void) {
        return cpus_of("0-7");
}

static void expect_memtune(struct hv *hv, const char *uuid, uint64_t hard, uint64_t swap) {
        struct hv_memtune m;
        char err[HV_ERR_MAX] = "";
        int r = hv->ops->get_memtune(hv->h, uuid, &m, err, sizeof(err));
        cr_assert_eq(r, 0, "get_memtune = %d: %s", r, err);
        cr_assert_eq(m.hard_limit_kib, hard, "hard_limit %" PRIu64 ", expected %" PRIu64, m.hard_limit_kib, hard);
        cr_assert_eq(m.swap_hard_limit_kib, swap, "swap_hard_limit %" PRIu64 ", expected %" PRIu64,
                     m.swap_hard_limit_kib, swap);
}

static void set_memtune_ok(struct hv *hv, const char *uuid, uint64_t hard, uint64_t swap, unsigned flags) {
        struct hv_memtune m = {.hard_limit_kib = hard, .swap_hard_limit_kib = swap};
        char err[HV_ERR_MAX] = "";
        int r = hv->ops->set_memtune(hv->h, uuid, &m, flags, err, sizeof(err));
        cr_assert_eq(r, 0, "set_memtune(%" PRIu64 ", %" PRIu64 ") = %d: %s", hard, swap, r, err);
}

Test(hv_libvirt, memtune_reads_libvirts_unlimited_and_the_xmls_limits, .init = node_setup, .fini = node_teardown) {
        struct hv hv = open_node(NULL);
        /* vm1 sets none: libvirt's 2^53-1 KiB "unlimited" is ours. */
        expect_memtune(&hv, NODE_VM1_UUID, HV_MEMTUNE_UNLIMITED, HV_MEMTUNE_UNLIMITED);
        expect_memtune(&hv, NODE_CPUS_UUID, KIB_PER_GIB, 2 * KIB_PER_GIB);
        hv_libvirt_close(&hv);
}

/* libvirt checks hard <= swap on the pair a call leaves: raising the hard limit past the old
 * swap limit, and lowering the swap limit below the old hard limit, each works in one call. */
Test(hv_libvirt, memtune_raises_and_lowers_both_limits_in_one_call) {
        struct hv hv = open_default(NULL);
        char uuid[HV_UUID_MAX];

        uuid_of(&hv, "test", uuid);
        expect_memtune(&hv, uuid, HV_MEMTUNE_UNLIMITED, HV_MEMTUNE_UNLIMITED);
        set_memtune_ok(&hv, uuid, KIB_PER_GIB, 2 * KIB_PER_GIB, HV_LIVE);
        expect_memtune(&hv, uuid, KIB_PER_GIB, 2 * KIB_PER_GIB);
        /* up: the new hard limit (4 GiB) is above the old swap limit (2 GiB) */
        set_memtune_ok(&hv, uuid, 4 * KIB_PER_GIB, 8 * KIB_PER_GIB, HV_LIVE);
        expect_memtune(&hv, uuid, 4 * KIB_PER_GIB, 8 * KIB_PER_GIB);
        /* down: the new swap limit (1 GiB) is below the old hard limit (4 GiB) */
        set_memtune_ok(&hv, uuid, 512 * KIB_PER_MIB, KIB_PER_GIB, HV_LIVE);
        expect_memtune(&hv, uuid, 512 * KIB_PER_MIB, KIB_PER_GIB);
        /* a hard limit under an unlimited swap limit, then both lifted */
        set_memtune_ok(&hv, uuid, 3 * KIB_PER_GIB, HV_MEMTUNE_UNLIMITED, 0);
        expect_memtune(&hv, uuid, 3 * KIB_PER_GIB, HV_MEMTUNE_UNLIMITED);
        set_memtune_ok(&hv, uuid, HV_MEMTUNE_UNLIMITED, HV_MEMTUNE_UNLIMITED, HV_LIVE);
        expect_memtune(&hv, uuid, HV_MEMTUNE_UNLIMITED, HV_MEMTUNE_UNLIMITED);
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, memtune_refuses_what_libvirt_would_and_changes_nothing) {
        struct hv hv = open_default(NULL);
        char uuid[HV_UUID_MAX], err[HV_ERR_MAX] = "";
        struct hv_memtune m;

        uuid_of(&hv, "test", uuid);
        set_memtune_ok(&hv, uuid, KIB_PER_GIB, 2 * KIB_PER_GIB, HV_LIVE);

        m = (struct hv_memtune){.hard_limit_kib = 4 * KIB_PER_GIB, .swap_hard_limit_kib = 2 * KIB_PER_GIB};
        cr_assert_eq(hv.ops->set_memtune(hv.h, uuid, &m, HV_LIVE, err, sizeof(err)), -EINVAL);
        cr_assert_str_eq(err, "memory hard_limit 4194304 KiB above swap_hard_limit 2097152 KiB: libvirt requires "
                              "hard_limit <= swap_hard_limit");
        m = (struct hv_memtune){.hard_limit_kib = HV_MEMTUNE_UNLIMITED, .swap_hard_limit_kib = 2 * KIB_PER_GIB};
        cr_assert_eq(hv.ops->set_memtune(hv.h, uuid, &m, HV_LIVE, err, sizeof(err)), -EINVAL, "unlimited > any limit");
        m = (struct hv_memtune){.hard_limit_kib = 0, .swap_hard_limit_kib = 2 * KIB_PER_GIB};
        cr_assert_eq(hv.ops->set_memtune(hv.h, uuid, &m, HV_LIVE, err, sizeof(err)), -EINVAL, "0 KiB");
        /* libvirt's own "unlimited" is not a number we pass through: it would mean no limit. */
        m = (struct hv_memtune){.hard_limit_kib = KIB_PER_GIB, .swap_hard_limit_kib = HV_MEMTUNE_MAX_KIB + 1};
        cr_assert_eq(hv.ops->set_memtune(hv.h, uuid, &m, HV_LIVE, err, sizeof(err)), -EINVAL);
        m = (struct hv_memtune){.hard_limit_kib = KIB_PER_GIB, .swap_hard_limit_kib = 2 * KIB_PER_GIB};
        cr_assert_eq(hv.ops->set_memtune(hv.h, uuid, &m, 1u << 5, err, sizeof(err)), -EINVAL, "unknown flags");
        cr_assert_eq(hv.ops->set_memtune(hv.h, uuid, NULL, HV_LIVE, err, sizeof(err)), -EINVAL);
        expect_memtune(&hv, uuid, KIB_PER_GIB, 2 * KIB_PER_GIB);

        /* The largest limit that is one goes through as that number. */
        set_memtune_ok(&hv, uuid, KIB_PER_GIB, HV_MEMTUNE_MAX_KIB, HV_LIVE);
        expect_memtune(&hv, uuid, KIB_PER_GIB, HV_MEMTUNE_MAX_KIB);
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, memtune_of_a_stopped_domain_is_config_only, .init = node_setup, .fini = node_teardown) {
        struct hv hv = open_node(NULL);
        char err[HV_ERR_MAX] = "";
        struct hv_memtune m = {.hard_limit_kib = KIB_PER_GIB, .swap_hard_limit_kib = 2 * KIB_PER_GIB};

        cr_assert_eq(hv.ops->get_memtune(hv.h, NODE_OFF_UUID, &m, err, sizeof(err)), -EINVAL, "no live values");
        cr_assert_neq(err[0], '\0');
        cr_assert_eq(hv.ops->set_memtune(hv.h, NODE_OFF_UUID, &m, HV_LIVE, err, sizeof(err)), -EINVAL);
        /* HV_CONFIG reaches libvirt as AFFECT_CONFIG: the stopped domain's config takes it. */
        cr_assert_eq(hv.ops->set_memtune(hv.h, NODE_OFF_UUID, &m, HV_CONFIG, err, sizeof(err)), 0, "%s", err);
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, vcpu_count_is_the_online_count_not_the_maximum, .init = node_setup, .fini = node_teardown) {
        struct hv hv = open_node(NULL);
        char err[HV_ERR_MAX] = "";
        unsigned n = 0;

        cr_assert_eq(hv.ops->get_vcpu_count(hv.h, NODE_CPUS_UUID, &n, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(n, 2, "<vcpu current='2'>4</vcpu>");
        cr_assert_eq(hv.ops->get_vcpu_count(hv.h, NODE_VM1_UUID, &n, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(n, 1);
        cr_assert_eq(hv.ops->get_vcpu_count(hv.h, NODE_OFF_UUID, &n, err, sizeof(err)), -EINVAL, "not running");
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, vcpu_count_matches_virsh) {
        struct hv hv = open_default(NULL);
        char uuid[HV_UUID_MAX], err[HV_ERR_MAX] = "";
        unsigned n = 0;

        uuid_of(&hv, "test", uuid);
        cr_assert_eq(hv.ops->get_vcpu_count(hv.h, uuid, &n, err, sizeof(err)), 0, "%s", err);
        uint64_t virsh = virsh_value("virsh -c test:///default vcpucount test --live --active", "");
        cr_assert_neq(virsh, UINT64_MAX, "virsh gave no count");
        cr_assert_eq(n, virsh);
        hv_libvirt_close(&hv);
}

/* The XML's pins, vCPU by vCPU up to the maximum; unpinned ones read as every host CPU. */
Test(hv_libvirt, vcpu_pins_cover_every_vcpu_up_to_the_maximum, .init = node_setup, .fini = node_teardown) {
        struct hv hv = open_node(NULL);
        char err[HV_ERR_MAX] = "";
        struct hv_cpuset pins[8], want;
        unsigned n = 0;

        cr_assert_eq(hv.ops->get_vcpu_pins(hv.h, NODE_CPUS_UUID, pins, ELEMENTSOF(pins), &n, err, sizeof(err)), 0, "%s",
                     err);
        cr_assert_eq(n, 4, "2 online + 2 offline vCPUs");
        want = cpus_of("2-3");
        cr_assert(hv_cpuset_equal(&pins[0], &want), "vCPU 0");
        want = all_host_cpus();
        cr_assert(hv_cpuset_equal(&pins[1], &want), "vCPU 1: unpinned");
        cr_assert(hv_cpuset_equal(&pins[2], &want), "vCPU 2: unpinned");
        want = cpus_of("7");
        cr_assert(hv_cpuset_equal(&pins[3], &want), "vCPU 3 (offline)");

        cr_assert_eq(hv.ops->get_vcpu_pins(hv.h, NODE_CPUS_UUID, pins, 3, &n, err, sizeof(err)), -ENOBUFS);
        cr_assert_str_eq(err, "the domain has 4 vCPUs, more than the 3 asked for");
        /* A stopped domain: where its next start will pin it (this one: nowhere in particular). */
        cr_assert_eq(hv.ops->get_vcpu_pins(hv.h, NODE_OFF_UUID, pins, ELEMENTSOF(pins), &n, err, sizeof(err)), 0, "%s",
                     err);
        cr_assert_geq(n, 1);
        want = all_host_cpus();
        cr_assert(hv_cpuset_equal(&pins[0], &want), "unpinned");
        hv_libvirt_close(&hv);
}

static void expect_vcpu_pins(struct hv *hv, const char *uuid, const char *pin0, const char *pin1) {
        struct hv_cpuset pins[4], want0 = cpus_of(pin0), want1 = cpus_of(pin1);
        unsigned n = 0;
        char err[HV_ERR_MAX] = "";
        cr_assert_eq(hv->ops->get_vcpu_pins(hv->h, uuid, pins, ELEMENTSOF(pins), &n, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(n, 2);
        cr_assert(hv_cpuset_equal(&pins[0], &want0), "vCPU 0 is not on %s", pin0);
        cr_assert(hv_cpuset_equal(&pins[1], &want1), "vCPU 1 is not on %s", pin1);
}

/* The test driver pins with flags 0 ("current", live for a running domain) only; see below. */
Test(hv_libvirt, vcpu_pinning_round_trips_on_the_test_driver) {
        struct hv hv = open_default(NULL);
        char uuid[HV_UUID_MAX], err[HV_ERR_MAX] = "";
        struct hv_cpuset s;

        uuid_of(&hv, "test", uuid);
        expect_vcpu_pins(&hv, uuid, "0-7", "0-7");
        s = cpus_of("1,3");
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, uuid, 1, &s, 0, err, sizeof(err)), 0, "%s", err);
        expect_vcpu_pins(&hv, uuid, "0-7", "1,3");
        /* the last CPU of the host: the byte/bit conversion at its edge */
        s = cpus_of("7");
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, uuid, 0, &s, 0, err, sizeof(err)), 0, "%s", err);
        expect_vcpu_pins(&hv, uuid, "7", "1,3");
        s = cpus_of("0-7");
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, uuid, 1, &s, 0, err, sizeof(err)), 0, "%s", err);
        expect_vcpu_pins(&hv, uuid, "7", "0-7");
        hv_libvirt_close(&hv);
}

/* libvirt 9.0's testDomainPinVcpuFlags takes no flags at all (virCheckFlags(0)): AFFECT_LIVE is
 * "unsupported flags", VIR_ERR_INVALID_ARG. A driver that takes it must show the new pin. */
Test(hv_libvirt, vcpu_pinning_live_is_refused_by_the_test_driver_or_round_trips) {
        struct hv hv = open_default(NULL);
        char uuid[HV_UUID_MAX], err[HV_ERR_MAX] = "";
        struct hv_cpuset s = cpus_of("2");

        uuid_of(&hv, "test", uuid);
        int r = hv.ops->set_vcpu_pin(hv.h, uuid, 0, &s, HV_LIVE, err, sizeof(err));
        if (r == -EINVAL) {
                cr_assert(strstr(err, "unsupported flags") != NULL, "%s", err);
                expect_vcpu_pins(&hv, uuid, "0-7", "0-7");
        } else {
                cr_assert_eq(r, 0, "%s", err);
                expect_vcpu_pins(&hv, uuid, "2", "0-7");
        }
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, pinning_refuses_empty_sets_and_cpus_the_host_lacks) {
        struct hv hv = open_default(NULL);
        char uuid[HV_UUID_MAX], err[HV_ERR_MAX] = "";
        struct hv_cpuset empty = {0}, past = cpus_of("1,8"), far = cpus_of("1023"), ok = cpus_of("1");

        uuid_of(&hv, "test", uuid);
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, uuid, 0, &empty, 0, err, sizeof(err)), -EINVAL);
        cr_assert_str_eq(err, "empty CPU set");
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, uuid, 0, &past, 0, err, sizeof(err)), -EINVAL);
        cr_assert_str_eq(err, "CPU 8 is not on this host (CPUs 0-7)");
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, uuid, 0, &far, 0, err, sizeof(err)), -EINVAL);
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, uuid, 0, NULL, 0, err, sizeof(err)), -EINVAL);
        cr_assert_eq(hv.ops->set_emulator_pin(hv.h, uuid, &empty, HV_LIVE, err, sizeof(err)), -EINVAL);
        cr_assert_eq(hv.ops->set_emulator_pin(hv.h, uuid, &past, HV_LIVE, err, sizeof(err)), -EINVAL);
        cr_assert_str_eq(err, "CPU 8 is not on this host (CPUs 0-7)");
        cr_assert_eq(hv.ops->set_emulator_pin(hv.h, uuid, &ok, 1u << 5, err, sizeof(err)), -EINVAL, "unknown flags");
        /* A vCPU the domain does not have is libvirt's to refuse, with its message. */
        err[0] = '\0';
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, uuid, 2, &ok, 0, err, sizeof(err)), -EINVAL);
        cr_assert(strstr(err, "vcpu") != NULL, "%s", err);
        expect_vcpu_pins(&hv, uuid, "0-7", "0-7");
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, emulator_pinning_round_trips_on_the_test_driver) {
        struct hv hv = open_default(NULL);
        char uuid[HV_UUID_MAX], err[HV_ERR_MAX] = "";
        struct hv_cpuset got, want;

        uuid_of(&hv, "test", uuid);
        cr_assert_eq(hv.ops->get_emulator_pin(hv.h, uuid, &got, err, sizeof(err)), 0, "%s", err);
        want = all_host_cpus();
        cr_assert(hv_cpuset_equal(&got, &want), "unpinned: every host CPU");

        want = cpus_of("1-2");
        cr_assert_eq(hv.ops->set_emulator_pin(hv.h, uuid, &want, HV_LIVE, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(hv.ops->get_emulator_pin(hv.h, uuid, &got, err, sizeof(err)), 0, "%s", err);
        cr_assert(hv_cpuset_equal(&got, &want));
        want = cpus_of("0,7");
        cr_assert_eq(hv.ops->set_emulator_pin(hv.h, uuid, &want, 0, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(hv.ops->get_emulator_pin(hv.h, uuid, &got, err, sizeof(err)), 0, "%s", err);
        cr_assert(hv_cpuset_equal(&got, &want));
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, emulator_pin_is_read_from_the_domain_xml, .init = node_setup, .fini = node_teardown) {
        struct hv hv = open_node(NULL);
        char err[HV_ERR_MAX] = "";
        struct hv_cpuset got, want = cpus_of("5");

        cr_assert_eq(hv.ops->get_emulator_pin(hv.h, NODE_CPUS_UUID, &got, err, sizeof(err)), 0, "%s", err);
        cr_assert(hv_cpuset_equal(&got, &want), "<emulatorpin cpuset='5'/>");
        want = all_host_cpus();
        cr_assert_eq(hv.ops->get_emulator_pin(hv.h, NODE_OFF_UUID, &got, err, sizeof(err)), 0, "stopped: %s", err);
        cr_assert(hv_cpuset_equal(&got, &want), "as configured: unpinned");
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, partition_is_the_xmls_or_empty, .init = node_setup, .fini = node_teardown) {
        struct hv hv = open_node(NULL);
        char err[HV_ERR_MAX] = "", part[HV_PARTITION_MAX] = "x", small[8];

        cr_assert_eq(hv.ops->get_partition(hv.h, NODE_CPUS_UUID, part, sizeof(part), err, sizeof(err)), 0, "%s", err);
        cr_assert_str_eq(part, "/tide/cpus");
        /* The test driver adds no default: without <resource> there is none, and that is not an error. */
        cr_assert_eq(hv.ops->get_partition(hv.h, NODE_VM1_UUID, part, sizeof(part), err, sizeof(err)), 0, "%s", err);
        cr_assert_str_eq(part, "");
        cr_assert_eq(hv.ops->get_partition(hv.h, NODE_OFF_UUID, part, sizeof(part), err, sizeof(err)), 0, "%s", err);
        cr_assert_str_eq(part, "");
        cr_assert_eq(hv.ops->get_partition(hv.h, NODE_CPUS_UUID, small, sizeof(small), err, sizeof(err)),
                     -ENAMETOOLONG);
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, unknown_domain_is_enoent) {
        struct seen seen = {0};
        struct hv hv = open_default(&seen);
        char err[HV_ERR_MAX] = "";
        struct hv_domain d;
        struct hv_mem_stats s;
        char *xml = NULL;
        struct hv_memtune m = {HV_MEMTUNE_UNLIMITED, HV_MEMTUNE_UNLIMITED};
        struct hv_cpuset cpus = cpus_of("0"), pins[4];
        unsigned n;
        char part[HV_PARTITION_MAX];

        cr_assert_eq(hv.ops->get_domain(hv.h, MISSING_UUID, &d, err, sizeof(err)), -ENOENT);
        cr_assert_neq(err[0], '\0', "libvirt's message is passed on");
        cr_assert_eq(hv.ops->memory_stats(hv.h, MISSING_UUID, &s, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->set_balloon(hv.h, MISSING_UUID, KIB_PER_GIB, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->set_boot_memory(hv.h, MISSING_UUID, KIB_PER_GIB, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->set_virtio_mem(hv.h, MISSING_UUID, 0, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->set_stats_period(hv.h, MISSING_UUID, 2, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->get_metadata(hv.h, MISSING_UUID, HV_LIVE, &xml, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->set_metadata(hv.h, MISSING_UUID, NULL, HV_LIVE, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->get_memtune(hv.h, MISSING_UUID, &m, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->set_memtune(hv.h, MISSING_UUID, &m, HV_LIVE, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->get_vcpu_count(hv.h, MISSING_UUID, &n, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->get_vcpu_pins(hv.h, MISSING_UUID, pins, ELEMENTSOF(pins), &n, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, MISSING_UUID, 0, &cpus, 0, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->get_emulator_pin(hv.h, MISSING_UUID, &cpus, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->set_emulator_pin(hv.h, MISSING_UUID, &cpus, 0, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->get_partition(hv.h, MISSING_UUID, part, sizeof(part), err, sizeof(err)), -ENOENT);
        /* Not a UUID at all is the caller's mistake, not a vanished domain. */
        cr_assert_eq(hv.ops->get_domain(hv.h, "not-a-uuid", &d, err, sizeof(err)), -EINVAL);
        cr_assert_eq(hv.ops->get_domain(hv.h, NULL, &d, err, sizeof(err)), -EINVAL);
        /* err is optional. */
        cr_assert_eq(hv.ops->get_domain(hv.h, MISSING_UUID, &d, NULL, 0), -ENOENT);
        hv_libvirt_close(&hv);
}

Test(hv_libvirt, open_fails_cleanly_and_close_is_idempotent) {
        struct hv hv = {0};
        char err[HV_ERR_MAX] = "";
        cr_assert_eq(hv_event_init(), 0);
        cr_assert_eq(hv_event_init(), 0, "a second init is harmless");
        cr_assert_lt(hv_libvirt_open("bogus:///nowhere", NULL, NULL, &hv, err, sizeof(err)), 0);
        cr_assert_neq(err[0], '\0');
        cr_assert_null(hv.ops, "*ret untouched on failure");

        hv = open_default(NULL);
        cr_assert(hv_libvirt_alive(&hv));
        hv_libvirt_close(&hv);
        cr_assert_null(hv.h);
        cr_assert_not(hv_libvirt_alive(&hv));
        hv_libvirt_close(&hv);
        hv_libvirt_close(NULL);
}

Test(hv_libvirt, domain_type_is_qemu_without_kvm_in_the_capabilities) {
        /* The test driver offers only its own "test" type: no kvm to choose. */
        struct hv hv = open_default(NULL);
        cr_assert_str_eq(hv_libvirt_domain_type(&hv), "qemu");
        hv_libvirt_close(&hv);
        cr_assert_str_eq(hv_libvirt_domain_type(NULL), "qemu");
}

static void count_timer(int id, void *userdata) {
        (*(int *) userdata)++;
}

Test(hv_event, timer_fires_from_the_loop) {
        int fired = 0;
        cr_assert_eq(hv_event_init(), 0);
        int id = hv_event_add_timer(10 * USEC_PER_MSEC, count_timer, &fired);
        cr_assert_geq(id, 0);
        /* Bounded: a timer that never fires fails the test instead of hanging it. */
        for (int i = 0; i < 1000 && fired < 2; i++)
                cr_assert_eq(hv_event_run_once(), 0);
        cr_assert_geq(fired, 2, "a timer repeats until removed");
        cr_assert_eq(hv_event_update_timer(id, 1), 0, "sub-millisecond intervals round up to 1 ms");
        fired = 0;
        for (int i = 0; i < 1000 && fired < 1; i++)
                cr_assert_eq(hv_event_run_once(), 0);
        cr_assert_eq(hv_event_remove_timer(id), 0);
        cr_assert_eq(hv_event_remove_timer(id), -ENOENT);
        cr_assert_eq(hv_event_add_timer(10, NULL, NULL), -EINVAL);
        cr_assert_eq(hv_event_add_timer(UINT64_MAX, count_timer, &fired), -ERANGE);
}

struct fd_seen {
        int n, fd, events;
};

static void on_fd(int id, int fd, int events, void *userdata) {
        struct fd_seen *s = userdata;
        char c;
        s->n++;
        s->fd = fd;
        s->events = events;
        (void) !read(fd, &c, 1);
}

Test(hv_event, fd_readable_is_reported) {
        struct fd_seen s = {0};
        int p[2];
        cr_assert_eq(hv_event_init(), 0);
        cr_assert_eq(pipe(p), 0);
        int id = hv_event_add_fd(p[0], HV_FD_READABLE, on_fd, &s);
        cr_assert_geq(id, 0);
        cr_assert_eq(write(p[1], "x", 1), 1);
        for (int i = 0; i < 100 && s.n == 0; i++)
                cr_assert_eq(hv_event_run_once(), 0);
        cr_assert_eq(s.n, 1);
        cr_assert_eq(s.fd, p[0]);
        cr_assert(s.events & HV_FD_READABLE);
        cr_assert_eq(hv_event_update_fd(id, HV_FD_READABLE | HV_FD_HANGUP), 0);
        cr_assert_eq(hv_event_update_fd(id, 1 << 7), -EINVAL);
        cr_assert_eq(hv_event_remove_fd(id), 0);
        cr_assert_eq(hv_event_remove_fd(id), -ENOENT);
        cr_assert_eq(hv_event_add_fd(-1, HV_FD_READABLE, on_fd, &s), -EINVAL);
        close(p[0]);
        close(p[1]);
}
