/* irqbalance told to keep device interrupts off the parked CPUs, as intel-lpmd does it
 * (../shared/PEERS.md): a parked core woken by interrupts sleeps no deeper than an idle one.
 * A running irqbalance listens on <dir>/irqbalance<pid>.sock (dir normally /run/irqbalance) and
 * takes "settings cpus <list>" (the CPUs it must not balance interrupts to; "NULL": none again)
 * from root, with the sender's credentials attached (irqbalance.c, sock_handle()). I/O; the dir is
 * injectable for tests. */
#pragma once

#include <stddef.h>

#include "balloon/hv.h"

#define PARKING_IRQBALANCE_DIR "/run/irqbalance"
#define PARKING_IRQBALANCE_PATH_MAX 108 /* sun_path */

/* A running irqbalance's socket in dir into ret_path. Returns 0, -ENOENT when there is none (not
 * running, or too old to have one), -ENAMETOOLONG when the path does not fit a socket address. */
int parking_irqbalance_find(const char *dir, char ret_path[static PARKING_IRQBALANCE_PATH_MAX]);

/* Tells the irqbalance at path to ban `banned` (NULL or empty: nothing). Returns 0 or -errno
 * (-ECONNREFUSED: it has gone). */
int parking_irqbalance_ban(const char *path, const struct hv_cpuset *banned);
