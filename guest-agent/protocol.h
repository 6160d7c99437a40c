/* The tide-agent protocol (docs/PROTOCOL.md), shared by the agent (encoders) and tided (the
 * parser and the per-VM session checks). Pure: no I/O, no clock reads, no allocation that
 * outlives a call. Everything a guest sends reaches agent_session_feed() and nothing else, so
 * this file is what the fuzzer (fuzz/fuzz_agent_protocol.c) hammers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_PORT_NAME "org.tide.agent.0"
#define AGENT_PROTOCOL_VERSION 1
/* Longest message, newline included. */
#define AGENT_MSG_MAX 4096
/* Ranges tided accepts in a report (docs/PROTOCOL.md, "Report"), which the agent clamps to.
 * Sizes in KiB are capped at 2^50 (1 EiB, what the spec gives Committed_AS): no machine is near
 * it, and every sum tided forms from them stays far from overflow. */
#define AGENT_KIB_MAX (UINT64_C(1) << 50)
#define AGENT_STALL_USEC_MAX (UINT64_C(1) << 62)
#define AGENT_MAJOR_FAULTS_MAX (UINT64_C(1) << 40)
/* tided asks for a report this often unless configured otherwise. */
#define AGENT_INTERVAL_MS_DEFAULT 1000
#define AGENT_INTERVAL_MS_MIN 250
#define AGENT_INTERVAL_MS_MAX 60000
/* Token bucket: a guest may send this many messages a second, with this much burst. */
#define AGENT_RATE_PER_SEC 5
#define AGENT_RATE_BURST 10
/* mem.total_kib may exceed what the VM holds by this much (rounding, late balloon stats). */
#define AGENT_TOTAL_SLACK_KIB (UINT64_C(64) * 1024)

enum agent_msg_type {
        AGENT_MSG_HELLO,   /* agent -> tided */
        AGENT_MSG_REPORT,  /* agent -> tided */
        AGENT_MSG_BYE,     /* agent -> tided */
        AGENT_MSG_WELCOME, /* tided -> agent */
        AGENT_MSG_ERROR,   /* tided -> agent */
};

struct agent_report {
        uint64_t seq;
        uint64_t uptime_ms;
        uint64_t total_kib, available_kib, committed_as_kib;
        uint64_t swap_total_kib, swap_free_kib;
        bool has_psi;
        double some_avg10, some_avg60, full_avg10, full_avg60; /* percent */
        uint64_t some_total_usec, full_total_usec;
        uint64_t major_faults; /* since the previous report */
        uint64_t floor_kib;
};

struct agent_msg {
        enum agent_msg_type type;
        union {
                struct {
                        unsigned versions; /* bit v set: speaks protocol v (1..31) */
                        char agent[64];    /* printable ASCII only, truncated */
                        char os[16];
                } hello;
                struct agent_report report;
                struct {
                        unsigned protocol;
                        uint64_t interval_ms;
                } welcome;
                char error[128];
        };
};

/* Parses one line (without its newline). Checks JSON syntax, the type, every known field's type
 * and range as in docs/PROTOCOL.md (not the session rules: see agent_session_feed). Unknown
 * fields are ignored. Returns 0 and fills *ret, or -EINVAL (-EMSGSIZE for len >= AGENT_MSG_MAX)
 * with a message naming the field in err ("mem.available_kib: above mem.total_kib"). Never
 * reads past len; line need not be NUL-terminated. A NUL byte anywhere in the line is refused;
 * trailing whitespace is allowed. A key given twice counts once, with its last value (json-c's
 * rule), and that is the value checked. Ranges beyond the spec's table: sizes in KiB at most
 * 2^50, seq and uptime_ms at most 2^63 - 2, psi all six fields or none, hello's protocol a list
 * of 1-31 integers >= 1 where versions above 31 are ignored. -ENOMEM if json-c cannot allocate. */
int agent_msg_parse(const char *line, size_t len, struct agent_msg *ret, char *err, size_t errlen);

/* Encoders: write one line including the '\n' and a terminating NUL. Return the length without
 * the NUL, or -ENOBUFS when buf is too small (-EINVAL from agent_format_report for a non-finite
 * psi average, which JSON cannot carry). Strings are written as printable ASCII (other bytes
 * become '?') and cut to what the receiving struct agent_msg keeps (agent 63, os 15, error 127
 * bytes), so no line can exceed AGENT_MSG_MAX. agent_version and os may be NULL: the field is
 * left out. */
int agent_format_hello(char *buf, size_t len, const char *agent_version, const char *os);
int agent_format_report(char *buf, size_t len, const struct agent_report *r);
int agent_format_bye(char *buf, size_t len);
int agent_format_welcome(char *buf, size_t len, unsigned protocol, uint64_t interval_ms);
int agent_format_error(char *buf, size_t len, const char *message);

/* The least memory a Linux guest with this MemTotal can run with, after hv_balloon's
 * compute_balloon_floor() (drivers/hv/hv_balloon.c): 8 MiB + 1/2 below 128 MiB, 40 + 1/4
 * below 512 MiB, 104 + 1/8 below 2 GiB, 232 + 1/16 below 8 GiB, 488 + 1/32 above; never more
 * than total_kib itself (below 16 MiB the formula would be). */
uint64_t agent_floor_kib(uint64_t total_kib);

/* ---- tided's per-VM session: the rules that need memory of earlier messages ---- */

struct agent_session {
        bool welcomed;            /* a hello was accepted: reports count */
        unsigned protocol;
        uint64_t last_seq;        /* 0 before the first report of a session */
        uint64_t last_uptime_ms;
        double tokens;            /* rate limit */
        uint64_t refill_usec;     /* when tokens were last topped up; 0: never */
        /* counters, for tidectl stats and metrics */
        uint64_t accepted, rejected, rate_dropped;
        bool said_bye;
};

enum agent_verdict {
        AGENT_ACCEPT_HELLO,  /* reply with agent_format_welcome(protocol) */
        AGENT_ACCEPT_REPORT, /* *ret_msg holds a report that passed every check */
        AGENT_ACCEPT_BYE,    /* the agent is leaving: fall back to balloon stats now */
        AGENT_REJECT,        /* dropped: err says why; the VM is flagged */
        AGENT_RATE_DROPPED,  /* over the rate limit: dropped, counted, not an error */
        AGENT_REFUSE_HELLO,  /* no common version: reply with agent_format_error(err) */
};

/* What tided knows that the guest cannot fake: the most the VM can hold now. */
struct agent_limits {
        uint64_t max_total_kib; /* balloon actual + plugged virtio-mem, or the boot size with deflate-on-oom */
};

/* Feeds one received line. Applies, in order: the rate limit (now_usec, monotonic), parsing,
 * the session rules (hello before reports; seq strictly increasing and uptime not decreasing
 * within a session; a new hello starts a new session), and the host-truth bound on
 * mem.total_kib. Updates the counters (a refused hello counts as rejected: the VM is flagged).
 * err gets the reason for REJECT/REFUSE and is "" otherwise; *ret_msg (may be NULL) is filled
 * only for the ACCEPT verdicts. limits must not be NULL. A hello, accepted or refused, ends the
 * previous session. */
enum agent_verdict agent_session_feed(struct agent_session *s, const char *line, size_t len,
                                      const struct agent_limits *limits, uint64_t now_usec, struct agent_msg *ret_msg,
                                      char *err, size_t errlen);

/* Splits a byte stream into lines of at most AGENT_MSG_MAX bytes. A longer line is discarded up
 * to its newline and reported once as oversized. */
struct agent_linebuf {
        char buf[AGENT_MSG_MAX];
        size_t len;
        bool discarding;
};

/* Takes bytes from data[0..len): *ret_consumed of them are used; when a complete line is ready,
 * returns 1 and points *ret_line and *ret_line_len at it (valid until the next call); returns 2
 * when an oversized line was dropped; 0 when more bytes are needed. Call again with the rest.
 * Whenever len > 0, at least one byte is consumed. The line excludes its '\n' but keeps a '\r'
 * before it (the parser takes that as trailing whitespace); empty lines are skipped, not
 * returned. An oversized line is reported (2) as soon as it passes AGENT_MSG_MAX - 1 bytes; the
 * rest of it, up to and including its newline, is consumed silently. */
int agent_linebuf_push(struct agent_linebuf *lb, const char *data, size_t len, size_t *ret_consumed,
                       const char **ret_line, size_t *ret_line_len);
