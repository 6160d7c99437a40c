/* Small helpers shared by every module: cleanup attributes, array size, saturating math. */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define streq(a, b) (strcmp((a), (b)) == 0)

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

static inline void freep(void *p) {
        free(*(void **) p);
}
static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
static inline void closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}

/* Resizes the array *p (any object pointer) to n elements of `size` bytes. On failure *p is
 * left as it was and -ENOMEM returned, so arrays grown side by side all stay usable. */
static inline int realloc_array(void *p, size_t n, size_t size) {
        if (size && n > SIZE_MAX / size)
                return -ENOMEM;
        size_t bytes = n * size;
        void *q = realloc(*(void **) p, bytes ? bytes : 1);
        if (!q)
                return -ENOMEM;
        *(void **) p = q;
        return 0;
}

/* Ownership is tied to scope: the variable is released when it goes out of scope. Hand it
 * on with TAKE_PTR() to keep it alive. */
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_close_ _cleanup_(closep)

#define TAKE_PTR(p)                          \
        ({                                   \
                __typeof__(p) _take_ = (p); \
                (p) = NULL;                  \
                _take_;                      \
        })

static inline uint64_t sat_sub_u64(uint64_t a, uint64_t b) {
        return a > b ? a - b : 0;
}
static inline uint64_t min_u64(uint64_t a, uint64_t b) {
        return a < b ? a : b;
}
static inline uint64_t max_u64(uint64_t a, uint64_t b) {
        return a > b ? a : b;
}
static inline uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi) {
        return v < lo ? lo : v > hi ? hi : v;
}

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)
#define KIB_PER_MIB UINT64_C(1024)
#define KIB_PER_GIB UINT64_C(1048576)
