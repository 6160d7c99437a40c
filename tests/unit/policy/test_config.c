/* Host configuration: golden files (OpenBSD vmd style) plus the behaviours the goldens cannot
 * show one at a time. Runs from the repository root (see tests/CMakeLists.txt). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "policy/config.h"

#define GOLDEN_DIR "tests/golden/config"

static char *read_all(const char *path) {
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t len = 0;

        if (!f)
                return NULL;
        FILE *m = open_memstream(&buf, &len);
        cr_assert_not_null(m);
        for (int ch; (ch = fgetc(f)) != EOF;)
                fputc(ch, m);
        fclose(m);
        fclose(f);
        return buf;
}

static char *format_to_string(const struct tide_config *c) {
        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);

        cr_assert_not_null(m);
        config_format(c, m);
        fclose(m);
        return buf;
}

static bool ends_with(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);
        return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool starts_with(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int golden_filter(const struct dirent *d) {
        return (starts_with(d->d_name, "pass-") || starts_with(d->d_name, "fail-")) &&
               (ends_with(d->d_name, ".conf") || ends_with(d->d_name, ".out") || ends_with(d->d_name, ".err"));
}

/* name "pass-x.conf" -> "pass-x" + ext */
static void sibling(const char *name, const char *ext, char *buf, size_t len) {
        const char *dot = strrchr(name, '.');
        snprintf(buf, len, "%.*s%s", (int) (dot - name), name, ext);
}

/* 1-based line where two texts first differ. */
static int first_difference(const char *a, const char *b) {
        int line = 1;

        for (; *a && *a == *b; a++, b++)
                line += *a == '\n';
        return line;
}

static void expect_same_text(const char *conf, const char *expected_file, const char *expected, const char *got) {
        cr_expect(strcmp(expected, got) == 0,
                  "%s: output differs from %s at line %d; to see the diff:\n"
                  "  (cd %s && tided --check-config %s 2>&1) | diff -u %s -\n"
                  "---------- expected ----------\n%s"
                  "----------    got   ----------\n%s"
                  "------------------------------",
                  conf, expected_file, first_difference(expected, got), GOLDEN_DIR, conf, expected_file, expected,
                  got);
}

static void check_golden(const char *name) {
        bool pass = starts_with(name, "pass-");
        char expected_name[512], err[1024], got_err[1100];
        struct tide_config c;

        sibling(name, pass ? ".out" : ".err", expected_name, sizeof(expected_name));
        _cleanup_free_ char *expected = read_all(expected_name);
        cr_expect_not_null(expected, "%s has no %s next to it", name, expected_name);
        if (!expected)
                return;

        config_init(&c);
        /* The basename, from inside the directory: exactly what
         * `cd tests/golden/config && tided --check-config NAME` does. */
        int r = config_load_file(name, &c, err, sizeof(err));
        if (pass) {
                cr_expect_eq(r, 0, "%s: expected to pass, got: %s", name, err);
                if (r < 0)
                        return;
                _cleanup_free_ char *got = format_to_string(&c);
                expect_same_text(name, expected_name, expected, got);

                /* The printed configuration reads back to itself. */
                struct tide_config again;
                config_init(&again);
                int line = -1;
                cr_expect_eq(config_parse_string(got, &again, &line, err, sizeof(err)), 0,
                             "%s: output does not parse back, line %d: %s", name, line, err);
                _cleanup_free_ char *got_again = format_to_string(&again);
                cr_expect_str_eq(got_again, got, "%s: the printed configuration does not read back to itself", name);
        } else {
                cr_expect_lt(r, 0, "%s: expected to fail, but it parsed", name);
                if (r >= 0)
                        return;
                snprintf(got_err, sizeof(got_err), "%s\n", err);
                expect_same_text(name, expected_name, expected, got_err);
        }
}

Test(config, goldens_match_expected_output) {
        struct dirent **list = NULL;
        unsigned n_pass = 0, n_fail = 0;
        char conf[512];

        int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cr_assert_geq(cwd, 0);
        cr_assert_eq(chdir(GOLDEN_DIR), 0, "cannot enter %s (tests run from the repo root): %s", GOLDEN_DIR,
                     strerror(errno));

        int n = scandir(".", &list, golden_filter, alphasort);
        cr_assert_geq(n, 0, "cannot list %s: %s", GOLDEN_DIR, strerror(errno));

        for (int i = 0; i < n; i++) {
                const char *name = list[i]->d_name;

                if (ends_with(name, ".conf")) {
                        check_golden(name);
                        if (starts_with(name, "pass-"))
                                n_pass++;
                        else
                                n_fail++;
                } else {
                        /* An expected-output file whose config was renamed away tests nothing. */
                        sibling(name, ".conf", conf, sizeof(conf));
                        cr_expect_eq(access(conf, F_OK), 0, "%s/%s has no %s", GOLDEN_DIR, name, conf);
                }
        }
        for (int i = 0; i < n; i++)
                free(list[i]);
        free(list);

        cr_expect_eq(fchdir(cwd), 0);
        close(cwd);
        cr_expect_geq(n_pass, 4, "only %u pass-*.conf goldens found", n_pass);
        cr_expect_geq(n_fail, 10, "only %u fail-*.conf goldens found", n_fail);
}

/* Parses text over defaults; returns r and fills line/err. */
static int parse(const char *text, struct tide_config *c, int *line, char *err, size_t errlen) {
        config_init(c);
        *line = -1;
        err[0] = '\0';
        return config_parse_string(text, c, line, err, errlen);
}

static void expect_error(const char *text, int want_line, const char *want_prefix) {
        struct tide_config c;
        char err[512];
        int line;

        int r = parse(text, &c, &line, err, sizeof(err));
        cr_expect_eq(r, -EINVAL, "accepted: %s", text);
        cr_expect_eq(line, want_line, "line %d, want %d (%s) for: %s", line, want_line, err, text);
        cr_expect(starts_with(err, want_prefix), "message '%s' does not start with '%s' for: %s", err, want_prefix,
                  text);
}

static void expect_ok(const char *text) {
        struct tide_config c;
        char err[512];
        int line;

        int r = parse(text, &c, &line, err, sizeof(err));
        cr_expect_eq(r, 0, "rejected at line %d (%s): %s", line, err, text);
}

Test(config, defaults_are_documented_values) {
        struct tide_config c;

        config_init(&c);
        cr_expect_eq(c.interval_usec, 1000000);
        cr_expect_str_eq(c.libvirt_uri, "qemu:///system");
        cr_expect_str_eq(c.socket_path, "/run/tide/tided.sock");
        cr_expect_str_eq(c.metrics_address, "127.0.0.1:9177");
        cr_expect(c.reserve_auto);
        cr_expect_eq(c.shrink_step_pct, 2.0);
        cr_expect_eq(c.shrink_step_max_kib, 128 * 1024);
        cr_expect_eq(c.grow_step_max_kib, 0);
        cr_expect_eq(c.deadband_kib, 8 * 1024);
        cr_expect_eq(c.quiet_usec, 45 * 1000000ULL);
        cr_expect_eq(c.stale_usec, 10 * 1000000ULL);
        cr_expect_eq(c.psi_grow_pct, 10.0);
        cr_expect_eq(c.psi_calm_pct, 2.0);
        cr_expect_eq(c.psi_calm_usec, 30 * 1000000ULL);
        cr_expect_eq(c.psi_grow_step_pct, 10.0);
}

Test(config, empty_text_keeps_defaults) {
        struct tide_config c, d;
        char err[256];
        int line;

        cr_assert_eq(parse("", &c, &line, err, sizeof(err)), 0);
        config_init(&d);
        _cleanup_free_ char *a = format_to_string(&c);
        _cleanup_free_ char *b = format_to_string(&d);
        cr_expect_str_eq(a, b);
}

Test(config, reserve_auto_scales_with_host) {
        struct tide_config c;

        config_init(&c);
        /* 512 MiB + host/32 */
        cr_expect_eq(config_reserve_kib(&c, 0), 512 * KIB_PER_MIB);
        cr_expect_eq(config_reserve_kib(&c, 64 * KIB_PER_GIB), 2560 * KIB_PER_MIB);
        cr_expect_eq(config_reserve_kib(&c, 1024 * KIB_PER_GIB), 512 * KIB_PER_MIB + 32 * KIB_PER_GIB);
        /* aligned down to 2 MiB: 524288 + 125000 = 649288 -> 649216 */
        cr_expect_eq(config_reserve_kib(&c, 4000000), 649216);
        cr_expect(config_reserve_kib(&c, 128 * KIB_PER_GIB) > config_reserve_kib(&c, 64 * KIB_PER_GIB));
}

Test(config, fixed_reserve_ignores_host_size) {
        struct tide_config c;
        char err[256];
        int line;

        cr_assert_eq(parse("[memory]\nreserve = 4GiB\n", &c, &line, err, sizeof(err)), 0, "%s", err);
        cr_expect_not(c.reserve_auto);
        cr_expect_eq(config_reserve_kib(&c, 0), 4 * KIB_PER_GIB);
        cr_expect_eq(config_reserve_kib(&c, 1024 * KIB_PER_GIB), 4 * KIB_PER_GIB);

        /* and "auto" switches back */
        cr_assert_eq(config_parse_string("[memory]\nreserve = auto\n", &c, &line, err, sizeof(err)), 0, "%s", err);
        cr_expect(c.reserve_auto);
        cr_expect_eq(config_reserve_kib(&c, 64 * KIB_PER_GIB), 2560 * KIB_PER_MIB);
}

Test(config, format_round_trips) {
        static const char text[] = "[tided]\n"
                                   "interval = 1500ms\n"
                                   "libvirt_uri = qemu+tcp://10.0.0.1/system\n"
                                   "socket = /var/run/t.sock\n"
                                   "metrics = off\n"
                                   "[memory]\n"
                                   "reserve = 3G\n"
                                   "shrink_step = 12.3456789\n"
                                   "shrink_step_max = 2M\n"
                                   "grow_step_max = 1536MiB\n"
                                   "deadband = 1G\n"
                                   "quiet_period = 0\n"
                                   "stale_after = 1h\n"
                                   "psi_grow = 0.1\n"
                                   "psi_calm = 0\n"
                                   "psi_calm_time = 2.5s\n"
                                   "psi_grow_step = 100%\n";
        struct tide_config a, b;
        char err[256];
        int line;

        cr_assert_eq(parse(text, &a, &line, err, sizeof(err)), 0, "line %d: %s", line, err);
        _cleanup_free_ char *out = format_to_string(&a);
        cr_assert_eq(parse(out, &b, &line, err, sizeof(err)), 0, "line %d: %s\n%s", line, err, out);

        cr_expect_eq(a.interval_usec, b.interval_usec);
        cr_expect_str_eq(a.libvirt_uri, b.libvirt_uri);
        cr_expect_str_eq(a.socket_path, b.socket_path);
        cr_expect_str_eq(a.metrics_address, b.metrics_address);
        cr_expect_eq(a.reserve_auto, b.reserve_auto);
        cr_expect_eq(a.reserve_kib, b.reserve_kib);
        cr_expect_eq(a.shrink_step_pct, b.shrink_step_pct);
        cr_expect_eq(a.shrink_step_max_kib, b.shrink_step_max_kib);
        cr_expect_eq(a.grow_step_max_kib, b.grow_step_max_kib);
        cr_expect_eq(a.deadband_kib, b.deadband_kib);
        cr_expect_eq(a.quiet_usec, b.quiet_usec);
        cr_expect_eq(a.stale_usec, b.stale_usec);
        cr_expect_eq(a.psi_grow_pct, b.psi_grow_pct);
        cr_expect_eq(a.psi_calm_pct, b.psi_calm_pct);
        cr_expect_eq(a.psi_calm_usec, b.psi_calm_usec);
        cr_expect_eq(a.psi_grow_step_pct, b.psi_grow_step_pct);

        /* the values really are the ones in the text, not defaults on both sides */
        cr_expect_eq(a.interval_usec, 1500000);
        cr_expect_str_eq(a.metrics_address, "");
        cr_expect_eq(a.reserve_kib, 3 * KIB_PER_GIB);
        cr_expect_eq(a.shrink_step_pct, 12.3456789);
        cr_expect_eq(a.psi_calm_usec, 2500000);

        _cleanup_free_ char *out2 = format_to_string(&b);
        cr_expect_str_eq(out, out2);
}

Test(config, format_lists_every_key_once) {
        static const char *const names[] = { "interval", "libvirt_uri", "socket", "metrics", "reserve",
                                             "shrink_step", "shrink_step_max", "grow_step_max", "deadband",
                                             "quiet_period", "stale_after", "psi_grow", "psi_calm",
                                             "psi_calm_time", "psi_grow_step" };
        struct tide_config c;
        char needle[64];

        config_init(&c);
        _cleanup_free_ char *out = format_to_string(&c);
        cr_expect(starts_with(out, "# "), "no comment header: %s", out);
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                snprintf(needle, sizeof(needle), "\n%s = ", names[i]);
                const char *hit = strstr(out, needle);
                cr_expect_not_null(hit, "%s missing from:\n%s", names[i], out);
                if (hit)
                        cr_expect_null(strstr(hit + 1, needle), "%s printed twice", names[i]);
        }
}

Test(config, later_error_lines_reported_first_error_only) {
        expect_error("[memory]\n"
                     "deadband = 8M\n"
                     "shrink_step = 99\n"
                     "reserve = 1X\n"
                     "[bogus]\n",
                     3, "[memory] shrink_step: 99% is above the maximum 50%");
}

Test(config, syntax_and_value_errors_compete_by_line) {
        /* inih's syntax error first */
        expect_error("[memory]\nreserve 4G\nshrink_step = 99\n", 2, "expected 'key = value'");
        /* a value error before a syntax error */
        expect_error("[memory]\nshrink_step = 99\nreserve 4G\n", 2, "[memory] shrink_step:");
        expect_error("[memory\nreserve = 4G\n", 1, "section header without a closing ']'");
}

Test(config, error_leaves_config_unchanged) {
        struct tide_config c;
        char err[256];
        int line;

        config_init(&c);
        c.deadband_kib = 4096;
        int r = config_parse_string("[memory]\ndeadband = 16M\nshrink_step = 0\n", &c, &line, err, sizeof(err));
        cr_expect_eq(r, -EINVAL);
        cr_expect_eq(c.deadband_kib, 4096, "a failed parse changed the config");
}

Test(config, duplicate_key_is_rejected_naming_first_line) {
        expect_error("[memory]\nreserve = 4G\n\nreserve = 6G\n", 4, "[memory] reserve: set twice (first on line 2)");
        /* same key in a repeated section too */
        expect_error("[tided]\ninterval = 1s\n[memory]\n[tided]\ninterval = 2s\n", 5, "[tided] interval: set twice");
        /* the same name in two sections is two keys: none clash today, so only a repeat counts */
        expect_ok("[memory]\nreserve = 4G\n[tided]\ninterval = 2s\n[memory]\ndeadband = 4M\n");
}

Test(config, indented_key_is_not_a_continuation) {
        struct tide_config c;
        char err[256];
        int line;

        int r = parse("[memory]\nreserve = 4G\n    deadband = 16M\n\t psi_grow = 20\n", &c, &line, err, sizeof(err));
        cr_assert_eq(r, 0, "line %d: %s", line, err);
        cr_expect_eq(c.reserve_kib, 4 * KIB_PER_GIB);
        cr_expect_eq(c.deadband_kib, 16 * KIB_PER_MIB);
        cr_expect_eq(c.psi_grow_pct, 20);

        /* a stray indented value is not glued onto the key above it either */
        expect_error("[memory]\nreserve = 4G\n   6G\n", 3, "expected 'key = value'");
}

Test(config, psi_calm_must_stay_below_psi_grow) {
        /* reported at the later of the two lines, whichever key that is */
        expect_error("[memory]\npsi_calm = 5\npsi_grow = 5\n", 3, "[memory] psi_calm (5%) must be below psi_grow (5%)");
        expect_error("[memory]\npsi_grow = 4\n\npsi_calm = 6\n", 4,
                     "[memory] psi_calm (6%) must be below psi_grow (4%)");
        /* psi_calm left at its default 2 */
        expect_error("[memory]\npsi_grow = 1\n", 2, "[memory] psi_calm (2%) must be below psi_grow (1%)");
        expect_ok("[memory]\npsi_calm = 9.9\n");
        /* only on an otherwise valid file: the earlier real error wins */
        expect_error("[memory]\npsi_grow = 1\nbad line\n", 3, "expected");

        /* neither in the text: the clash came with the caller's values, line 0 */
        struct tide_config c;
        char err[256];
        int line = -1;
        config_init(&c);
        c.psi_calm_pct = 50;
        cr_expect_eq(config_parse_string("[tided]\n", &c, &line, err, sizeof(err)), -EINVAL);
        cr_expect_eq(line, 0);
}

Test(config, load_file_reports_path_line_and_message) {
        char path[] = "/tmp/tide-test-config-XXXXXX";
        char err[1024], want[1200];
        struct tide_config c;

        int fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        static const char text[] = "[memory]\n\nreserve = 1001M\n";
        cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t) (sizeof(text) - 1));
        close(fd);

        config_init(&c);
        cr_expect_eq(config_load_file(path, &c, err, sizeof(err)), -EINVAL);
        snprintf(want, sizeof(want), "%s:3: [memory] reserve: 1001MiB is not a multiple of 2MiB", path);
        cr_expect_str_eq(err, want);

        /* an error without a line: "PATH: message" */
        config_init(&c);
        c.psi_calm_pct = 50;
        cr_expect_eq(config_load_file(path, &c, err, sizeof(err)), -EINVAL);
        cr_expect(starts_with(err, path) && starts_with(err + strlen(path), ":3: "), "%s", err);
        cr_assert_eq(truncate(path, 0), 0);
        cr_expect_eq(config_load_file(path, &c, err, sizeof(err)), -EINVAL);
        snprintf(want, sizeof(want), "%s: [memory] psi_calm (50%%) must be below psi_grow (10%%)", path);
        cr_expect_str_eq(err, want);

        unlink(path);
}

Test(config, load_file_missing_returns_errno) {
        struct tide_config c;
        char err[512];

        config_init(&c);
        cr_expect_eq(config_load_file("/nonexistent/tided.conf", &c, err, sizeof(err)), -ENOENT);
        cr_expect_str_eq(err, "/nonexistent/tided.conf: No such file or directory");
        cr_expect_eq(config_load_file("/", &c, err, sizeof(err)), -EISDIR);
}

Test(config, load_file_rejects_nul_byte) {
        char path[] = "/tmp/tide-test-config-XXXXXX";
        char err[512], want[600];
        struct tide_config c;

        int fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        static const char text[] = "[memory]\nreserve = 4G\0\n";
        cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t) (sizeof(text) - 1));
        close(fd);

        config_init(&c);
        cr_expect_eq(config_load_file(path, &c, err, sizeof(err)), -EINVAL);
        snprintf(want, sizeof(want), "%s:2: contains a NUL byte", path);
        cr_expect_str_eq(err, want);
        unlink(path);
}

Test(config, line_length_limit_is_199_characters) {
        char text[512], comment[256];

        /* 199 characters is the longest line; the next line is still numbered right */
        memset(comment, 'x', sizeof(comment));
        comment[0] = '#';
        comment[199] = '\0';
        snprintf(text, sizeof(text), "[memory]\n%s\nshrink_step = 99\n", comment);
        expect_error(text, 3, "[memory] shrink_step:");

        comment[199] = 'x';
        comment[200] = '\0';
        snprintf(text, sizeof(text), "[memory]\n%s\nshrink_step = 99\n", comment);
        expect_error(text, 2, "line is longer than 199 characters");
}

/* What the endpoint can bind (daemon/metrics.c, no resolver): localhost, numeric IPv4, bracketed
 * numeric IPv6. A host name used to pass here and leave tided without metrics. */
Test(config, metrics_takes_host_port_ipv6_or_off) {
        static const char *const good[] = { "127.0.0.1:9177", "localhost:1", "[::1]:9177", "[::]:65535",
                                            "0.0.0.0:9177" };
        static const char *const bad[] = { "9177", ":9177", "localhost", "localhost:", "::1:9177", "[::1]",
                                           "[]:80", "[::1]x:80", "host:port", "host:+80", "ho st:80",
                                           "[fe80::1%eth0]:80", "OFF", "metrics-1.example.com:8080",
                                           "10.0.0.256:80", "1.2.3:80" };
        char text[256];

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                snprintf(text, sizeof(text), "[tided]\nmetrics = %s\n", good[i]);
                expect_ok(text);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                snprintf(text, sizeof(text), "[tided]\nmetrics = %s\n", bad[i]);
                expect_error(text, 2, "[tided] metrics: ");
        }
        expect_error("[tided]\nmetrics = localhost:0\n", 2, "[tided] metrics: port 0 is out of range 1-65535");
        expect_error("[tided]\nmetrics = localhost:65536\n", 2, "[tided] metrics: port 65536 is out of range");
        expect_error("[tided]\nmetrics = localhost:99999999999999999999\n", 2,
                     "[tided] metrics: port 99999999999999999999 is out of range");
}

Test(config, strings_reject_empty_overlong_and_control_characters) {
        char text[400];

        expect_error("[tided]\nlibvirt_uri =\n", 2, "[tided] libvirt_uri: must not be empty");
        expect_error("[tided]\nlibvirt_uri = qemu:///sys\x01tem\n", 2,
                     "[tided] libvirt_uri: contains a control character");
        expect_error("[tided]\nsocket = run/tided.sock\n", 2, "[tided] socket: must be an absolute path");
        /* inih reads "=;x" as the value ";x", which would print back as a comment */
        expect_error("[tided]\nlibvirt_uri =;x\n", 2, "[tided] libvirt_uri: must not start with ';'");

        /* a unix socket path must fit sun_path (108 bytes with the NUL) */
        snprintf(text, sizeof(text), "[tided]\nsocket = /%0107d\n", 0);
        expect_error(text, 2, "[tided] socket: longer than 107 characters");
        snprintf(text, sizeof(text), "[tided]\nsocket = /%0106d\n", 0);
        expect_ok(text);
}

Test(config, sizes_are_2mib_multiples_within_range) {
        expect_ok("[memory]\nreserve = 1000MiB\n");
        expect_ok("[memory]\nreserve = 0\n");
        expect_ok("[memory]\nreserve = 0M\n");
        expect_error("[memory]\nreserve = 1001MiB\n", 2, "[memory] reserve: 1001MiB is not a multiple of 2MiB");
        expect_ok("[memory]\ngrow_step_max = 0\n");
        expect_error("[memory]\ngrow_step_max = 1M\n", 2, "[memory] grow_step_max: 1MiB is not a multiple of 2MiB");
        expect_error("[memory]\nshrink_step_max = 0\n", 2, "[memory] shrink_step_max: 0KiB is below the minimum 2MiB");
        expect_ok("[memory]\ndeadband = 1G\n");
        expect_error("[memory]\ndeadband = 1026M\n", 2, "[memory] deadband: 1026MiB is above the maximum 1GiB");
}

Test(config, ranges_are_inclusive_and_reject_nan) {
        expect_ok("[memory]\nshrink_step = 0.1\n");
        expect_ok("[memory]\nshrink_step = 50%\n");
        expect_error("[memory]\nshrink_step = 0.09\n", 2, "[memory] shrink_step: 0.09% is below the minimum 0.1%");
        expect_error("[memory]\nshrink_step = 50.01\n", 2, "[memory] shrink_step:");
        expect_error("[memory]\nshrink_step = nan\n", 2, "[memory] shrink_step:");
        expect_ok("[memory]\npsi_grow_step = 1\n");
        expect_error("[memory]\npsi_grow_step = 0.5\n", 2, "[memory] psi_grow_step:");
        expect_ok("[tided]\ninterval = 100ms\n");
        expect_ok("[tided]\ninterval = 60s\n");
        expect_error("[tided]\ninterval = 61s\n", 2, "[tided] interval: 61s is above the maximum 1m");
        expect_error("[memory]\nstale_after = 999ms\n", 2, "[memory] stale_after: 999ms is below the minimum 1s");
        expect_error("[memory]\nquiet_period = 2h\n", 2, "[memory] quiet_period:");
}

Test(config, sections_are_checked_even_without_keys) {
        expect_error("[tided]\n\n[memroy]\n", 3, "unknown section [memroy]");
        expect_error("[Memory]\n", 1, "unknown section [Memory]");
        expect_error("[memory] reserve = 4G\n", 1, "unexpected text after [memory]");
        expect_ok("[memory]  # comment\n[tided] ; comment\n");
        expect_error("reserve = 4G\n[memory]\n", 1, "'reserve' is outside any section");
        expect_error("[memory]\nresrve = 4G\n", 2, "[memory] unknown key 'resrve'");
        expect_error("[tided]\nreserve = 4G\n", 2, "[tided] unknown key 'reserve'");
}

Test(config, crlf_and_byte_order_mark_are_accepted) {
        struct tide_config c;
        char err[256];
        int line;

        int r = parse("\xEF\xBB\xBF[tided]\r\ninterval = 2s\r\n", &c, &line, err, sizeof(err));
        cr_assert_eq(r, 0, "line %d: %s", line, err);
        cr_expect_eq(c.interval_usec, 2000000);
}

Test(config, tiny_percents_print_as_plain_decimals) {
        struct tide_config a, b;
        char err[256];
        int line;

        /* percent_parse() takes no exponent, so "1e-05" would not read back */
        cr_assert_eq(parse("[memory]\npsi_calm = 0.00001\n", &a, &line, err, sizeof(err)), 0, "%s", err);
        _cleanup_free_ char *out = format_to_string(&a);
        cr_expect_not_null(strstr(out, "\npsi_calm = 0.00001\n"), "%s", out);
        cr_assert_eq(parse(out, &b, &line, err, sizeof(err)), 0, "line %d: %s", line, err);
        cr_expect_eq(a.psi_calm_pct, b.psi_calm_pct);

        /* beyond what a line of plain decimals can carry back: refused rather than mangled */
        expect_error("[memory]\npsi_calm = 0.000000000000000000000000000000000000000000001\n", 2,
                     "[memory] psi_calm: too many decimal places");
}
