/* tided: the dynamic-memory controller. One event loop (libvirt's) carries the tick timer,
 * domain events, signals (signalfd) and the control socket; the metrics endpoint runs in
 * libmicrohttpd's own thread and serves the last published snapshot. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "balloon/hv.h"
#include "common/cgroup.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/macro.h"
#include "coreparking/load.h"
#include "coreparking/topology.h"
#include "daemon/control.h"
#include "daemon/manager.h"
#include "daemon/metrics.h"
#include "policy/config.h"
#include "tided.8.h" /* generated: TIDED_HELP */

#ifndef TIDE_VERSION
#error "TIDE_VERSION must be defined by the build"
#endif

/* Exit codes: 0 success, 1 the configuration or the start failed, 2 usage. */
#define EXIT_CONFIG 1
#define EXIT_USAGE 2
/* After libvirtd goes away, try again this often. */
#define RECONNECT_USEC (UINT64_C(5) * USEC_PER_SEC)
/* Early (grow-only) ticks between regular ones, at most this often. */
#define EARLY_TICK_MIN_USEC (UINT64_C(250) * USEC_PER_MSEC)

struct tided {
        const char *config_path;
        bool config_explicit;
        struct tide_config cfg;
        const char *uri;
        char uri_buf[CONFIG_STR_MAX]; /* the config's, copied: a reload must not change it */
        struct hv hv;
        uint64_t last_connect_usec;
        struct manager *manager;
        struct parking_load *load; /* per-CPU load for core parking, NULL when it is off */
        char socket_path[CONFIG_STR_MAX]; /* the control socket in use (a reload changes it next start) */
        struct control *control;
        struct metrics_server *metrics;
        int timer;
        int sigfd, sigwatch;
        bool quit;
        uint64_t last_tick_usec;      /* the last tick's (regular or early) start */
        uint64_t last_tick_done_usec; /* ... and its end: what the watchdog looks at */
        uint64_t watchdog_usec;       /* systemd's WatchdogSec, 0 when it is not watching */
        int watchdog_timer;
        bool ready;                   /* READY=1 sent: a later failure is no failed start */
};

/* The text is the manual page's synopsis and options (docs/man/tided.8.scd, tools/scd2help). */
static void help(void) {
        fputs(TIDED_HELP, stdout);
}

static int check_config(const char *path) {
        struct tide_config cfg;
        char err[1024];

        config_init(&cfg);
        if (config_load_file(path, &cfg, err, sizeof(err)) < 0) {
                /* Exactly "PATH:LINE: message", no program prefix: the config goldens
                 * (tests/golden/config/fail-*.err) are this line. */
                fprintf(stderr, "%s\n", err);
                return EXIT_CONFIG;
        }
        config_format(&cfg, stdout);
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "tided: failed to write the configuration to stdout\n");
                return EXIT_CONFIG;
        }
        return EXIT_SUCCESS;
}

/* Loads the config; a missing default file means defaults, a missing named file is an error. */
static int load_config(struct tided *t, struct tide_config *ret) {
        char err[1024];
        config_init(ret);
        if (!t->config_explicit && access(t->config_path, F_OK) < 0 && errno == ENOENT)
                return 0;
        if (config_load_file(t->config_path, ret, err, sizeof(err)) < 0)
                return log_error_errno(-EINVAL, "%s", err);
        return 0;
}

/* systemd (Type=notify): READY=1 once the first tick has run and the control socket answers,
 * RELOADING=1 ... READY=1 around a SIGHUP, STOPPING=1 on the way out. Without $NOTIFY_SOCKET
 * (started by hand, by a test) sd_notify() does nothing. */
static void notify(const char *state) {
        int r = sd_notify(0, state);
        if (r < 0)
                log_warning_errno(r, "Failed to tell systemd '%s': %m, continuing", state);
}

static void on_hv_event(enum hv_event_kind kind, const char *uuid, void *userdata) {
        struct tided *t = userdata;
        if (t->manager)
                manager_on_event(t->manager, kind, uuid, clock_now_usec());
}

static int connect_hv(struct tided *t) {
        char err[HV_ERR_MAX] = "";
        int r;

        t->last_connect_usec = clock_now_usec();
        r = hv_libvirt_open(t->uri, on_hv_event, t, &t->hv, err, sizeof(err));
        if (r < 0)
                return log_error_errno(r, "Failed to connect to %s: %s", t->uri, err);
        log_info("Connected to %s", t->uri);
        return 0;
}

static void on_tick(int id, void *userdata) {
        struct tided *t = userdata;
        uint64_t start = clock_now_usec();

        t->last_tick_usec = start;
        /* Silent clients are dropped even while libvirt is away: the socket must stay usable. */
        control_expire(t->control, start);
        if (t->hv.ops && !hv_libvirt_alive(&t->hv)) {
                log_warning("Lost the connection to %s; holding every VM where it is until it is back", t->uri);
                hv_libvirt_close(&t->hv); /* zeroes it: hv.ops NULL means not connected */
                /* /metrics and stats say so at once, not the last tick's frozen "connected". */
                manager_note_disconnected(t->manager);
                if (t->metrics)
                        (void) metrics_publish(t->metrics, manager_snapshot(t->manager));
        }
        if (!t->hv.ops) {
                if (start - t->last_connect_usec < RECONNECT_USEC || connect_hv(t) < 0) {
                        t->last_tick_done_usec = clock_now_usec(); /* waiting for libvirt is alive */
                        return;
                }
                (void) manager_refresh(t->manager, start);
        }
        (void) manager_tick(t->manager, start);
        t->last_tick_done_usec = clock_now_usec();
        manager_note_tick_duration(t->manager, t->last_tick_done_usec - start);
        if (t->metrics)
                (void) metrics_publish(t->metrics, manager_snapshot(t->manager));
}

/* Returns false when the file was refused (the running configuration stays). */
static bool reload(struct tided *t) {
        struct tide_config cfg;
        if (load_config(t, &cfg) < 0) {
                log_warning("Keeping the running configuration");
                return false;
        }
        if (!streq(cfg.libvirt_uri, t->cfg.libvirt_uri) || !streq(cfg.socket_path, t->cfg.socket_path) ||
            !streq(cfg.metrics_address, t->cfg.metrics_address))
                log_notice("libvirt_uri, socket and metrics changes take effect at the next start of tided");
        if (cfg.interval_usec != t->cfg.interval_usec)
                hv_event_update_timer(t->timer, cfg.interval_usec);
        if (!streq(cfg.paging_dir, t->cfg.paging_dir) || cfg.smart_paging != t->cfg.smart_paging)
                log_notice("smart_paging and paging_dir changes take effect at the next start of tided");
        /* Turning parking off, or its knobs, act at once (the plan unparks); turning it on needs
         * the topology read at start. */
        if (cfg.parking.mode != PARKING_OFF && !t->load)
                log_notice("[parking] mode: parking starts at the next start of tided");
        if (cfg.parking.mode == PARKING_PARTITION && t->cfg.parking.mode != PARKING_PARTITION && t->load) {
                log_notice("[parking] mode = partition takes effect at the next start of tided; keeping %s",
                           parking_mode_to_string(t->cfg.parking.mode));
                cfg.parking.mode = t->cfg.parking.mode;
        }
        t->cfg = cfg;
        manager_set_config(t->manager, &cfg);
        log_info("Configuration reloaded from %s", t->config_path);
        return true;
}

static void on_signal(int id, int fd, int events, void *userdata) {
        struct tided *t = userdata;
        struct signalfd_siginfo si;

        while (read(fd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                        char state[64];
                        /* systemd 253+ wants the monotonic time with RELOADING=1; older ones ignore it. */
                        snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu",
                                 (unsigned long long) clock_now_usec());
                        notify(state);
                        /* A refused file is no failure of tided's (it runs on as it was), but
                         * `systemctl status` says so. */
                        notify(reload(t) ? "READY=1\nSTATUS=Configuration reloaded"
                                         : "READY=1\nSTATUS=Reload refused: the configuration has an error "
                                           "(journalctl -u tided); running on the previous one");
                } else {
                        log_info("Received %s, exiting; VMs keep the memory they have", strsignal((int) si.ssi_signo));
                        notify("STOPPING=1");
                        t->quit = true;
                }
        }
}

/* The watchdog is pinged from the loop that runs the ticks, so a tick stuck in a libvirt call
 * (a hung libvirtd, a wedged host) stops the pings with it, and systemd restarts tided after
 * WatchdogSec. A loop that runs but whose ticks stopped coming (the timer lost) stops them too:
 * the pings need a tick finished within one interval plus one watchdog period. Waiting for
 * libvirt to come back counts as ticking. */
static void on_watchdog(int id, void *userdata) {
        struct tided *t = userdata;
        if (clock_now_usec() - t->last_tick_done_usec <= t->cfg.interval_usec + t->watchdog_usec)
                notify("WATCHDOG=1");
        else
                log_error("No tick has finished for %llu s; not pinging systemd's watchdog",
                          (unsigned long long) ((clock_now_usec() - t->last_tick_done_usec) / USEC_PER_SEC));
}

/* Pings every eighth of WatchdogSec, not the half sd_watchdog_enabled(3) suggests: no ping goes
 * while a tick runs, so a tick that starts just before a ping is due has WatchdogSec minus one
 * period before systemd acts. An eighth gives a stuck tick at least 7/8 of WatchdogSec. */
static int start_watchdog(struct tided *t) {
        uint64_t usec = 0;
        int r = sd_watchdog_enabled(0, &usec);
        if (r < 0)
                log_warning_errno(r, "Ignoring $WATCHDOG_USEC: %m");
        if (r <= 0)
                return 0;
        t->watchdog_usec = usec;
        t->watchdog_timer = hv_event_add_timer(usec / 8 > 0 ? usec / 8 : 1, on_watchdog, t);
        if (t->watchdog_timer < 0)
                return log_error_errno(t->watchdog_timer, "Failed to add the watchdog timer");
        log_info("systemd's watchdog: pinged every %llu ms while ticks finish",
                 (unsigned long long) (usec / 8 / USEC_PER_MSEC));
        return 0;
}

/* A record of what core parking changed outside tided lies beside the control socket (the one
 * --socket names, when it does). */
static void state_path(const struct tided *t, const char *name, char buf[static CGROUP_PATH_MAX]) {
        const char *sock = t->socket_path, *slash = strrchr(sock, '/');
        snprintf(buf, CGROUP_PATH_MAX, "%.*s/%s", slash ? (int) (slash - sock) : 1, slash ? sock : ".", name);
}

/* mode = partition confines libvirt's /machine partition (cgroup v2); its record lies beside the
 * control socket. Where it cannot (cgroup v1, no cpuset controller) tided pins each VM instead.
 * Whatever the mode, a record left by a tided that died is given back. */
static void enable_partition(struct tided *t) {
        char record[CGROUP_PATH_MAX];
        state_path(t, "parking-partition.state", record);
        if (t->cfg.parking.mode != PARKING_PARTITION && access(record, F_OK) < 0)
                return;
        int r = manager_enable_partition_parking(t->manager, "/sys/fs/cgroup", "/machine", record);
        if (r >= 0 || t->cfg.parking.mode != PARKING_PARTITION)
                return;
        if (r == -EOPNOTSUPP)
                log_warning("[parking] mode = partition needs cgroup v2 with the cpuset controller on libvirt's "
                            "/machine partition (on v1 libvirt writes every host CPU into each new VM's cpuset, "
                            "which a confined partition refuses: VMs would fail to start); pinning each VM instead");
        else
                log_warning_errno(r, "[parking] mode = partition: cannot use libvirt's /machine partition: %m; "
                                     "pinning each VM instead");
        t->cfg.parking.mode = PARKING_PIN;
        manager_set_config(t->manager, &t->cfg);
}

/* Core parking on this host's topology (hwloc) and load (/proc/stat); any failure is logged and
 * leaves it off: tided runs on without it. Off (or unavailable), the VMs an earlier tided left
 * confined still get every CPU back. */
static void enable_parking(struct tided *t) {
        char err[PARKING_TOPO_ERR_MAX];
        _cleanup_free_ struct parking_core *cores = NULL;
        int n, r;

        /* First: what a tided that died left confined or banned is undone whatever happens next. */
        char irq_record[CGROUP_PATH_MAX];
        state_path(t, "parking-irqbalance.state", irq_record);
        (void) manager_enable_irqbalance(t->manager, NULL, irq_record);
        enable_partition(t);
        if ((n = parking_topology_load(NULL, &cores, err, sizeof(err))) < 0) {
                log_warning("Core parking is unavailable: %s, ignoring; VMs an earlier tided confined keep their pins",
                            err);
                return;
        }
        bool park = t->cfg.parking.mode != PARKING_OFF;
        if (park && (r = parking_load_new(&t->load)) < 0) {
                log_warning_errno(r, "Core parking is unavailable: cannot read /proc/stat: %m, ignoring");
                park = false;
        }
        if (!park) {
                (void) manager_enable_parking(t->manager, cores, (size_t) n, NULL, NULL);
                return;
        }
        if (manager_enable_parking(t->manager, cores, (size_t) n, manager_cpu_load_live, t->load) < 0)
                t->load = parking_load_free(t->load);
        else
                (void) manager_measure_parking(t->manager, NULL); /* logged; parking goes on unmeasured */
}

static int run(struct tided *t, const char *socket_override) {
        char err[512] = "";
        sigset_t mask;
        int r;

        /* A copy: t->cfg is replaced at each reload, and libvirt_uri changes at the next start only
         * (a reconnect after libvirtd restarts must go where tided started, as its logs say). */
        if (!t->uri) {
                snprintf(t->uri_buf, sizeof(t->uri_buf), "%s", t->cfg.libvirt_uri);
                t->uri = t->uri_buf;
        }
        r = hv_event_init();
        if (r < 0)
                return log_error_errno(r, "Failed to set up the event loop: %m");

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        t->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (t->sigfd < 0)
                return log_error_errno(-errno, "Failed to create signalfd: %m");
        t->sigwatch = hv_event_add_fd(t->sigfd, HV_FD_READABLE, on_signal, t);

        snprintf(t->socket_path, sizeof(t->socket_path), "%s", socket_override ? socket_override : t->cfg.socket_path);
        /* Before anything is adopted or given back: the records beside the socket, the paging
         * files and the pins are a running tided's, not a dead one's, while it answers. */
        if (control_in_use(t->socket_path))
                return log_error_errno(-EADDRINUSE, "%s: another tided is running; stop it first", t->socket_path);
        if ((r = connect_hv(t)) < 0)
                return r;
        if ((r = manager_new(&t->hv, &t->cfg, manager_host_live, NULL, &t->manager)) < 0)
                return log_error_errno(r, "Failed to create the manager: %m");
        /* Everything is rebuilt from libvirt: policies from metadata, sizes from the domains. */
        manager_set_cgroup_root(t->manager, "/sys/fs/cgroup");
        /* A failure is logged and leaves paging off: tided runs on without it. */
        (void) manager_enable_paging(t->manager, NULL, NULL);
        enable_parking(t);
        if ((r = manager_refresh(t->manager, clock_now_usec())) < 0)
                return r;

        if ((r = control_start(t->socket_path, t->manager, &t->control, err, sizeof(err))) < 0)
                return log_error_errno(r, "Failed to open the control socket: %s", err);
        if (t->cfg.metrics_address[0]) {
                r = metrics_server_start(t->cfg.metrics_address, &t->metrics, err, sizeof(err));
                if (r < 0)
                        log_warning_errno(r, "Metrics endpoint not started: %s, continuing without it", err);
                else
                        log_info("Metrics on http://%s/metrics", t->cfg.metrics_address);
        }
        t->timer = hv_event_add_timer(t->cfg.interval_usec, on_tick, t);
        if (t->timer < 0)
                return log_error_errno(t->timer, "Failed to add the tick timer");

        /* A first tick now, so stats answer at once; it moves nothing (no stats have advanced). */
        on_tick(t->timer, t);
        if ((r = start_watchdog(t)) < 0)
                return r;
        log_info("tided %s running: %s, socket %s, tick %llu ms", TIDE_VERSION, t->uri, t->socket_path,
                 (unsigned long long) (t->cfg.interval_usec / 1000));
        char status[512];
        snprintf(status, sizeof(status), "READY=1\nSTATUS=Ticking every %llu ms on %s",
                 (unsigned long long) (t->cfg.interval_usec / USEC_PER_MSEC), t->uri);
        notify(status);
        t->ready = true;
        while (!t->quit) {
                if (hv_event_run_once() < 0)
                        return log_error_errno(-EIO, "The event loop failed");
                /* A guest whose agent reports a jump in use is grown now, not at the next tick;
                 * at most every EARLY_TICK_MIN_USEC (a tick reads every VM's stats, so a chatty guest must not multiply that). */
                uint64_t now = clock_now_usec();
                if (t->hv.ops && now - t->last_tick_usec >= EARLY_TICK_MIN_USEC &&
                    manager_wants_early_tick(t->manager)) {
                        (void) manager_tick_early(t->manager, now);
                        t->last_tick_usec = now;
                }
        }
        return 0;
}

/* tided's way out, after run() however it ended. */
static void stop(struct tided *t) {
        /* Leave every VM's memory where it is: a balloon left inflated is safe (deflate-on-oom
         * lets the guest take memory back if it must), and a restarted tided resumes from it. */
        t->metrics = metrics_server_stop(t->metrics);
        t->control = control_stop(t->control);
        /* No VM stays limited after tided: a paging VM's limits are lifted (its file stays on and
         * the next tided releases it). */
        if (t->manager) {
                manager_stop_paging(t->manager);
                /* ... and no VM stays pinned: every confined one gets its own CPUs back. */
                manager_stop_parking(t->manager);
        }
        t->manager = manager_free(t->manager);
        t->load = parking_load_free(t->load);
        if (t->watchdog_timer >= 0)
                hv_event_remove_timer(t->watchdog_timer);
        if (t->timer >= 0)
                hv_event_remove_timer(t->timer);
        if (t->sigwatch >= 0)
                hv_event_remove_fd(t->sigwatch);
        if (t->sigfd >= 0)
                close(t->sigfd);
        if (t->hv.ops)
                hv_libvirt_close(&t->hv);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'f' },
                { "connect", required_argument, NULL, 'C' },
                { "socket", required_argument, NULL, 's' },
                { "foreground", no_argument, NULL, 'F' },
                { "check-config", required_argument, NULL, 'c' },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { NULL, 0, NULL, 0 },
        };
        struct tided t = { .config_path = CONFIG_PATH_DEFAULT, .timer = -1, .sigfd = -1, .sigwatch = -1,
                           .watchdog_timer = -1 };
        const char *check = NULL, *socket_override = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "f:C:s:Fc:vhV", options, NULL)) >= 0)
                switch (c) {
                case 'f':
                        t.config_path = optarg;
                        t.config_explicit = true;
                        break;
                case 'C':
                        t.uri = optarg;
                        break;
                case 's':
                        socket_override = optarg;
                        break;
                case 'F': /* always: readiness and supervision are systemd's (Type=notify) */
                        break;
                case 'c':
                        check = optarg;
                        break;
                case 'v':
                        log_set_max_level(LOG_LEVEL_DEBUG);
                        break;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case 'V':
                        printf("tided %s\n", TIDE_VERSION);
                        return EXIT_SUCCESS;
                default: /* getopt_long() has printed what was wrong */
                        fprintf(stderr, "Try 'tided --help'.\n");
                        return EXIT_USAGE;
                }

        if (optind < argc) {
                fprintf(stderr, "tided: unexpected argument '%s'\nTry 'tided --help'.\n", argv[optind]);
                return EXIT_USAGE;
        }
        if (check)
                return check_config(check);

        if (load_config(&t, &t.cfg) < 0) {
                notify("STATUS=Failed to start: the configuration has an error (journalctl -u tided)");
                return EXIT_CONFIG;
        }
        r = run(&t, socket_override);
        if (r < 0) {
                char status[64];
                snprintf(status, sizeof(status), "STATUS=%s\nERRNO=%d", t.ready ? "Stopped on an error" : "Failed to start", -r);
                notify(status);
        }

        stop(&t);
        return r < 0 ? EXIT_CONFIG : EXIT_SUCCESS;
}
