#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"

static enum log_level max_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {
        [LOG_LEVEL_ERR] = "err",
        [LOG_LEVEL_WARNING] = "warning",
        [LOG_LEVEL_NOTICE] = "notice",
        [LOG_LEVEL_INFO] = "info",
        [LOG_LEVEL_DEBUG] = "debug",
};

void log_set_max_level(enum log_level level) {
        max_level = level;
}

enum log_level log_get_max_level(void) {
        return max_level;
}

int log_level_parse(const char *s, enum log_level *ret) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (level_names[i] && strcmp(s, level_names[i]) == 0) {
                        *ret = (enum log_level) i;
                        return 0;
                }
        return -EINVAL;
}

/* $JOURNAL_STREAM is inherited by children whose stderr may point elsewhere (a pipe, a file),
 * so it only counts when it names the device and inode stderr is actually open on, as
 * systemd.exec(5) asks. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        int consumed = 0;

        if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &consumed) != 2 || e[consumed] != '\0')
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

int log_internal(enum log_level level, int errnum, const char *format, ...) {
        /* Logging must not disturb the caller's errno: code often logs and then inspects it. */
        int saved_errno = errno;
        /* abs(INT_MIN) is undefined; no errno is that large anyway. */
        int err = errnum == INT_MIN ? INT_MAX : abs(errnum);
        _cleanup_free_ char *heap = NULL;
        char stack[2048], *line = stack;
        size_t prefix_len = 0, room, len;
        va_list ap;
        int n;

        if (level > max_level)
                return -err;

        if (stderr_is_journal())
                prefix_len = (size_t) snprintf(stack, sizeof(stack), "<%d>", (int) level);

        /* One buffer and one write per line, so that lines from threads or from tided and its
         * children never interleave mid-line. The last byte is kept for the '\n'. */
        room = sizeof(stack) - prefix_len - 1;

        /* glibc's %m prints strerror(errno). With errnum 0 the caller's own errno is kept, so
         * log_error("open: %m") right after a failed libc call says what failed. */
        errno = err ? err : saved_errno;
        va_start(ap, format);
        n = vsnprintf(stack + prefix_len, room, format, ap);
        va_end(ap);
        if (n < 0) {
                errno = saved_errno;
                return -err;
        }
        len = (size_t) n;

        if (len >= room) {
                heap = malloc(prefix_len + len + 2);
                if (heap) {
                        memcpy(heap, stack, prefix_len);
                        errno = err ? err : saved_errno;
                        va_start(ap, format);
                        vsnprintf(heap + prefix_len, len + 1, format, ap);
                        va_end(ap);
                        line = heap;
                } else
                        len = room - 1; /* what fit in the stack buffer: a truncated line beats none */
        }

        line[prefix_len + len] = '\n';
        fwrite(line, 1, prefix_len + len + 1, stderr);
        fflush(stderr);

        errno = saved_errno;
        return -err;
}
