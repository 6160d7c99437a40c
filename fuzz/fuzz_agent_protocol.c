/* libFuzzer target for everything a guest can reach in tided: agent_linebuf_push() and
 * agent_session_feed() on a byte stream, and agent_msg_parse() on the raw input. Besides the
 * sanitizers, it checks the promises protocol.h makes, and aborts when one breaks:
 *   - the line splitter always makes progress, never returns a line with a newline in it or one
 *     of AGENT_MSG_MAX bytes or more;
 *   - an accepted report passed every rule (welcomed, seq above the last, total within the host
 *     limit + slack, available and floor within total, psi finite 0..100);
 *   - every message is counted exactly once (accepted + rejected + rate_dropped);
 *   - reasons and guest strings are printable ASCII, so nothing a guest sends reaches a log line
 *     raw;
 *   - whatever the parser accepts, the encoders write back and the parser reads again unchanged.
 * Build and run: fuzz/run.sh. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "guest-agent/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                              \
        do {                                                                                     \
                if (!(cond)) {                                                                   \
                        fprintf(stderr, "%s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond); \
                        abort();                                                                 \
                }                                                                                \
        } while (0)

/* What tided would know about the VM: 4 GiB it can hold. */
static const struct agent_limits limits = { .max_total_kib = UINT64_C(4) * 1024 * 1024 };

static void check_printable(const char *s, size_t size) {
        size_t n = strnlen(s, size);

        CHECK(n < size); /* NUL-terminated within its buffer */
        for (size_t i = 0; i < n; i++)
                CHECK(s[i] >= 0x20 && s[i] < 0x7f);
}

static void check_report(const struct agent_report *r) {
        CHECK(r->seq >= 1);
        CHECK(r->total_kib >= 1);
        CHECK(r->available_kib <= r->total_kib);
        CHECK(r->floor_kib <= r->total_kib);
        CHECK(r->swap_free_kib <= r->swap_total_kib);
        if (r->has_psi) {
                const double avgs[] = { r->some_avg10, r->some_avg60, r->full_avg10, r->full_avg60 };
                for (size_t i = 0; i < ELEMENTSOF(avgs); i++)
                        CHECK(isfinite(avgs[i]) && avgs[i] >= 0 && avgs[i] <= 100);
        }
}

/* Encode what was parsed, parse it again: the same message must come back. psi averages go
 * through %.2f, so they may move by half a hundredth. */
static void check_round_trip(const struct agent_msg *m) {
        char buf[AGENT_MSG_MAX];
        struct agent_msg again;
        char err[160];
        int n = -1;

        switch (m->type) {
        case AGENT_MSG_HELLO:
                n = agent_format_hello(buf, sizeof(buf), m->hello.agent, m->hello.os);
                break;
        case AGENT_MSG_REPORT:
                n = agent_format_report(buf, sizeof(buf), &m->report);
                break;
        case AGENT_MSG_BYE:
                n = agent_format_bye(buf, sizeof(buf));
                break;
        case AGENT_MSG_WELCOME:
                n = agent_format_welcome(buf, sizeof(buf), m->welcome.protocol, m->welcome.interval_ms);
                break;
        case AGENT_MSG_ERROR:
                n = agent_format_error(buf, sizeof(buf), m->error);
                break;
        }
        CHECK(n > 0 && n < AGENT_MSG_MAX);
        CHECK(buf[n - 1] == '\n' && buf[n] == '\0');
        CHECK(agent_msg_parse(buf, (size_t) n - 1, &again, err, sizeof(err)) == 0);
        CHECK(again.type == m->type);
        switch (m->type) {
        case AGENT_MSG_HELLO:
                /* The encoder writes our own version list, not the guest's. */
                CHECK(again.hello.versions == 1u << AGENT_PROTOCOL_VERSION);
                CHECK(strcmp(again.hello.agent, m->hello.agent) == 0);
                CHECK(strcmp(again.hello.os, m->hello.os) == 0);
                break;
        case AGENT_MSG_REPORT: {
                const struct agent_report *a = &m->report, *b = &again.report;
                CHECK(a->seq == b->seq && a->uptime_ms == b->uptime_ms && a->total_kib == b->total_kib);
                CHECK(a->available_kib == b->available_kib && a->committed_as_kib == b->committed_as_kib);
                CHECK(a->swap_total_kib == b->swap_total_kib && a->swap_free_kib == b->swap_free_kib);
                CHECK(a->major_faults == b->major_faults && a->floor_kib == b->floor_kib);
                CHECK(a->has_psi == b->has_psi);
                if (a->has_psi) {
                        CHECK(fabs(a->some_avg10 - b->some_avg10) <= 0.0051);
                        CHECK(fabs(a->some_avg60 - b->some_avg60) <= 0.0051);
                        CHECK(fabs(a->full_avg10 - b->full_avg10) <= 0.0051);
                        CHECK(fabs(a->full_avg60 - b->full_avg60) <= 0.0051);
                        CHECK(a->some_total_usec == b->some_total_usec && a->full_total_usec == b->full_total_usec);
                }
                break;
        }
        case AGENT_MSG_BYE:
                break;
        case AGENT_MSG_WELCOME:
                CHECK(again.welcome.protocol == m->welcome.protocol);
                CHECK(again.welcome.interval_ms == m->welcome.interval_ms);
                break;
        case AGENT_MSG_ERROR:
                CHECK(strcmp(again.error, m->error) == 0);
                break;
        }
}

static void check_parsed(const struct agent_msg *m) {
        switch (m->type) {
        case AGENT_MSG_HELLO:
                check_printable(m->hello.agent, sizeof(m->hello.agent));
                check_printable(m->hello.os, sizeof(m->hello.os));
                break;
        case AGENT_MSG_REPORT:
                check_report(&m->report);
                break;
        case AGENT_MSG_WELCOME:
                CHECK(m->welcome.protocol >= 1 && m->welcome.protocol <= 31);
                CHECK(m->welcome.interval_ms >= AGENT_INTERVAL_MS_MIN &&
                      m->welcome.interval_ms <= AGENT_INTERVAL_MS_MAX);
                break;
        case AGENT_MSG_ERROR:
                check_printable(m->error, sizeof(m->error));
                break;
        case AGENT_MSG_BYE:
                break;
        }
        check_round_trip(m);
}

static void feed_line(struct agent_session *s, const char *line, size_t len, uint64_t now_usec, uint64_t *fed) {
        struct agent_session before = *s;
        struct agent_msg m;
        char err[160];
        enum agent_verdict v = agent_session_feed(s, line, len, &limits, now_usec, &m, err, sizeof(err));

        (*fed)++;
        check_printable(err, sizeof(err));
        CHECK(s->accepted + s->rejected + s->rate_dropped == *fed);
        switch (v) {
        case AGENT_ACCEPT_HELLO:
                CHECK(m.type == AGENT_MSG_HELLO && s->welcomed && s->protocol == AGENT_PROTOCOL_VERSION);
                CHECK(s->last_seq == 0 && s->last_uptime_ms == 0 && !s->said_bye);
                check_parsed(&m);
                break;
        case AGENT_ACCEPT_REPORT:
                CHECK(m.type == AGENT_MSG_REPORT && before.welcomed && s->welcomed);
                CHECK(m.report.seq > before.last_seq && m.report.seq == s->last_seq);
                CHECK(m.report.uptime_ms >= before.last_uptime_ms && m.report.uptime_ms == s->last_uptime_ms);
                CHECK(m.report.total_kib <= limits.max_total_kib + AGENT_TOTAL_SLACK_KIB);
                check_parsed(&m);
                break;
        case AGENT_ACCEPT_BYE:
                CHECK(m.type == AGENT_MSG_BYE && s->said_bye && !s->welcomed);
                break;
        case AGENT_REJECT:
        case AGENT_REFUSE_HELLO:
                CHECK(err[0] != '\0');
                CHECK(s->rejected == before.rejected + 1);
                if (v == AGENT_REJECT) /* a rejected message changes nothing but the counter */
                        CHECK(s->welcomed == before.welcomed && s->last_seq == before.last_seq &&
                              s->last_uptime_ms == before.last_uptime_ms && s->said_bye == before.said_bye);
                else
                        CHECK(!s->welcomed);
                break;
        case AGENT_RATE_DROPPED:
                CHECK(s->rate_dropped == before.rate_dropped + 1);
                CHECK(s->welcomed == before.welcomed && s->last_seq == before.last_seq);
                break;
        default:
                CHECK(!"unknown verdict");
        }
        CHECK(s->tokens <= AGENT_RATE_BURST);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *) data;
        struct agent_linebuf lb = { 0 };
        struct agent_session s = { 0 };
        struct agent_msg m;
        char err[160];
        uint64_t now_usec = 1, fed = 0, rng;
        size_t off = 0;
        int r;

        /* The whole input as one line. */
        r = agent_msg_parse(text, size, &m, err, sizeof(err));
        CHECK(r == 0 || r == -EINVAL || r == -EMSGSIZE || r == -ENOMEM);
        CHECK(r != -EMSGSIZE || size >= AGENT_MSG_MAX);
        if (r == 0)
                check_parsed(&m);
        else
                check_printable(err, sizeof(err));

        /* The input as a stream, in chunks whose sizes and the time between them come from a
         * generator seeded by the input: the same input always replays the same way, and
         * different inputs split differently (byte by byte, across newlines, huge reads). */
        rng = size * UINT64_C(0x9e3779b97f4a7c15) + (size ? data[0] : 0);
        while (off < size) {
                size_t chunk;

                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                chunk = 1 + (size_t) (rng % 97 == 0 ? rng % 20000 : rng % 300);
                chunk = min_u64(chunk, size - off);
                /* Anything from a burst at one instant to a pause long enough to refill. */
                now_usec += (rng >> 20) % 4 == 0 ? 0 : (rng >> 24) % (3 * USEC_PER_SEC / 10);

                for (size_t end = off + chunk; off < end;) {
                        const char *line = NULL;
                        size_t used = 0, line_len = 0;
                        int k = agent_linebuf_push(&lb, text + off, end - off, &used, &line, &line_len);

                        CHECK(k == 0 || k == 1 || k == 2);
                        CHECK(used >= 1 && used <= end - off);
                        CHECK(lb.len < AGENT_MSG_MAX);
                        off += used;
                        if (k == 1) {
                                CHECK(line_len >= 1 && line_len < AGENT_MSG_MAX);
                                CHECK(!memchr(line, '\n', line_len));
                                feed_line(&s, line, line_len, now_usec, &fed);
                        }
                }
        }
        return 0;
}
