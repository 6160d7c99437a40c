/* Smart Paging's swap files (file.h has the contract and why host-wide swap is acceptable). */
#include "smartpaging/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <unistd.h>

#include <ini.h>

#include "common/fileio.h"
#include "common/macro.h"
#include "common/units.h"

/* /proc/swaps is a line per area: a host with more areas than this is not one tide serves. */
#define SWAPS_MAX_BYTES (1024 * 1024)
#define SWAP_SUFFIX ".swap"
#define RECORD_SUFFIX ".state"
#define RECORD_MAX_BYTES 4096
#define UUID_LEN 36
/* The kernel's swap header, version 1 (include/linux/swap.h, union swap_header): boot bits,
 * then version, last_page, nr_badpages, a UUID and a label; the magic ends the first page. */
#define SWAP_INFO_OFFSET 1024
#define SWAP_MAGIC "SWAPSPACE2"
#define SWAP_MAGIC_LEN 10
/* util-linux mkswap refuses fewer pages: a header and a few pages to swap to. */
#define SWAP_MIN_PAGES 10
#define ZERO_CHUNK (1024 * 1024)

static void say(char *err, size_t errlen, const char *format, ...) __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *format, ...) {
        va_list ap;
        if (!err || errlen == 0)
                return;
        va_start(ap, format);
        vsnprintf(err, errlen, format, ap);
        va_end(ap);
}

/* /proc/swaps escapes a space, tab, newline and backslash in a path as \ooo (seq_file's
 * mangle_path with " \t\n\\"). */
static int unescape(const char *s, size_t len, char *out, size_t outlen) {
        size_t o = 0;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (c == '\\' && i + 3 < len && s[i + 1] >= '0' && s[i + 1] <= '3' &&
                    s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
                        c = (char) ((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
                        i += 3;
                }
                if (o + 1 >= outlen)
                        return -ENAMETOOLONG;
                out[o++] = c;
        }
        out[o] = '\0';
        return 0;
}

static const char *field(const char *p, const char *end, size_t *ret_len) {
        while (p < end && (*p == ' ' || *p == '\t'))
                p++;
        const char *start = p;
        while (p < end && *p != ' ' && *p != '\t')
                p++;
        *ret_len = (size_t) (p - start);
        return start;
}

static bool number(const char *s, size_t len, bool sign, long long *ret) {
        char buf[32];
        char *e;
        if (len == 0 || len >= sizeof(buf) || (!sign && s[0] == '-'))
                return false;
        memcpy(buf, s, len);
        buf[len] = '\0';
        errno = 0;
        long long v = strtoll(buf, &e, 10);
        if (errno || *e)
                return false;
        *ret = v;
        return true;
}

int paging_swaps_parse(const char *text, struct paging_swap *out, size_t max, size_t *ret_n, char *err,
                       size_t errlen) {
        size_t n = 0, line = 0;
        const char *p = text;

        if (!text || !ret_n || (max && !out))
                return -EINVAL;
        while (*p) {
                const char *end = strchr(p, '\n');
                if (!end)
                        end = p + strlen(p);
                line++;
                if (line == 1) {
                        if (strncmp(p, "Filename", 8) != 0) {
                                say(err, errlen, "line 1: not the header of /proc/swaps");
                                return -EINVAL;
                        }
                } else if (end > p) {
                        const char *f[5];
                        size_t len[5];
                        const char *q = p;
                        for (int k = 0; k < 5; k++) {
                                f[k] = field(q, end, &len[k]);
                                q = f[k] + len[k];
                        }
                        long long size, used, prio;
                        if (len[0] == 0 || len[4] == 0 || !number(f[2], len[2], false, &size) ||
                            !number(f[3], len[3], false, &used) || !number(f[4], len[4], true, &prio) ||
                            prio < -1000000 || prio > 1000000) {
                                say(err, errlen, "line %zu: expected 'path type size used priority'", line);
                                return -EINVAL;
                        }
                        if (n < max) {
                                struct paging_swap *s = &out[n];
                                if (unescape(f[0], len[0], s->path, sizeof(s->path)) < 0) {
                                        say(err, errlen, "line %zu: path longer than %d bytes", line,
                                            PAGING_PATH_MAX - 1);
                                        return -EINVAL;
                                }
                                s->is_file = len[1] == 4 && memcmp(f[1], "file", 4) == 0;
                                s->size_kib = (uint64_t) size;
                                s->used_kib = (uint64_t) used;
                                s->priority = (int) prio;
                        }
                        n++;
                }
                p = *end ? end + 1 : end;
        }
        if (line == 0) {
                say(err, errlen, "empty (expected the header of /proc/swaps)");
                return -EINVAL;
        }
        *ret_n = n;
        return 0;
}

int paging_swaps_read(const char *root, struct paging_swap *out, size_t max, size_t *ret_n, char *err,
                      size_t errlen) {
        _cleanup_free_ char *text = NULL;
        int r = read_file_at(root && root[0] ? root : "/", "/proc/swaps", SWAPS_MAX_BYTES, &text, NULL);
        if (r < 0) {
                say(err, errlen, "cannot read /proc/swaps: %s", strerror(-r));
                return r;
        }
        return paging_swaps_parse(text, out, max, ret_n, err, errlen);
}

static bool is_uuid(const char *s, size_t len) {
        if (len != UUID_LEN)
                return false;
        for (size_t i = 0; i < len; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                char c = s[i];
                if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
                        return false;
        }
        return true;
}

/* "<dir>/<uuid>.swap" -> "<dir>/<uuid>.state" */
static int record_path(const char *path, char *buf, size_t len) {
        size_t n = strlen(path), suffix = strlen(SWAP_SUFFIX);
        if (n < suffix || !streq(path + n - suffix, SWAP_SUFFIX))
                return -EINVAL;
        int w = snprintf(buf, len, "%.*s" RECORD_SUFFIX, (int) (n - suffix), path);
        return w < 0 || (size_t) w >= len ? -ENAMETOOLONG : 0;
}

int paging_file_path(const char *dir, const char *uuid, char *buf, size_t len) {
        if (!dir || !uuid || !buf || !is_uuid(uuid, strlen(uuid)))
                return -EINVAL;
        size_t d = strlen(dir);
        while (d > 1 && dir[d - 1] == '/')
                d--;
        int w = snprintf(buf, len, "%.*s/%s" SWAP_SUFFIX, (int) d, dir, uuid);
        return w < 0 || (size_t) w >= len ? -ENAMETOOLONG : 0;
}

bool paging_file_uuid(const char *dir, const char *path, char uuid[static 37]) {
        size_t d = strlen(dir), suffix = strlen(SWAP_SUFFIX);
        while (d > 1 && dir[d - 1] == '/')
                d--;
        size_t len = strlen(path);
        if (len != d + 1 + UUID_LEN + suffix || strncmp(path, dir, d) != 0 || path[d] != '/' ||
            strcmp(path + d + 1 + UUID_LEN, SWAP_SUFFIX) != 0 || !is_uuid(path + d + 1, UUID_LEN))
                return false;
        memcpy(uuid, path + d + 1, UUID_LEN);
        uuid[UUID_LEN] = '\0';
        return true;
}

/* mkdir -p: the directory itself 0700 (its files are other processes' memory), the parents it
 * makes 0755 as mkdir -p would (a parent such as /var/lib/tide may hold what others must reach:
 * the test guests' images there are read by QEMU's own user). */
static int make_dirs(const char *dir) {
        char buf[PAGING_PATH_MAX];
        if (snprintf(buf, sizeof(buf), "%s", dir) >= (int) sizeof(buf))
                return -ENAMETOOLONG;
        for (char *p = buf + 1;; p++) {
                if (*p != '/' && *p != '\0')
                        continue;
                char c = *p;
                *p = '\0';
                if (mkdir(buf, c == '\0' ? 0700 : 0755) < 0 && errno != EEXIST)
                        return -errno;
                *p = c;
                if (c == '\0')
                        return 0;
        }
}

int paging_dir_prepare(const char *dir, bool *ret_on_root, char *err, size_t errlen) {
        struct stat st, root;
        int r;

        if (!dir || dir[0] != '/') {
                say(err, errlen, "%s: not an absolute path", dir ? dir : "(null)");
                return -EINVAL;
        }
        if ((r = make_dirs(dir)) < 0) {
                say(err, errlen, "cannot make %s: %s", dir, strerror(-r));
                return r;
        }
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                r = errno ? -errno : -ENOTDIR;
                say(err, errlen, "%s: %s", dir, strerror(-r));
                return r;
        }
        if (access(dir, W_OK | X_OK) < 0) {
                r = -errno;
                say(err, errlen, "cannot write to %s: %s", dir, strerror(-r));
                return r;
        }
        if (ret_on_root)
                *ret_on_root = stat("/", &root) == 0 && root.st_dev == st.st_dev;
        return 0;
}

static int write_all(int fd, const void *buf, size_t len, off_t at) {
        const char *p = buf;
        while (len > 0) {
                ssize_t w = pwrite(fd, p, len, at);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += w;
                at += w;
                len -= (size_t) w;
        }
        return 0;
}

/* Every block of [0, bytes) allocated: fallocate where the filesystem has it, zeros where it
 * does not or where it still left holes (st_blocks short of the size). */
static int allocate(int fd, uint64_t bytes) {
        struct stat st;
        if (fallocate(fd, 0, 0, (off_t) bytes) == 0 && fstat(fd, &st) == 0 &&
            (uint64_t) st.st_blocks * 512 >= bytes)
                return 0;
        if (errno == ENOSPC)
                return -ENOSPC;
        _cleanup_free_ char *zero = calloc(1, ZERO_CHUNK);
        if (!zero)
                return -ENOMEM;
        for (uint64_t at = 0; at < bytes; at += ZERO_CHUNK) {
                int r = write_all(fd, zero, (size_t) min_u64(ZERO_CHUNK, bytes - at), (off_t) at);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int write_header(int fd, uint64_t pages, long page) {
        _cleanup_free_ unsigned char *h = calloc(1, (size_t) page);
        if (!h)
                return -ENOMEM;
        uint32_t info[3] = { 1, (uint32_t) (pages - 1), 0 }; /* version, last_page, nr_badpages */
        memcpy(h + SWAP_INFO_OFFSET, info, sizeof(info));
        /* A UUID lets blkid and swapon -s tell areas apart; none is fine if the kernel has no
         * entropy to give yet. */
        if (getrandom(h + SWAP_INFO_OFFSET + sizeof(info), 16, GRND_NONBLOCK) != 16)
                memset(h + SWAP_INFO_OFFSET + sizeof(info), 0, 16);
        memcpy(h + SWAP_INFO_OFFSET + sizeof(info) + 16, "tide-paging", 11);
        memcpy(h + page - SWAP_MAGIC_LEN, SWAP_MAGIC, SWAP_MAGIC_LEN);
        return write_all(fd, h, (size_t) page, 0);
}

int paging_file_make(const char *path, uint64_t kib, char *err, size_t errlen) {
        long page = sysconf(_SC_PAGESIZE);
        int r;

        if (!path || page <= 0)
                return -EINVAL;
        uint64_t pages = max_u64((kib * 1024 + (uint64_t) page - 1) / (uint64_t) page, SWAP_MIN_PAGES);
        if (pages > UINT32_MAX) {
                say(err, errlen, "%s: %" PRIu64 " KiB is more than a swap area holds", path, kib);
                return -EFBIG;
        }
        uint64_t bytes = pages * (uint64_t) page;

        /* A file of this name is left over (not on, or swapon would have kept it busy): made anew. */
        if (unlink(path) < 0 && errno != ENOENT) {
                r = -errno;
                say(err, errlen, "cannot replace %s: %s", path, strerror(-r));
                return r;
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                r = -errno;
                say(err, errlen, "cannot create %s: %s", path, strerror(-r));
                return r;
        }
        const char *step = "allocate";
        if ((r = allocate(fd, bytes)) >= 0 && (step = "write the swap header", r = write_header(fd, pages, page)) >= 0 &&
            (step = "sync", r = fsync(fd) < 0 ? -errno : 0) >= 0)
                step = NULL;
        if (close(fd) < 0 && r >= 0) {
                r = -errno;
                step = "close";
        }
        if (r < 0) {
                say(err, errlen, "%s: cannot %s: %s", path, step, strerror(-r));
                (void) unlink(path);
                return r;
        }
        return 0;
}

int paging_file_on(const char *path, uint64_t kib, char *err, size_t errlen) {
        int r = paging_file_make(path, kib, err, errlen);
        if (r < 0)
                return r;
        /* No SWAP_FLAG_PREFER: the kernel's next automatic priority is below every area on. */
        if (swapon(path, 0) < 0) {
                r = -errno;
                say(err, errlen, "%s: cannot switch on (swapon): %s", path, strerror(-r));
                (void) unlink(path);
                return r;
        }
        return 0;
}

int paging_file_off(const char *path, char *err, size_t errlen) {
        int r;
        if (!path)
                return -EINVAL;
        if (swapoff(path) < 0 && errno != EINVAL && errno != ENOENT) {
                r = -errno;
                say(err, errlen, "%s: cannot switch off (swapoff): %s", path, strerror(-r));
                return r;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
                r = -errno;
                say(err, errlen, "cannot remove %s: %s", path, strerror(-r));
                return r;
        }
        /* The record goes after the file: a file left without one is released with limits lifted
         * to none, a record left without a file is swept. */
        char rec[PAGING_PATH_MAX];
        if (record_path(path, rec, sizeof(rec)) == 0)
                (void) unlink(rec);
        return 0;
}

int paging_dir_sweep(const char *dir, const struct paging_swap *swaps, size_t n) {
        char path[PAGING_PATH_MAX], rec[PAGING_PATH_MAX], uuid[UUID_LEN + 1];
        int removed = 0;
        DIR *d = opendir(dir);

        if (!d)
                return errno == ENOENT ? 0 : -errno;
        for (struct dirent *e; (e = readdir(d));) {
                bool file = streq(e->d_name + strcspn(e->d_name, "."), SWAP_SUFFIX);
                /* A record's temporary file is left only by a tided killed while writing it. */
                bool tmp = streq(e->d_name + strcspn(e->d_name, "."), RECORD_SUFFIX ".new");
                if (!is_uuid(e->d_name, strcspn(e->d_name, ".")) ||
                    (!file && !tmp && !streq(e->d_name + UUID_LEN, RECORD_SUFFIX)))
                        continue;
                if (tmp) {
                        (void) unlinkat(dirfd(d), e->d_name, 0);
                        continue;
                }
                memcpy(uuid, e->d_name, UUID_LEN);
                uuid[UUID_LEN] = '\0';
                if (paging_file_path(dir, uuid, path, sizeof(path)) < 0 || record_path(path, rec, sizeof(rec)) < 0)
                        continue;
                bool on = false;
                for (size_t k = 0; k < n && !on; k++)
                        on = streq(swaps[k].path, path);
                if (on)
                        continue;
                if (unlink(file ? path : rec) == 0 && file)
                        removed++;
        }
        closedir(d);
        return removed;
}

/* ---- records ---- */

static const char *const record_keys[] = { "hard_limit", "swap_hard_limit", "startup", "grant" };

static uint64_t *record_field(struct paging_record *r, size_t k) {
        uint64_t *f[] = { &r->orig_hard_limit_kib, &r->orig_swap_hard_limit_kib, &r->startup_kib, &r->grant_kib };
        return f[k];
}

int paging_record_format(const struct paging_record *r, char *buf, size_t len) {
        size_t o = 0;
        if (!r || !buf)
                return -EINVAL;
        struct paging_record c = *r;
        for (size_t k = 0; k < ELEMENTSOF(record_keys); k++) {
                uint64_t v = *record_field(&c, k);
                int w = k < 2 && v == PAGING_NO_LIMIT
                                ? snprintf(buf + o, len - o, "%s = none\n", record_keys[k])
                                : snprintf(buf + o, len - o, "%s = %" PRIu64 "KiB\n", record_keys[k], v);
                if (w < 0 || (size_t) w >= len - o)
                        return -ENOBUFS;
                o += (size_t) w;
        }
        return (int) o;
}

struct record_parse {
        struct paging_record *r;
        unsigned seen;
        char *err;
        size_t errlen;
};

static int record_handler(void *user, const char *section, const char *name, const char *value) {
        struct record_parse *p = user;
        /* inih goes on after an error and returns the first one's line: keep its message. */
        if (*p->err)
                return 0;
        if (*section) {
                say(p->err, p->errlen, "unexpected section [%s]", section);
                return 0;
        }
        for (size_t k = 0; k < ELEMENTSOF(record_keys); k++) {
                if (!streq(name, record_keys[k]))
                        continue;
                if (p->seen & (1u << k)) {
                        say(p->err, p->errlen, "%s given twice", name);
                        return 0;
                }
                p->seen |= 1u << k;
                const char *why = NULL;
                if (k < 2 && streq(value, "none"))
                        *record_field(p->r, k) = PAGING_NO_LIMIT;
                else if (size_parse(value, record_field(p->r, k), &why) < 0) {
                        say(p->err, p->errlen, "%s = '%s': %s", name, value, why ? why : "not a size");
                        return 0;
                } else if (k < 2 && *record_field(p->r, k) == 0) {
                        /* No limit is "none": a limit of 0 would be put back on the domain. */
                        say(p->err, p->errlen, "%s = '%s': a limit is at least 1KiB, or none", name, value);
                        return 0;
                }
                return 1;
        }
        say(p->err, p->errlen, "unknown key '%s'", name);
        return 0;
}

int paging_record_parse(const char *text, struct paging_record *r, char *err, size_t errlen) {
        char why[PAGING_ERR_MAX] = "";
        struct paging_record out = { 0 };
        struct record_parse p = { .r = &out, .err = why, .errlen = sizeof(why) };

        if (!text || !r)
                return -EINVAL;
        int line = ini_parse_string(text, record_handler, &p);
        if (line != 0) {
                say(err, errlen, "line %d: %s", line, *why ? why : "not a key = value line");
                return -EINVAL;
        }
        for (size_t k = 0; k < ELEMENTSOF(record_keys); k++)
                if (!(p.seen & (1u << k))) {
                        say(err, errlen, "missing key '%s'", record_keys[k]);
                        return -EINVAL;
                }
        *r = out;
        return 0;
}

int paging_record_write(const char *path, const struct paging_record *r, char *err, size_t errlen) {
        char rec[PAGING_PATH_MAX], text[RECORD_MAX_BYTES];
        int len, r2;

        if (!path || !r)
                return -EINVAL;
        if ((r2 = record_path(path, rec, sizeof(rec))) < 0 || (len = paging_record_format(r, text, sizeof(text))) < 0) {
                say(err, errlen, "%s: no record name or text", path);
                return r2 < 0 ? r2 : -ENOBUFS;
        }
        if ((r2 = write_file_atomic(rec, text, (size_t) len)) < 0)
                say(err, errlen, "cannot write %s: %s", rec, strerror(-r2));
        return r2;
}

int paging_record_read(const char *path, struct paging_record *r, char *err, size_t errlen) {
        char rec[PAGING_PATH_MAX], why[PAGING_ERR_MAX] = "";
        _cleanup_free_ char *text = NULL;
        int r2;

        if (!path || !r)
                return -EINVAL;
        if ((r2 = record_path(path, rec, sizeof(rec))) < 0)
                return r2;
        if ((r2 = read_file_at(NULL, rec, RECORD_MAX_BYTES, &text, NULL)) < 0) {
                if (r2 != -ENOENT)
                        say(err, errlen, "cannot read %s: %s", rec, strerror(-r2));
                return r2;
        }
        if ((r2 = paging_record_parse(text, r, why, sizeof(why))) < 0)
                say(err, errlen, "%s: %s", rec, why);
        return r2;
}
