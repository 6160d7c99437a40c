/* Untrusted JSON input files for tidectl (plan's and simulate's scenarios): parsing with the
 * line and column of a syntax error, and typed field readers whose errors name the file, the
 * field and what is wrong ("short.json: vms[2].buffer: 3 is out of range 5-2000"). */
#pragma once

#include <json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jsonin {
        const char *source; /* the file, as messages name it */
        char *err;
        size_t errlen;
};

/* Writes "source: field: message" into err. Returns -EINVAL. */
int jsonin_fail(struct jsonin *c, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *jsonin_type_name(json_object *o);

/* A size string with a unit ("512MiB", "4G") in KiB. */
int jsonin_size(struct jsonin *c, json_object *o, const char *field, uint64_t *ret);
int jsonin_int(struct jsonin *c, json_object *o, const char *field, int64_t lo, int64_t hi, int64_t *ret);
int jsonin_number(struct jsonin *c, json_object *o, const char *field, double lo, double hi, double *ret);
int jsonin_bool(struct jsonin *c, json_object *o, const char *field, bool *ret);
/* A name for tables and logs: 1 to max-1 characters, no spaces or control characters. */
int jsonin_name(struct jsonin *c, json_object *o, const char *field, char *name, size_t max);
/* One of names[0..n) (a string), as its index in *ret; the error lists them. */
int jsonin_choice(struct jsonin *c, json_object *o, const char *field, const char *const *names, size_t n, int *ret);
/* A VM policy's field (startup, minimum, maximum, buffer, weight, dynamic) into p: 0 when key was
 * one and is valid, 1 when key is not a policy field, -EINVAL with the error. */
struct vm_policy;
int jsonin_policy_field(struct jsonin *c, const char *key, json_object *val, const char *field, struct vm_policy *p);
/* An object, or the error naming what it was instead. */
int jsonin_object(struct jsonin *c, json_object *o, const char *field);

/* Parses a whole document (at most INT32_MAX bytes, no NUL bytes, nothing after it). Returns 0
 * and *ret (json_object_put() it), or -EINVAL with "source:LINE:COL: invalid JSON: why". */
int jsonin_parse(struct jsonin *c, const char *text, size_t len, json_object **ret);
/* Reads path (at most max_bytes) and parses it; -errno with "path: why" when it cannot be read. */
int jsonin_load(struct jsonin *c, const char *path, size_t max_bytes, json_object **ret);
