/* bench_channel: what a flooding guest costs tided. tided's end of the agent channel
 * (daemon/channel.c: line splitter, rate limit, parser, session rules) is fed from a socketpair
 * as fast as it can take it, with three kinds of flood a hostile tide-agent can send:
 *
 *   reports   well-formed reports, far over the rate limit (dropped before parsing)
 *   garbage   short lines that are not JSON (each one within the rate limit is parsed)
 *   oversized one endless line without a newline (dropped in the line splitter)
 *
 *   bench_channel [--mib M] [--runs R]
 *
 * Prints per kind the median over R runs of tided's CPU per MiB received and per line, measured
 * with CLOCK_THREAD_CPUTIME_ID around channel_read() only (the writer's cost is the guest's).
 * The per-second byte budget (CHANNEL_BYTES_PER_SEC) is lifted while measuring, or a run would
 * stop after 64 KiB; what it bounds is then printed: "pct_core_at_budget", the share of one core
 * a VM flooding as fast as tided lets it costs. One wake-up reads at most CHANNEL_READ_MAX:
 * "us_per_wakeup" is what one event-loop turn can spend on one flooding VM. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/macro.h"
#include "daemon/channel.h"

enum kind { KIND_REPORTS, KIND_GARBAGE, KIND_OVERSIZED, KIND_MAX };
static const char *const kind_names[KIND_MAX] = { "reports", "garbage", "oversized" };

static uint64_t thread_cpu_nsec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* Fills buf with whole lines of the kind (or newline-free bytes); returns the line count. */
static size_t fill(enum kind k, char *buf, size_t len, uint64_t *seq) {
        size_t off = 0, lines = 0;
        if (k == KIND_OVERSIZED) {
                memset(buf, 'x', len);
                return 0;
        }
        while (off < len) {
                char line[1024];
                int n;
                if (k == KIND_REPORTS) {
                        struct agent_report r = { .seq = ++*seq, .uptime_ms = *seq, .total_kib = 1048576,
                                                  .available_kib = 524288, .floor_kib = 131072 };
                        n = agent_format_report(line, sizeof(line), &r);
                } else
                        n = snprintf(line, sizeof(line), "{\"type\":\"report\",\"seq\":%" PRIu64 ",garbage]]\n", ++*seq);
                if (n <= 0 || off + (size_t) n > len)
                        break;
                memcpy(buf + off, line, (size_t) n);
                off += (size_t) n;
                lines++;
        }
        memset(buf + off, '\n', len - off); /* empty lines pad the chunk: skipped, not counted */
        return lines;
}

struct result {
        double ns_per_mib, ns_per_line, us_per_wakeup;
        uint64_t rejected, rate_dropped, oversized;
};

static int run(enum kind k, size_t mib, struct result *res) {
        static char chunk[CHANNEL_READ_MAX];
        struct channel ch;
        int sv[2];
        char hello[256];
        uint64_t seq = 0, cpu = 0, wakeups = 0, lines = 0, sent = 0;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
                return -errno;
        channel_init(&ch, "bench", "/nonexistent.sock");
        ch.fd = sv[0];
        ch.state = CHANNEL_WAITING;
        ch.limits.max_total_kib = UINT64_C(4) * KIB_PER_GIB;
        if (agent_format_hello(hello, sizeof(hello), "tide-agent/bench", "linux") <= 0 ||
            write(sv[1], hello, strlen(hello)) != (ssize_t) strlen(hello) || channel_read(&ch, clock_now_usec()) < 0) {
                channel_close(&ch);
                close(sv[1]);
                return -EIO;
        }

        while (sent < (uint64_t) mib * 1024 * 1024) {
                size_t n_lines = fill(k, chunk, sizeof(chunk), &seq);
                ssize_t w = write(sv[1], chunk, sizeof(chunk));
                if (w != (ssize_t) sizeof(chunk))
                        break; /* the reader keeps up in this loop; a short write ends the run */
                sent += (uint64_t) w;
                lines += n_lines;
                ch.window_bytes = 0; /* the budget lifted: see the header */
                ch.paused = false;
                uint64_t c0 = thread_cpu_nsec();
                int r = channel_read(&ch, clock_now_usec());
                cpu += thread_cpu_nsec() - c0;
                wakeups++;
                if (r < 0)
                        break;
                char drain[4096]; /* welcome and any replies */
                while (read(sv[1], drain, sizeof(drain)) > 0)
                        ;
        }
        res->ns_per_mib = sent ? (double) cpu / ((double) sent / (1024.0 * 1024.0)) : 0;
        res->ns_per_line = lines ? (double) cpu / (double) lines : 0;
        res->us_per_wakeup = wakeups ? (double) cpu / (double) wakeups / 1000.0 : 0;
        res->rejected = ch.session.rejected;
        res->rate_dropped = ch.session.rate_dropped;
        res->oversized = ch.oversized;
        channel_close(&ch);
        close(sv[1]);
        return sent > 0 ? 0 : -EIO;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "mib", required_argument, NULL, 'm' },
                { "runs", required_argument, NULL, 'r' },
                { 0 },
        };
        unsigned long mib = 64, runs = 5;
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                char *end;
                unsigned long v;
                switch (c) {
                case 'm':
                case 'r':
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || *end || v == 0 || v > 4096) {
                                fprintf(stderr, "bench_channel: --%s: '%s' is not a number from 1 to 4096\n",
                                        c == 'm' ? "mib" : "runs", optarg);
                                return 2;
                        }
                        *(c == 'm' ? &mib : &runs) = v;
                        break;
                default:
                        fprintf(stderr, "usage: bench_channel [--mib M] [--runs R]\n");
                        return 2;
                }
        }
        log_set_max_level(LOG_LEVEL_ERR); /* rejected lines are logged once a minute; not the figure */

        for (int k = 0; k < KIND_MAX; k++) {
                double per_mib[64], per_line[64], per_wake[64];
                struct result res = { 0 };
                unsigned long n = runs < 64 ? runs : 64;
                for (unsigned long i = 0; i < n; i++) {
                        int r = run((enum kind) k, mib, &res);
                        if (r < 0) {
                                fprintf(stderr, "bench_channel: %s run failed: %s\n", kind_names[k], strerror(-r));
                                return 1;
                        }
                        per_mib[i] = res.ns_per_mib;
                        per_line[i] = res.ns_per_line;
                        per_wake[i] = res.us_per_wakeup;
                }
                qsort(per_mib, n, sizeof(double), cmp_double);
                qsort(per_line, n, sizeof(double), cmp_double);
                qsort(per_wake, n, sizeof(double), cmp_double);
                double budget_mib = CHANNEL_BYTES_PER_SEC / (1024.0 * 1024.0);
                printf("%-9s ms_cpu_per_mib %.3f ns_per_line %.0f us_per_wakeup %.1f pct_core_at_budget %.4f"
                       " (last run: %" PRIu64 " rejected, %" PRIu64 " over the rate limit, %" PRIu64 " oversized)\n",
                       kind_names[k], per_mib[n / 2] / 1e6, per_line[n / 2], per_wake[n / 2],
                       per_mib[n / 2] * budget_mib / 1e9 * 100.0, res.rejected, res.rate_dropped, res.oversized);
        }
        return 0;
}
