/* tidectl's side of the control socket (daemon/control.h): one JSON request line, one reply. */
#pragma once

#include <json.h>
#include <stddef.h>

#include "policy/config.h"

#define CLIENT_SOCKET_DEFAULT CONFIG_SOCKET_DEFAULT
/* tided answers within a tick; a reply that takes longer means it is stuck. */
#define CLIENT_TIMEOUT_MSEC 10000

/* Sends req, waits for the reply. Returns 0 and *ret (caller puts) when tided answered
 * {"ok": true, ...}; -EREMOTEIO with tided's "error" text in err when it answered ok:false;
 * -errno with a message naming the socket when it could not be reached ("is tided running?"). */
int client_request(const char *socket_path, json_object *req, json_object **ret, char *err, size_t errlen);
