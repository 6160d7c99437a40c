/* tided's control socket: a Unix stream socket speaking JSON lines (docs/ARCHITECTURE.md,
 * "Control protocol"). One request per connection: the client writes one line of at most
 * CONTROL_MSG_MAX bytes, tided answers with one line and closes.
 *
 * The peer's credentials (SO_PEERCRED) decide what it may do: root may change policies, anyone
 * else may only read. The socket file is 0666 so any local user can read stats, as with
 * `virsh list` on a read-only connection. Malformed, oversized or slow requests get an error
 * reply (or are dropped) and tided keeps running. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/manager.h"

#define CONTROL_MSG_MAX (64 * 1024)
#define CONTROL_CLIENTS_MAX 32
/* Of those, slots only root may take, and the most any other user may hold at once: readers
 * (a monitoring loop gone wrong, or a hostile local user) cannot lock root out, nor each other. */
#define CONTROL_CLIENTS_ROOT_RESERVED 8
#define CONTROL_CLIENTS_PER_UID 8
/* A client that has not sent its line by then is dropped: one slow peer must not pin a slot. */
#define CONTROL_CLIENT_TIMEOUT_USEC (UINT64_C(5) * 1000000)

/* Handles one request line. privileged: the peer is root. Always produces a reply (a
 * malloc'd JSON line without the newline) in *ret_reply: {"ok":true,...} or
 * {"ok":false,"error":"..."}. Returns 0, or -ENOMEM. */
int control_handle(struct manager *m, const char *line, size_t len, bool privileged, uint64_t now_usec,
                   char **ret_reply);

struct control;
/* Whether a live tided answers on path (a socket file left by a dead one does not). */
bool control_in_use(const char *path);
/* Creates the socket at path (removing a stale one; creating the parent directory 0755) and
 * registers it on the event loop (hv_event_*). */
int control_start(const char *path, struct manager *m, struct control **ret, char *err, size_t errlen);
/* Drops connections that took too long. Call once a tick. */
void control_expire(struct control *c, uint64_t now_usec);
struct control *control_stop(struct control *c); /* closes, unlinks; accepts NULL, returns NULL */
