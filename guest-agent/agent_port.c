#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/macro.h"
#include "guest-agent/agent_port.h"

/* A port name is at most a line; anything longer is not one. */
#define PORT_NAME_FILE_MAX 256

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

static int put_path(char *buf, size_t len, const char *a, const char *b) {
        int n = snprintf(buf, len, "%s%s", a, b);

        return n < 0 || (size_t) n >= len ? -ENAMETOOLONG : 0;
}

static int find_in_sysfs(const char *root, const char *name, char *buf, size_t len) {
        char dir[4096];
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;

        if ((size_t) snprintf(dir, sizeof(dir), "%s/sys/class/virtio-ports", root) >= sizeof(dir))
                return -ENAMETOOLONG;
        d = opendir(dir);
        if (!d)
                return -ENOENT;

        while ((de = readdir(d))) {
                _cleanup_free_ char *text = NULL;
                char path[512];
                size_t n;

                if (de->d_name[0] == '.')
                        continue;
                if ((size_t) snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name) >=
                    sizeof(path))
                        continue;
                if (read_file_at(root, path, PORT_NAME_FILE_MAX, &text, &n) < 0)
                        continue;
                /* sysfs ends the name with a newline; an unnamed port has an empty file. */
                if (n > 0 && text[n - 1] == '\n')
                        text[--n] = '\0';
                if (n == 0 || strcmp(text, name) != 0)
                        continue;
                return put_path(buf, len, "/dev/", de->d_name);
        }
        return -ENOENT;
}

int agent_port_find(const char *root, const char *name, char *buf, size_t len) {
        char link[4096];
        struct stat st;
        int r;

        if (!name || !name[0] || strchr(name, '/') || !buf || len == 0)
                return -EINVAL;
        if (!root)
                root = "";

        r = find_in_sysfs(root, name, buf, len);
        if (r != -ENOENT)
                return r;

        if ((size_t) snprintf(link, sizeof(link), "%s/dev/virtio-ports/%s", root, name) >= sizeof(link))
                return -ENAMETOOLONG;
        if (stat(link, &st) < 0)
                return -ENOENT;
        return put_path(buf, len, "/dev/virtio-ports/", name);
}
