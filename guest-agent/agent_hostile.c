#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/macro.h"
#include "guest-agent/agent_hostile.h"

static const char *const names[] = {
        [AGENT_HOSTILE_NONE] = "none",       [AGENT_HOSTILE_LIE] = "lie",       [AGENT_HOSTILE_FLOOD] = "flood",
        [AGENT_HOSTILE_GARBAGE] = "garbage", [AGENT_HOSTILE_REPLAY] = "replay",
};

int agent_hostile_parse(const char *s, enum agent_hostile *ret) {
        for (size_t i = 0; s && i < ELEMENTSOF(names); i++)
                if (strcmp(s, names[i]) == 0) {
                        *ret = (enum agent_hostile) i;
                        return 0;
                }
        return -EINVAL;
}

const char *agent_hostile_name(enum agent_hostile h) {
        return (size_t) h < ELEMENTSOF(names) ? names[h] : "?";
}

/* xorshift64*: enough to vary the garbage; nothing here needs to be unpredictable. */
static uint64_t rnd(uint64_t *state) {
        uint64_t x = *state;

        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        return x * UINT64_C(2685821657736338717);
}

static size_t rnd_below(uint64_t *state, size_t n) {
        return n ? (size_t) (rnd(state) % n) : 0;
}

/* Messages a careless or malicious agent might send; each must be refused whole by tided. */
static const char *const broken[] = {
        "{\"type\":\"report\",\"seq\":",
        "{\"type\":\"report\"}",
        "{\"type\":\"report\",\"seq\":\"one\",\"uptime_ms\":1}",
        "{\"type\":\"report\",\"seq\":-1,\"uptime_ms\":-5,\"mem\":{\"total_kib\":-1}}",
        "{\"type\":\"report\",\"seq\":1e300,\"uptime_ms\":1.5}",
        "{\"type\":\"report\",\"seq\":18446744073709551616,\"uptime_ms\":0}",
        "{\"type\":\"hello\",\"protocol\":\"1\",\"agent\":123}",
        "{\"type\":\"hello\",\"protocol\":[],\"agent\":\"\\u0000\\u001b[2J\"}",
        "{\"type\":\"welcome\",\"protocol\":1,\"interval_ms\":1}",
        "{\"type\":\"no-such-type\"}",
        "{\"type\":null}",
        "[\"type\",\"report\"]",
        "\"just a string\"",
        "null",
        "{}",
        "{\"type\":\"bye\"",
        "}{",
        "{\"type\":\"report\",\"psi\":{\"some_avg10\":NaN,\"some_avg60\":Infinity}}",
        "\xff\xfe{\"type\":\"hello\"}",
        "{\"type\":\"hel\xc0\xafo\"}",
};

static size_t put(char *buf, size_t len, size_t at, const char *s, size_t n) {
        if (at >= len)
                return at;
        n = min_u64(n, len - at);
        memcpy(buf + at, s, n);
        return at + n;
}

size_t agent_garbage_line(uint64_t *state, const struct agent_report *honest, char *buf, size_t len) {
        size_t n = 0, want;
        char good[AGENT_MSG_MAX];
        int k;

        /* Room for the newline is kept in every branch. */
        if (len < 2)
                return 0;
        len = min_u64(len, AGENT_GARBAGE_MAX) - 1;

        switch (rnd_below(state, 7)) {
        case 0: /* random bytes, NULs and high bytes included, but no newline until the end */
                want = 1 + rnd_below(state, 300);
                for (; n < want && n < len; n++) {
                        char c = (char) (rnd(state) & 0xff);

                        buf[n] = c == '\n' ? '\0' : c;
                }
                break;
        case 1: /* a known broken message */ {
                const char *b = broken[rnd_below(state, ELEMENTSOF(broken))];

                n = put(buf, len, 0, b, strlen(b));
                break;
        }
        case 2: /* an honest report cut short */
                /* good ends in "}\n": keeping at most what precedes the last brace leaves an
                 * object that never closes */
                k = agent_format_report(good, sizeof(good), honest);
                if (k > 2)
                        n = put(buf, len, 0, good, 1 + rnd_below(state, (size_t) k - 2));
                break;
        case 3: /* oversized: a report padded past AGENT_MSG_MAX, up to three times over */
                n = put(buf, len, 0, "{\"type\":\"report\",\"pad\":\"", 25);
                want = AGENT_MSG_MAX + rnd_below(state, 2 * AGENT_MSG_MAX - 64);
                while (n < want && n < len)
                        buf[n++] = (char) ('a' + rnd_below(state, 26));
                n = put(buf, len, n, "\"}", 2);
                break;
        case 4: /* deep nesting, for parsers that recurse */
                want = 1000 + rnd_below(state, 2000);
                while (n < want && n < len)
                        buf[n++] = '[';
                break;
        case 5: /* a well-formed report whose values are out of range */
                n = (size_t) snprintf(buf, len,
                                      "{\"type\":\"report\",\"seq\":%llu,\"uptime_ms\":%llu,"
                                      "\"mem\":{\"total_kib\":1000,\"available_kib\":2000,\"committed_as_kib\":0,"
                                      "\"swap_total_kib\":0,\"swap_free_kib\":5},"
                                      "\"psi\":{\"some_avg10\":250.0,\"some_avg60\":-1,\"full_avg10\":0,"
                                      "\"full_avg60\":0,\"some_total_usec\":0,\"full_total_usec\":0},"
                                      "\"major_faults\":0,\"floor_kib\":999999}",
                                      (unsigned long long) honest->seq, (unsigned long long) honest->uptime_ms);
                n = min_u64(n, len);
                break;
        default: /* an empty line */
                break;
        }

        buf[n++] = '\n';
        return n;
}
