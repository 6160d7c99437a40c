#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "guest-agent/protocol.h"

/* ---- helpers ---- */

/* One field of a report, by its path ("seq", "mem.total_kib", "psi.some_avg10"), with the text
 * that goes after the colon. An override with value NULL leaves the field out; "mem" or "psi"
 * replace (or, with NULL, drop) the whole object. */
struct kv {
        const char *key;
        const char *value;
};

static const struct kv report_defaults[] = {
        { "seq", "42" },
        { "uptime_ms", "123456" },
        { "mem.total_kib", "1004000" },
        { "mem.available_kib", "700000" },
        { "mem.committed_as_kib", "400000" },
        { "mem.swap_total_kib", "0" },
        { "mem.swap_free_kib", "0" },
        { "psi.some_avg10", "0.00" },
        { "psi.some_avg60", "0.00" },
        { "psi.full_avg10", "0.00" },
        { "psi.full_avg60", "0.00" },
        { "psi.some_total_usec", "1234" },
        { "psi.full_total_usec", "567" },
        { "major_faults", "3" },
        { "floor_kib", "131072" },
};

static char report_buf[8192];

static const struct kv *find_override(const struct kv *over, const char *key) {
        for (; over && over->key; over++)
                if (streq(over->key, key))
                        return over;
        return NULL;
}

static void append(size_t *pos, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(size_t *pos, const char *fmt, ...) {
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(report_buf + *pos, sizeof(report_buf) - *pos, fmt, ap);
        va_end(ap);
        cr_assert(n >= 0 && (size_t) n < sizeof(report_buf) - *pos);
        *pos += (size_t) n;
}

/* Appends the fields of group ("" for top level, "mem.", "psi.") among report_defaults[from..to)
 * as "k":v pairs. */
static void append_group(size_t *pos, const struct kv *over, const char *group, size_t from, size_t to,
                         bool *first) {
        for (size_t i = from; i < to; i++) {
                const char *key = report_defaults[i].key;
                const char *dot = strchr(key, '.');
                const struct kv *o = find_override(over, key);
                const char *value = o ? o->value : report_defaults[i].value;

                if (group[0] ? strncmp(key, group, strlen(group)) != 0 : dot != NULL)
                        continue;
                if (!value)
                        continue;
                append(pos, *first ? "\"%s\":%s" : ",\"%s\":%s", key + strlen(group), value);
                *first = false;
        }
}

static void append_object(size_t *pos, const struct kv *over, const char *name, const char *group) {
        const struct kv *o = find_override(over, name);
        bool first = true;

        if (o && !o->value)
                return;
        if (o) {
                append(pos, ",\"%s\":%s", name, o->value);
                return;
        }
        append(pos, ",\"%s\":{", name);
        append_group(pos, over, group, 0, ELEMENTSOF(report_defaults), &first);
        append(pos, "}");
}

/* A report line (no newline) with the documented example's values except for the overrides. */
static const char *report_json(const struct kv *over) {
        size_t pos = 0;
        bool first = false;

        append(&pos, "{\"type\":\"report\"");
        /* The documented order: seq, uptime_ms, mem, psi, major_faults, floor_kib. */
        append_group(&pos, over, "", 0, 2, &first);
        append_object(&pos, over, "mem", "mem.");
        append_object(&pos, over, "psi", "psi.");
        append_group(&pos, over, "", 2, ELEMENTSOF(report_defaults), &first);
        append(&pos, "}");
        return report_buf;
}

#define REPORT(...) report_json((const struct kv[]){ __VA_ARGS__, { NULL, NULL } })

static int parse(const char *line, struct agent_msg *m, char *err, size_t errlen) {
        return agent_msg_parse(line, strlen(line), m, err, errlen);
}

static struct agent_msg expect_parses(const char *line) {
        struct agent_msg m;
        char err[160] = "";
        int r = parse(line, &m, err, sizeof(err));

        cr_assert_eq(r, 0, "rejected %s: %s", line, err);
        return m;
}

/* The parse fails with -EINVAL, names what it should, and leaves *ret alone. */
static void expect_rejected(const char *line, const char *err_contains) {
        struct agent_msg m;
        char err[160] = "";
        int r;

        memset(&m, 0xa5, sizeof(m));
        r = parse(line, &m, err, sizeof(err));
        cr_assert_eq(r, -EINVAL, "accepted %s (r=%d)", line, r);
        cr_assert(err[0], "no reason given for %s", line);
        if (err_contains)
                cr_assert(strstr(err, err_contains), "rejected %s with \"%s\", expected it to mention \"%s\"", line,
                          err, err_contains);
        for (size_t i = 0; i < sizeof(m); i++)
                cr_assert_eq(((unsigned char *) &m)[i], 0xa5, "wrote its result on failure for %s", line);
}

/* A line of exactly n bytes: a bye padded with an unknown string field. */
static char *padded_bye(size_t n) {
        const char *head = "{\"type\":\"bye\",\"pad\":\"", *tail = "\"}";
        size_t fixed = strlen(head) + strlen(tail);
        char *s;

        cr_assert(n >= fixed);
        s = malloc(n + 1);
        cr_assert(s);
        memcpy(s, head, strlen(head));
        memset(s + strlen(head), 'x', n - fixed);
        memcpy(s + n - strlen(tail), tail, strlen(tail));
        s[n] = '\0';
        return s;
}

static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);
static uint64_t rng(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

#define HELLO "{\"type\":\"hello\",\"protocol\":[1],\"agent\":\"tide-agent/0.1.0\",\"os\":\"linux\"}"
#define GIB_KIB "1048576"

static const struct agent_limits limits_4g = { .max_total_kib = 4 * KIB_PER_GIB };

static enum agent_verdict feed(struct agent_session *s, const char *line, uint64_t now_usec, char *err,
                               size_t errlen) {
        struct agent_msg m;
        return agent_session_feed(s, line, strlen(line), &limits_4g, now_usec, &m, err, errlen);
}

/* A report with this seq and uptime, otherwise the documented example. */
static const char *report_seq(uint64_t seq, uint64_t uptime_ms) {
        static char s[32], u[32];
        snprintf(s, sizeof(s), "%" PRIu64, seq);
        snprintf(u, sizeof(u), "%" PRIu64, uptime_ms);
        return REPORT({ "seq", s }, { "uptime_ms", u });
}

/* A session that has said hello, with plenty of time between messages so the rate limit never
 * interferes; *now advances one second per message. */
static void start_session(struct agent_session *s, uint64_t *now) {
        char err[160];
        *s = (struct agent_session){ 0 };
        *now = 1000 * USEC_PER_SEC;
        cr_assert_eq(feed(s, HELLO, *now, err, sizeof(err)), AGENT_ACCEPT_HELLO, "%s", err);
}

static enum agent_verdict feed_next(struct agent_session *s, uint64_t *now, const char *line, char *err,
                                    size_t errlen) {
        *now += USEC_PER_SEC;
        return feed(s, line, *now, err, errlen);
}

/* ---- good messages ---- */

Test(parse, reads_the_documented_hello) {
        struct agent_msg m = expect_parses(HELLO);

        cr_assert_eq(m.type, AGENT_MSG_HELLO);
        cr_assert_eq(m.hello.versions, 1u << 1);
        cr_assert_str_eq(m.hello.agent, "tide-agent/0.1.0");
        cr_assert_str_eq(m.hello.os, "linux");
}

Test(parse, reads_the_documented_report) {
        struct agent_msg m = expect_parses(
                "{\"type\":\"report\",\"seq\":42,\"uptime_ms\":123456,\n"
                " \"mem\":{\"total_kib\":1004000,\"available_kib\":700000,\"committed_as_kib\":400000,\n"
                "        \"swap_total_kib\":0,\"swap_free_kib\":0},\n"
                " \"psi\":{\"some_avg10\":0.00,\"some_avg60\":0.00,\"full_avg10\":0.00,\"full_avg60\":0.00,\n"
                "        \"some_total_usec\":1234,\"full_total_usec\":567},\n"
                " \"major_faults\":3,\n"
                " \"floor_kib\":131072}");
        struct agent_report *r = &m.report;

        cr_assert_eq(m.type, AGENT_MSG_REPORT);
        cr_assert_eq(r->seq, 42);
        cr_assert_eq(r->uptime_ms, 123456);
        cr_assert_eq(r->total_kib, 1004000);
        cr_assert_eq(r->available_kib, 700000);
        cr_assert_eq(r->committed_as_kib, 400000);
        cr_assert_eq(r->swap_total_kib, 0);
        cr_assert_eq(r->swap_free_kib, 0);
        cr_assert(r->has_psi);
        cr_assert_eq(r->some_total_usec, 1234);
        cr_assert_eq(r->full_total_usec, 567);
        cr_assert_eq(r->major_faults, 3);
        cr_assert_eq(r->floor_kib, 131072);
}

Test(parse, reads_bye_welcome_and_error) {
        struct agent_msg m = expect_parses("{\"type\":\"bye\"}");
        cr_assert_eq(m.type, AGENT_MSG_BYE);

        m = expect_parses("{\"type\":\"welcome\",\"protocol\":1,\"interval_ms\":1000}");
        cr_assert_eq(m.type, AGENT_MSG_WELCOME);
        cr_assert_eq(m.welcome.protocol, 1);
        cr_assert_eq(m.welcome.interval_ms, 1000);

        m = expect_parses("{\"type\":\"error\",\"error\":\"no common protocol version (tided speaks 1)\"}");
        cr_assert_eq(m.type, AGENT_MSG_ERROR);
        cr_assert_str_eq(m.error, "no common protocol version (tided speaks 1)");
}

Test(parse, leaves_optional_report_fields_at_zero_when_absent) {
        struct agent_msg m = expect_parses(REPORT({ "mem.committed_as_kib", NULL }, { "mem.swap_total_kib", NULL },
                                                  { "mem.swap_free_kib", NULL }, { "major_faults", NULL },
                                                  { "psi", NULL }));

        cr_assert_eq(m.report.committed_as_kib, 0);
        cr_assert_eq(m.report.swap_total_kib, 0);
        cr_assert_eq(m.report.swap_free_kib, 0);
        cr_assert_eq(m.report.major_faults, 0);
        cr_assert_not(m.report.has_psi);
        cr_assert_eq(m.report.some_avg10, 0);
        cr_assert_eq(m.report.full_total_usec, 0);
}

Test(parse, ignores_fields_it_does_not_know) {
        struct agent_msg m = expect_parses(
                "{\"type\":\"hello\",\"protocol\":[1],\"future\":{\"a\":[1,2,{\"b\":null}]},\"flag\":true}");
        cr_assert_eq(m.hello.versions, 1u << 1);

        expect_parses(REPORT({ "mem",
                               "{\"total_kib\":2,\"available_kib\":1,\"shmem_kib\":5,\"hugepages\":[1,2]}" },
                             { "floor_kib", "1" }));
}

Test(parse, accepts_whitespace_around_the_object_and_a_carriage_return) {
        expect_parses("  {\"type\":\"bye\"}  ");
        expect_parses("{\"type\":\"bye\"}\r");
        expect_parses("\t{ \"type\" : \"bye\" }\t\r");
}

Test(parse, a_lone_surrogate_json_c_lets_through_reaches_the_struct_as_ascii) {
        /* json-c's UTF-8 check passes an encoded lone surrogate (ED A0 80); sanitising is what
         * keeps it out of log lines. */
        struct agent_msg m = expect_parses("{\"type\":\"hello\",\"protocol\":[1],\"agent\":\"a\xed\xa0\x80z\"}");

        cr_assert_str_eq(m.hello.agent, "a???z");
}

Test(parse, hello_strings_are_optional) {
        struct agent_msg m = expect_parses("{\"type\":\"hello\",\"protocol\":[1]}");

        cr_assert_str_eq(m.hello.agent, "");
        cr_assert_str_eq(m.hello.os, "");
}

Test(parse, hello_lists_every_version_as_a_bit) {
        struct agent_msg m = expect_parses("{\"type\":\"hello\",\"protocol\":[3,1,2,1]}");
        cr_assert_eq(m.hello.versions, (1u << 1) | (1u << 2) | (1u << 3));

        m = expect_parses("{\"type\":\"hello\",\"protocol\":[31]}");
        cr_assert_eq(m.hello.versions, 1u << 31);
}

Test(parse, hello_ignores_versions_past_31_so_a_future_agent_can_fall_back) {
        struct agent_msg m = expect_parses("{\"type\":\"hello\",\"protocol\":[1,32,4000]}");
        cr_assert_eq(m.hello.versions, 1u << 1);

        m = expect_parses("{\"type\":\"hello\",\"protocol\":[32]}");
        cr_assert_eq(m.hello.versions, 0);
}

Test(parse, sanitises_and_truncates_hello_strings) {
        char line[512];
        struct agent_msg m;

        m = expect_parses("{\"type\":\"hello\",\"protocol\":[1],\"agent\":\"a\\u001b[31mb\\n\\u0000c\\u00e9\","
                          "\"os\":\"l\\tx\"}");
        cr_assert_str_eq(m.hello.agent, "a?[31mb??c??"); /* é is two UTF-8 bytes */
        cr_assert_str_eq(m.hello.os, "l?x");

        snprintf(line, sizeof(line), "{\"type\":\"hello\",\"protocol\":[1],\"agent\":\"%0100d\",\"os\":\"%020d\"}", 7,
                 8);
        m = expect_parses(line);
        cr_assert_eq(strlen(m.hello.agent), sizeof(m.hello.agent) - 1);
        cr_assert_eq(strlen(m.hello.os), sizeof(m.hello.os) - 1);
        cr_assert_eq(m.hello.agent[0], '0');
}

Test(parse, psi_averages_may_be_integers_or_fractions) {
        struct agent_msg m = expect_parses(REPORT({ "psi.some_avg10", "1.53" }, { "psi.some_avg60", "2" },
                                                  { "psi.full_avg10", "0.4" }, { "psi.full_avg60", "1e1" }));

        cr_assert_float_eq(m.report.some_avg10, 1.53, 1e-12);
        cr_assert_float_eq(m.report.some_avg60, 2.0, 1e-12);
        cr_assert_float_eq(m.report.full_avg10, 0.4, 1e-12);
        cr_assert_float_eq(m.report.full_avg60, 10.0, 1e-12);
}

Test(parse, a_repeated_key_counts_with_its_last_value_and_that_value_is_checked) {
        struct agent_msg m = expect_parses("{\"type\":\"report\",\"seq\":-1,\"seq\":7,\"uptime_ms\":1,"
                                           "\"mem\":{\"total_kib\":10,\"available_kib\":5},\"floor_kib\":1}");
        cr_assert_eq(m.report.seq, 7);

        expect_rejected("{\"type\":\"report\",\"seq\":7,\"seq\":-1,\"uptime_ms\":1,"
                        "\"mem\":{\"total_kib\":10,\"available_kib\":5},\"floor_kib\":1}",
                        "seq: negative");
        expect_rejected("{\"type\":\"bye\",\"type\":\"welcome\"}", "protocol: missing");
}

/* ---- encoders ---- */

Test(format, hello_writes_the_documented_line) {
        char buf[256];
        int n = agent_format_hello(buf, sizeof(buf), "tide-agent/0.1.0", "linux");

        cr_assert_str_eq(buf, HELLO "\n");
        cr_assert_eq(n, (int) strlen(HELLO "\n"));
}

Test(format, hello_leaves_out_absent_strings) {
        char buf[256];

        cr_assert_gt(agent_format_hello(buf, sizeof(buf), NULL, NULL), 0);
        cr_assert_str_eq(buf, "{\"type\":\"hello\",\"protocol\":[1]}\n");
}

Test(format, welcome_bye_and_error_write_the_documented_lines) {
        char buf[256];

        cr_assert_eq(agent_format_welcome(buf, sizeof(buf), 1, 1000),
                     (int) strlen("{\"type\":\"welcome\",\"protocol\":1,\"interval_ms\":1000}\n"));
        cr_assert_str_eq(buf, "{\"type\":\"welcome\",\"protocol\":1,\"interval_ms\":1000}\n");
        cr_assert_eq(agent_format_bye(buf, sizeof(buf)), 15);
        cr_assert_str_eq(buf, "{\"type\":\"bye\"}\n");
        cr_assert_gt(agent_format_error(buf, sizeof(buf), "no common protocol version (tided speaks 1)"), 0);
        cr_assert_str_eq(buf, "{\"type\":\"error\",\"error\":\"no common protocol version (tided speaks 1)\"}\n");
}

Test(format, report_writes_the_documented_line) {
        struct agent_report r = { .seq = 42, .uptime_ms = 123456, .total_kib = 1004000, .available_kib = 700000,
                                  .committed_as_kib = 400000, .has_psi = true, .some_total_usec = 1234,
                                  .full_total_usec = 567, .major_faults = 3, .floor_kib = 131072 };
        char buf[1024];
        char want[1024];
        int n = agent_format_report(buf, sizeof(buf), &r);

        snprintf(want, sizeof(want), "%s\n", report_json(NULL));
        cr_assert_str_eq(buf, want);
        cr_assert_eq(n, (int) strlen(want));

        r.has_psi = false;
        agent_format_report(buf, sizeof(buf), &r);
        snprintf(want, sizeof(want), "%s\n", REPORT({ "psi", NULL }));
        cr_assert_str_eq(buf, want);
}

Test(format, report_round_trips_through_the_parser) {
        struct agent_report r = { .seq = UINT64_C(9223372036854775806), .uptime_ms = 99, .total_kib = 1 << 20,
                                  .available_kib = 12345, .committed_as_kib = UINT64_C(1) << 50,
                                  .swap_total_kib = 2048, .swap_free_kib = 1024, .has_psi = true,
                                  .some_avg10 = 1.53, .some_avg60 = 100, .full_avg10 = 0.01, .full_avg60 = 99.99,
                                  .some_total_usec = UINT64_C(1) << 62, .full_total_usec = 7,
                                  .major_faults = UINT64_C(1) << 40, .floor_kib = agent_floor_kib(1 << 20) };
        char buf[1024];
        struct agent_msg m;
        int n = agent_format_report(buf, sizeof(buf), &r);

        cr_assert_gt(n, 0);
        cr_assert_eq(buf[n - 1], '\n');
        cr_assert_eq(agent_msg_parse(buf, (size_t) n - 1, &m, NULL, 0), 0);
        cr_assert_eq(m.type, AGENT_MSG_REPORT);
        cr_assert_eq(m.report.seq, r.seq);
        cr_assert_eq(m.report.uptime_ms, r.uptime_ms);
        cr_assert_eq(m.report.total_kib, r.total_kib);
        cr_assert_eq(m.report.available_kib, r.available_kib);
        cr_assert_eq(m.report.committed_as_kib, r.committed_as_kib);
        cr_assert_eq(m.report.swap_total_kib, r.swap_total_kib);
        cr_assert_eq(m.report.swap_free_kib, r.swap_free_kib);
        cr_assert(m.report.has_psi);
        cr_assert_float_eq(m.report.some_avg10, r.some_avg10, 1e-12);
        cr_assert_float_eq(m.report.some_avg60, r.some_avg60, 1e-12);
        cr_assert_float_eq(m.report.full_avg10, r.full_avg10, 1e-12);
        cr_assert_float_eq(m.report.full_avg60, r.full_avg60, 1e-12);
        cr_assert_eq(m.report.some_total_usec, r.some_total_usec);
        cr_assert_eq(m.report.full_total_usec, r.full_total_usec);
        cr_assert_eq(m.report.major_faults, r.major_faults);
        cr_assert_eq(m.report.floor_kib, r.floor_kib);
}

Test(format, hello_welcome_and_error_round_trip_through_the_parser) {
        char buf[512];
        struct agent_msg m;
        int n;

        n = agent_format_hello(buf, sizeof(buf), "tide-agent/9.9", "linux");
        cr_assert_eq(agent_msg_parse(buf, (size_t) n - 1, &m, NULL, 0), 0);
        cr_assert_eq(m.type, AGENT_MSG_HELLO);
        cr_assert_eq(m.hello.versions, 1u << AGENT_PROTOCOL_VERSION);
        cr_assert_str_eq(m.hello.agent, "tide-agent/9.9");

        n = agent_format_welcome(buf, sizeof(buf), 1, AGENT_INTERVAL_MS_MAX);
        cr_assert_eq(agent_msg_parse(buf, (size_t) n - 1, &m, NULL, 0), 0);
        cr_assert_eq(m.welcome.interval_ms, AGENT_INTERVAL_MS_MAX);

        n = agent_format_error(buf, sizeof(buf), "tided does not accept 'welcome' from a guest");
        cr_assert_eq(agent_msg_parse(buf, (size_t) n - 1, &m, NULL, 0), 0);
        cr_assert_str_eq(m.error, "tided does not accept 'welcome' from a guest");
}

Test(format, escapes_quotes_and_backslashes_and_replaces_control_bytes) {
        char buf[512];
        struct agent_msg m;
        int n = agent_format_error(buf, sizeof(buf), "say \"hi\" \\ then\nbye\x01\xff");

        cr_assert_str_eq(buf, "{\"type\":\"error\",\"error\":\"say \\\"hi\\\" \\\\ then?bye??\"}\n");
        cr_assert_eq(agent_msg_parse(buf, (size_t) n - 1, &m, NULL, 0), 0);
        cr_assert_str_eq(m.error, "say \"hi\" \\ then?bye??");
}

Test(format, cuts_strings_to_what_the_receiver_keeps) {
        char big[5000], buf[8192];
        struct agent_msg m;
        int n;

        memset(big, '"', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        n = agent_format_error(buf, sizeof(buf), big);
        cr_assert_gt(n, 0);
        cr_assert_lt(n, AGENT_MSG_MAX);
        cr_assert_eq(agent_msg_parse(buf, (size_t) n - 1, &m, NULL, 0), 0);
        cr_assert_eq(strlen(m.error), sizeof(m.error) - 1);

        n = agent_format_hello(buf, sizeof(buf), big, big);
        cr_assert_gt(n, 0);
        cr_assert_lt(n, AGENT_MSG_MAX);
        cr_assert_eq(agent_msg_parse(buf, (size_t) n - 1, &m, NULL, 0), 0);
}

Test(format, returns_enobufs_for_every_buffer_too_small) {
        struct agent_report r = { .seq = 1, .total_kib = 2, .has_psi = true };
        char full[1024], buf[1024];
        int need;

        need = agent_format_report(full, sizeof(full), &r);
        cr_assert_gt(need, 0);
        for (size_t len = 0; len <= (size_t) need; len++)
                cr_assert_eq(agent_format_report(buf, len, &r), -ENOBUFS, "len %zu", len);
        cr_assert_eq(agent_format_report(buf, (size_t) need + 1, &r), need);
        cr_assert_str_eq(buf, full);

        need = agent_format_hello(full, sizeof(full), "a\"b", "os");
        for (size_t len = 0; len <= (size_t) need; len++)
                cr_assert_eq(agent_format_hello(buf, len, "a\"b", "os"), -ENOBUFS, "len %zu", len);
        cr_assert_eq(agent_format_hello(buf, (size_t) need + 1, "a\"b", "os"), need);
        cr_assert_eq(agent_format_bye(buf, 15), -ENOBUFS);
        cr_assert_eq(agent_format_bye(buf, 16), 15);
        cr_assert_eq(agent_format_welcome(NULL, 0, 1, 1000), -ENOBUFS);
        cr_assert_eq(agent_format_error(buf, 3, "x"), -ENOBUFS);
}

Test(format, refuses_psi_json_cannot_carry) {
        struct agent_report r = { .seq = 1, .total_kib = 2, .has_psi = true, .full_avg60 = NAN };
        char buf[1024];

        cr_assert_eq(agent_format_report(buf, sizeof(buf), &r), -EINVAL);
        r.full_avg60 = INFINITY;
        cr_assert_eq(agent_format_report(buf, sizeof(buf), &r), -EINVAL);
        r.has_psi = false; /* not written, so not a problem */
        cr_assert_gt(agent_format_report(buf, sizeof(buf), &r), 0);
}

/* ---- the floor ---- */

Test(floor, follows_hv_balloon_at_every_step) {
        const uint64_t mib = KIB_PER_MIB;

        cr_assert_eq(agent_floor_kib(64 * mib), 8 * mib + 32 * mib);
        cr_assert_eq(agent_floor_kib(128 * mib - 1), 8 * mib + (128 * mib - 1) / 2);
        cr_assert_eq(agent_floor_kib(128 * mib), 72 * mib);
        cr_assert_eq(agent_floor_kib(512 * mib - 1), 40 * mib + (512 * mib - 1) / 4);
        cr_assert_eq(agent_floor_kib(512 * mib), 168 * mib);
        cr_assert_eq(agent_floor_kib(2048 * mib - 1), 104 * mib + (2048 * mib - 1) / 8);
        cr_assert_eq(agent_floor_kib(2048 * mib), 360 * mib);
        cr_assert_eq(agent_floor_kib(8192 * mib - 1), 232 * mib + (8192 * mib - 1) / 16);
        cr_assert_eq(agent_floor_kib(8192 * mib), 744 * mib);
        cr_assert_eq(agent_floor_kib(32768 * mib), 1512 * mib);
}

Test(floor, is_continuous_and_never_decreases) {
        uint64_t prev = agent_floor_kib(16 * KIB_PER_MIB);

        for (uint64_t t = 16 * KIB_PER_MIB; t < 64 * KIB_PER_GIB; t += 997) {
                uint64_t f = agent_floor_kib(t);
                cr_assert_geq(f, prev, "floor drops at %" PRIu64 " KiB", t);
                cr_assert_leq(f - prev, 997, "floor jumps at %" PRIu64 " KiB", t);
                prev = f;
        }
}

Test(floor, never_exceeds_the_memory_itself) {
        for (uint64_t t = 0; t < 20 * KIB_PER_MIB; t += 101)
                cr_assert_leq(agent_floor_kib(t), t);
        cr_assert_eq(agent_floor_kib(16 * KIB_PER_MIB), 16 * KIB_PER_MIB);
        cr_assert_eq(agent_floor_kib(UINT64_MAX), 488 * KIB_PER_MIB + UINT64_MAX / 32);
}

Test(floor, the_agent_floor_always_passes_the_parser) {
        char buf[1024];
        struct agent_msg m;

        for (uint64_t t = 1; t < (UINT64_C(1) << 50); t = t * 3 + 1) {
                struct agent_report r = { .seq = 1, .total_kib = t, .floor_kib = agent_floor_kib(t) };
                int n = agent_format_report(buf, sizeof(buf), &r);
                cr_assert_eq(agent_msg_parse(buf, (size_t) n - 1, &m, NULL, 0), 0, "total %" PRIu64, t);
        }
}

/* ---- ranges: accepted at the limit, rejected one past ---- */

Test(ranges, seq_runs_from_1_to_2_pow_63_minus_2) {
        expect_rejected(REPORT({ "seq", "0" }), "seq: below 1");
        cr_assert_eq(expect_parses(REPORT({ "seq", "1" })).report.seq, 1);
        cr_assert_eq(expect_parses(REPORT({ "seq", "9223372036854775806" })).report.seq,
                     UINT64_C(9223372036854775806));
        expect_rejected(REPORT({ "seq", "9223372036854775807" }), "seq: above");
        expect_rejected(REPORT({ "seq", "9223372036854775808" }), "seq: above");
}

Test(ranges, uptime_runs_from_0_to_2_pow_63_minus_2) {
        cr_assert_eq(expect_parses(REPORT({ "uptime_ms", "0" })).report.uptime_ms, 0);
        expect_parses(REPORT({ "uptime_ms", "9223372036854775806" }));
        expect_rejected(REPORT({ "uptime_ms", "9223372036854775807" }), "uptime_ms: above");
}

Test(ranges, total_runs_from_1_kib_to_2_pow_50) {
        expect_rejected(REPORT({ "mem.total_kib", "0" }, { "mem.available_kib", "0" }, { "floor_kib", "0" }),
                        "mem.total_kib: below 1");
        expect_parses(REPORT({ "mem.total_kib", "1" }, { "mem.available_kib", "0" }, { "floor_kib", "0" }));
        expect_parses(REPORT({ "mem.total_kib", "1125899906842624" }));
        expect_rejected(REPORT({ "mem.total_kib", "1125899906842625" }), "mem.total_kib: above 1125899906842624");
}

Test(ranges, available_may_equal_total_but_not_exceed_it) {
        expect_parses(REPORT({ "mem.available_kib", "1004000" }));
        expect_rejected(REPORT({ "mem.available_kib", "1004001" }), "mem.available_kib: above mem.total_kib");
}

Test(ranges, committed_as_runs_to_2_pow_50) {
        expect_parses(REPORT({ "mem.committed_as_kib", "0" }));
        expect_parses(REPORT({ "mem.committed_as_kib", "1125899906842624" }));
        expect_rejected(REPORT({ "mem.committed_as_kib", "1125899906842625" }), "mem.committed_as_kib: above");
}

Test(ranges, swap_free_may_equal_swap_total_but_not_exceed_it) {
        expect_parses(REPORT({ "mem.swap_total_kib", "1125899906842624" },
                             { "mem.swap_free_kib", "1125899906842624" }));
        expect_rejected(REPORT({ "mem.swap_total_kib", "1125899906842625" }), "mem.swap_total_kib: above");
        expect_rejected(REPORT({ "mem.swap_total_kib", "100" }, { "mem.swap_free_kib", "101" }),
                        "mem.swap_free_kib: above mem.swap_total_kib");
        expect_rejected(REPORT({ "mem.swap_free_kib", "1" }, { "mem.swap_total_kib", NULL }),
                        "mem.swap_free_kib: above mem.swap_total_kib");
}

Test(ranges, psi_averages_run_from_0_to_100) {
        static const char *keys[] = { "psi.some_avg10", "psi.some_avg60", "psi.full_avg10", "psi.full_avg60" };

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                expect_parses(REPORT({ keys[i], "0" }));
                expect_parses(REPORT({ keys[i], "0.00" }));
                expect_parses(REPORT({ keys[i], "100" }));
                expect_parses(REPORT({ keys[i], "100.00" }));
                expect_rejected(REPORT({ keys[i], "100.01" }), keys[i]);
                expect_rejected(REPORT({ keys[i], "101" }), keys[i]);
                expect_rejected(REPORT({ keys[i], "-0.01" }), keys[i]);
                expect_rejected(REPORT({ keys[i], "-1" }), keys[i]);
        }
}

Test(ranges, psi_totals_run_to_2_pow_62) {
        expect_parses(REPORT({ "psi.some_total_usec", "4611686018427387904" },
                             { "psi.full_total_usec", "4611686018427387904" }));
        expect_rejected(REPORT({ "psi.some_total_usec", "4611686018427387905" }), "psi.some_total_usec: above");
        expect_rejected(REPORT({ "psi.full_total_usec", "4611686018427387905" }), "psi.full_total_usec: above");
}

Test(ranges, major_faults_run_to_2_pow_40) {
        expect_parses(REPORT({ "major_faults", "0" }));
        expect_parses(REPORT({ "major_faults", "1099511627776" }));
        expect_rejected(REPORT({ "major_faults", "1099511627777" }), "major_faults: above 1099511627776");
}

Test(ranges, floor_may_equal_total_but_not_exceed_it) {
        expect_parses(REPORT({ "floor_kib", "0" }));
        expect_parses(REPORT({ "floor_kib", "1004000" }));
        expect_rejected(REPORT({ "floor_kib", "1004001" }), "floor_kib: above mem.total_kib");
}

Test(ranges, welcome_interval_runs_from_250_to_60000_ms) {
        expect_parses("{\"type\":\"welcome\",\"protocol\":1,\"interval_ms\":250}");
        expect_parses("{\"type\":\"welcome\",\"protocol\":1,\"interval_ms\":60000}");
        expect_rejected("{\"type\":\"welcome\",\"protocol\":1,\"interval_ms\":249}", "interval_ms: below 250");
        expect_rejected("{\"type\":\"welcome\",\"protocol\":1,\"interval_ms\":60001}", "interval_ms: above 60000");
}

Test(ranges, welcome_protocol_runs_from_1_to_31) {
        expect_parses("{\"type\":\"welcome\",\"protocol\":31,\"interval_ms\":1000}");
        expect_rejected("{\"type\":\"welcome\",\"protocol\":0,\"interval_ms\":1000}", "protocol: below 1");
        expect_rejected("{\"type\":\"welcome\",\"protocol\":32,\"interval_ms\":1000}", "protocol: above 31");
}

Test(ranges, hello_lists_1_to_31_versions_each_at_least_1) {
        char line[512];
        size_t pos;

        expect_rejected("{\"type\":\"hello\",\"protocol\":[]}", "protocol: must list 1 to 31");
        expect_rejected("{\"type\":\"hello\",\"protocol\":[0]}", "protocol[0]");
        expect_rejected("{\"type\":\"hello\",\"protocol\":[1,-1]}", "protocol[1]");
        expect_rejected("{\"type\":\"hello\",\"protocol\":[1,1.5]}", "protocol[1]: not an integer");
        expect_rejected("{\"type\":\"hello\",\"protocol\":[\"1\"]}", "protocol[0]: not an integer");
        expect_rejected("{\"type\":\"hello\",\"protocol\":1}", "protocol: not an array");

        for (int count = 31; count <= 32; count++) {
                pos = (size_t) snprintf(line, sizeof(line), "{\"type\":\"hello\",\"protocol\":[1");
                for (int i = 1; i < count; i++)
                        pos += (size_t) snprintf(line + pos, sizeof(line) - pos, ",%d", i + 1);
                snprintf(line + pos, sizeof(line) - pos, "]}");
                if (count == 31)
                        cr_assert_eq(expect_parses(line).hello.versions, 0xfffffffeu);
                else
                        expect_rejected(line, "protocol: must list 1 to 31");
        }
}

Test(ranges, a_line_of_4095_bytes_is_the_longest_accepted) {
        char *s = padded_bye(AGENT_MSG_MAX - 1);
        struct agent_msg m;
        char err[160];

        cr_assert_eq(agent_msg_parse(s, strlen(s), &m, err, sizeof(err)), 0, "%s", err);
        free(s);
        s = padded_bye(AGENT_MSG_MAX);
        cr_assert_eq(agent_msg_parse(s, strlen(s), &m, err, sizeof(err)), -EMSGSIZE);
        cr_assert(strstr(err, "4096"), "%s", err);
        free(s);
        s = padded_bye(5000);
        cr_assert_eq(agent_msg_parse(s, strlen(s), &m, err, sizeof(err)), -EMSGSIZE);
        free(s);
}

/* ---- required fields ---- */

Test(required, every_missing_report_field_is_named) {
        static const char *keys[] = { "seq", "uptime_ms", "mem.total_kib", "mem.available_kib", "floor_kib" };
        char want[64];

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                snprintf(want, sizeof(want), "%s: missing", keys[i]);
                expect_rejected(REPORT({ keys[i], NULL }), want);
        }
        expect_rejected(REPORT({ "mem", NULL }), "mem: missing");
        expect_rejected(REPORT({ "mem", "[]" }), "mem: not an object");
        expect_rejected(REPORT({ "psi", "7" }), "psi: not an object");
}

Test(required, psi_comes_whole_or_not_at_all) {
        static const char *keys[] = { "psi.some_avg10",  "psi.some_avg60",      "psi.full_avg10",
                                      "psi.full_avg60", "psi.some_total_usec", "psi.full_total_usec" };
        char want[64];

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                snprintf(want, sizeof(want), "%s: missing", keys[i]);
                expect_rejected(REPORT({ keys[i], NULL }), want);
        }
        expect_rejected(REPORT({ "psi", "{}" }), "psi.some_avg10: missing");
}

Test(required, hello_needs_a_protocol_list_and_error_needs_its_text) {
        expect_rejected("{\"type\":\"hello\"}", "protocol: missing");
        expect_rejected("{\"type\":\"hello\",\"protocol\":[1],\"agent\":5}", "agent: not a string");
        expect_rejected("{\"type\":\"hello\",\"protocol\":[1],\"os\":null}", "os: not a string");
        expect_rejected("{\"type\":\"error\"}", "error: missing");
        expect_rejected("{\"type\":\"welcome\",\"interval_ms\":1000}", "protocol: missing");
        expect_rejected("{\"type\":\"welcome\",\"protocol\":1}", "interval_ms: missing");
}

Test(required, the_type_must_be_a_known_string) {
        expect_rejected("{}", "type: missing");
        expect_rejected("{\"seq\":1}", "type: missing");
        expect_rejected("{\"type\":5}", "type: not a string");
        expect_rejected("{\"type\":null}", "type: not a string");
        expect_rejected("{\"type\":\"REPORT\"}", "type: unknown 'REPORT'");
        expect_rejected("{\"type\":\"report\\u0000\"}", "type: unknown 'report?'");
        expect_rejected("{\"type\":\"\\u001b[2J\"}", "type: unknown '?[2J'");
}

/* ---- hostile input ---- */

Test(hostile, every_truncation_of_a_valid_report_is_rejected) {
        const char *full = report_json(NULL);
        size_t n = strlen(full);

        for (size_t len = 0; len < n; len++) {
                /* An exact-size copy, so a read past len is an AddressSanitizer error. */
                char *copy = malloc(len ? len : 1);
                struct agent_msg m;
                char err[160];

                cr_assert(copy);
                memcpy(copy, full, len);
                cr_assert_eq(agent_msg_parse(copy, len, &m, err, sizeof(err)), -EINVAL, "prefix of %zu bytes", len);
                cr_assert(err[0]);
                free(copy);
        }
        cr_assert_eq(agent_msg_parse(full, n, &(struct agent_msg){ 0 }, NULL, 0), 0);
}

Test(hostile, garbage_is_rejected) {
        static const char *lines[] = {
                "",
                "   ",
                "\r",
                "x",
                "null",
                "42",
                "\"report\"",
                "[{\"type\":\"bye\"}]",
                "{",
                "}",
                "{\"type\":\"bye\"",
                "{\"type\":\"bye\"}}",
                "{\"type\":\"bye\"} x",
                "{\"type\":\"bye\"}{\"type\":\"bye\"}",
                "{\"type\":\"bye\",}",
                "{\"type\"::\"bye\"}",
                "{type:\"bye\"}",
                "{/* hi */\"type\":\"bye\"}",
                "{\"type\":\"bye\"} // hi",
                "{\"type\":\"b\xff\"}",
                "{\"type\":\"\xc3\"}",
                "\xef\xbb\xbf{\"type\":\"bye\"}",
                "{\"type\":\"bye\",\"x\":TRUE}",
                "{\"type\":\"bye\",\"x\":01}",
                "{\"type\":\"bye\",\"x\":0x10}",
                "{\"type\":\"bye\",\"x\":+1}",
                "{\"type\":\"bye\",\"x\":.5}",
                "{\"type\":\"bye\",\"x\":\"\\x41\"}",
                "{\"type\":\"bye\",\"x\":\"\\u12\"}",
        };

        for (size_t i = 0; i < ELEMENTSOF(lines); i++)
                expect_rejected(lines[i], NULL);
        expect_rejected("null", "not a JSON object");
        expect_rejected("[1]", "not a JSON object");
        expect_rejected("{\"type\":\"bye\"", "ends inside");
}

Test(hostile, random_bytes_never_crash_the_parser) {
        char line[256];
        struct agent_msg m;
        char err[64];

        for (int i = 0; i < 20000; i++) {
                size_t len = rng() % sizeof(line);
                for (size_t j = 0; j < len; j++)
                        line[j] = (char) rng();
                /* Some lines start well so that the parser gets past the first byte. */
                if (i % 2 && len > 2)
                        line[0] = '{';
                int r = agent_msg_parse(line, len, &m, err, sizeof(err));
                cr_assert(r == 0 || r == -EINVAL, "r=%d", r);
        }
}

Test(hostile, random_mutations_of_a_report_are_accepted_whole_or_rejected_whole) {
        const char *good = report_json(NULL);
        size_t n = strlen(good);
        char line[1024];
        struct agent_msg m;
        char err[160];

        for (int i = 0; i < 20000; i++) {
                memcpy(line, good, n);
                for (int k = 0; k < 1 + (int) (rng() % 3); k++)
                        line[rng() % n] = "0123456789-.eE{}[]\",: a\\"[rng() % 24];
                int r = agent_msg_parse(line, n, &m, err, sizeof(err));
                cr_assert(r == 0 || r == -EINVAL);
                if (r == 0 && m.type == AGENT_MSG_REPORT) {
                        cr_assert_leq(m.report.available_kib, m.report.total_kib);
                        cr_assert_leq(m.report.floor_kib, m.report.total_kib);
                        cr_assert_geq(m.report.seq, 1);
                }
        }
}

Test(hostile, deep_nesting_is_rejected_without_recursing_into_it) {
        char *deep = malloc(200001);

        cr_assert(deep);
        expect_parses("{\"type\":\"bye\",\"x\":[[[[1]]]]}");
        expect_rejected("{\"type\":\"bye\",\"x\":[[[[[[[[[[[[1]]]]]]]]]]]]}", "nesting too deep");
        expect_rejected("{\"type\":\"bye\",\"x\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}}",
                        "nesting too deep");

        memset(deep, '[', 200000);
        memcpy(deep, "{\"type\":\"bye\",\"x\":", strlen("{\"type\":\"bye\",\"x\":"));
        deep[200000] = '\0';
        {
                char err[160];
                cr_assert_eq(agent_msg_parse(deep, AGENT_MSG_MAX - 1, &(struct agent_msg){ 0 }, err, sizeof(err)),
                             -EINVAL);
                cr_assert(strstr(err, "nesting too deep"), "%s", err);
        }
        cr_assert_eq(agent_msg_parse(deep, 200000, &(struct agent_msg){ 0 }, NULL, 0), -EMSGSIZE);
        free(deep);
}

Test(hostile, huge_numbers_are_out_of_range_not_wrapped) {
        expect_rejected(REPORT({ "seq", "99999999999999999999" }), "seq: above");
        expect_rejected(REPORT({ "seq", "18446744073709551615" }), "seq: above");
        expect_rejected(REPORT({ "seq", "18446744073709551616" }), "seq: above");
        expect_rejected(REPORT({ "mem.total_kib", "99999999999999999999999999999999999999" }), "mem.total_kib");
        expect_rejected(REPORT({ "seq", "1e400" }), "seq: not an integer");
        expect_rejected(REPORT({ "psi.some_avg10", "1e400" }), "psi.some_avg10: not within 0..100");
        expect_rejected(REPORT({ "psi.some_avg10", "-1e400" }), "psi.some_avg10");
        expect_rejected(REPORT({ "psi.some_avg10", "99999999999999999999" }), "psi.some_avg10");
        expect_rejected(REPORT({ "psi.some_avg10", "-99999999999999999999" }), "psi.some_avg10");
        /* So tiny it is 0: harmless. */
        cr_assert_eq(expect_parses(REPORT({ "psi.some_avg10", "1e-400" })).report.some_avg10, 0);
}

Test(hostile, negative_numbers_are_rejected) {
        expect_rejected(REPORT({ "seq", "-1" }), "seq: negative");
        expect_rejected(REPORT({ "seq", "-99999999999999999999" }), "seq: negative");
        expect_rejected(REPORT({ "mem.available_kib", "-5" }), "mem.available_kib: negative");
        expect_rejected(REPORT({ "major_faults", "-9223372036854775808" }), "major_faults: negative");
        expect_rejected(REPORT({ "psi.full_avg60", "-0.5" }), "psi.full_avg60");
        /* -0 is zero. */
        cr_assert_eq(expect_parses(REPORT({ "uptime_ms", "-0" })).report.uptime_ms, 0);
}

Test(hostile, nan_and_infinity_in_any_spelling_are_rejected) {
        static const char *values[] = { "NaN", "nan", "-NaN", "Infinity", "-Infinity", "inf", "\"NaN\"",
                                        "\"1.5\"", "\"Infinity\"", "null", "true", "[]", "{}" };

        for (size_t i = 0; i < ELEMENTSOF(values); i++) {
                expect_rejected(REPORT({ "psi.some_avg60", values[i] }), NULL);
                expect_rejected(REPORT({ "seq", values[i] }), NULL);
        }
}

Test(hostile, strings_and_fractions_are_not_integers) {
        expect_rejected(REPORT({ "seq", "\"42\"" }), "seq: not an integer");
        expect_rejected(REPORT({ "seq", "42.0" }), "seq: not an integer");
        expect_rejected(REPORT({ "seq", "4.2e1" }), "seq: not an integer");
        expect_rejected(REPORT({ "mem.total_kib", "\"1G\"" }), "mem.total_kib: not an integer");
        expect_rejected(REPORT({ "floor_kib", "true" }), "floor_kib: not an integer");
        expect_rejected(REPORT({ "psi.some_total_usec", "1.5" }), "psi.some_total_usec: not an integer");
        expect_rejected(REPORT({ "psi.some_avg10", "\"0.5\"" }), "psi.some_avg10: not a number");
}

Test(hostile, nul_bytes_in_the_line_are_rejected) {
        static const char bye_nul[] = "{\"type\":\"bye\"}\0";
        static const char mid_nul[] = "{\"type\":\"b\0ye\"}";
        static const char key_nul[] = "{\"type\":\"bye\",\"x\0\":1}";
        struct agent_msg m;
        char err[160];

        cr_assert_eq(agent_msg_parse(bye_nul, sizeof(bye_nul) - 1, &m, err, sizeof(err)), -EINVAL);
        cr_assert(strstr(err, "NUL byte at offset 14"), "%s", err);
        cr_assert_eq(agent_msg_parse(mid_nul, sizeof(mid_nul) - 1, &m, err, sizeof(err)), -EINVAL);
        cr_assert_eq(agent_msg_parse(key_nul, sizeof(key_nul) - 1, &m, err, sizeof(err)), -EINVAL);
        cr_assert_eq(agent_msg_parse("\0", 1, &m, err, sizeof(err)), -EINVAL);
        /* Escaped, it is a character like any other and gets sanitised. */
        cr_assert_str_eq(expect_parses("{\"type\":\"error\",\"error\":\"a\\u0000b\"}").error, "a?b");
}

Test(hostile, never_reads_past_len) {
        /* The object continues past len: the parser must not see it. */
        static const char line[] = "{\"type\":\"bye\"}";
        struct agent_msg m;

        cr_assert_eq(agent_msg_parse(line, sizeof(line) - 2, &m, NULL, 0), -EINVAL);
        cr_assert_eq(agent_msg_parse(line, 0, &m, NULL, 0), -EINVAL);
}

Test(hostile, reasons_fit_any_buffer) {
        struct agent_msg m;
        char tiny[8];

        cr_assert_eq(parse("{\"type\":\"nonsense-of-some-length\"}", &m, tiny, sizeof(tiny)), -EINVAL);
        cr_assert_eq(strlen(tiny), sizeof(tiny) - 1);
        cr_assert_eq(parse("{\"type\":\"x\"}", &m, NULL, 0), -EINVAL);
}

/* ---- the session ---- */

Test(session, accepts_hello_then_reports) {
        struct agent_session s;
        struct agent_msg m;
        uint64_t now;
        char err[160];

        start_session(&s, &now);
        cr_assert(s.welcomed);
        cr_assert_eq(s.protocol, 1);
        for (uint64_t seq = 1; seq <= 5; seq++) {
                const char *line = report_seq(seq, seq * 1000);
                now += USEC_PER_SEC;
                cr_assert_eq(agent_session_feed(&s, line, strlen(line), &limits_4g, now, &m, err, sizeof(err)),
                             AGENT_ACCEPT_REPORT, "%s", err);
                cr_assert_str_eq(err, "");
                cr_assert_eq(m.report.seq, seq);
        }
        cr_assert_eq(s.accepted, 6);
        cr_assert_eq(s.rejected, 0);
        cr_assert_eq(s.rate_dropped, 0);
        cr_assert_eq(s.last_seq, 5);
        cr_assert_eq(s.last_uptime_ms, 5000);
}

Test(session, hands_back_the_hello) {
        struct agent_session s = { 0 };
        struct agent_msg m;
        char err[160];

        cr_assert_eq(agent_session_feed(&s, HELLO, strlen(HELLO), &limits_4g, 1, &m, err, sizeof(err)),
                     AGENT_ACCEPT_HELLO);
        cr_assert_eq(m.type, AGENT_MSG_HELLO);
        cr_assert_str_eq(m.hello.agent, "tide-agent/0.1.0");
        /* ret_msg may be NULL. */
        cr_assert_eq(agent_session_feed(&s, HELLO, strlen(HELLO), &limits_4g, 2, NULL, NULL, 0), AGENT_ACCEPT_HELLO);
}

Test(session, rejects_a_report_before_hello) {
        struct agent_session s = { 0 };
        char err[160];

        cr_assert_eq(feed(&s, report_seq(1, 1), 1, err, sizeof(err)), AGENT_REJECT);
        cr_assert_str_eq(err, "report before hello");
        cr_assert_eq(s.rejected, 1);
        cr_assert_eq(s.accepted, 0);
}

Test(session, rejects_a_replayed_or_backward_seq) {
        struct agent_session s;
        uint64_t now;
        char err[160];

        start_session(&s, &now);
        cr_assert_eq(feed_next(&s, &now, report_seq(7, 100), err, sizeof(err)), AGENT_ACCEPT_REPORT);
        cr_assert_eq(feed_next(&s, &now, report_seq(7, 200), err, sizeof(err)), AGENT_REJECT);
        cr_assert_str_eq(err, "seq 7 not above 7");
        cr_assert_eq(feed_next(&s, &now, report_seq(5, 200), err, sizeof(err)), AGENT_REJECT);
        cr_assert_str_eq(err, "seq 5 not above 7");
        /* Gaps are fine (a report lost on the way); only order matters. */
        cr_assert_eq(feed_next(&s, &now, report_seq(20, 300), err, sizeof(err)), AGENT_ACCEPT_REPORT);
        cr_assert_eq(s.rejected, 2);
        cr_assert_eq(s.last_seq, 20);
}

Test(session, rejects_uptime_going_back_but_not_standing_still) {
        struct agent_session s;
        uint64_t now;
        char err[160];

        start_session(&s, &now);
        cr_assert_eq(feed_next(&s, &now, report_seq(1, 5000), err, sizeof(err)), AGENT_ACCEPT_REPORT);
        cr_assert_eq(feed_next(&s, &now, report_seq(2, 5000), err, sizeof(err)), AGENT_ACCEPT_REPORT);
        cr_assert_eq(feed_next(&s, &now, report_seq(3, 4999), err, sizeof(err)), AGENT_REJECT);
        cr_assert(strstr(err, "uptime_ms 4999 below 5000"), "%s", err);
        cr_assert_eq(s.last_seq, 2, "a rejected report must not move the session on");
}

Test(session, bounds_total_by_what_the_vm_can_hold_plus_slack) {
        struct agent_session s;
        uint64_t now;
        char err[160], total[32];
        uint64_t limit = limits_4g.max_total_kib + AGENT_TOTAL_SLACK_KIB;

        start_session(&s, &now);
        snprintf(total, sizeof(total), "%" PRIu64, limit);
        cr_assert_eq(feed_next(&s, &now, REPORT({ "seq", "1" }, { "mem.total_kib", total }), err, sizeof(err)),
                     AGENT_ACCEPT_REPORT, "%s", err);
        snprintf(total, sizeof(total), "%" PRIu64, limit + 1);
        cr_assert_eq(feed_next(&s, &now, REPORT({ "seq", "2" }, { "mem.total_kib", total }), err, sizeof(err)),
                     AGENT_REJECT);
        cr_assert(strstr(err, "mem.total_kib 4259841"), "%s", err);
        cr_assert(strstr(err, "4194304"), "%s", err);
        /* A rejected report does not use up its seq. */
        cr_assert_eq(feed_next(&s, &now, REPORT({ "seq", "2" }), err, sizeof(err)), AGENT_ACCEPT_REPORT, "%s", err);
}

Test(session, host_limit_near_uint64_max_does_not_wrap) {
        struct agent_session s = { 0 };
        struct agent_limits huge = { .max_total_kib = UINT64_MAX - 5 };
        const char *line = REPORT({ "seq", "1" }, { "mem.total_kib", "1125899906842624" });
        char err[160];

        cr_assert_eq(agent_session_feed(&s, HELLO, strlen(HELLO), &huge, 1, NULL, err, sizeof(err)),
                     AGENT_ACCEPT_HELLO);
        cr_assert_eq(agent_session_feed(&s, line, strlen(line), &huge, 2, NULL, err, sizeof(err)),
                     AGENT_ACCEPT_REPORT, "%s", err);
}

Test(session, rejects_a_floor_above_total) {
        struct agent_session s;
        uint64_t now;
        char err[160];

        start_session(&s, &now);
        cr_assert_eq(feed_next(&s, &now, REPORT({ "seq", "1" }, { "floor_kib", "1004001" }), err, sizeof(err)),
                     AGENT_REJECT);
        cr_assert_str_eq(err, "floor_kib: above mem.total_kib");
}

Test(session, rejects_welcome_and_error_from_a_guest) {
        struct agent_session s;
        uint64_t now;
        char err[160];

        start_session(&s, &now);
        cr_assert_eq(feed_next(&s, &now, "{\"type\":\"welcome\",\"protocol\":1,\"interval_ms\":1000}", err,
                               sizeof(err)),
                     AGENT_REJECT);
        cr_assert_str_eq(err, "tided does not accept 'welcome' from a guest");
        cr_assert_eq(feed_next(&s, &now, "{\"type\":\"error\",\"error\":\"x\"}", err, sizeof(err)), AGENT_REJECT);
        cr_assert_str_eq(err, "tided does not accept 'error' from a guest");
        cr_assert_eq(s.rejected, 2);
        cr_assert(s.welcomed, "a rejected message leaves the session as it was");
}

Test(session, a_new_hello_starts_a_new_session) {
        struct agent_session s;
        uint64_t now;
        char err[160];

        start_session(&s, &now);
        cr_assert_eq(feed_next(&s, &now, report_seq(10, 90000), err, sizeof(err)), AGENT_ACCEPT_REPORT);
        /* The guest rebooted: seq and uptime start again. */
        cr_assert_eq(feed_next(&s, &now, HELLO, err, sizeof(err)), AGENT_ACCEPT_HELLO);
        cr_assert_eq(s.last_seq, 0);
        cr_assert_eq(s.last_uptime_ms, 0);
        cr_assert_eq(feed_next(&s, &now, report_seq(1, 10), err, sizeof(err)), AGENT_ACCEPT_REPORT, "%s", err);
}

Test(session, bye_ends_the_session_until_the_next_hello) {
        struct agent_session s;
        struct agent_msg m;
        uint64_t now;
        char err[160];

        start_session(&s, &now);
        cr_assert_eq(feed_next(&s, &now, report_seq(1, 10), err, sizeof(err)), AGENT_ACCEPT_REPORT);
        now += USEC_PER_SEC;
        cr_assert_eq(agent_session_feed(&s, "{\"type\":\"bye\"}", 14, &limits_4g, now, &m, err, sizeof(err)),
                     AGENT_ACCEPT_BYE);
        cr_assert_eq(m.type, AGENT_MSG_BYE);
        cr_assert(s.said_bye);
        cr_assert_not(s.welcomed);
        cr_assert_eq(feed_next(&s, &now, report_seq(2, 20), err, sizeof(err)), AGENT_REJECT);
        cr_assert_str_eq(err, "report before hello");
        cr_assert_eq(feed_next(&s, &now, HELLO, err, sizeof(err)), AGENT_ACCEPT_HELLO);
        cr_assert_not(s.said_bye);
        cr_assert_eq(feed_next(&s, &now, report_seq(1, 5), err, sizeof(err)), AGENT_ACCEPT_REPORT);
        cr_assert_eq(s.accepted, 5);
}

Test(session, refuses_a_hello_without_a_common_version) {
        struct agent_session s;
        uint64_t now;
        char err[160];
        char reply[256];

        start_session(&s, &now);
        cr_assert_eq(feed_next(&s, &now, "{\"type\":\"hello\",\"protocol\":[2,3]}", err, sizeof(err)),
                     AGENT_REFUSE_HELLO);
        cr_assert_str_eq(err, "no common protocol version (tided speaks 1)");
        cr_assert_not(s.welcomed, "the old session ended with the new hello");
        cr_assert_eq(s.rejected, 1);
        cr_assert_eq(feed_next(&s, &now, report_seq(1, 1), err, sizeof(err)), AGENT_REJECT);
        /* What tided answers. */
        cr_assert_gt(agent_format_error(reply, sizeof(reply), "no common protocol version (tided speaks 1)"), 0);
        cr_assert_str_eq(reply, "{\"type\":\"error\",\"error\":\"no common protocol version (tided speaks 1)\"}\n");

        cr_assert_eq(feed_next(&s, &now, "{\"type\":\"hello\",\"protocol\":[1,2,3]}", err, sizeof(err)),
                     AGENT_ACCEPT_HELLO);
        cr_assert_eq(s.protocol, 1);
}

Test(session, rejects_what_does_not_parse_and_leaves_ret_msg_alone) {
        struct agent_session s;
        struct agent_msg m;
        uint64_t now;
        char err[160];
        char *big = padded_bye(5000);

        start_session(&s, &now);
        memset(&m, 0x5a, sizeof(m));
        now += USEC_PER_SEC;
        cr_assert_eq(agent_session_feed(&s, "{\"type\":", 8, &limits_4g, now, &m, err, sizeof(err)), AGENT_REJECT);
        cr_assert(err[0]);
        now += USEC_PER_SEC;
        cr_assert_eq(agent_session_feed(&s, big, strlen(big), &limits_4g, now, &m, err, sizeof(err)), AGENT_REJECT);
        cr_assert(strstr(err, "limit is 4096"), "%s", err);
        for (size_t i = 0; i < sizeof(m); i++)
                cr_assert_eq(((unsigned char *) &m)[i], 0x5a);
        cr_assert_eq(s.rejected, 2);
        free(big);
}

/* ---- the rate limit ---- */

Test(rate, a_flood_of_100_in_one_second_gets_at_most_burst_plus_rate_through) {
        struct agent_session s = { 0 };
        const uint64_t t0 = 50 * USEC_PER_SEC;
        unsigned through = 0, dropped = 0;
        char err[160];

        for (uint64_t i = 0; i < 100; i++) {
                /* 100 messages spread over [t0, t0 + 990 ms]. */
                enum agent_verdict v = feed(&s, i == 0 ? HELLO : report_seq(i, i), t0 + i * 10 * USEC_PER_MSEC, err,
                                            sizeof(err));
                if (v == AGENT_RATE_DROPPED)
                        dropped++;
                else {
                        cr_assert(v == AGENT_ACCEPT_HELLO || v == AGENT_ACCEPT_REPORT, "verdict %d: %s", v, err);
                        through++;
                }
        }
        cr_assert_leq(through, AGENT_RATE_BURST + AGENT_RATE_PER_SEC);
        /* 10 to start with, then 0.99 s x 5/s = 4.95 tokens: 4 whole ones. */
        cr_assert_eq(through, AGENT_RATE_BURST + 4);
        cr_assert_eq(dropped, 100 - through);
        cr_assert_eq(s.rate_dropped, dropped);
        cr_assert_eq(s.accepted, through);
        cr_assert_eq(s.rejected, 0);
}

Test(rate, a_burst_at_one_instant_gets_exactly_the_burst) {
        struct agent_session s = { 0 };
        char err[160];
        int through = 0;

        for (int i = 0; i < 100; i++)
                if (feed(&s, "{\"type\":\"bye\"}", 777, err, sizeof(err)) == AGENT_ACCEPT_BYE)
                        through++;
        cr_assert_eq(through, AGENT_RATE_BURST);
        cr_assert_eq(s.rate_dropped, 100 - AGENT_RATE_BURST);
        cr_assert_str_eq(err, "more than 5 messages a second");
}

Test(rate, tokens_come_back_at_five_a_second_and_stop_at_the_burst) {
        struct agent_session s = { 0 };
        char err[160];
        uint64_t t = 10 * USEC_PER_SEC;
        int through = 0;

        for (int i = 0; i < AGENT_RATE_BURST; i++)
                cr_assert_eq(feed(&s, "{\"type\":\"bye\"}", t, err, sizeof(err)), AGENT_ACCEPT_BYE);
        cr_assert_eq(feed(&s, "{\"type\":\"bye\"}", t, err, sizeof(err)), AGENT_RATE_DROPPED);
        /* 199 ms: not yet a whole token; 200 ms: one. */
        cr_assert_eq(feed(&s, "{\"type\":\"bye\"}", t + 199 * USEC_PER_MSEC, err, sizeof(err)), AGENT_RATE_DROPPED);
        cr_assert_eq(feed(&s, "{\"type\":\"bye\"}", t + 200 * USEC_PER_MSEC, err, sizeof(err)), AGENT_ACCEPT_BYE);
        /* An hour of silence buys the burst, not 18000 messages. */
        t += 3600 * USEC_PER_SEC;
        for (int i = 0; i < 100; i++)
                if (feed(&s, "{\"type\":\"bye\"}", t, err, sizeof(err)) == AGENT_ACCEPT_BYE)
                        through++;
        cr_assert_eq(through, AGENT_RATE_BURST);
}

Test(rate, a_steady_five_a_second_is_never_dropped) {
        struct agent_session s;
        uint64_t now;
        char err[160];

        start_session(&s, &now);
        for (uint64_t i = 1; i <= 1000; i++) {
                now += 200 * USEC_PER_MSEC;
                cr_assert_eq(feed(&s, report_seq(i, i), now, err, sizeof(err)), AGENT_ACCEPT_REPORT, "%" PRIu64 ": %s",
                             i, err);
        }
        cr_assert_eq(s.rate_dropped, 0);
}

Test(rate, a_clock_going_back_refills_nothing) {
        struct agent_session s = { 0 };
        char err[160];

        for (int i = 0; i < AGENT_RATE_BURST; i++)
                cr_assert_eq(feed(&s, "{\"type\":\"bye\"}", 5 * USEC_PER_SEC, err, sizeof(err)), AGENT_ACCEPT_BYE);
        cr_assert_eq(feed(&s, "{\"type\":\"bye\"}", 1 * USEC_PER_SEC, err, sizeof(err)), AGENT_RATE_DROPPED);
        /* Back to where it was: still nothing earned. */
        cr_assert_eq(feed(&s, "{\"type\":\"bye\"}", 5 * USEC_PER_SEC, err, sizeof(err)), AGENT_RATE_DROPPED);
        cr_assert_eq(feed(&s, "{\"type\":\"bye\"}", 5 * USEC_PER_SEC + 200 * USEC_PER_MSEC, err, sizeof(err)),
                     AGENT_ACCEPT_BYE);
}

Test(rate, a_clock_reading_zero_does_not_refill_every_call) {
        struct agent_session s = { 0 };
        char err[160];
        int through = 0;

        for (int i = 0; i < 50; i++)
                if (feed(&s, "{\"type\":\"bye\"}", 0, err, sizeof(err)) == AGENT_ACCEPT_BYE)
                        through++;
        cr_assert_eq(through, AGENT_RATE_BURST);
}

Test(rate, applies_before_parsing_so_garbage_costs_tokens_too) {
        struct agent_session s = { 0 };
        char err[160];

        for (int i = 0; i < AGENT_RATE_BURST; i++)
                cr_assert_eq(feed(&s, "garbage", 1, err, sizeof(err)), AGENT_REJECT);
        cr_assert_eq(feed(&s, "garbage", 1, err, sizeof(err)), AGENT_RATE_DROPPED);
        cr_assert_eq(feed(&s, HELLO, 1, err, sizeof(err)), AGENT_RATE_DROPPED);
        cr_assert_eq(s.rejected, AGENT_RATE_BURST);
        cr_assert_eq(s.rate_dropped, 2);
}

/* ---- line splitting ---- */

struct lines {
        char text[16][AGENT_MSG_MAX];
        size_t len[16];
        int n, oversized;
};

/* Pushes data in chunks of at most chunk bytes (0: all at once) and collects what comes out. */
static void push_all(struct agent_linebuf *lb, const char *data, size_t len, size_t chunk, struct lines *out) {
        size_t off = 0;

        while (off < len) {
                size_t avail = chunk ? min_u64(chunk, len - off) : len - off;
                size_t end = off + avail;

                while (off < end) {
                        const char *line = NULL;
                        size_t used = 0, line_len = 0;
                        int k = agent_linebuf_push(lb, data + off, end - off, &used, &line, &line_len);

                        cr_assert_gt(used, 0, "no progress with %zu bytes left", end - off);
                        cr_assert_leq(used, end - off);
                        off += used;
                        if (k == 1) {
                                cr_assert_lt(out->n, 16);
                                cr_assert_lt(line_len, AGENT_MSG_MAX);
                                memcpy(out->text[out->n], line, line_len);
                                out->len[out->n++] = line_len;
                        } else if (k == 2)
                                out->oversized++;
                        else
                                cr_assert_eq(k, 0);
                }
        }
}

static void assert_line(const struct lines *l, int i, const char *want) {
        cr_assert_lt(i, l->n);
        cr_assert_eq(l->len[i], strlen(want), "line %d is %zu bytes, want %zu", i, l->len[i], strlen(want));
        cr_assert(memcmp(l->text[i], want, l->len[i]) == 0, "line %d differs", i);
}

Test(linebuf, reassembles_lines_pushed_byte_by_byte) {
        static const char stream[] = HELLO "\n{\"type\":\"bye\"}\n{\"type\":\"by";
        struct agent_linebuf lb = { 0 };
        static struct lines l;

        l = (struct lines){ 0 };
        push_all(&lb, stream, strlen(stream), 1, &l);
        cr_assert_eq(l.n, 2);
        assert_line(&l, 0, HELLO);
        assert_line(&l, 1, "{\"type\":\"bye\"}");
        cr_assert_eq(lb.len, strlen("{\"type\":\"by"), "the partial line waits for more");
        push_all(&lb, "e\"}\n", 4, 1, &l);
        assert_line(&l, 2, "{\"type\":\"bye\"}");
}

Test(linebuf, returns_several_lines_from_one_push_one_at_a_time) {
        static const char stream[] = "a\nbb\nccc\n";
        struct agent_linebuf lb = { 0 };
        const char *line;
        size_t used, len;

        cr_assert_eq(agent_linebuf_push(&lb, stream, 9, &used, &line, &len), 1);
        cr_assert_eq(used, 2);
        cr_assert_eq(len, 1);
        cr_assert_eq(line[0], 'a');
        cr_assert_eq(agent_linebuf_push(&lb, stream + 2, 7, &used, &line, &len), 1);
        cr_assert_eq(used, 3);
        cr_assert(len == 2 && memcmp(line, "bb", 2) == 0);
        cr_assert_eq(agent_linebuf_push(&lb, stream + 5, 4, &used, &line, &len), 1);
        cr_assert(len == 3 && memcmp(line, "ccc", 3) == 0);
        cr_assert_eq(used, 4);
        cr_assert_eq(agent_linebuf_push(&lb, stream, 0, &used, &line, &len), 0);
        cr_assert_eq(used, 0);
}

Test(linebuf, splits_the_same_at_any_chunking) {
        static char stream[3 * 600];
        static struct lines whole, bits;
        size_t n = 0;

        for (int i = 0; i < 3; i++)
                n += (size_t) snprintf(stream + n, sizeof(stream) - n, "%s\n", report_seq((uint64_t) i + 1, 5));
        whole = (struct lines){ 0 };
        push_all(&(struct agent_linebuf){ 0 }, stream, n, 0, &whole);
        cr_assert_eq(whole.n, 3);
        for (size_t chunk = 1; chunk < 64; chunk++) {
                struct agent_linebuf lb = { 0 };
                bits = (struct lines){ 0 };
                push_all(&lb, stream, n, chunk, &bits);
                cr_assert_eq(bits.n, 3);
                for (int i = 0; i < 3; i++)
                        cr_assert(bits.len[i] == whole.len[i] && memcmp(bits.text[i], whole.text[i], bits.len[i]) == 0);
        }
}

Test(linebuf, keeps_a_carriage_return_which_the_parser_accepts) {
        struct agent_linebuf lb = { 0 };
        static struct lines l;

        l = (struct lines){ 0 };
        push_all(&lb, "{\"type\":\"bye\"}\r\n", 16, 0, &l);
        cr_assert_eq(l.n, 1);
        assert_line(&l, 0, "{\"type\":\"bye\"}\r");
        cr_assert_eq(agent_msg_parse(l.text[0], l.len[0], &(struct agent_msg){ 0 }, NULL, 0), 0);
}

Test(linebuf, skips_empty_lines) {
        struct agent_linebuf lb = { 0 };
        static struct lines l;
        size_t used;
        const char *line;
        size_t len;

        l = (struct lines){ 0 };
        push_all(&lb, "\n\n{\"type\":\"bye\"}\n\n", 18, 0, &l);
        cr_assert_eq(l.n, 1);
        assert_line(&l, 0, "{\"type\":\"bye\"}");
        cr_assert_eq(agent_linebuf_push(&lb, "\n\n\n", 3, &used, &line, &len), 0);
        cr_assert_eq(used, 3);
}

Test(linebuf, takes_a_line_of_4095_bytes_whole) {
        char *body = padded_bye(AGENT_MSG_MAX - 1);
        char *stream = malloc(AGENT_MSG_MAX + 1);
        struct agent_linebuf lb = { 0 };
        static struct lines l;

        cr_assert(stream);
        memcpy(stream, body, AGENT_MSG_MAX - 1);
        stream[AGENT_MSG_MAX - 1] = '\n';
        for (size_t chunk = 0; chunk <= 1; chunk++) {
                l = (struct lines){ 0 };
                push_all(&lb, stream, AGENT_MSG_MAX, chunk, &l);
                cr_assert_eq(l.oversized, 0);
                cr_assert_eq(l.n, 1);
                cr_assert_eq(l.len[0], AGENT_MSG_MAX - 1);
                cr_assert_eq(agent_msg_parse(l.text[0], l.len[0], &(struct agent_msg){ 0 }, NULL, 0), 0);
        }
        free(body);
        free(stream);
}

/* n bytes of line then "\n{"type":"bye"}\n": the long one must go, the bye must come through. */
static void check_oversized(size_t n, size_t chunk) {
        const char *next = "{\"type\":\"bye\"}\n";
        char *stream = malloc(n + 1 + strlen(next));
        struct agent_linebuf lb = { 0 };
        static struct lines l;

        cr_assert(stream);
        memset(stream, 'x', n);
        stream[n] = '\n';
        memcpy(stream + n + 1, next, strlen(next));
        l = (struct lines){ 0 };
        push_all(&lb, stream, n + 1 + strlen(next), chunk, &l);
        cr_assert_eq(l.oversized, 1, "%zu-byte line, chunk %zu: reported %d times", n, chunk, l.oversized);
        cr_assert_eq(l.n, 1, "%zu-byte line, chunk %zu", n, chunk);
        assert_line(&l, 0, "{\"type\":\"bye\"}");
        cr_assert_not(lb.discarding);
        free(stream);
}

Test(linebuf, drops_a_4096_byte_line_once_and_parses_the_next) {
        check_oversized(AGENT_MSG_MAX, 0);
        check_oversized(AGENT_MSG_MAX, 1);
        check_oversized(AGENT_MSG_MAX, 4096);
        check_oversized(AGENT_MSG_MAX, 4097);
}

Test(linebuf, drops_a_5000_byte_line_once_and_parses_the_next) {
        check_oversized(5000, 0);
        check_oversized(5000, 1);
        check_oversized(5000, 100);
        check_oversized(5000, 4095);
        check_oversized(1000000, 4096);
}

Test(linebuf, reports_an_endless_line_before_its_newline) {
        static char junk[AGENT_MSG_MAX * 3];
        struct agent_linebuf lb = { 0 };
        static struct lines l;

        memset(junk, 'y', sizeof(junk));
        l = (struct lines){ 0 };
        push_all(&lb, junk, sizeof(junk), 1000, &l);
        cr_assert_eq(l.oversized, 1);
        cr_assert(lb.discarding);
        cr_assert_eq(l.n, 0);
}

Test(linebuf, a_hello_after_an_oversized_line_still_opens_the_session) {
        struct agent_linebuf lb = { 0 };
        struct agent_session s = { 0 };
        static struct lines l;
        static char stream[6000];
        char err[160];
        size_t n;

        memset(stream, 'z', 5000);
        stream[5000] = '\n';
        n = 5001 + (size_t) snprintf(stream + 5001, sizeof(stream) - 5001, "%s\n", HELLO);
        l = (struct lines){ 0 };
        push_all(&lb, stream, n, 0, &l);
        cr_assert_eq(l.oversized, 1);
        cr_assert_eq(l.n, 1);
        cr_assert_eq(agent_session_feed(&s, l.text[0], l.len[0], &limits_4g, 1, NULL, err, sizeof(err)),
                     AGENT_ACCEPT_HELLO, "%s", err);
}
