/* Finding tide's virtio-serial port inside the guest. */
#pragma once

#include <stddef.h>

/* Looks for the port named `name` (AGENT_PORT_NAME): first through sysfs, root +
 * "/sys/class/virtio-ports/<dev>/name" holding the name -> "/dev/<dev>" (what works without
 * udev, as in busybox guests), then the udev link root + "/dev/virtio-ports/<name>". Writes the
 * path (without root: root is for tests) to buf. Returns 0, -ENOENT when no port has that name
 * yet (the driver is not loaded, or the host announces ports later), -ENAMETOOLONG when buf is
 * too small. root NULL or "" is the real tree. */
int agent_port_find(const char *root, const char *name, char *buf, size_t len);
