#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cgroup.h"
#include "common/fileio.h"
#include "common/macro.h"

int cgroup_parse_bytes(const char *text, uint64_t *ret_kib) {
        char *end;

        while (*text == ' ')
                text++;
        if (strncmp(text, "max", 3) == 0 && (text[3] == '\0' || text[3] == '\n')) {
                *ret_kib = CGROUP_UNLIMITED;
                return 0;
        }
        if (*text < '0' || *text > '9')
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(text, &end, 10);
        if (errno || (*end != '\0' && *end != '\n'))
                return -EINVAL;
        *ret_kib = v >= CGROUP_V1_UNLIMITED_BYTES ? CGROUP_UNLIMITED : (uint64_t) (v / 1024);
        return 0;
}

/* libvirt's two spellings of a partition as a cgroup path, without and with systemd. */
static int partition_paths(const char *partition, char plain[static CGROUP_PATH_MAX],
                           char slice[static CGROUP_PATH_MAX]) {
        char copy[CGROUP_PATH_MAX], prefix[CGROUP_PATH_MAX] = "";
        size_t po = 0, so = 0;
        bool first = true;

        if (partition[0] != '/' || strstr(partition, "..") || strlen(partition) >= sizeof(copy))
                return -EINVAL;
        snprintf(copy, sizeof(copy), "%s", partition + 1);
        plain[0] = slice[0] = '\0';
        for (char *save = NULL, *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                int a = snprintf(plain + po, CGROUP_PATH_MAX - po, "/%s%s", c, first ? "" : ".partition");
                /* systemd slices carry their parents' names: machine-tenant.slice. */
                size_t pl = strlen(prefix);
                snprintf(prefix + pl, sizeof(prefix) - pl, "%s%s", first ? "" : "-", c);
                int b = snprintf(slice + so, CGROUP_PATH_MAX - so, "/%s.slice", prefix);
                if (a < 0 || b < 0 || po + (size_t) a >= CGROUP_PATH_MAX || so + (size_t) b >= CGROUP_PATH_MAX)
                        return -EINVAL;
                po += (size_t) a;
                so += (size_t) b;
                first = false;
        }
        return first ? -EINVAL : 0;
}

static bool is_dir(const char *root, const char *path) {
        char full[2 * CGROUP_PATH_MAX + 16];
        struct stat st;
        snprintf(full, sizeof(full), "%s%s", root ? root : "", path);
        return stat(full, &st) == 0 && S_ISDIR(st.st_mode);
}

static int read_kib(const char *root, const char *dir, const char *file, uint64_t *ret_kib) {
        _cleanup_free_ char *text = NULL;
        char path[2 * CGROUP_PATH_MAX];
        int r;

        snprintf(path, sizeof(path), "%s/%s", dir, file);
        if ((r = read_file_at(root, path, 64, &text, NULL)) < 0)
                return r;
        return cgroup_parse_bytes(text, ret_kib);
}

int cgroup_partition_memory_at(const char *root, const char *partition, uint64_t *ret_limit_kib,
                               uint64_t *ret_usage_kib) {
        char plain[CGROUP_PATH_MAX], slice[CGROUP_PATH_MAX], dir[CGROUP_PATH_MAX + 16];
        uint64_t limit, usage;
        int r;

        if ((r = partition_paths(partition, plain, slice)) < 0)
                return r;
        const char *names[] = { plain, slice };
        for (int v = 1; v <= 2; v++)
                for (size_t k = 0; k < ELEMENTSOF(names); k++) {
                        snprintf(dir, sizeof(dir), "%s%s", v == 1 ? "/memory" : "", names[k]);
                        if (!is_dir(root, dir))
                                continue;
                        const char *limit_file = v == 1 ? "memory.limit_in_bytes" : "memory.max";
                        if ((r = read_kib(root, dir, limit_file, &limit)) < 0 ||
                            (r = read_kib(root, dir, v == 1 ? "memory.usage_in_bytes" : "memory.current", &usage)) < 0)
                                return r == -ENOENT ? -EINVAL : r;
                        /* The parents' limits bound it too; the hierarchy's root has none. */
                        for (char *slash = strrchr(dir, '/'); slash && slash > dir + (v == 1 ? 7 : 0);
                             slash = strrchr(dir, '/')) {
                                uint64_t up;
                                *slash = '\0';
                                if (read_kib(root, dir, limit_file, &up) == 0 && up < limit)
                                        limit = up;
                        }
                        *ret_limit_kib = limit;
                        *ret_usage_kib = usage;
                        return 0;
                }
        return -ENOENT;
}

int cgroup_partition_cpuset_dir(const char *root, const char *partition, char ret_dir[static CGROUP_PATH_MAX]) {
        char plain[CGROUP_PATH_MAX], slice[CGROUP_PATH_MAX];
        int r;

        if ((r = partition_paths(partition, plain, slice)) < 0)
                return r;
        if (is_dir(root, "/cpuset"))
                return -EOPNOTSUPP;
        const char *names[] = { plain, slice };
        for (size_t k = 0; k < ELEMENTSOF(names); k++) {
                if (!is_dir(root, names[k]))
                        continue;
                char file[2 * CGROUP_PATH_MAX + 16];
                struct stat st;
                snprintf(file, sizeof(file), "%s%s/cpuset.cpus", root ? root : "", names[k]);
                if (stat(file, &st) < 0)
                        return -EOPNOTSUPP;
                snprintf(ret_dir, CGROUP_PATH_MAX, "%s", names[k]);
                return 0;
        }
        return -ENOENT;
}

int cgroup_cpuset_read(const char *root, const char *dir, char *buf, size_t len) {
        _cleanup_free_ char *text = NULL;
        char path[2 * CGROUP_PATH_MAX];
        size_t n = 0;
        int r;

        snprintf(path, sizeof(path), "%s/cpuset.cpus", dir);
        if ((r = read_file_at(root, path, 4096, &text, &n)) < 0)
                return r;
        while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
                n--;
        if (n >= len)
                return -ENAMETOOLONG;
        memcpy(buf, text, n);
        buf[n] = '\0';
        return 0;
}

int cgroup_cpuset_write(const char *root, const char *dir, const char *list) {
        char path[3 * CGROUP_PATH_MAX];
        snprintf(path, sizeof(path), "%s%s/cpuset.cpus", root ? root : "", dir);
        int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY); /* O_TRUNC: as a shell's > */
        if (fd < 0)
                return -errno;
        /* One write: the kernel takes the whole list or refuses it (-EINVAL, -EBUSY). */
        size_t len = strlen(list);
        ssize_t w = write(fd, len ? list : "\n", len ? len : 1);
        int r = w < 0 ? -errno : 0;
        close(fd);
        return r;
}
