/* tided's end of a VM's tide-agent channel: the host side of the virtio-serial port, a Unix
 * socket QEMU listens on (the domain XML's <channel> source path). Non-blocking, on the event
 * loop; every line goes through agent_session_feed() (guest-agent/protocol.h) before anything
 * of it is believed.
 *
 * The channel reconnects by itself: after a guest reboot QEMU keeps the socket, the agent
 * starts again with hello; after QEMU restarts the socket is new and connect() retries. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "balloon/hv.h"
#include "guest-agent/protocol.h"

/* A closed channel retries this often. */
#define CHANNEL_RETRY_USEC (UINT64_C(2) * 1000000)
/* One wake-up reads at most this much: a flooding guest cannot hold the loop. */
#define CHANNEL_READ_MAX 16384
/* A guest may send at most this many bytes a second; past it tided stops reading its channel
 * until its next tick at least a second later, so the guest's own writes block (QEMU's chardev buffer
 * fills) instead of tided's loop spinning on its flood. An honest agent sends a few hundred bytes
 * a second; the rate limit's burst of 10 messages of 4 KiB fits with room. */
#define CHANNEL_BYTES_PER_SEC 65536
/* Every read counts at least this much against the budget, so it bounds wake-ups too: at most
 * 256 reads a second (a few hundred microseconds of syscalls). An honest agent's report (~400
 * bytes, one write) usually arrives in one read. */
#define CHANNEL_READ_CHARGE 256
/* A rejected message is logged at most this often per VM. */
#define CHANNEL_LOG_EVERY_USEC (UINT64_C(60) * 1000000)

enum channel_state {
        CHANNEL_NONE,         /* the domain has no agent channel */
        CHANNEL_DISCONNECTED, /* cannot reach the socket (VM starting, QEMU gone): retrying */
        CHANNEL_WAITING,      /* connected, no hello yet (agent not running, or not installed) */
        CHANNEL_CONNECTED,    /* session up, reports flowing */
        CHANNEL_GONE,         /* the agent said bye */
};

struct channel {
        char name[HV_NAME_MAX];   /* the domain, for log lines */
        char path[HV_PATH_MAX];
        int fd;
        int watch;
        uint64_t retry_usec;      /* when to try connecting again */
        struct agent_linebuf lb;
        struct agent_session session;
        struct agent_limits limits; /* updated by the manager each tick */
        bool have_report;
        bool fresh;                 /* a report arrived since the manager's last tick */
        struct agent_report report; /* last accepted report */
        uint64_t report_usec;       /* when it arrived (tided's monotonic clock) */
        uint64_t oversized;         /* lines over 4 KiB, dropped */
        uint64_t last_log_usec;
        char last_error[160];       /* why the last message was rejected */
        bool flagged;               /* a message was rejected: shown in stats */
        uint64_t window_usec;       /* start of the current second of the byte budget */
        uint64_t window_bytes;      /* bytes read in it */
        bool paused;                /* over the budget: not reading until the window ends */
        uint64_t throttled;         /* times reading was paused */
        enum channel_state state;
        /* Early ticks (daemon/manager.h): a report whose use (MemTotal - MemAvailable) is above
         * early_above_kib sets `early` and counts in *early_pending, once until the manager's
         * next regular tick clears it. */
        int64_t early_above_kib;    /* INT64_MAX: no report is early */
        bool early;                 /* asked since the last regular tick */
        bool early_counted;         /* ... and counted in *early_pending, not yet served */
        unsigned *early_pending;    /* the manager's counter; NULL: none */
};

/* Prepares a channel for path (does not connect yet). */
void channel_init(struct channel *c, const char *name, const char *path);
/* Connects when due (non-blocking), resumes a paused channel whose second is over; call every
 * tick. now_usec: monotonic. */
void channel_tick(struct channel *c, uint64_t now_usec);
/* Closes the connection and forgets the session (domain stopped). Keeps counters. */
void channel_close(struct channel *c);
const char *channel_state_to_string(enum channel_state s);

/* The manager found a report contradicting what the host sees (e.g. more memory in use than
 * QEMU has resident): count it as rejected, flag the VM, log at the limited rate. */
void channel_distrust(struct channel *c, const char *why, uint64_t now_usec);

/* Processes readable data (the event-loop callback calls this; tests call it on socketpairs).
 * Returns 0, or -errno when the connection ended (then it is closed and will retry). */
int channel_read(struct channel *c, uint64_t now_usec);
