#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <libproc2/meminfo.h>

#include "common/fileio.h"
#include "common/macro.h"
#include "common/meminfo.h"

/* /proc/meminfo is about 1.5 KiB on current kernels; leave room for decades of new lines. */
#define MEMINFO_FILE_MAX (64 * 1024)

static const struct meminfo_field {
        const char *key;
        size_t offset;
        bool required;
} fields[] = {
        { "MemTotal", offsetof(struct meminfo, total_kib), true },
        { "MemFree", offsetof(struct meminfo, free_kib), true },
        { "MemAvailable", offsetof(struct meminfo, available_kib), true },
        { "Buffers", offsetof(struct meminfo, buffers_kib), false },
        { "Cached", offsetof(struct meminfo, cached_kib), false },
        { "SwapTotal", offsetof(struct meminfo, swap_total_kib), false },
        { "SwapFree", offsetof(struct meminfo, swap_free_kib), false },
        { "SwapCached", offsetof(struct meminfo, swap_cached_kib), false },
        { "Committed_AS", offsetof(struct meminfo, committed_as_kib), false },
};

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

/* Parses the value part of a line, [p, end): blanks, digits, " kB", optional blanks. The kernel
 * writes "%8lu kB"; a value without the unit (HugePages_Total has none) is a count, not a size,
 * and must not be read as KiB. */
static int parse_kb(const char *p, const char *end, uint64_t *ret) {
        uint64_t v = 0;
        const char *digits;

        while (p < end && is_blank(*p))
                p++;
        digits = p;
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
                unsigned d = (unsigned) (*p - '0');

                if (v > (UINT64_MAX - d) / 10)
                        return -EINVAL;
                v = v * 10 + d;
        }
        if (p == digits || p == end || !is_blank(*p))
                return -EINVAL;
        while (p < end && is_blank(*p))
                p++;
        if (end - p < 2 || memcmp(p, "kB", 2) != 0)
                return -EINVAL;
        for (p += 2; p < end; p++)
                if (!is_blank(*p))
                        return -EINVAL;
        *ret = v;
        return 0;
}

int meminfo_parse(const char *text, struct meminfo *ret) {
        struct meminfo m = { 0 };
        bool seen[ELEMENTSOF(fields)] = { false };
        const char *p = text;

        if (!text)
                return -EINVAL;

        while (*p) {
                const char *eol = strchrnul(p, '\n'), *line = p, *colon;

                p = *eol ? eol + 1 : eol;

                colon = memchr(line, ':', (size_t) (eol - line));
                if (!colon)
                        continue;

                /* Only the fields tide uses are checked: the other ~50 lines vary by kernel
                 * version and config, and their format is not ours to police. */
                for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                        size_t key_len = strlen(fields[i].key);
                        int r;

                        if ((size_t) (colon - line) != key_len || memcmp(line, fields[i].key, key_len) != 0)
                                continue;
                        /* The kernel never repeats a line: a file that does was not written by it. */
                        if (seen[i])
                                return -EINVAL;
                        r = parse_kb(colon + 1, eol, (uint64_t *) ((char *) &m + fields[i].offset));
                        if (r < 0)
                                return r;
                        seen[i] = true;
                        break;
                }
        }

        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                if (fields[i].required && !seen[i])
                        return -EINVAL;

        *ret = m;
        return 0;
}

int meminfo_read(const char *root, struct meminfo *ret) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = read_file_at(root, "/proc/meminfo", MEMINFO_FILE_MAX, &text, NULL);
        if (r < 0)
                return r;
        return meminfo_parse(text, ret);
}

int meminfo_read_info(struct meminfo_info *info, struct meminfo *ret) {
        /* Not const: procps_meminfo_select() takes a plain pointer. Indexes match offsets[]. */
        static enum meminfo_item items[] = {
                MEMINFO_MEM_TOTAL,   MEMINFO_MEM_FREE,  MEMINFO_MEM_AVAILABLE, MEMINFO_MEM_BUFFERS,
                MEMINFO_MEM_CACHED,  MEMINFO_SWAP_TOTAL, MEMINFO_SWAP_FREE,    MEMINFO_MEM_COMMITTED_AS,
                MEMINFO_SWAP_CACHED,
        };
        static const size_t offsets[ELEMENTSOF(items)] = {
                offsetof(struct meminfo, total_kib),      offsetof(struct meminfo, free_kib),
                offsetof(struct meminfo, available_kib),  offsetof(struct meminfo, buffers_kib),
                offsetof(struct meminfo, cached_kib),     offsetof(struct meminfo, swap_total_kib),
                offsetof(struct meminfo, swap_free_kib),  offsetof(struct meminfo, committed_as_kib),
                offsetof(struct meminfo, swap_cached_kib),
        };
        struct meminfo_stack *stack;
        struct meminfo m = { 0 };

        /* One select reads the file once for all fields, so they describe the same instant;
         * per-item procps_meminfo_get() calls may re-read between fields (and cache for a
         * second), and MEMINFO_GET() would turn a failure into 0, which reads as "no memory". */
        errno = 0;
        stack = procps_meminfo_select(info, items, (int) ELEMENTSOF(items));
        if (!stack)
                return errno > 0 ? -errno : -EIO;
        for (size_t i = 0; i < ELEMENTSOF(items); i++)
                *(uint64_t *) ((char *) &m + offsets[i]) = stack->head[i].result.ul_int;
        if (m.total_kib == 0)
                return -EIO; /* the library read nothing useful; do not report an empty host */
        *ret = m;
        return 0;
}

int meminfo_read_live(struct meminfo *ret) {
        struct meminfo_info *info = NULL;
        int r;

        r = procps_meminfo_new(&info);
        if (r < 0)
                return r;
        if (!info)
                return -EIO;
        r = meminfo_read_info(info, ret);
        procps_meminfo_unref(&info);
        return r;
}
