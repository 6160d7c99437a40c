/* The Prometheus endpoint of tided: the text exposition format (0.0.4) rendered from a
 * snapshot, and a small HTTP server (libmicrohttpd) that serves the last published text.
 *
 * Threads: the tick thread calls metrics_publish(); libmicrohttpd's own thread answers
 * scrapes. A scrape never waits for a tick and never sees half a tick: the text is rendered
 * outside any lock and swapped in whole under a mutex.
 *
 * Units follow Prometheus, not the rest of tide: bytes (KiB x 1024) and seconds, with the
 * unit in the name (tide_domain_assigned_bytes, tide_tick_duration_seconds). */
#pragma once

#include <stddef.h>

#include "daemon/snapshot.h"

/* Renders s in the text exposition format 0.0.4: for each family "# HELP", "# TYPE", then its
 * samples, families never interleaved. A family with no sample is left out entirely.
 *
 * Domain series carry the labels domain="NAME",uuid="UUID". Label values are escaped as the
 * format requires (\\, \", \n); bytes that are not valid UTF-8 are replaced by U+FFFD, since
 * one bad name would otherwise make Prometheus reject the whole scrape.
 *
 * Per managed domain: assigned, demand (only when has_demand), target, minimum, maximum,
 * startup (all _bytes), pressure_percent and available_buffer_percent (only when has_demand:
 * both derive from demand, and a 0 would read as "idle guest"), status (one series per value
 * ok|low|warning|unknown|paging, 1 for the current one; a status outside that set, "off"
 * included, counts as unknown), managed (1), active, balloon_actions_total and
 * guest_oom_deflates_total (counters), balloon_state (one series per value
 * ok|inactive|uncooperative; left out when the balloon state is NULL or not one of them),
 * rss_bytes, paging_bytes, paging_used_bytes, paging_state (one series per phase
 * none|paging|releasing|failed; left out when NULL or not one of them), agent_state (one series
 * per value none|disconnected|waiting|connected|gone; left out likewise),
 * agent_rejected_total and agent_rate_dropped_total (counters), demand_from_agent (only when
 * has_demand).
 * Per unmanaged domain: assigned_bytes, managed (0), active, rss_bytes only.
 * Host: memory_total/available, capacity, reserve, assigned, target (_bytes), short and
 * overcommitted (0/1), tide_paging_files, tide_cpu_parked, tide_parking_reversals_total,
 * tide_host_unfunded_bytes, tide_tick_duration_seconds (the last tick), tide_ticks_total,
 * tide_uptime_seconds; while parking is on and measured, tide_cpu_idle_residency{cpu,state},
 * tide_parking_watts_saved_estimate, tide_parking_joules_saved_estimate,
 * tide_parking_episodes_total{verdict} and tide_parking_pays.
 * Doubles are printed in the shortest form that reads back exactly, with '.' whatever the
 * program's locale; NaN and infinities as NaN, +Inf, -Inf.
 *
 * Returns 0 and sets *ret (NUL-terminated, caller frees) and *ret_len (without the NUL), or
 * -EINVAL (NULL argument, domains NULL with n_domains > 0) or -ENOMEM; on failure *ret and
 * *ret_len are untouched. */
int metrics_render(const struct snapshot *s, char **ret, size_t *ret_len);

struct metrics_server;

/* Most scrapers connected at once (Prometheus keeps one; a few more for people with curl),
 * and how long an idle connection is kept: a slow or stuck client costs tided at most this
 * many sockets, each for at most this long. */
#define METRICS_CONNECTION_LIMIT 16
#define METRICS_CONNECTION_TIMEOUT_SEC 10

/* Starts serving on `address`, "HOST:PORT":
 *   - HOST is a numeric IPv4 address ("127.0.0.1", "0.0.0.0" for all), a numeric IPv6
 *     address in brackets ("[::1]", "[::]" for all IPv6, "[fe80::1%eth0]"), or "localhost",
 *     which means 127.0.0.1. Names are not resolved: the endpoint binds exactly what the
 *     configuration says, never what /etc/hosts or DNS say at start-up.
 *   - "[::]" is IPv6 only (IPV6_V6ONLY), whatever net.ipv6.bindv6only says.
 *   - PORT is 0-65535; 0 picks a free port (tests), see metrics_server_port().
 * Routes: GET or HEAD /metrics -> 200, Content-Type "text/plain; version=0.0.4;
 * charset=utf-8", the last published text, or 503 "no tick yet" before the first
 * metrics_publish(); any other path -> 404; another method on /metrics -> 405 (Allow: GET,
 * HEAD). GET and HEAD keep an HTTP/1.1 connection open for the next scrape; another method is
 * answered before its body and the connection closed; a GET with a body is dropped.
 * Connections are bounded by METRICS_CONNECTION_LIMIT (more wait in the listen backlog) and
 * METRICS_CONNECTION_TIMEOUT_SEC.
 *
 * Returns 0 and sets *ret, or a negative errno and writes a one-line message (without the
 * program name) to err when err is not NULL: -EINVAL for a malformed address ("invalid metrics
 * address \"...\": ..."), the errno of socket()/bind()/listen() (-EADDRINUSE, -EACCES,
 * -EADDRNOTAVAIL, ...: "cannot listen on ADDRESS: ..."), -ENOMEM, or -EIO when libmicrohttpd
 * refuses to start. *ret is untouched on failure. */
int metrics_server_start(const char *address, struct metrics_server **ret, char *err, size_t errlen);

/* The port the server is bound to (the chosen one when started with port 0), or -EINVAL for
 * NULL. */
int metrics_server_port(const struct metrics_server *server);

/* Renders s and makes it what scrapes get from now on. s is only read during the call.
 * Returns 0, or -EINVAL / -ENOMEM from metrics_render(); on failure the previously published
 * text (if any) keeps being served. Safe from any thread, while scrapes run. */
int metrics_publish(struct metrics_server *server, const struct snapshot *s);

/* Stops serving: closes the listening socket and every connection, waits for libmicrohttpd's
 * thread, frees everything. Accepts NULL. Returns NULL, for `server = metrics_server_stop(server);`. */
struct metrics_server *metrics_server_stop(struct metrics_server *server);
