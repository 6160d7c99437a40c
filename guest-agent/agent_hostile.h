/* tide-agent's hostile modes, for end-to-end tests of tided's defences only (docs/PROTOCOL.md,
 * "What tided checks"). Never enabled unless --hostile is given. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "guest-agent/protocol.h"

enum agent_hostile {
        AGENT_HOSTILE_NONE,
        AGENT_HOSTILE_LIE,     /* claims 64 GiB and nearly all of it in use */
        AGENT_HOSTILE_FLOOD,   /* reports as fast as the port takes them */
        AGENT_HOSTILE_GARBAGE, /* random bytes, broken JSON, oversized lines */
        AGENT_HOSTILE_REPLAY,  /* every report carries the same seq */
};

/* "lie", "flood", "garbage", "replay" (and "none"). Returns 0 or -EINVAL. */
int agent_hostile_parse(const char *s, enum agent_hostile *ret);
const char *agent_hostile_name(enum agent_hostile h);

/* The longest line agent_garbage_line() writes, newline included: oversized lines reach three
 * times the protocol's limit so that a reader must discard across several reads. */
#define AGENT_GARBAGE_MAX (3 * AGENT_MSG_MAX)

/* Writes one hostile line ending in '\n' (no NUL) into buf, which must hold AGENT_GARBAGE_MAX
 * bytes; honest is a real report to mangle. *state is the generator's state (any seed but 0).
 * Returns the length. */
size_t agent_garbage_line(uint64_t *state, const struct agent_report *honest, char *buf, size_t len);
