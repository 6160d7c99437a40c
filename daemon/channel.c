#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/macro.h"
#include "daemon/channel.h"

void channel_init(struct channel *c, const char *name, const char *path) {
        *c = (struct channel){ .fd = -1,
                               .watch = -1,
                               .state = path && *path ? CHANNEL_DISCONNECTED : CHANNEL_NONE,
                               .early_above_kib = INT64_MAX };
        snprintf(c->name, sizeof(c->name), "%s", name);
        snprintf(c->path, sizeof(c->path), "%s", path ? path : "");
}

const char *channel_state_to_string(enum channel_state s) {
        switch (s) {
        case CHANNEL_NONE:
                return "none";
        case CHANNEL_DISCONNECTED:
                return "disconnected";
        case CHANNEL_WAITING:
                return "waiting";
        case CHANNEL_CONNECTED:
                return "connected";
        case CHANNEL_GONE:
                return "gone";
        }
        return "none";
}

void channel_close(struct channel *c) {
        if (c->watch >= 0)
                hv_event_remove_fd(c->watch);
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        c->watch = -1;
        c->lb = (struct agent_linebuf){ 0 };
        c->paused = false;
        c->window_bytes = 0;
        c->session.welcomed = false;
        c->have_report = false;
        if (c->state != CHANNEL_NONE)
                c->state = CHANNEL_DISCONNECTED;
}

static void reject(struct channel *c, const char *why, uint64_t now_usec) {
        snprintf(c->last_error, sizeof(c->last_error), "%s", why);
        c->flagged = true;
        /* A guest can send thousands of bad lines a second; the log must not become its pipe. */
        if (c->last_log_usec == 0 || now_usec - c->last_log_usec >= CHANNEL_LOG_EVERY_USEC) {
                log_warning("%s: tide-agent message rejected: %s (%" PRIu64 " rejected, %" PRIu64
                            " over the rate limit so far; logged once a minute)",
                            c->name, why, c->session.rejected, c->session.rate_dropped);
                c->last_log_usec = now_usec;
        }
}

void channel_distrust(struct channel *c, const char *why, uint64_t now_usec) {
        c->session.rejected++;
        c->have_report = false;
        reject(c, why, now_usec);
}

static void send_line(struct channel *c, const char *line, int len) {
        /* A reply that does not fit in the socket buffer is dropped: the agent repeats hello. */
        if (len > 0)
                (void) !send(c->fd, line, (size_t) len, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void handle_line(struct channel *c, const char *line, size_t len, uint64_t now_usec) {
        char err[160] = "", reply[256];
        struct agent_msg msg;

        switch (agent_session_feed(&c->session, line, len, &c->limits, now_usec, &msg, err, sizeof(err))) {
        case AGENT_ACCEPT_HELLO:
                send_line(c, reply, agent_format_welcome(reply, sizeof(reply), c->session.protocol,
                                                         AGENT_INTERVAL_MS_DEFAULT));
                if (c->state != CHANNEL_CONNECTED)
                        log_info("%s: tide-agent connected (%s)", c->name, msg.hello.agent);
                c->state = CHANNEL_CONNECTED;
                c->have_report = false;
                break;
        case AGENT_ACCEPT_REPORT:
                c->report = msg.report;
                c->report_usec = now_usec;
                c->have_report = true;
                c->fresh = true;
                c->state = CHANNEL_CONNECTED;
                /* O(1) per report, and once per regular tick per VM: the flag is cleared only
                 * by the manager's next regular tick, however often this guest reports. */
                if (!c->early && c->report.total_kib >= c->report.available_kib &&
                    (int64_t) (c->report.total_kib - c->report.available_kib) > c->early_above_kib) {
                        c->early = c->early_counted = true;
                        if (c->early_pending)
                                (*c->early_pending)++;
                }
                break;
        case AGENT_ACCEPT_BYE:
                log_info("%s: tide-agent said goodbye; using balloon statistics", c->name);
                c->have_report = false;
                c->state = CHANNEL_GONE;
                break;
        case AGENT_REFUSE_HELLO:
                send_line(c, reply, agent_format_error(reply, sizeof(reply), err));
                reject(c, err, now_usec);
                break;
        case AGENT_REJECT:
                reject(c, err, now_usec);
                break;
        case AGENT_RATE_DROPPED:
                if (c->session.rate_dropped == 1 || c->session.rate_dropped % 1000 == 0)
                        reject(c, err, now_usec); /* the session's own "more than N messages a second" */
                break;
        }
}

/* Over the byte budget: stop watching the socket until channel_tick() sees the second out. */
static void pause_reading(struct channel *c, uint64_t now_usec) {
        if (c->paused)
                return;
        c->paused = true;
        c->throttled++;
        if (c->watch >= 0)
                hv_event_update_fd(c->watch, 0);
        char why[128];
        snprintf(why, sizeof(why), "more than %d KiB a second (reads count %d bytes at least): reading paused for a second",
                 CHANNEL_BYTES_PER_SEC / 1024, CHANNEL_READ_CHARGE);
        reject(c, why, now_usec);
}

int channel_read(struct channel *c, uint64_t now_usec) {
        char buf[4096];
        size_t total = 0;

        if (now_usec - c->window_usec >= USEC_PER_SEC) {
                c->window_usec = now_usec;
                c->window_bytes = 0;
        }
        while (total < CHANNEL_READ_MAX) {
                if (c->window_bytes >= CHANNEL_BYTES_PER_SEC) {
                        pause_reading(c, now_usec);
                        return 0;
                }
                size_t want = min_u64(sizeof(buf), CHANNEL_BYTES_PER_SEC - c->window_bytes);
                ssize_t n = recv(c->fd, buf, want, MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return 0;
                if (n <= 0) {
                        int r = n == 0 ? -ECONNRESET : -errno;
                        log_debug("%s: agent channel closed (%s), retrying", c->name, strerror(-r));
                        channel_close(c);
                        c->retry_usec = now_usec + CHANNEL_RETRY_USEC;
                        return r;
                }
                total += (size_t) n;
                /* Each read is charged at least CHANNEL_READ_CHARGE: a guest trickling single
                 * bytes would otherwise buy 65,536 wake-ups a second with its budget. */
                c->window_bytes += max_u64((uint64_t) n, CHANNEL_READ_CHARGE);
                size_t off = 0;
                while (off < (size_t) n) {
                        const char *line;
                        size_t used = 0, line_len = 0;
                        int k = agent_linebuf_push(&c->lb, buf + off, (size_t) n - off, &used, &line, &line_len);
                        off += used;
                        if (k == 1)
                                handle_line(c, line, line_len, now_usec);
                        else if (k == 2) {
                                c->oversized++;
                                c->session.rejected++;
                                char why[64];
                                snprintf(why, sizeof(why), "line longer than %d bytes", AGENT_MSG_MAX);
                                reject(c, why, now_usec);
                        }
                        if (used == 0 && k == 0)
                                break;
                }
        }
        return 0;
}

static void on_readable(int id, int fd, int events, void *userdata) {
        struct channel *c = userdata;
        if (events & (HV_FD_ERROR | HV_FD_HANGUP) && !(events & HV_FD_READABLE)) {
                channel_close(c);
                c->retry_usec = clock_now_usec() + CHANNEL_RETRY_USEC;
                return;
        }
        (void) channel_read(c, clock_now_usec());
}

void channel_tick(struct channel *c, uint64_t now_usec) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (c->paused && now_usec - c->window_usec >= USEC_PER_SEC) {
                c->paused = false;
                c->window_usec = now_usec;
                c->window_bytes = 0;
                if (c->watch >= 0)
                        hv_event_update_fd(c->watch, HV_FD_READABLE);
        }

        if (c->state == CHANNEL_NONE || c->fd >= 0 || now_usec < c->retry_usec)
                return;
        c->retry_usec = now_usec + CHANNEL_RETRY_USEC;
        if (strlen(c->path) >= sizeof(sa.sun_path))
                return;
        memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return;
        /* QEMU listens on the socket: a local connect completes at once or fails at once. */
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                close(fd);
                return;
        }
        c->fd = fd;
        c->watch = hv_event_add_fd(fd, HV_FD_READABLE, on_readable, c);
        if (c->watch < 0) {
                close(fd);
                c->fd = -1;
                return;
        }
        c->state = CHANNEL_WAITING;
        log_debug("%s: agent channel %s open", c->name, c->path);
}
