#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/fileio.h"
#include "common/macro.h"
#include "common/psi.h"

/* A pressure file is two lines of about 60 bytes; anything near this limit is not one. */
#define PSI_FILE_MAX 4096

/* The kernel prints averages as "%lu.%02lu" (LOAD_INT/LOAD_FRAC). Parsed by hand rather than
 * with strtod() so that "nan", "inf", "1e2", signs and the locale's decimal point are all
 * refused or irrelevant. */
static int parse_avg(const char *s, size_t len, double *ret) {
        uint64_t whole = 0, frac = 0, scale = 1;
        size_t i = 0;

        if (len == 0)
                return -EINVAL;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
                if (whole > 100)
                        return -EINVAL; /* far out of range; stop before it can overflow */
                whole = whole * 10 + (uint64_t) (s[i] - '0');
        }
        if (i == 0)
                return -EINVAL;
        if (i < len) {
                if (s[i] != '.')
                        return -EINVAL;
                i++;
                if (i == len)
                        return -EINVAL;
                for (; i < len; i++) {
                        if (s[i] < '0' || s[i] > '9')
                                return -EINVAL;
                        /* Digits beyond the 9th cannot matter for a percentage. */
                        if (scale < UINT64_C(1000000000)) {
                                frac = frac * 10 + (uint64_t) (s[i] - '0');
                                scale *= 10;
                        }
                }
        }

        if (whole > 100 || (whole == 100 && frac != 0))
                return -EINVAL;
        *ret = (double) whole + (double) frac / (double) scale;
        return 0;
}

static int parse_u64(const char *s, size_t len, uint64_t *ret) {
        uint64_t v = 0;

        if (len == 0)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                unsigned d;

                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                d = (unsigned) (s[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -EINVAL;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

/* Parses the "key=value ..." part of one line, [p, end). */
static int parse_fields(const char *p, const char *end, struct psi_line *ret) {
        enum { AVG10 = 1 << 0, AVG60 = 1 << 1, AVG300 = 1 << 2, TOTAL = 1 << 3 };
        struct psi_line line = { 0 };
        unsigned seen = 0;

        for (;;) {
                const char *key, *eq, *val;
                size_t key_len, val_len;
                unsigned bit;
                int r;

                while (p < end && is_blank(*p))
                        p++;
                if (p == end)
                        break;

                key = p;
                while (p < end && !is_blank(*p))
                        p++;
                eq = memchr(key, '=', (size_t) (p - key));
                if (!eq)
                        return -EINVAL;
                key_len = (size_t) (eq - key);
                val = eq + 1;
                val_len = (size_t) (p - val);

#define KEY_IS(k) (key_len == strlen(k) && memcmp(key, k, key_len) == 0)
                if (KEY_IS("avg10")) {
                        bit = AVG10;
                        r = parse_avg(val, val_len, &line.avg10);
                } else if (KEY_IS("avg60")) {
                        bit = AVG60;
                        r = parse_avg(val, val_len, &line.avg60);
                } else if (KEY_IS("avg300")) {
                        bit = AVG300;
                        r = parse_avg(val, val_len, &line.avg300);
                } else if (KEY_IS("total")) {
                        bit = TOTAL;
                        r = parse_u64(val, val_len, &line.total_usec);
                } else if (key_len > 0)
                        continue; /* a key a newer kernel added */
                else
                        return -EINVAL;
#undef KEY_IS
                if (r < 0)
                        return r;
                /* A repeated key means the text is not what the kernel wrote. */
                if (seen & bit)
                        return -EINVAL;
                seen |= bit;
        }

        if (seen != (AVG10 | AVG60 | AVG300 | TOTAL))
                return -EINVAL;
        *ret = line;
        return 0;
}

int psi_parse(const char *text, struct psi *ret) {
        struct psi psi = { 0 };
        bool has_some = false;
        const char *p = text;

        if (!text)
                return -EINVAL;

        while (*p) {
                const char *eol = strchrnul(p, '\n'), *word = p;
                struct psi_line *line;
                bool *seen;
                int r;

                p = *eol ? eol + 1 : eol;

                while (word < eol && is_blank(*word))
                        word++;
                if (word == eol)
                        continue; /* blank line, e.g. after the file's trailing newline */

                if (eol - word >= 5 && memcmp(word, "some", 4) == 0 && is_blank(word[4])) {
                        line = &psi.some;
                        seen = &has_some;
                } else if (eol - word >= 5 && memcmp(word, "full", 4) == 0 && is_blank(word[4])) {
                        line = &psi.full;
                        seen = &psi.has_full;
                } else
                        /* The line types have been "some" and "full" since PSI appeared (4.20);
                         * anything else means this is not a pressure file. */
                        return -EINVAL;

                if (*seen)
                        return -EINVAL;
                r = parse_fields(word + 4, eol, line);
                if (r < 0)
                        return r;
                *seen = true;
        }

        if (!has_some)
                return -EINVAL;
        *ret = psi;
        return 0;
}

int psi_read(const char *root, const char *resource, struct psi *ret) {
        _cleanup_free_ char *text = NULL;
        char path[64];
        int r;

        /* The resource names a file in /proc/pressure, never a path. */
        if (!resource || resource[0] == '\0' || strchr(resource, '/') || strcmp(resource, ".") == 0 ||
            strcmp(resource, "..") == 0)
                return -EINVAL;
        if ((size_t) snprintf(path, sizeof(path), "/proc/pressure/%s", resource) >= sizeof(path))
                return -EINVAL;

        r = read_file_at(root, path, PSI_FILE_MAX, &text, NULL);
        if (r < 0)
                return r;
        return psi_parse(text, ret);
}
