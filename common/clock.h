/* The one clock tide's decisions run on: CLOCK_MONOTONIC in microseconds. Only the programs'
 * glue reads it; library code (the engine above all) takes `now_usec` from its caller. */
#pragma once

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000) + (uint64_t) ts.tv_nsec / 1000;
}
