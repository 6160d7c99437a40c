#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/jsonin.h"
#include "common/fileio.h"
#include "common/macro.h"
#include "common/units.h"
#include "policy/policy.h"

int jsonin_fail(struct jsonin *c, const char *field, const char *fmt, ...) {
        char msg[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(c->err, c->errlen, "%s: %s: %s", c->source, field, msg);
        return -EINVAL;
}

const char *jsonin_type_name(json_object *o) {
        return json_type_to_name(json_object_get_type(o));
}

int jsonin_size(struct jsonin *c, json_object *o, const char *field, uint64_t *ret) {
        const char *e = NULL;

        if (!json_object_is_type(o, json_type_string))
                return jsonin_fail(c, field, "expected a size string such as \"512MiB\", got %s", jsonin_type_name(o));
        if (size_parse(json_object_get_string(o), ret, &e) < 0)
                return jsonin_fail(c, field, "%s", e);
        return 0;
}

int jsonin_int(struct jsonin *c, json_object *o, const char *field, int64_t lo, int64_t hi, int64_t *ret) {
        if (!json_object_is_type(o, json_type_int))
                return jsonin_fail(c, field, "expected a whole number, got %s", jsonin_type_name(o));
        errno = 0;
        int64_t v = json_object_get_int64(o);
        if (errno != 0 || v < lo || v > hi)
                return jsonin_fail(c, field, "%s is out of range %" PRId64 "-%" PRId64, json_object_to_json_string(o), lo,
                                   hi);
        *ret = v;
        return 0;
}

int jsonin_number(struct jsonin *c, json_object *o, const char *field, double lo, double hi, double *ret) {
        if (!json_object_is_type(o, json_type_int) && !json_object_is_type(o, json_type_double))
                return jsonin_fail(c, field, "expected a number, got %s", jsonin_type_name(o));
        double v = json_object_get_double(o);
        if (!isfinite(v) || v < lo || v > hi)
                return jsonin_fail(c, field, "%s is out of range %.15g-%.15g", json_object_to_json_string(o), lo, hi);
        *ret = v;
        return 0;
}

int jsonin_bool(struct jsonin *c, json_object *o, const char *field, bool *ret) {
        if (!json_object_is_type(o, json_type_boolean))
                return jsonin_fail(c, field, "expected true or false, got %s", jsonin_type_name(o));
        *ret = json_object_get_boolean(o);
        return 0;
}

int jsonin_name(struct jsonin *c, json_object *o, const char *field, char *name, size_t max) {
        if (!json_object_is_type(o, json_type_string))
                return jsonin_fail(c, field, "expected a string, got %s", jsonin_type_name(o));
        const char *s = json_object_get_string(o);
        size_t len = strlen(s);
        if (len == 0)
                return jsonin_fail(c, field, "empty");
        if (len >= max)
                return jsonin_fail(c, field, "longer than %zu characters", max - 1);
        /* Names end up in tables and logs: no control characters or spaces to break them. */
        for (const char *p = s; *p; p++)
                if (iscntrl((unsigned char) *p) || *p == ' ')
                        return jsonin_fail(c, field, "contains a space or control character");
        memcpy(name, s, len + 1);
        return 0;
}

int jsonin_choice(struct jsonin *c, json_object *o, const char *field, const char *const *names, size_t n, int *ret) {
        char list[256] = "";
        size_t off = 0;
        const char *s = json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;

        for (size_t k = 0; k < n; k++) {
                if (s && streq(s, names[k])) {
                        *ret = (int) k;
                        return 0;
                }
                if (off < sizeof(list))
                        off += (size_t) snprintf(list + off, sizeof(list) - off, "%s\"%s\"",
                                                 k == 0 ? "" : k + 1 == n ? " or " : ", ", names[k]);
        }
        return jsonin_fail(c, field, "expected %s", list);
}

int jsonin_policy_field(struct jsonin *c, const char *key, json_object *val, const char *field, struct vm_policy *p) {
        int64_t v;
        int r;

        if (streq(key, "startup"))
                return jsonin_size(c, val, field, &p->startup_kib);
        if (streq(key, "minimum"))
                return jsonin_size(c, val, field, &p->minimum_kib);
        if (streq(key, "maximum"))
                return jsonin_size(c, val, field, &p->maximum_kib);
        if (streq(key, "buffer")) {
                if ((r = jsonin_int(c, val, field, POLICY_BUFFER_MIN, POLICY_BUFFER_MAX, &v)) == 0)
                        p->buffer_pct = (unsigned) v;
                return r;
        }
        if (streq(key, "weight")) {
                if ((r = jsonin_int(c, val, field, 0, POLICY_WEIGHT_MAX, &v)) == 0)
                        p->weight = (unsigned) v;
                return r;
        }
        if (streq(key, "dynamic"))
                return jsonin_bool(c, val, field, &p->dynamic);
        return 1;
}

int jsonin_object(struct jsonin *c, json_object *o, const char *field) {
        if (!json_object_is_type(o, json_type_object))
                return jsonin_fail(c, field, "expected an object, got %s", jsonin_type_name(o));
        return 0;
}

/* Line and column of a byte offset, for JSON syntax errors a person can find. */
static void line_col(const char *text, size_t off, unsigned *line, unsigned *col) {
        *line = 1;
        *col = 1;
        for (size_t i = 0; i < off && text[i]; i++) {
                if (text[i] == '\n') {
                        (*line)++;
                        *col = 1;
                } else
                        (*col)++;
        }
}

int jsonin_parse(struct jsonin *c, const char *text, size_t len, json_object **ret) {
        unsigned line, col;

        if (len > INT32_MAX || strlen(text) != len) {
                snprintf(c->err, c->errlen, "%s: not a text file (contains NUL bytes)", c->source);
                return -EINVAL;
        }
        json_tokener *tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        json_object *root = json_tokener_parse_ex(tok, text, (int) len);
        enum json_tokener_error jerr = json_tokener_get_error(tok);
        size_t end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);

        if (!root || jerr != json_tokener_success) {
                /* json_tokener_continue means the text ended inside a value. */
                line_col(text, end, &line, &col);
                snprintf(c->err, c->errlen, "%s:%u:%u: invalid JSON: %s", c->source, line, col,
                         jerr == json_tokener_continue ? "unexpected end of file" : json_tokener_error_desc(jerr));
                json_object_put(root);
                return -EINVAL;
        }
        for (size_t i = end; i < len; i++)
                if (!isspace((unsigned char) text[i])) {
                        line_col(text, i, &line, &col);
                        snprintf(c->err, c->errlen, "%s:%u:%u: invalid JSON: trailing characters after the document",
                                 c->source, line, col);
                        json_object_put(root);
                        return -EINVAL;
                }
        *ret = root;
        return 0;
}

int jsonin_load(struct jsonin *c, const char *path, size_t max_bytes, json_object **ret) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = read_file_at(NULL, path, max_bytes, &text, &len);
        if (r < 0) {
                snprintf(c->err, c->errlen, "%s: %s", path, r == -EFBIG ? "file too large" : strerror(-r));
                return r;
        }
        return jsonin_parse(c, text, len, ret);
}
