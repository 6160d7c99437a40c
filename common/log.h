/* Logging for tide's programs.
 *
 * Library code logs at debug at most; programs log once, where they decide. Lines go to
 * stderr; when stderr is connected to the journal (systemd sets $JOURNAL_STREAM) each line
 * carries a syslog-style "<N>" priority prefix so journald files it at the right level. */
#pragma once

#include <stdarg.h>

enum log_level {
        LOG_LEVEL_ERR = 3,
        LOG_LEVEL_WARNING = 4,
        LOG_LEVEL_NOTICE = 5,
        LOG_LEVEL_INFO = 6,
        LOG_LEVEL_DEBUG = 7,
};

/* Lines above this level are dropped. Default LOG_LEVEL_INFO. */
void log_set_max_level(enum log_level level);
enum log_level log_get_max_level(void);

/* Parses "err", "warning", "notice", "info", "debug". Returns 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *ret);

/* Writes one line. errnum (positive errno or 0) is made available to %m in the format.
 * Always returns -abs(errnum), so callers can `return log_error_errno(r, "...: %m")`. */
int log_internal(enum log_level level, int errnum, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_internal(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_internal(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_internal(LOG_LEVEL_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_internal(LOG_LEVEL_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...) log_internal(LOG_LEVEL_DEBUG, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_LEVEL_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_internal(LOG_LEVEL_ERR, (e), __VA_ARGS__)
