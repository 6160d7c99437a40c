#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/macro.h"

/* The root is for tests and for reading a guest's tree; it is not a security boundary
 * (symlinks under it are followed), which is fine for files tide itself chose to read. */
static char *path_join_root(const char *root, const char *path) {
        size_t root_len = root ? strlen(root) : 0;
        size_t path_len = strlen(path);
        char *p;

        /* "tests/fixtures/x/" + "/proc/meminfo" must not become "...x//proc/meminfo" in
         * messages, and "/" as root must mean the real tree. */
        while (root_len > 0 && root[root_len - 1] == '/')
                root_len--;

        p = malloc(root_len + path_len + 1);
        if (!p)
                return NULL;
        if (root_len > 0)
                memcpy(p, root, root_len);
        memcpy(p + root_len, path, path_len + 1);
        return p;
}

int read_file_at(const char *root, const char *path, size_t max_bytes, char **ret, size_t *ret_len) {
        _cleanup_free_ char *full = NULL, *buf = NULL;
        _cleanup_close_ int fd = -1;
        size_t len = 0, size;

        if (!path || !ret || (root && root[0] && path[0] != '/'))
                return -EINVAL;
        /* Room for the NUL and for the one byte past max_bytes that tells "too large" apart
         * from "exactly max_bytes". */
        if (max_bytes > SIZE_MAX - 2)
                max_bytes = SIZE_MAX - 2;

        full = path_join_root(root, path);
        if (!full)
                return -ENOMEM;

        fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;

        /* /proc files report st_size 0, so the size is learnt by reading, never by fstat(). */
        size = max_bytes + 2 < 4096 ? max_bytes + 2 : 4096;
        buf = malloc(size);
        if (!buf)
                return -ENOMEM;

        for (;;) {
                ssize_t n;

                if (len + 1 == size) {
                        size_t new_size = size > (max_bytes + 2) / 2 ? max_bytes + 2 : size * 2;
                        char *p = realloc(buf, new_size);

                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        size = new_size;
                }

                n = read(fd, buf + len, size - 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > max_bytes)
                        return -EFBIG;
        }

        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = len;
        return 0;
}

int write_file_atomic(const char *path, const char *text, size_t len) {
        char tmp[4096 + 8];
        if (!path || (!text && len) || strlen(path) > 4096)
                return -EINVAL;
        snprintf(tmp, sizeof(tmp), "%s.new", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        ssize_t w = write(fd, text, len);
        int r = w >= 0 && (size_t) w == len ? 0 : w < 0 ? -errno : -EIO;
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                (void) unlink(tmp);
        return r;
}
