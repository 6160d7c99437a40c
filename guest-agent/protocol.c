/* The tide-agent protocol: docs/PROTOCOL.md is the specification, protocol.h the contract.
 *
 * The parser is the only code in tided that sees bytes a guest chose, so it is written to reject
 * first and believe last: the line is bounded and NUL-free before json-c sees it, json-c runs
 * strict, UTF-8-validating and depth-limited, every field is checked for type and range before it
 * is copied out, and a message is taken whole or not at all. The encoders are plain snprintf():
 * tide-agent is a static binary and must not drag a JSON library in just to write five lines. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "common/macro.h"
#include "guest-agent/protocol.h"

/* A report nests two levels (report > mem); unknown fields a newer agent adds may nest a little
 * deeper. Anything past this is not a tide-agent message, and a small limit keeps json-c's
 * recursion and allocations bounded whatever the guest sends. */
#define AGENT_JSON_DEPTH 8

/* seq and uptime_ms have no documented ceiling, so they get the largest value json-c returns
 * unambiguously: it saturates an overflowing number to INT64_MAX, so INT64_MAX itself cannot be
 * told apart from "too big" and is refused. (The other ranges are in protocol.h.) */
#define AGENT_COUNTER_MAX ((uint64_t) INT64_MAX - 1)
#define AGENT_PERCENT_MAX 100.0
/* Protocol versions live in an unsigned bitmask (bit v = version v). */
#define AGENT_VERSION_BITS 31
/* The versions this build of tided speaks. */
#define AGENT_VERSIONS_SPOKEN (1u << AGENT_PROTOCOL_VERSION)
/* What the receiving struct agent_msg keeps of each string, without the NUL. */
#define AGENT_AGENT_MAX (sizeof(((struct agent_msg *) NULL)->hello.agent) - 1)
#define AGENT_OS_MAX (sizeof(((struct agent_msg *) NULL)->hello.os) - 1)
#define AGENT_ERROR_MAX (sizeof(((struct agent_msg *) NULL)->error) - 1)
/* How much of a guest-chosen string (an unknown type) an error message quotes. */
#define AGENT_QUOTE_MAX 32

static void json_object_putp(struct json_object **o) {
        json_object_put(*o);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
        va_list ap;

        if (!err || errlen == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
}

/* Guest strings end up in log lines and in tidectl's output: only printable ASCII is kept, so a
 * guest cannot inject terminal escapes, newlines or invalid UTF-8 there. Every other byte becomes
 * '?', which shows that something was there. dst always ends up NUL-terminated. */
static void copy_printable(char *dst, size_t dstlen, const char *src, size_t srclen) {
        size_t n = min_u64(srclen, dstlen - 1);

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) src[i];
                dst[i] = c >= 0x20 && c < 0x7f ? (char) c : '?';
        }
        dst[n] = '\0';
}

/* Looks key up in obj and checks its type: t, or also t_alt (pass t twice for one type).
 * Returns 1 and the value; 0 when absent and optional; -EINVAL with err naming "<prefix><key>:
 * missing" or "<prefix><key>: not <what>". */
static int typed_field(struct json_object *obj, const char *prefix, const char *key, bool required, json_type t,
                       json_type t_alt, const char *what, struct json_object **ret, char *err, size_t errlen) {
        struct json_object *v;

        if (!json_object_object_get_ex(obj, key, &v)) {
                if (!required)
                        return 0;
                set_err(err, errlen, "%s%s: missing", prefix, key);
                return -EINVAL;
        }
        if (!json_object_is_type(v, t) && !json_object_is_type(v, t_alt)) {
                set_err(err, errlen, "%s%s: not %s", prefix, key, what);
                return -EINVAL;
        }
        *ret = v;
        return 1;
}

/* An unsigned integer field: a JSON integer (1.0 and 1e3 are not), min..max. Returns 1 and sets
 * *ret, 0 when absent and optional (*ret untouched), -EINVAL with err naming "<prefix><key>". */
static int get_u64(struct json_object *obj, const char *prefix, const char *key, bool required, uint64_t min,
                   uint64_t max, uint64_t *ret, char *err, size_t errlen) {
        struct json_object *v;
        int64_t i;
        int r = typed_field(obj, prefix, key, required, json_type_int, json_type_int, "an integer", &v, err, errlen);

        if (r <= 0)
                return r;
        /* json-c keeps numbers above INT64_MAX as uint64 and saturates anything beyond 64 bits;
         * json_object_get_int64() folds all of those onto INT64_MAX (and too-negative ones onto
         * INT64_MIN), and every max we accept is below INT64_MAX, so this one comparison covers
         * overflow without relying on errno surviving the tokener. */
        i = json_object_get_int64(v);
        if (i < 0) {
                set_err(err, errlen, "%s%s: negative", prefix, key);
                return -EINVAL;
        }
        if ((uint64_t) i < min) {
                set_err(err, errlen, "%s%s: below %" PRIu64, prefix, key, min);
                return -EINVAL;
        }
        if (i == INT64_MAX || (uint64_t) i > max) {
                set_err(err, errlen, "%s%s: above %" PRIu64, prefix, key, max);
                return -EINVAL;
        }
        *ret = (uint64_t) i;
        return 1;
}

/* A PSI average: an integer or a fraction, finite, 0..100. Required (psi is all or nothing). */
static int get_percent(struct json_object *obj, const char *prefix, const char *key, double *ret, char *err,
                       size_t errlen) {
        struct json_object *v;
        double d;
        int r = typed_field(obj, prefix, key, true, json_type_double, json_type_int, "a number", &v, err, errlen);

        if (r < 0)
                return r;
        /* json-c takes NaN and Infinity even in strict mode, and turns 1e400 into inf. */
        d = json_object_get_double(v);
        if (!isfinite(d) || d < 0 || d > AGENT_PERCENT_MAX) {
                set_err(err, errlen, "%s%s: not within 0..100", prefix, key);
                return -EINVAL;
        }
        *ret = d;
        return 0;
}

/* A nested object. Returns 1 and *ret, 0 when absent and optional, -EINVAL otherwise. */
static int get_object(struct json_object *obj, const char *key, bool required, struct json_object **ret, char *err,
                      size_t errlen) {
        return typed_field(obj, "", key, required, json_type_object, json_type_object, "an object", ret, err, errlen);
}

/* A string, sanitised into dst (see copy_printable). Returns 1, 0 when absent and optional. */
static int get_string(struct json_object *obj, const char *key, bool required, char *dst, size_t dstlen, char *err,
                      size_t errlen) {
        struct json_object *v;
        int r = typed_field(obj, "", key, required, json_type_string, json_type_string, "a string", &v, err, errlen);

        if (r <= 0)
                return r;
        /* The length, not strlen(): "\u0000" is legal JSON and must not cut the string short
         * silently; it becomes '?' like any other control character. */
        copy_printable(dst, dstlen, json_object_get_string(v), (size_t) json_object_get_string_len(v));
        return 1;
}

static int parse_hello(struct json_object *obj, struct agent_msg *m, char *err, size_t errlen) {
        struct json_object *arr;
        size_t n;
        int r;

        if ((r = typed_field(obj, "", "protocol", true, json_type_array, json_type_array, "an array", &arr, err,
                             errlen)) < 0)
                return r;
        n = json_object_array_length(arr);
        if (n < 1 || n > AGENT_VERSION_BITS) {
                set_err(err, errlen, "protocol: must list 1 to %d versions", AGENT_VERSION_BITS);
                return -EINVAL;
        }
        m->hello.versions = 0;
        for (size_t i = 0; i < n; i++) {
                struct json_object *v = json_object_array_get_idx(arr, i);
                int64_t ver;

                if (!json_object_is_type(v, json_type_int)) {
                        set_err(err, errlen, "protocol[%zu]: not an integer", i);
                        return -EINVAL;
                }
                ver = json_object_get_int64(v);
                if (ver < 1) {
                        set_err(err, errlen, "protocol[%zu]: versions start at 1", i);
                        return -EINVAL;
                }
                /* A version past what the bitmask holds is one this tided cannot speak anyway.
                 * Ignoring it (rather than rejecting the hello) lets a future agent that lists
                 * [1, 40] still fall back to 1; [40] alone ends as "no common version". */
                if (ver <= AGENT_VERSION_BITS)
                        m->hello.versions |= 1u << ver;
        }
        m->hello.agent[0] = m->hello.os[0] = '\0';
        r = get_string(obj, "agent", false, m->hello.agent, sizeof(m->hello.agent), err, errlen);
        if (r < 0)
                return r;
        r = get_string(obj, "os", false, m->hello.os, sizeof(m->hello.os), err, errlen);
        if (r < 0)
                return r;
        return 0;
}

static int parse_report(struct json_object *obj, struct agent_msg *m, char *err, size_t errlen) {
        struct agent_report *rep = &m->report;
        struct json_object *mem, *psi;
        int r;

        *rep = (struct agent_report){ 0 };
        if ((r = get_u64(obj, "", "seq", true, 1, AGENT_COUNTER_MAX, &rep->seq, err, errlen)) < 0 ||
            (r = get_u64(obj, "", "uptime_ms", true, 0, AGENT_COUNTER_MAX, &rep->uptime_ms, err, errlen)) < 0 ||
            (r = get_object(obj, "mem", true, &mem, err, errlen)) < 0 ||
            (r = get_u64(mem, "mem.", "total_kib", true, 1, AGENT_KIB_MAX, &rep->total_kib, err, errlen)) < 0 ||
            (r = get_u64(mem, "mem.", "available_kib", true, 0, AGENT_KIB_MAX, &rep->available_kib, err, errlen)) < 0 ||
            (r = get_u64(mem, "mem.", "committed_as_kib", false, 0, AGENT_KIB_MAX, &rep->committed_as_kib, err,
                         errlen)) < 0 ||
            (r = get_u64(mem, "mem.", "swap_total_kib", false, 0, AGENT_KIB_MAX, &rep->swap_total_kib, err,
                         errlen)) < 0 ||
            (r = get_u64(mem, "mem.", "swap_free_kib", false, 0, AGENT_KIB_MAX, &rep->swap_free_kib, err, errlen)) <
                    0 ||
            (r = get_u64(obj, "", "major_faults", false, 0, AGENT_MAJOR_FAULTS_MAX, &rep->major_faults, err,
                         errlen)) < 0 ||
            (r = get_u64(obj, "", "floor_kib", true, 0, AGENT_KIB_MAX, &rep->floor_kib, err, errlen)) < 0)
                return r;

        r = get_object(obj, "psi", false, &psi, err, errlen);
        if (r < 0)
                return r;
        if (r > 0) {
                /* All six or none: a half-filled psi would be read as "no stall" where the guest
                 * simply did not say. */
                if ((r = get_percent(psi, "psi.", "some_avg10", &rep->some_avg10, err, errlen)) < 0 ||
                    (r = get_percent(psi, "psi.", "some_avg60", &rep->some_avg60, err, errlen)) < 0 ||
                    (r = get_percent(psi, "psi.", "full_avg10", &rep->full_avg10, err, errlen)) < 0 ||
                    (r = get_percent(psi, "psi.", "full_avg60", &rep->full_avg60, err, errlen)) < 0 ||
                    (r = get_u64(psi, "psi.", "some_total_usec", true, 0, AGENT_STALL_USEC_MAX, &rep->some_total_usec,
                                 err, errlen)) < 0 ||
                    (r = get_u64(psi, "psi.", "full_total_usec", true, 0, AGENT_STALL_USEC_MAX, &rep->full_total_usec,
                                 err, errlen)) < 0)
                        return r;
                rep->has_psi = true;
        }

        if (rep->available_kib > rep->total_kib) {
                set_err(err, errlen, "mem.available_kib: above mem.total_kib");
                return -EINVAL;
        }
        if (rep->swap_free_kib > rep->swap_total_kib) {
                set_err(err, errlen, "mem.swap_free_kib: above mem.swap_total_kib");
                return -EINVAL;
        }
        if (rep->floor_kib > rep->total_kib) {
                set_err(err, errlen, "floor_kib: above mem.total_kib");
                return -EINVAL;
        }
        return 0;
}

static int parse_welcome(struct json_object *obj, struct agent_msg *m, char *err, size_t errlen) {
        uint64_t protocol = 0;
        int r;

        if ((r = get_u64(obj, "", "protocol", true, 1, AGENT_VERSION_BITS, &protocol, err, errlen)) < 0 ||
            (r = get_u64(obj, "", "interval_ms", true, AGENT_INTERVAL_MS_MIN, AGENT_INTERVAL_MS_MAX,
                         &m->welcome.interval_ms, err, errlen)) < 0)
                return r;
        m->welcome.protocol = (unsigned) protocol;
        return 0;
}

static bool is_json_space(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int agent_msg_parse(const char *line, size_t len, struct agent_msg *ret, char *err, size_t errlen) {
        _cleanup_(json_object_putp) struct json_object *obj = NULL;
        struct json_tokener *tok;
        enum json_tokener_error jerr;
        struct json_object *type;
        struct agent_msg m = { 0 };
        const char *t, *nul;
        size_t end, i;
        int r;

        if (len >= AGENT_MSG_MAX) {
                set_err(err, errlen, "message of %zu bytes, the limit is %d with the newline", len + 1,
                        AGENT_MSG_MAX);
                return -EMSGSIZE;
        }
        /* A raw NUL has no place in JSON text (strings escape it as \u0000), and json-c takes one
         * as the end of input in places, so what it parsed might not be what was sent. */
        nul = len > 0 ? memchr(line, '\0', len) : NULL;
        if (nul) {
                set_err(err, errlen, "NUL byte at offset %zu", (size_t) (nul - line));
                return -EINVAL;
        }
        for (i = 0; i < len && is_json_space(line[i]); i++)
                ;
        if (i == len) {
                set_err(err, errlen, "empty line");
                return -EINVAL;
        }
        /* Checked up front because json-c cannot tell where a bare number or literal ends
         * without a terminator, and would call "null" unfinished. */
        if (line[i] != '{') {
                set_err(err, errlen, "not a JSON object");
                return -EINVAL;
        }

        tok = json_tokener_new_ex(AGENT_JSON_DEPTH);
        if (!tok)
                return -ENOMEM;
        /* Strict: no comments, trailing commas, leading zeros, TRUE, or a second value glued on;
         * UTF-8 as the spec says, so no invalid sequence ever reaches a log line. */
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        obj = json_tokener_parse_ex(tok, line, (int) len);
        jerr = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        if (!obj) {
                if (jerr == json_tokener_continue || jerr == json_tokener_success)
                        set_err(err, errlen, "invalid JSON: the line ends inside a value");
                else
                        set_err(err, errlen, "invalid JSON at byte %zu: %s", end, json_tokener_error_desc(jerr));
                return -EINVAL;
        }
        /* Strict mode already refuses most trailing bytes; checking here as well keeps that true
         * whatever a future json-c decides "strict" means. Trailing whitespace (a '\r' from a CRLF
         * writer included) is fine. */
        for (i = end; i < len; i++)
                if (!is_json_space(line[i])) {
                        set_err(err, errlen, "invalid JSON: bytes after the object at byte %zu", i);
                        return -EINVAL;
                }
        if (!json_object_is_type(obj, json_type_object)) {
                set_err(err, errlen, "not a JSON object");
                return -EINVAL;
        }

        if (typed_field(obj, "", "type", true, json_type_string, json_type_string, "a string", &type, err, errlen) < 0)
                return -EINVAL;
        t = json_object_get_string(type);
        if ((size_t) json_object_get_string_len(type) != strlen(t))
                t = ""; /* "report\u0000x" is not "report" */
        if (streq(t, "hello")) {
                m.type = AGENT_MSG_HELLO;
                r = parse_hello(obj, &m, err, errlen);
        } else if (streq(t, "report")) {
                m.type = AGENT_MSG_REPORT;
                r = parse_report(obj, &m, err, errlen);
        } else if (streq(t, "bye")) {
                m.type = AGENT_MSG_BYE;
                r = 0;
        } else if (streq(t, "welcome")) {
                m.type = AGENT_MSG_WELCOME;
                r = parse_welcome(obj, &m, err, errlen);
        } else if (streq(t, "error")) {
                m.type = AGENT_MSG_ERROR;
                r = get_string(obj, "error", true, m.error, sizeof(m.error), err, errlen);
        } else {
                char quoted[AGENT_QUOTE_MAX + 1];

                copy_printable(quoted, sizeof(quoted), json_object_get_string(type),
                               (size_t) json_object_get_string_len(type));
                set_err(err, errlen, "type: unknown '%s'", quoted);
                r = -EINVAL;
        }
        if (r < 0)
                return r;
        *ret = m;
        return 0;
}

/* ---- encoders ---- */

/* Appends to a fixed buffer; remembers overflow so that each encoder checks once, at the end. */
struct out {
        char *buf;
        size_t len, pos;
        bool overflow;
};

static void out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct out *o, const char *fmt, ...) {
        va_list ap;
        int n;

        if (o->overflow)
                return;
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->pos, o->len - o->pos, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= o->len - o->pos) {
                o->overflow = true;
                return;
        }
        o->pos += (size_t) n;
}

/* A JSON string of at most max bytes of s. Only printable ASCII goes out (anything else becomes
 * '?', as the parser would make it anyway), so the only escapes needed are for '"' and '\'. The
 * cut bounds every line we write far below AGENT_MSG_MAX whatever the caller passes. */
static void out_string(struct out *o, const char *s, size_t max) {
        out_printf(o, "\"");
        for (size_t i = 0; i < max && s[i] && !o->overflow; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == '"' || c == '\\')
                        out_printf(o, "\\%c", c);
                else
                        out_printf(o, "%c", c >= 0x20 && c < 0x7f ? c : '?');
        }
        out_printf(o, "\"");
}

static int out_finish(struct out *o) {
        out_printf(o, "\n");
        if (o->overflow) {
                if (o->len > 0)
                        o->buf[0] = '\0';
                return -ENOBUFS;
        }
        return (int) o->pos;
}

int agent_format_hello(char *buf, size_t len, const char *agent_version, const char *os) {
        struct out o = { .buf = buf, .len = len, .overflow = !buf || len == 0 };

        out_printf(&o, "{\"type\":\"hello\",\"protocol\":[%d]", AGENT_PROTOCOL_VERSION);
        if (agent_version) {
                out_printf(&o, ",\"agent\":");
                out_string(&o, agent_version, AGENT_AGENT_MAX);
        }
        if (os) {
                out_printf(&o, ",\"os\":");
                out_string(&o, os, AGENT_OS_MAX);
        }
        out_printf(&o, "}");
        return out_finish(&o);
}

int agent_format_report(char *buf, size_t len, const struct agent_report *r) {
        struct out o = { .buf = buf, .len = len, .overflow = !buf || len == 0 };

        /* %.2f would print "nan" or "inf", which is not JSON. (It also follows LC_NUMERIC: the
         * agent never calls setlocale(), so the decimal point stays a '.'.) */
        if (r->has_psi && !(isfinite(r->some_avg10) && isfinite(r->some_avg60) && isfinite(r->full_avg10) &&
                            isfinite(r->full_avg60)))
                return -EINVAL;

        out_printf(&o,
                   "{\"type\":\"report\",\"seq\":%" PRIu64 ",\"uptime_ms\":%" PRIu64 ",\"mem\":{\"total_kib\":%" PRIu64
                   ",\"available_kib\":%" PRIu64 ",\"committed_as_kib\":%" PRIu64 ",\"swap_total_kib\":%" PRIu64
                   ",\"swap_free_kib\":%" PRIu64 "}",
                   r->seq, r->uptime_ms, r->total_kib, r->available_kib, r->committed_as_kib, r->swap_total_kib,
                   r->swap_free_kib);
        if (r->has_psi)
                out_printf(&o,
                           ",\"psi\":{\"some_avg10\":%.2f,\"some_avg60\":%.2f,\"full_avg10\":%.2f,\"full_avg60\":%.2f,"
                           "\"some_total_usec\":%" PRIu64 ",\"full_total_usec\":%" PRIu64 "}",
                           r->some_avg10, r->some_avg60, r->full_avg10, r->full_avg60, r->some_total_usec,
                           r->full_total_usec);
        out_printf(&o, ",\"major_faults\":%" PRIu64 ",\"floor_kib\":%" PRIu64 "}", r->major_faults, r->floor_kib);
        return out_finish(&o);
}

int agent_format_bye(char *buf, size_t len) {
        struct out o = { .buf = buf, .len = len, .overflow = !buf || len == 0 };

        out_printf(&o, "{\"type\":\"bye\"}");
        return out_finish(&o);
}

int agent_format_welcome(char *buf, size_t len, unsigned protocol, uint64_t interval_ms) {
        struct out o = { .buf = buf, .len = len, .overflow = !buf || len == 0 };

        out_printf(&o, "{\"type\":\"welcome\",\"protocol\":%u,\"interval_ms\":%" PRIu64 "}", protocol, interval_ms);
        return out_finish(&o);
}

int agent_format_error(char *buf, size_t len, const char *message) {
        struct out o = { .buf = buf, .len = len, .overflow = !buf || len == 0 };

        out_printf(&o, "{\"type\":\"error\",\"error\":");
        out_string(&o, message ? message : "", AGENT_ERROR_MAX);
        out_printf(&o, "}");
        return out_finish(&o);
}

/* hv_balloon works in pages; KiB gives the same line. Below 16 MiB the formula (8 MiB + half)
 * would exceed the RAM itself, and tided refuses floor_kib > mem.total_kib, so the floor is
 * capped at the total. */
uint64_t agent_floor_kib(uint64_t total_kib) {
        uint64_t floor;

        if (total_kib < 128 * KIB_PER_MIB)
                floor = 8 * KIB_PER_MIB + total_kib / 2;
        else if (total_kib < 512 * KIB_PER_MIB)
                floor = 40 * KIB_PER_MIB + total_kib / 4;
        else if (total_kib < 2 * KIB_PER_GIB)
                floor = 104 * KIB_PER_MIB + total_kib / 8;
        else if (total_kib < 8 * KIB_PER_GIB)
                floor = 232 * KIB_PER_MIB + total_kib / 16;
        else
                floor = 488 * KIB_PER_MIB + total_kib / 32;
        return min_u64(floor, total_kib);
}

/* ---- tided's session ---- */

/* Takes one token. The bucket starts full so an agent's hello and first reports after a
 * (re)connect are never dropped; refill_usec == 0 means "never filled", so a clock that reads 0
 * is stored as 1 rather than making every call look like the first (an endless refill). A clock
 * going backwards refills nothing. */
static bool rate_take(struct agent_session *s, uint64_t now_usec) {
        if (s->refill_usec == 0) {
                s->tokens = AGENT_RATE_BURST;
                s->refill_usec = max_u64(now_usec, 1);
        } else if (now_usec > s->refill_usec) {
                double t = s->tokens + (double) (now_usec - s->refill_usec) * AGENT_RATE_PER_SEC / USEC_PER_SEC;
                s->tokens = t < AGENT_RATE_BURST ? t : AGENT_RATE_BURST;
                s->refill_usec = now_usec;
        }
        /* Refills arrive in fractions (0.05 token per 10 ms); the epsilon keeps twenty of them
         * worth one whole token despite binary rounding. */
        if (s->tokens < 1.0 - 1e-9)
                return false;
        s->tokens -= 1.0;
        return true;
}

static uint64_t sat_add_u64(uint64_t a, uint64_t b) {
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static const char *type_name(enum agent_msg_type t) {
        switch (t) {
        case AGENT_MSG_HELLO:
                return "hello";
        case AGENT_MSG_REPORT:
                return "report";
        case AGENT_MSG_BYE:
                return "bye";
        case AGENT_MSG_WELCOME:
                return "welcome";
        case AGENT_MSG_ERROR:
                return "error";
        }
        return "?";
}

static enum agent_verdict session_reject(struct agent_session *s) {
        s->rejected++;
        return AGENT_REJECT;
}

enum agent_verdict agent_session_feed(struct agent_session *s, const char *line, size_t len,
                                      const struct agent_limits *limits, uint64_t now_usec, struct agent_msg *ret_msg,
                                      char *err, size_t errlen) {
        struct agent_msg m;
        unsigned common;

        assert(s);
        assert(limits);
        set_err(err, errlen, "%s", "");

        /* Before parsing: a flood must cost tided as little as possible. */
        if (!rate_take(s, now_usec)) {
                s->rate_dropped++;
                set_err(err, errlen, "more than %d messages a second", AGENT_RATE_PER_SEC);
                return AGENT_RATE_DROPPED;
        }
        if (agent_msg_parse(line, len, &m, err, errlen) < 0)
                return session_reject(s);

        switch (m.type) {
        case AGENT_MSG_HELLO:
                /* Whatever follows, the agent has (re)started: the old session is over. */
                s->welcomed = false;
                s->said_bye = false;
                s->last_seq = 0;
                s->last_uptime_ms = 0;
                common = m.hello.versions & AGENT_VERSIONS_SPOKEN;
                if (common == 0) {
                        /* Counted as rejected so that tidectl flags a VM whose agent tided
                         * cannot talk to; the text is also the error reply to the agent. */
                        set_err(err, errlen, "no common protocol version (tided speaks %d)", AGENT_PROTOCOL_VERSION);
                        s->rejected++;
                        return AGENT_REFUSE_HELLO;
                }
                s->protocol = 31u - (unsigned) __builtin_clz(common);
                s->welcomed = true;
                break;

        case AGENT_MSG_REPORT:
                if (!s->welcomed) {
                        set_err(err, errlen, "report before hello");
                        return session_reject(s);
                }
                if (m.report.seq <= s->last_seq) {
                        set_err(err, errlen, "seq %" PRIu64 " not above %" PRIu64, m.report.seq, s->last_seq);
                        return session_reject(s);
                }
                if (m.report.uptime_ms < s->last_uptime_ms) {
                        set_err(err, errlen, "uptime_ms %" PRIu64 " below %" PRIu64 " of the previous report",
                                m.report.uptime_ms, s->last_uptime_ms);
                        return session_reject(s);
                }
                if (m.report.total_kib > sat_add_u64(limits->max_total_kib, AGENT_TOTAL_SLACK_KIB)) {
                        set_err(err, errlen,
                                "mem.total_kib %" PRIu64 " above what the VM can hold (%" PRIu64 " + %" PRIu64
                                " KiB slack)",
                                m.report.total_kib, limits->max_total_kib, AGENT_TOTAL_SLACK_KIB);
                        return session_reject(s);
                }
                s->last_seq = m.report.seq;
                s->last_uptime_ms = m.report.uptime_ms;
                break;

        case AGENT_MSG_BYE:
                s->said_bye = true;
                s->welcomed = false;
                break;

        case AGENT_MSG_WELCOME:
        case AGENT_MSG_ERROR:
                set_err(err, errlen, "tided does not accept '%s' from a guest", type_name(m.type));
                return session_reject(s);
        }

        s->accepted++;
        if (ret_msg)
                *ret_msg = m;
        return m.type == AGENT_MSG_HELLO    ? AGENT_ACCEPT_HELLO
               : m.type == AGENT_MSG_REPORT ? AGENT_ACCEPT_REPORT
                                            : AGENT_ACCEPT_BYE;
}

/* ---- line splitting ---- */

/* A line is kept in lb->buf without its newline; a '\r' before the '\n' stays in the line (the
 * parser takes it as trailing whitespace) and counts towards the limit. Empty lines are skipped:
 * a writer may send a bare "\n" to end whatever partial line the reader still holds from before a
 * reconnect, and that resynchronisation is not an error. */
int agent_linebuf_push(struct agent_linebuf *lb, const char *data, size_t len, size_t *ret_consumed,
                       const char **ret_line, size_t *ret_line_len) {
        size_t pos = 0;

        while (pos < len) {
                const char *nl = memchr(data + pos, '\n', len - pos);
                size_t chunk = nl ? (size_t) (nl - (data + pos)) : len - pos;

                if (lb->discarding) {
                        if (!nl)
                                break;
                        lb->discarding = false;
                        pos += chunk + 1;
                        continue;
                }
                /* AGENT_MSG_MAX counts the newline, so a line holds at most AGENT_MSG_MAX - 1. */
                if (lb->len + chunk > AGENT_MSG_MAX - 1) {
                        /* Reported as soon as it is known, not at its newline: a guest that never
                         * sends one must still show up in the counters. */
                        lb->len = 0;
                        lb->discarding = !nl;
                        *ret_consumed = nl ? pos + chunk + 1 : len;
                        return 2;
                }
                memcpy(lb->buf + lb->len, data + pos, chunk);
                lb->len += chunk;
                pos += chunk;
                if (!nl)
                        break;
                pos++; /* the newline */
                if (lb->len == 0)
                        continue;
                /* The bytes stay in lb->buf until the next call writes over them. */
                *ret_consumed = pos;
                *ret_line = lb->buf;
                *ret_line_len = lb->len;
                lb->len = 0;
                return 1;
        }
        *ret_consumed = len;
        return 0;
}
