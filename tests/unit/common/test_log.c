#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

/* Every Criterion test runs in its own process, so the level and environment set here do not
 * leak into other tests. */
static void quiet_journal(void) {
        unsetenv("JOURNAL_STREAM");
        cr_redirect_stderr();
}

Test(log, parses_each_level_name) {
        static const struct {
                const char *name;
                enum log_level level;
        } cases[] = {
                { "err", LOG_LEVEL_ERR },       { "warning", LOG_LEVEL_WARNING }, { "notice", LOG_LEVEL_NOTICE },
                { "info", LOG_LEVEL_INFO },     { "debug", LOG_LEVEL_DEBUG },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                enum log_level l = (enum log_level) 0;

                cr_assert_eq(log_level_parse(cases[i].name, &l), 0, "%s", cases[i].name);
                cr_assert_eq(l, cases[i].level, "%s", cases[i].name);
        }
}

Test(log, rejects_unknown_level_names_leaving_the_result_alone) {
        static const char *const bad[] = { "", "ERR", "error", "warn", "Info", "7", "debug ", "trace" };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                enum log_level l = LOG_LEVEL_NOTICE;

                cr_assert_eq(log_level_parse(bad[i], &l), -EINVAL, "\"%s\"", bad[i]);
                cr_assert_eq(l, LOG_LEVEL_NOTICE);
        }
        cr_assert_eq(log_level_parse(NULL, &(enum log_level){ 0 }), -EINVAL);
}

Test(log, defaults_to_info_and_remembers_the_max_level) {
        cr_assert_eq(log_get_max_level(), LOG_LEVEL_INFO);
        log_set_max_level(LOG_LEVEL_DEBUG);
        cr_assert_eq(log_get_max_level(), LOG_LEVEL_DEBUG);
}

Test(log, error_errno_returns_the_negative_errno, .init = quiet_journal) {
        cr_assert_eq(log_error_errno(-EIO, "a"), -EIO);
        cr_assert_eq(log_error_errno(EIO, "b"), -EIO);
        cr_assert_eq(log_warning_errno(-ENOMEM, "c"), -ENOMEM);
        cr_assert_eq(log_error("d"), 0);
}

Test(log, returns_the_errno_even_when_the_line_is_dropped, .init = quiet_journal) {
        cr_assert_eq(log_debug_errno(-ENOENT, "dropped"), -ENOENT);
        cr_assert_stderr_eq_str("");
}

Test(log, preserves_the_callers_errno, .init = quiet_journal) {
        errno = EAGAIN;
        log_error_errno(-EIO, "x: %m");
        cr_assert_eq(errno, EAGAIN);
        log_debug_errno(-EIO, "dropped: %m");
        cr_assert_eq(errno, EAGAIN);
}

Test(log, expands_percent_m_from_errnum, .init = quiet_journal) {
        log_error_errno(-ENOENT, "Failed to open %s: %m", "/x");
        cr_assert_stderr_eq_str("Failed to open /x: No such file or directory\n");
}

Test(log, expands_percent_m_from_errno_when_errnum_is_zero, .init = quiet_journal) {
        errno = EACCES;
        log_error("open: %m");
        cr_assert_stderr_eq_str("open: Permission denied\n");
}

Test(log, drops_lines_above_the_max_level, .init = quiet_journal) {
        log_set_max_level(LOG_LEVEL_WARNING);
        log_info("not shown");
        log_notice("not shown");
        log_warning("shown %d", 1);
        log_error("shown %d", 2);
        cr_assert_stderr_eq_str("shown 1\nshown 2\n");
}

Test(log, writes_no_prefix_without_the_journal, .init = quiet_journal) {
        log_warning("plain");
        cr_assert_stderr_eq_str("plain\n");
}

static void journal_is_stderr(void) {
        struct stat st;
        char v[64];

        cr_redirect_stderr();
        cr_assert_eq(fstat(STDERR_FILENO, &st), 0);
        snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino);
        setenv("JOURNAL_STREAM", v, 1);
}

Test(log, prefixes_the_priority_when_stderr_is_the_journal, .init = journal_is_stderr) {
        log_error("e");
        log_warning("w");
        log_notice("n");
        log_info("i");
        cr_assert_stderr_eq_str("<3>e\n<4>w\n<5>n\n<6>i\n");
}

static void journal_is_elsewhere(void) {
        cr_redirect_stderr();
        /* inherited from a parent whose stderr was the journal; ours is a pipe */
        setenv("JOURNAL_STREAM", "8:12345", 1);
}

Test(log, ignores_a_journal_stream_that_is_not_stderr, .init = journal_is_elsewhere) {
        log_error("e");
        cr_assert_stderr_eq_str("e\n");
}

Test(log, writes_long_lines_whole, .init = quiet_journal) {
        static char big[10001], want[10003];

        memset(big, 'x', sizeof(big) - 1);
        snprintf(want, sizeof(want), "%s!\n", big);
        log_error("%s!", big);
        cr_assert_stderr_eq_str(want);
}
