/* tided's end of the agent channel on a socketpair: the handshake, reports, and a guest that
 * lies, floods or sends garbage. Then the manager using agent demand over a real socket. */
#include <criterion/criterion.h>
#include <errno.h>
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/macro.h"
#include "daemon/channel.h"
#include "daemon/manager.h"
#include "policy/engine.h"

#define MIB(x) ((uint64_t) (x) * KIB_PER_MIB)
#define SEC(x) ((uint64_t) (x) * USEC_PER_SEC)

static struct channel ch;
static int guest = -1;

static void setup(void) {
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        channel_init(&ch, "vm", "/nonexistent.sock");
        ch.fd = sv[0];
        ch.state = CHANNEL_WAITING;
        ch.limits.max_total_kib = MIB(1024);
        guest = sv[1];
}

static void teardown(void) {
        channel_close(&ch);
        if (guest >= 0)
                close(guest);
}

TestSuite(channel, .init = setup, .fini = teardown);

static void say(const char *text) {
        cr_assert_eq(write(guest, text, strlen(text)), (ssize_t) strlen(text));
}

static void report_line(char *buf, size_t len, uint64_t seq, uint64_t total_mib, uint64_t avail_mib) {
        struct agent_report r = { .seq = seq, .uptime_ms = seq * 1000, .total_kib = MIB(total_mib),
                                  .available_kib = MIB(avail_mib), .floor_kib = MIB(100) };
        cr_assert_gt(agent_format_report(buf, len, &r), 0);
}

static void hello(void) {
        char buf[256];
        cr_assert_gt(agent_format_hello(buf, sizeof(buf), "tide-agent/test", "linux"), 0);
        say(buf);
        cr_assert_eq(channel_read(&ch, SEC(10)), 0);
}

Test(channel, hello_gets_a_welcome_and_reports_count) {
        char buf[512];
        hello();
        ssize_t n = read(guest, buf, sizeof(buf) - 1);
        cr_assert_gt(n, 0);
        buf[n] = '\0';
        cr_assert_not_null(strstr(buf, "\"type\":\"welcome\""), "%s", buf);
        cr_assert_eq(ch.state, CHANNEL_CONNECTED);

        report_line(buf, sizeof(buf), 1, 1000, 600);
        say(buf);
        cr_assert_eq(channel_read(&ch, SEC(11)), 0);
        cr_assert(ch.have_report);
        cr_assert_eq(ch.report.available_kib, MIB(600));
        cr_assert_eq(ch.report_usec, SEC(11));
        cr_assert(!ch.flagged);
}

Test(channel, a_report_split_across_reads_is_reassembled) {
        char buf[512];
        hello();
        report_line(buf, sizeof(buf), 1, 1000, 600);
        size_t len = strlen(buf);
        for (size_t i = 0; i < len; i++) {
                cr_assert_eq(write(guest, buf + i, 1), 1);
                /* 100 reads a second: within the byte budget's 256 (CHANNEL_READ_CHARGE). */
                cr_assert_eq(channel_read(&ch, SEC(11) + i * 10000), 0);
        }
        cr_assert(ch.have_report);
}

Test(channel, a_guest_claiming_more_than_it_holds_is_rejected_and_flagged) {
        char buf[512];
        hello();
        report_line(buf, sizeof(buf), 1, 64 * 1024, 100); /* "I have 64 GiB and use it all" */
        say(buf);
        cr_assert_eq(channel_read(&ch, SEC(11)), 0);
        cr_assert(!ch.have_report);
        cr_assert(ch.flagged);
        cr_assert_eq(ch.session.rejected, 1);
        cr_assert_neq(ch.last_error[0], '\0');
}

Test(channel, garbage_and_oversized_lines_are_dropped_and_the_next_good_line_counts) {
        char buf[512];
        hello();
        say("\x01\x02 not json at all\n{\"type\":\"report\",\"seq\":\n");
        char *big = malloc(10000);
        memset(big, 'x', 9999);
        big[9999] = '\n';
        cr_assert_eq(write(guest, big, 10000), 10000);
        free(big);
        for (int i = 0; i < 4; i++)
                (void) channel_read(&ch, SEC(11));
        cr_assert_geq(ch.session.rejected, 3);
        cr_assert_eq(ch.oversized, 1);
        report_line(buf, sizeof(buf), 1, 1000, 600);
        say(buf);
        cr_assert_eq(channel_read(&ch, SEC(12)), 0);
        cr_assert(ch.have_report, "a good line after garbage is still read");
}

Test(channel, a_flood_is_rate_limited) {
        char buf[512];
        hello();
        for (uint64_t seq = 1; seq <= 200; seq++) {
                report_line(buf, sizeof(buf), seq, 1000, 600);
                say(buf);
                (void) channel_read(&ch, SEC(11)); /* all within the same instant */
        }
        cr_assert_leq(ch.session.accepted, AGENT_RATE_BURST + 1);
        cr_assert_geq(ch.session.rate_dropped, 180, "dropped before parsing (~60 KiB: within the byte budget)");
}

Test(channel, a_guest_over_its_byte_budget_is_not_read_until_the_next_second) {
        static char flood[4096];
        int pending = 0;
        hello();
        memset(flood, '\n', sizeof(flood)); /* empty lines: the cheapest flood there is */
        /* 128 KiB waits in the socket, twice the budget. */
        for (int i = 0; i < 32; i++)
                cr_assert_eq(write(guest, flood, sizeof(flood)), (ssize_t) sizeof(flood));
        for (int turn = 0; turn < 40; turn++)
                cr_assert_eq(channel_read(&ch, SEC(11)), 0);
        cr_assert(ch.paused);
        cr_assert_eq(ch.throttled, 1);
        cr_assert(ch.flagged);
        cr_assert_not_null(strstr(ch.last_error, "64 KiB a second"), "%s", ch.last_error);
        cr_assert_eq(ioctl(ch.fd, FIONREAD, &pending), 0);
        cr_assert_geq(pending, 65536 - 600, "the rest stays with the guest (%d bytes)", pending);

        channel_tick(&ch, SEC(11) + 500000);
        cr_assert(ch.paused, "half a second later: still paused");
        channel_tick(&ch, SEC(12));
        cr_assert(!ch.paused, "the next second reads again");
        char buf[512];
        for (int turn = 0; turn < 40; turn++)
                cr_assert_eq(channel_read(&ch, SEC(12)), 0);
        report_line(buf, sizeof(buf), 1, 1000, 600);
        say(buf);
        cr_assert_eq(channel_read(&ch, SEC(13)), 0);
        cr_assert(ch.have_report, "an honest report after the flood is read");
}

Test(channel, a_guest_trickling_single_bytes_is_paused_after_256_reads) {
        hello();
        for (int i = 0; i < 300; i++) {
                cr_assert_eq(write(guest, "x", 1), 1);
                cr_assert_eq(channel_read(&ch, SEC(11)), 0);
        }
        cr_assert(ch.paused, "300 bytes, but 300 wake-ups: over the budget");
        cr_assert_eq(ch.throttled, 1);
}

Test(channel, bye_hands_back_to_balloon_stats) {
        char buf[512];
        hello();
        report_line(buf, sizeof(buf), 1, 1000, 600);
        say(buf);
        cr_assert_eq(channel_read(&ch, SEC(11)), 0);
        cr_assert_gt(agent_format_bye(buf, sizeof(buf)), 0);
        say(buf);
        cr_assert_eq(channel_read(&ch, SEC(12)), 0);
        cr_assert(!ch.have_report);
        cr_assert_eq(ch.state, CHANNEL_GONE);
}

Test(channel, the_host_closing_is_survived) {
        hello();
        close(guest);
        guest = -1;
        cr_assert_lt(channel_read(&ch, SEC(11)), 0);
        cr_assert_eq(ch.fd, -1);
        cr_assert_eq(ch.state, CHANNEL_DISCONNECTED);
        cr_assert_eq(ch.retry_usec, SEC(11) + CHANNEL_RETRY_USEC);
}

static void noop_timer(int id, void *userdata) {
}

static int host_mem(struct manager_host *h, void *userdata) {
        h->total_kib = MIB(16384);
        h->available_kib = MIB(12000);
        return 0;
}

/* A managed domain whose agent socket is a listener standing in for QEMU; the guest side
 * (gfd) has said hello. */
struct agent_fixture {
        char dir[32], path[64];
        int lfd, gfd;
        struct hv_fake *fake;
        struct hv hv;
        struct manager *m;
        struct tide_config cfg;
        uint64_t base;
};

static void fixture_start(struct agent_fixture *fx, uint64_t discovered_usec) {
        char buf[512], err[256], note[256];

        *fx = (struct agent_fixture){ .dir = "/tmp/tide-chan-XXXXXX" };
        fx->fake = calloc(1, sizeof(*fx->fake));
        cr_assert_not_null(fx->fake);
        cr_assert_not_null(mkdtemp(fx->dir));
        snprintf(fx->path, sizeof(fx->path), "%s/agent.sock", fx->dir);
        fx->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fx->path);
        cr_assert_eq(bind(fx->lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        cr_assert_eq(listen(fx->lfd, 4), 0);
        cr_assert_geq(hv_event_init(), 0);
        /* The channel stamps reports with the real monotonic clock, as tided's tick does. */
        fx->base = clock_now_usec();

        struct hv_domain d = { .uuid = "u1", .name = "vm", .active = true, .persistent = true, .max_kib = MIB(1024),
                               .current_kib = MIB(512), .has_balloon = true, .numa_node = -1 };
        snprintf(d.agent_socket, sizeof(d.agent_socket), "%s", fx->path);
        struct hv_mem_stats st;
        memset(&st, 0xff, sizeof(st));
        st.actual_kib = MIB(512);
        st.available_kib = MIB(492);
        st.usable_kib = MIB(392);
        st.rss_kib = MIB(500); /* what the guest uses is resident in QEMU */
        st.last_update_sec = 1000;
        cr_assert_geq(hv_fake_add(fx->fake, &d, &st), 0);
        fx->hv = hv_fake_hv(fx->fake);
        config_init(&fx->cfg);
        cr_assert_eq(manager_new(&fx->hv, &fx->cfg, host_mem, NULL, &fx->m), 0);
        cr_assert_eq(manager_refresh(fx->m, discovered_usec), 0);
        struct policy_change c = { .have_minimum = true, .minimum_kib = MIB(256) };
        cr_assert_eq(manager_policy_set(fx->m, "vm", &c, discovered_usec, note, sizeof(note), err, sizeof(err)), 0,
                     "%s", err);

        cr_assert_eq(manager_tick(fx->m, fx->base), 0); /* connects */
        fx->gfd = accept(fx->lfd, NULL, NULL);
        cr_assert_geq(fx->gfd, 0);
        cr_assert_gt(agent_format_hello(buf, sizeof(buf), "tide-agent/test", "linux"), 0);
        cr_assert_gt(write(fx->gfd, buf, strlen(buf)), 0);
}

/* Runs the event loop `turns` times (the timer only keeps it from blocking when nothing is
 * readable). */
static void loop_turns(int turns) {
        int timer = hv_event_add_timer(20000, noop_timer, NULL);
        for (int turn = 0; turn < turns; turn++)
                hv_event_run_once();
        hv_event_remove_timer(timer);
}

static void fixture_write_report(struct agent_fixture *fx, const struct agent_report *r) {
        char buf[512];
        cr_assert_gt(agent_format_report(buf, sizeof(buf), r), 0);
        cr_assert_gt(write(fx->gfd, buf, strlen(buf)), 0);
}

/* The guest sends a report; loop turns deliver it (a second turn covers watches of an earlier
 * fixture that libvirt's loop removes lazily). */
static void fixture_report(struct agent_fixture *fx, const struct agent_report *r) {
        fixture_write_report(fx, r);
        loop_turns(2);
}

static void fixture_stop(struct agent_fixture *fx) {
        close(fx->gfd);
        close(fx->lfd);
        manager_free(fx->m);
        hv_fake_done(fx->fake);
        free(fx->fake);
        unlink(fx->path);
        rmdir(fx->dir);
}

/* The manager connects to the agent socket, believes the agent's demand, and falls back to
 * balloon statistics when the agent goes quiet. */
Test(agent_manager, agent_demand_drives_the_target_then_balloon_stats_take_over) {
        struct agent_fixture fx;
        fixture_start(&fx, SEC(1));
        struct hv_fake *fake = fx.fake;
        struct manager *m = fx.m;
        uint64_t base = fx.base;

        /* The guest uses 450 of its 492 MiB: demand (450 + the kernel's 20) x 1.2 = 564 MiB. */
        struct agent_report r = { .seq = 1, .uptime_ms = 5000, .total_kib = MIB(492), .available_kib = MIB(42),
                                  .floor_kib = MIB(100) };
        fixture_report(&fx, &r);

        cr_assert_eq(manager_tick(m, base + 500000), 0);
        const struct snapshot *s = manager_snapshot(m);
        cr_assert_str_eq(s->domains[0].agent, "connected");
        cr_assert(s->domains[0].agent_demand);
        cr_assert_eq(s->domains[0].demand_kib, MIB(470));
        cr_assert_eq(hv_fake_last(fake, "set_balloon")->value, MIB(564));

        /* A guest that uses nearly all it has and stalls on memory: the modelled demand is
         * above its total, rightly, and it must grow, not be held as a liar. */
        r.has_psi = true;
        r.some_avg10 = 15;
        r.seq = 2;
        r.uptime_ms = 5050;
        fixture_report(&fx, &r);
        cr_assert_eq(manager_tick(m, base + 550000), 0);
        s = manager_snapshot(m);
        cr_assert(s->domains[0].agent_demand);
        cr_assert_eq(s->domains[0].flags & ENGINE_FLAG_INSANE_DEMAND, 0u, "%s", s->domains[0].reason);
        cr_assert_gt(s->domains[0].target_kib, MIB(564), "%s", s->domains[0].reason);
        fake->domains[0].current_kib = MIB(564);
        r.has_psi = false;
        r.some_avg10 = 0;

        /* A report of more in use than QEMU has resident is not believed. */
        fake->stats[0].rss_kib = MIB(100);
        r.seq = 3;
        r.uptime_ms = 5100;
        fixture_report(&fx, &r);
        cr_assert_eq(manager_tick(m, base + 600000), 0);
        s = manager_snapshot(m);
        cr_assert(!s->domains[0].agent_demand, "450 MiB used with 100 MiB resident is a lie");
        cr_assert_eq(s->domains[0].agent_rejected, 1);
        cr_assert_not_null(strstr(s->domains[0].agent_error, "resident"));
        fake->stats[0].rss_kib = MIB(500);

        /* A jump in use between ticks asks for an early, grow-only tick; a drop does not. */
        cr_assert(!manager_wants_early_tick(m));
        fake->domains[0].current_kib = MIB(564);
        fake->stats[0].actual_kib = MIB(564);
        r.seq = 4;
        r.uptime_ms = 5300;
        r.total_kib = MIB(544);
        r.available_kib = MIB(4); /* 540 used */
        fixture_report(&fx, &r);
        cr_assert(manager_wants_early_tick(m));
        cr_assert_eq(manager_tick_early(m, base + 800000), 0);
        cr_assert_gt(hv_fake_last(fake, "set_balloon")->value, MIB(564), "grown before the next tick");
        cr_assert(!manager_wants_early_tick(m), "one early tick per jump");
        /* A guest cannot buy more: another jump before the next regular tick waits for it. */
        r.seq = 5;
        r.uptime_ms = 5400;
        r.total_kib = MIB(600); /* at most what the VM holds (564 MiB) + 64 MiB, or rejected */
        r.available_kib = MIB(4);
        fixture_report(&fx, &r);
        cr_assert(!manager_wants_early_tick(m), "at most one early tick per VM between regular ticks");
        cr_assert_eq(manager_tick(m, base + 900000), 0);
        r.seq = 6;
        r.uptime_ms = 5500;
        r.total_kib = MIB(620);
        r.available_kib = 0; /* 620 used: above the 596 + 8 MiB the regular tick planned for */
        fixture_report(&fx, &r);
        cr_assert(manager_wants_early_tick(m), "after a regular tick, a jump asks again");
        cr_assert_eq(manager_tick(m, base + 950000), 0);

        /* The agent goes quiet; balloon stats advance: after stale_after they take over. */
        for (int t = 1; t <= 12; t++) {
                fake->stats[0].last_update_sec++;
                cr_assert_eq(manager_tick(m, base + SEC(t) + 500000), 0);
        }
        s = manager_snapshot(m);
        cr_assert(!s->domains[0].agent_demand, "balloon statistics after the agent went quiet");
        cr_assert(s->domains[0].has_demand);

        fixture_stop(&fx);
}

/* Reading paused by the byte budget resumes on the next tick even when that domain's balloon
 * statistics cannot be read (the channel is ticked before them). */
Test(agent_manager, a_paused_channel_resumes_while_balloon_stats_fail) {
        static char flood[4096];
        struct agent_fixture fx;
        fixture_start(&fx, SEC(1));
        memset(flood, '\n', sizeof(flood));
        for (int i = 0; i < 20; i++) /* 80 KiB of empty lines: over the 64 KiB budget */
                cr_assert_eq(write(fx.gfd, flood, sizeof(flood)), (ssize_t) sizeof(flood));
        struct agent_report r = { .seq = 1, .uptime_ms = 600000, .total_kib = MIB(492), .available_kib = MIB(392),
                                  .floor_kib = MIB(100) };
        fixture_write_report(&fx, &r); /* behind the flood */
        loop_turns(8);                  /* 16 KiB a wake-up: paused after 64 KiB */

        fx.fake->fail_errno = EIO; /* the next hypervisor call, this tick's memory_stats, fails */
        cr_assert_eq(manager_tick(fx.m, fx.base + SEC(2)), 0);
        loop_turns(4);
        cr_assert_eq(manager_tick(fx.m, fx.base + SEC(2) + 100000), 0);
        cr_assert(manager_snapshot(fx.m)->domains[0].agent_demand, "the report behind the flood was read");
        fixture_stop(&fx);
}

/* A domain found running may have booted a second ago: no shrinking for a quiet period from
 * discovery, unless its agent tells a longer uptime. The guest's word can only shorten it. */
Test(agent_manager, the_agents_uptime_ends_the_quiet_period_of_a_domain_found_running) {
        struct agent_fixture fx;
        const struct snapshot *s;

        /* Booted 5 s ago by its own account, found now: quiet. */
        fixture_start(&fx, clock_now_usec());
        struct agent_report r = { .seq = 1, .uptime_ms = 5000, .total_kib = MIB(492), .available_kib = MIB(392),
                                  .floor_kib = MIB(100) };
        fixture_report(&fx, &r);
        cr_assert_eq(manager_tick(fx.m, fx.base + 500000), 0);
        s = manager_snapshot(fx.m);
        cr_assert(s->domains[0].agent_demand);
        cr_assert_not_null(strstr(s->domains[0].reason, "quiet period"), "%s", s->domains[0].reason);
        cr_assert_null(hv_fake_last(fx.fake, "set_balloon"));
        fixture_stop(&fx);

        /* Up for ten minutes: it shrinks at once toward its 120 MiB of demand. */
        fixture_start(&fx, clock_now_usec());
        r.uptime_ms = 600000;
        fixture_report(&fx, &r);
        cr_assert_eq(manager_tick(fx.m, fx.base + 500000), 0);
        s = manager_snapshot(fx.m);
        cr_assert_not_null(strstr(s->domains[0].reason, "shrink"), "%s", s->domains[0].reason);
        cr_assert_lt(hv_fake_last(fx.fake, "set_balloon")->value, MIB(512));
        fixture_stop(&fx);
}
