/* tide-agent: runs inside a Linux guest and tells tided, once per interval, how much memory the
 * guest needs (docs/PROTOCOL.md). One thread, one poll() loop, no allocation per tick beyond
 * what reading /proc/pressure costs; built static so it drops into any guest, busybox included.
 *
 * The port is a byte stream with no notion of connection, so everything here is about surviving
 * the host side coming and going:
 *   - the port may not exist yet (driver not loaded, host announces ports late): look again
 *     every 2 s, saying so once;
 *   - the host side may not be connected (tided not running): virtio_console then makes poll()
 *     report POLLHUP (and read() return 0) and write() fail with EAGAIN. The port stays open
 *     (each close/open of a port is an event QEMU passes to libvirt, which saves the domain's
 *     status on it) and is checked once a second, or at once when the driver's SIGIO says the
 *     host connected;
 *   - when the host (re)connects, a new session starts: hello, repeated every 5 s until
 *     welcome (every 30 s after an error), then reports at the host's interval_ms;
 *   - real I/O errors (EIO, a hot-unplugged port) close the port; it is reopened 2 s later.
 * Messages queued while the port does not take them are dropped oldest first: a stale report is
 * worth nothing, and memory stays bounded. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/linkhash.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/units.h"
#include "guest-agent/agent_hostile.h"
#include "guest-agent/agent_port.h"
#include "guest-agent/agent_source.h"
#include "guest-agent/collect.h"
#include "guest-agent/protocol.h"
#include "tide-agent.8.h" /* generated: TIDE_AGENT_HELP */

#ifndef TIDE_VERSION
#define TIDE_VERSION "0.0.0"
#endif
#define AGENT_ID "tide-agent/" TIDE_VERSION

/* docs/PROTOCOL.md: hello every 5 s until welcome. After an error (no common version) the host
 * will not change its mind soon; asking every 30 s keeps the log of both sides quiet. */
#define HELLO_RETRY_USEC (5 * USEC_PER_SEC)
#define HELLO_REFUSED_RETRY_USEC (30 * USEC_PER_SEC)
#define PORT_RETRY_USEC (2 * USEC_PER_SEC)
#define HOST_CHECK_USEC (1 * USEC_PER_SEC)
/* How long SIGTERM waits for bye to leave: a shutdown must not hang on a host that reads nothing. */
#define BYE_FLUSH_USEC (500 * USEC_PER_MSEC)
/* Log lines of one kind: at most this many per window, then one line saying how many were not. */
#define LOG_WINDOW_USEC (60 * USEC_PER_SEC)
#define LOG_BURST 5
/* Garbage lines per tick in --hostile=garbage: enough to exercise tided's checks, few enough that
 * the rate limit is not all that is tested. */
#define GARBAGE_PER_TICK 3
/* A report is ~400 bytes; room for several lines, and for one oversized garbage line plus the
 * rest of a partly written one. */
#define OUT_MAX (AGENT_GARBAGE_MAX + AGENT_MSG_MAX)

#define log_agent(level, err, fmt, ...) log_internal(level, err, "tide-agent: " fmt, ##__VA_ARGS__)

struct ratelimit {
        uint64_t window_start_usec;
        unsigned count, suppressed;
};

/* True when a line of this kind may be logged now; *ret_suppressed is how many were not since. */
static bool ratelimit_pass(struct ratelimit *rl, uint64_t now, unsigned *ret_suppressed) {
        *ret_suppressed = 0;
        if (rl->count == 0 || now - rl->window_start_usec >= LOG_WINDOW_USEC) {
                *ret_suppressed = rl->suppressed;
                rl->window_start_usec = now;
                rl->count = 0;
                rl->suppressed = 0;
        }
        if (rl->count >= LOG_BURST) {
                rl->suppressed++;
                return false;
        }
        rl->count++;
        return true;
}

#define log_limited(rl, now, level, err, fmt, ...)                                                      \
        do {                                                                                            \
                unsigned _sup_;                                                                         \
                if (ratelimit_pass((rl), (now), &_sup_)) {                                              \
                        if (_sup_)                                                                      \
                                log_agent(level, err, fmt " (%u more like it suppressed)", ##__VA_ARGS__, \
                                          _sup_);                                                       \
                        else                                                                            \
                                log_agent(level, err, fmt, ##__VA_ARGS__);                              \
                }                                                                                       \
        } while (0)

struct options {
        const char *port;
        const char *root;
        uint64_t interval_usec;
        bool once;
        enum agent_hostile hostile;
};

struct agent {
        struct options opt;
        struct agent_source src;
        struct agent_collector col;
        int sigfd;

        /* the port */
        int fd;
        char path[PATH_MAX];
        dev_t rdev;
        ino_t ino;
        bool host_absent;
        uint64_t next_open_usec, next_host_check_usec;

        /* the session: from a (re)connection of the host to the next */
        bool welcomed, refused;
        uint64_t seq;
        uint64_t interval_usec;
        uint64_t next_hello_usec, next_tick_usec;
        struct agent_report last; /* the last honest report, for flood and garbage */
        bool has_last;

        struct agent_linebuf lb;
        char out[OUT_MAX];
        size_t out_len;
        bool out_midline; /* the port took part of out[]'s first line */
        uint64_t dropped;
        uint64_t rng;

        /* what was said already, so that a state is logged once and not every retry */
        bool said_no_port;
        int said_open_error;
        int said_psi_error, said_vmstat_error;
        struct ratelimit rl_conn, rl_host, rl_collect, rl_drop, rl_io;
};

static uint64_t clock_usec(clockid_t id) {
        struct timespec ts;

        clock_gettime(id, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static uint64_t now_usec(void) {
        return clock_now_usec();
}

/* ---- the output queue ---------------------------------------------------------------------- */

static void out_queue(struct agent *a, uint64_t now, const char *msg, size_t n) {
        if (a->out_len + n > sizeof(a->out)) {
                /* The queued lines the port has not started on are stale by now: drop them. A line
                 * it took part of is finished first, or tided would see a torn line. */
                size_t keep = 0, lines = 0;

                if (a->out_midline) {
                        const char *nl = memchr(a->out, '\n', a->out_len);

                        keep = nl ? (size_t) (nl - a->out) + 1 : a->out_len;
                }
                for (size_t i = keep; i < a->out_len; i++)
                        lines += a->out[i] == '\n';
                a->out_len = keep;
                a->dropped += lines;
                if (lines)
                        log_limited(&a->rl_drop, now, LOG_LEVEL_WARNING, 0,
                                    "the port is not taking messages; dropped %zu stale (%llu in all)", lines,
                                    (unsigned long long) a->dropped);
        }
        if (a->out_len + n > sizeof(a->out)) {
                a->dropped++;
                return;
        }
        memcpy(a->out + a->out_len, msg, n);
        a->out_len += n;
}

/* Writes what the port takes. Returns 0 (done, or the port is full: wait for POLLOUT) or -errno. */
static int out_flush(struct agent *a) {
        while (a->out_len > 0) {
                ssize_t n = write(a->fd, a->out, a->out_len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                if (n == 0)
                        return 0;
                a->out_midline = a->out[n - 1] != '\n';
                memmove(a->out, a->out + n, a->out_len - (size_t) n);
                a->out_len -= (size_t) n;
        }
        return 0;
}

/* ---- sessions ------------------------------------------------------------------------------- */

static void session_start(struct agent *a, uint64_t now) {
        a->welcomed = false;
        a->refused = false;
        a->seq = 0;
        a->interval_usec = a->opt.interval_usec;
        a->next_hello_usec = now;
        a->next_tick_usec = now;
        memset(&a->lb, 0, sizeof(a->lb));
        a->out_len = 0;
        a->out_midline = false;
}

static void queue_hello(struct agent *a, uint64_t now) {
        char buf[256];
        int n = agent_format_hello(buf, sizeof(buf), AGENT_ID, "linux");

        if (n > 0)
                out_queue(a, now, buf, (size_t) n);
        /* A hello starts a new session on the host's side: the next report is seq 1 again. */
        a->seq = 0;
        a->next_hello_usec = now + (a->refused ? HELLO_REFUSED_RETRY_USEC : HELLO_RETRY_USEC);
}

/* Takes a sample and turns it into the next report of this session in a->last. */
static int collect(struct agent *a, uint64_t now) {
        struct agent_sample s;
        int psi_err = 0, vm_err = 0, r;

        r = agent_source_read(&a->src, &s, &psi_err, &vm_err);
        if (r < 0) {
                log_limited(&a->rl_collect, now, LOG_LEVEL_ERR, r, "cannot read memory counters: %m; skipping this report");
                return r;
        }
        /* Optional figures are logged when their state changes, not every second. */
        if (psi_err != a->said_psi_error) {
                if (psi_err < 0)
                        log_agent(LOG_LEVEL_NOTICE, psi_err, "no memory pressure (PSI): %m; reporting without psi");
                else
                        log_agent(LOG_LEVEL_NOTICE, 0, "memory pressure (PSI) readable again");
                a->said_psi_error = psi_err;
        }
        if (vm_err != a->said_vmstat_error) {
                if (vm_err < 0)
                        log_agent(LOG_LEVEL_NOTICE, vm_err, "no pgmajfault counter: %m; reporting 0 major faults");
                a->said_vmstat_error = vm_err;
        }

        r = agent_report_build(&a->col, &s, a->seq + 1, clock_usec(CLOCK_BOOTTIME) / USEC_PER_MSEC, &a->last);
        if (r < 0) {
                log_limited(&a->rl_collect, now, LOG_LEVEL_ERR, r, "MemTotal reads 0; skipping this report");
                return r;
        }
        a->has_last = true;
        return 0;
}

static void queue_report(struct agent *a, uint64_t now, const struct agent_report *honest) {
        struct agent_report r = *honest;
        char buf[AGENT_MSG_MAX];
        int n;

        /* replay: the first report's seq, over and over; everything else counts up */
        if (a->opt.hostile != AGENT_HOSTILE_REPLAY || a->seq == 0)
                a->seq++;
        r.seq = a->seq;
        if (a->opt.hostile == AGENT_HOSTILE_LIE)
                agent_report_lie(&r);

        n = agent_format_report(buf, sizeof(buf), &r);
        if (n < 0) {
                log_limited(&a->rl_collect, now, LOG_LEVEL_ERR, n, "cannot encode a report: %m");
                return;
        }
        out_queue(a, now, buf, (size_t) n);
}

static void tick(struct agent *a, uint64_t now) {
        if (a->opt.hostile == AGENT_HOSTILE_GARBAGE) {
                static char buf[AGENT_GARBAGE_MAX];

                if (!a->has_last)
                        (void) collect(a, now);
                for (int i = 0; i < GARBAGE_PER_TICK; i++) {
                        size_t n = agent_garbage_line(&a->rng, &a->last, buf, sizeof(buf));

                        out_queue(a, now, buf, n);
                }
                return;
        }
        if (!a->welcomed)
                return;
        if (collect(a, now) >= 0)
                queue_report(a, now, &a->last);
}

static void schedule_tick(struct agent *a, uint64_t now) {
        /* Fixed rate, so reports do not drift; but after a stall (guest paused, port blocked) the
         * next one is one interval away, never a burst of the missed ones. */
        a->next_tick_usec += a->interval_usec;
        if (a->next_tick_usec <= now)
                a->next_tick_usec = now + a->interval_usec;
}

static void handle_line(struct agent *a, uint64_t now, const char *line, size_t len) {
        struct agent_msg msg;
        char err[128];
        int r;

        r = agent_msg_parse(line, len, &msg, err, sizeof(err));
        if (r < 0) {
                log_limited(&a->rl_host, now, LOG_LEVEL_WARNING, 0, "ignoring a message from the host: %s", err);
                return;
        }

        switch (msg.type) {
        case AGENT_MSG_WELCOME:
                if (msg.welcome.protocol != AGENT_PROTOCOL_VERSION) {
                        log_limited(&a->rl_host, now, LOG_LEVEL_WARNING, 0,
                                    "host welcomed protocol %u, which this agent did not offer; ignoring",
                                    msg.welcome.protocol);
                        return;
                }
                if (!a->welcomed || a->interval_usec != msg.welcome.interval_ms * USEC_PER_MSEC)
                        log_limited(&a->rl_conn, now, LOG_LEVEL_INFO, 0, "welcomed: protocol %u, a report every %llu ms",
                                    msg.welcome.protocol, (unsigned long long) msg.welcome.interval_ms);
                a->welcomed = true;
                a->refused = false;
                a->interval_usec = msg.welcome.interval_ms * USEC_PER_MSEC;
                a->next_tick_usec = now; /* the host waits for data: send the first report now */
                break;
        case AGENT_MSG_ERROR:
                log_limited(&a->rl_host, now, LOG_LEVEL_ERR, 0, "host refused us: %s; asking again every %llu s", msg.error,
                            (unsigned long long) (HELLO_REFUSED_RETRY_USEC / USEC_PER_SEC));
                a->welcomed = false;
                a->refused = true;
                a->next_hello_usec = now + HELLO_REFUSED_RETRY_USEC;
                break;
        default:
                log_limited(&a->rl_host, now, LOG_LEVEL_WARNING, 0, "ignoring a message from the host of a type meant for it");
                break;
        }
}

/* ---- the port ------------------------------------------------------------------------------- */

static void port_close(struct agent *a, uint64_t now, uint64_t retry_usec) {
        if (a->fd >= 0)
                close(a->fd);
        a->fd = -1;
        a->host_absent = false;
        a->welcomed = false;
        a->out_len = 0;
        a->out_midline = false;
        a->next_open_usec = now + retry_usec;
}

static void port_error(struct agent *a, uint64_t now, int err, const char *what) {
        log_limited(&a->rl_io, now, LOG_LEVEL_WARNING, err, "%s %s: %m; reopening in %llu s", what, a->path,
                    (unsigned long long) (PORT_RETRY_USEC / USEC_PER_SEC));
        port_close(a, now, PORT_RETRY_USEC);
}

static void port_open(struct agent *a, uint64_t now) {
        struct stat st;
        int fd, fl, r;

        if (a->opt.port)
                snprintf(a->path, sizeof(a->path), "%s", a->opt.port); /* length checked at parsing */
        else {
                r = agent_port_find(NULL, AGENT_PORT_NAME, a->path, sizeof(a->path));
                if (r < 0) {
                        if (!a->said_no_port)
                                log_agent(LOG_LEVEL_NOTICE, 0, "no virtio-serial port named %s yet; looking every %llu s",
                                          AGENT_PORT_NAME, (unsigned long long) (PORT_RETRY_USEC / USEC_PER_SEC));
                        a->said_no_port = true;
                        a->next_open_usec = now + PORT_RETRY_USEC;
                        return;
                }
        }

        /* O_NONBLOCK: a port whose host side is absent would block write() forever. O_NOCTTY: a
         * --port that is a terminal (tests use ptys) must not become our controlling tty. */
        fd = open(a->path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = -errno;
                /* EBUSY: virtio_console lets one process open a port; another agent may have it. */
                if (r != a->said_open_error)
                        log_agent(LOG_LEVEL_WARNING, r, "cannot open %s: %m; retrying every %llu s", a->path,
                                  (unsigned long long) (PORT_RETRY_USEC / USEC_PER_SEC));
                a->said_open_error = r;
                a->next_open_usec = now + PORT_RETRY_USEC;
                return;
        }
        if (fstat(fd, &st) == 0) {
                a->rdev = st.st_rdev;
                a->ino = st.st_ino;
        }
        /* The driver sends SIGIO when the host connects or disconnects: it wakes us at once while
         * we wait for the host. Where that fails, the once-a-second check still works. */
        if (fcntl(fd, F_SETOWN, getpid()) == 0 && (fl = fcntl(fd, F_GETFL)) >= 0)
                (void) fcntl(fd, F_SETFL, fl | O_ASYNC);

        a->fd = fd;
        a->said_no_port = false;
        a->said_open_error = 0;
        a->host_absent = false;
        log_limited(&a->rl_conn, now, LOG_LEVEL_INFO, 0, "using %s", a->path);
        session_start(a, now);
}

static void host_gone(struct agent *a, uint64_t now) {
        char buf[AGENT_MSG_MAX];

        /* What the departed host sent and we did not read belongs to its session, not the next
         * one's (a stale welcome would make us report before the new host welcomed us). A port
         * whose host is gone reads 0 once its buffers are empty; the bound covers a port that
         * never does (a pty). */
        for (int i = 0; i < 16 && read(a->fd, buf, sizeof(buf)) > 0; i++)
                ;
        if (!a->host_absent)
                log_limited(&a->rl_conn, now, LOG_LEVEL_INFO, 0, "host side of %s not connected; waiting", a->path);
        a->host_absent = true;
        a->welcomed = false;
        a->out_len = 0;
        a->out_midline = false;
        a->next_host_check_usec = now + HOST_CHECK_USEC;
}

/* While the host is away: is it back, and is our port still the port? */
static void host_check(struct agent *a, uint64_t now) {
        struct pollfd p = { .fd = a->fd, .events = POLLIN };
        struct stat st;

        /* A hot-unplugged (or replaced) port stays "disconnected" forever on the old fd. */
        if (stat(a->path, &st) < 0 || st.st_rdev != a->rdev || st.st_ino != a->ino) {
                port_error(a, now, ENODEV, "port replaced or gone:");
                return;
        }
        if (poll(&p, 1, 0) < 0)
                return;
        if (p.revents & (POLLERR | POLLNVAL)) {
                port_error(a, now, EIO, "error on");
                return;
        }
        if (p.revents & POLLHUP) {
                a->next_host_check_usec = now + HOST_CHECK_USEC;
                return;
        }
        a->host_absent = false;
        log_limited(&a->rl_conn, now, LOG_LEVEL_INFO, 0, "host connected to %s; saying hello", a->path);
        session_start(a, now);
}

/* Reads what the host sent. Returns 0, -ECONNRESET when the host side closed, or -errno. */
static int port_read(struct agent *a, uint64_t now) {
        char buf[AGENT_MSG_MAX];

        for (;;) {
                ssize_t n = read(a->fd, buf, sizeof(buf));
                size_t off = 0;

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN ? 0 : -errno;
                }
                if (n == 0)
                        return -ECONNRESET;
                while (off < (size_t) n) {
                        const char *line;
                        size_t used = 0, line_len;
                        int r = agent_linebuf_push(&a->lb, buf + off, (size_t) n - off, &used, &line, &line_len);

                        off += used;
                        if (r == 1)
                                handle_line(a, now, line, line_len);
                        else if (r == 2)
                                log_limited(&a->rl_host, now, LOG_LEVEL_WARNING, 0,
                                            "ignoring an oversized line from the host");
                        else if (used == 0)
                                break;
                }
        }
}

/* ---- signals and shutdown ------------------------------------------------------------------- */

static int signals_setup(void) {
        sigset_t set;

        /* SIGPIPE: a --port that is a pipe or socket whose reader left must give EPIPE, not death. */
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGIO);
        if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
                return -errno;
        return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void say_bye(struct agent *a) {
        uint64_t start = now_usec();
        char buf[64];
        int n;

        if (a->fd < 0 || a->host_absent)
                return;
        n = agent_format_bye(buf, sizeof(buf));
        if (n < 0)
                return;
        out_queue(a, start, buf, (size_t) n);
        for (;;) {
                struct pollfd p = { .fd = a->fd, .events = POLLOUT };
                uint64_t now;

                if (out_flush(a) < 0 || a->out_len == 0)
                        return;
                now = now_usec();
                if (now - start >= BYE_FLUSH_USEC)
                        return;
                if (poll(&p, 1, (int) ((BYE_FLUSH_USEC - (now - start) + 999) / 1000)) <= 0 ||
                    (p.revents & (POLLHUP | POLLERR | POLLNVAL)))
                        return;
        }
}

/* Returns true when the agent should exit. */
static bool handle_signals(struct agent *a, uint64_t now) {
        struct signalfd_siginfo si;
        bool quit = false;

        while (read(a->sigfd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
                        quit = true;
                else if (si.ssi_signo == SIGIO && a->host_absent)
                        a->next_host_check_usec = now;
        }
        return quit;
}

/* ---- the loop ------------------------------------------------------------------------------- */

static int timeout_ms(uint64_t now, uint64_t deadline) {
        uint64_t ms;

        if (deadline <= now)
                return 0;
        ms = (deadline - now + 999) / 1000;
        return ms > INT_MAX ? INT_MAX : (int) ms;
}

static int run(struct agent *a) {
        for (;;) {
                uint64_t now = now_usec(), deadline = UINT64_MAX;
                struct pollfd p[2] = { { .fd = a->sigfd, .events = POLLIN }, { .fd = -1 } };
                bool flooding;
                int r;

                if (a->fd < 0 && now >= a->next_open_usec)
                        port_open(a, now);
                if (a->fd >= 0 && a->host_absent && now >= a->next_host_check_usec)
                        host_check(a, now);

                flooding = false;
                if (a->fd >= 0 && !a->host_absent) {
                        if (!a->welcomed && now >= a->next_hello_usec)
                                queue_hello(a, now);
                        if (now >= a->next_tick_usec) {
                                tick(a, now);
                                schedule_tick(a, now);
                        }
                        if (a->opt.hostile == AGENT_HOSTILE_FLOOD && a->welcomed && a->has_last) {
                                /* As fast as the port takes them: refill whenever it has drained. */
                                flooding = true;
                                if (a->out_len == 0) {
                                        a->last.uptime_ms = clock_usec(CLOCK_BOOTTIME) / USEC_PER_MSEC;
                                        queue_report(a, now, &a->last);
                                }
                        }
                        r = out_flush(a);
                        if (r < 0)
                                port_error(a, now, r, "cannot write to");
                }

                /* When to wake up. */
                if (a->fd < 0)
                        deadline = a->next_open_usec;
                else if (a->host_absent)
                        deadline = a->next_host_check_usec;
                else {
                        p[1] = (struct pollfd) { .fd = a->fd, .events = POLLIN | (a->out_len ? POLLOUT : 0) };
                        if (a->welcomed || a->opt.hostile == AGENT_HOSTILE_GARBAGE)
                                deadline = a->next_tick_usec;
                        if (!a->welcomed)
                                deadline = min_u64(deadline, a->next_hello_usec);
                        if (flooding && a->out_len == 0)
                                deadline = now;
                }

                r = poll(p, 2, deadline == UINT64_MAX ? -1 : timeout_ms(now, deadline));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_agent(LOG_LEVEL_ERR, errno, "poll: %m");
                }
                now = now_usec();

                if ((p[0].revents & POLLIN) && handle_signals(a, now)) {
                        say_bye(a);
                        log_agent(LOG_LEVEL_INFO, 0, "stopping%s", a->fd >= 0 && !a->host_absent ? " (said bye)" : "");
                        return 0;
                }

                if (p[1].fd < 0 || a->fd < 0 || p[1].revents == 0)
                        continue;
                if (p[1].revents & POLLNVAL) {
                        port_error(a, now, EBADF, "lost");
                        continue;
                }
                /* Data first: the host may have said something before it went away. */
                if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
                        r = port_read(a, now);
                        if (r == -ECONNRESET) {
                                host_gone(a, now);
                                continue;
                        }
                        if (r < 0) {
                                port_error(a, now, r, "cannot read from");
                                continue;
                        }
                        if (p[1].revents & POLLHUP) {
                                host_gone(a, now);
                                continue;
                        }
                }
                if (p[1].revents & POLLOUT) {
                        r = out_flush(a);
                        if (r < 0)
                                port_error(a, now, r, "cannot write to");
                }
        }
}

/* ---- command line --------------------------------------------------------------------------- */

/* The text is the manual page's synopsis and options (docs/man/tide-agent.8.scd, tools/scd2help);
 * the page names the port AGENT_PORT_NAME gives. */
static void usage(FILE *f) {
        fputs(TIDE_AGENT_HELP, f);
}

static int parse_options(int argc, char **argv, struct options *o) {
        enum { OPT_PORT = 256, OPT_INTERVAL, OPT_ONCE, OPT_ROOT, OPT_HOSTILE, OPT_LOG_LEVEL, OPT_VERSION };
        static const struct option longopts[] = {
                { "port", required_argument, NULL, OPT_PORT },
                { "interval", required_argument, NULL, OPT_INTERVAL },
                { "once", no_argument, NULL, OPT_ONCE },
                { "root", required_argument, NULL, OPT_ROOT },
                { "hostile", required_argument, NULL, OPT_HOSTILE },
                { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
                { "version", no_argument, NULL, OPT_VERSION },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *why;
        enum log_level level;
        int c;

        *o = (struct options) { .interval_usec = AGENT_INTERVAL_MS_DEFAULT * USEC_PER_MSEC };
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (c) {
                case OPT_PORT:
                        if (optarg[0] == '\0' || strlen(optarg) >= PATH_MAX) {
                                fprintf(stderr, "tide-agent: --port: want a non-empty path shorter than %d bytes\n", PATH_MAX);
                                return -EINVAL;
                        }
                        o->port = optarg;
                        break;
                case OPT_INTERVAL:
                        if (duration_parse(optarg, &o->interval_usec, &why) < 0) {
                                fprintf(stderr, "tide-agent: --interval %s: %s\n", optarg, why);
                                return -EINVAL;
                        }
                        if (o->interval_usec < AGENT_INTERVAL_MS_MIN * USEC_PER_MSEC ||
                            o->interval_usec > AGENT_INTERVAL_MS_MAX * USEC_PER_MSEC) {
                                fprintf(stderr, "tide-agent: --interval %s: outside 250ms-60s\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case OPT_ONCE:
                        o->once = true;
                        break;
                case OPT_ROOT:
                        o->root = optarg;
                        break;
                case OPT_HOSTILE:
                        if (agent_hostile_parse(optarg, &o->hostile) < 0) {
                                fprintf(stderr, "tide-agent: --hostile %s: want lie, flood, garbage or replay\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case OPT_LOG_LEVEL:
                        if (log_level_parse(optarg, &level) < 0) {
                                fprintf(stderr, "tide-agent: --log-level %s: want err, warning, notice, info or debug\n",
                                        optarg);
                                return -EINVAL;
                        }
                        log_set_max_level(level);
                        break;
                case OPT_VERSION:
                        printf("%s\n", AGENT_ID);
                        exit(EXIT_SUCCESS);
                case 'h':
                        usage(stdout);
                        exit(EXIT_SUCCESS);
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "tide-agent: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        return 0;
}

static int run_once(struct agent *a) {
        char buf[AGENT_MSG_MAX];
        int n, r;

        agent_collector_init(&a->col, NULL);
        r = collect(a, now_usec());
        if (r < 0)
                return r;
        /* The report as the loop would send it (hostile rewrites included), but to stdout. */
        a->last.seq = 1;
        if (a->opt.hostile == AGENT_HOSTILE_LIE)
                agent_report_lie(&a->last);
        n = agent_format_report(buf, sizeof(buf), &a->last);
        if (n < 0)
                return log_agent(LOG_LEVEL_ERR, n, "cannot encode the report: %m");
        fputs(buf, stdout);
        return fflush(stdout) == 0 ? 0 : -EIO;
}

int main(int argc, char **argv) {
        static struct agent a; /* ~30 KiB of buffers: not on the stack */
        struct agent_sample s;
        int r;

        if (parse_options(argc, argv, &a.opt) < 0)
                return 2;
        a.fd = -1;
        a.sigfd = -1;
        a.rng = now_usec() | 1;
        /* json-c seeds its default string hash from the kernel's CSPRNG on the first key it sees
         * (the host's welcome). Early in a guest's boot without RDRAND or virtio-rng (TCG) the
         * CSPRNG is not ready, and reading /dev/urandom then runs the kernel's jitter-entropy
         * loop: measured 1 s of CPU and a first report 1 s late. The agent only parses the
         * host's few short lines, so a seedless hash costs nothing in safety. */
        json_global_set_string_hash(JSON_C_STR_HASH_PERLLIKE);

        r = agent_source_open(&a.src, a.opt.root);
        if (r < 0) {
                log_agent(LOG_LEVEL_ERR, r, "cannot set up reading memory counters: %m");
                return 1;
        }
        if (a.opt.once) {
                r = run_once(&a);
                agent_source_close(&a.src);
                return r < 0 ? 1 : 0;
        }

        a.sigfd = signals_setup();
        if (a.sigfd < 0) {
                log_agent(LOG_LEVEL_ERR, a.sigfd, "cannot set up signals: %m");
                return 1;
        }
        /* Major faults count from the start: the first report then covers the time since. */
        agent_collector_init(&a.col, agent_source_read(&a.src, &s, NULL, NULL) >= 0 ? &s : NULL);
        log_agent(LOG_LEVEL_INFO, 0, "%s starting%s%s", AGENT_ID, a.opt.hostile ? "; TEST MODE --hostile=" : "",
                  a.opt.hostile ? agent_hostile_name(a.opt.hostile) : "");

        r = run(&a);
        agent_source_close(&a.src);
        return r < 0 ? 1 : 0;
}
