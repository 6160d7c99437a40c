/* irqbalance told to keep device interrupts off the parked CPUs, as intel-lpmd does it
 * (../shared/PEERS.md): a parked core woken by interrupts sleeps no deeper than an idle one.
 * A running irqbalance listens on <dir>/irqbalance<pid>.sock (dir normally /run/irqbalance) and,
 * from root with the sender's credentials attached, answers "setup" with "... BANNED <mask>"
 * (the CPUs it keeps interrupts off) and takes "settings cpus <list>" (those CPUs instead;
 * "NULL": its own choice again: isolated and nohz_full CPUs, IRQBALANCE_BANNED_CPULIST)
 * (irqbalance.c sock_handle(), cputree.c setup_banned_cpus()). I/O; dir is injectable for tests.
 * Every call gives up after PARKING_IRQBALANCE_TIMEOUT_MS: a hung irqbalance must not hang
 * tided's tick. */
#pragma once

#include <stddef.h>

#include "balloon/hv.h"

#define PARKING_IRQBALANCE_DIR "/run/irqbalance"
#define PARKING_IRQBALANCE_TIMEOUT_MS 500

/* The CPUs the running irqbalance in dir (NULL: PARKING_IRQBALANCE_DIR) keeps interrupts off now.
 * Returns 0; -ENOENT when none runs (no socket there accepts: a stale one of a dead irqbalance is
 * passed over); -EPROTO for an answer without a mask it can read; -errno. */
int parking_irqbalance_banned(const char *dir, struct hv_cpuset *ret);

/* Tells it to keep interrupts off `banned` (NULL or empty: its own choice again). Returns 0,
 * -ENOENT when none runs, or -errno. */
int parking_irqbalance_ban(const char *dir, const struct hv_cpuset *banned);
