#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/macro.h"

#define IDLE "tests/fixtures/proc/idle"

#define UNTOUCHED ((char *) 0x1)

Test(fileio, reads_a_file_under_the_root) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        struct stat st;

        cr_assert_eq(read_file_at(IDLE, "/proc/meminfo", 65536, &text, &len), 0);
        cr_assert_eq(stat(IDLE "/proc/meminfo", &st), 0);
        cr_assert_eq(len, (size_t) st.st_size);
        cr_assert_eq(strlen(text), len, "the buffer is NUL-terminated right after the data");
        cr_assert_eq(strncmp(text, "MemTotal:       65837716 kB\n", 28), 0);
}

Test(fileio, ignores_trailing_slashes_on_the_root) {
        _cleanup_free_ char *a = NULL, *b = NULL;

        cr_assert_eq(read_file_at(IDLE, "/proc/pressure/cpu", 4096, &a, NULL), 0);
        cr_assert_eq(read_file_at(IDLE "//", "/proc/pressure/cpu", 4096, &b, NULL), 0);
        cr_assert_str_eq(a, b);
}

Test(fileio, reads_the_real_tree_when_the_root_is_null_empty_or_slash) {
        static const char *const roots[] = { NULL, "", "/" };

        for (size_t i = 0; i < ELEMENTSOF(roots); i++) {
                _cleanup_free_ char *text = NULL;

                cr_assert_eq(read_file_at(roots[i], "/proc/meminfo", 1 << 20, &text, NULL), 0);
                cr_assert_eq(strncmp(text, "MemTotal:", 9), 0, "root %s reads the live /proc",
                             roots[i] ? roots[i] : "NULL");
        }
}

Test(fileio, returns_enoent_for_a_missing_file_leaving_ret_alone) {
        char *text = UNTOUCHED;
        size_t len = 77;

        cr_assert_eq(read_file_at(IDLE, "/proc/pressure/io", 4096, &text, &len), -ENOENT);
        cr_assert_eq(text, UNTOUCHED);
        cr_assert_eq(len, 77);
        cr_assert_eq(read_file_at("tests/fixtures/proc/no-such-scenario", "/proc/meminfo", 4096, &text, NULL), -ENOENT);
}

Test(fileio, refuses_files_larger_than_the_limit) {
        char *text = UNTOUCHED;
        struct stat st;

        cr_assert_eq(stat(IDLE "/proc/meminfo", &st), 0);
        cr_assert_eq(read_file_at(IDLE, "/proc/meminfo", 16, &text, NULL), -EFBIG);
        cr_assert_eq(read_file_at(IDLE, "/proc/meminfo", (size_t) st.st_size - 1, &text, NULL), -EFBIG);
        cr_assert_eq(read_file_at(IDLE, "/proc/meminfo", 0, &text, NULL), -EFBIG);
        cr_assert_eq(text, UNTOUCHED);
}

Test(fileio, accepts_a_file_of_exactly_the_limit) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        struct stat st;

        cr_assert_eq(stat(IDLE "/proc/meminfo", &st), 0);
        cr_assert_eq(read_file_at(IDLE, "/proc/meminfo", (size_t) st.st_size, &text, &len), 0);
        cr_assert_eq(len, (size_t) st.st_size);
}

Test(fileio, rejects_a_relative_path) {
        char *text = UNTOUCHED;

        cr_assert_eq(read_file_at(IDLE, "proc/meminfo", 4096, &text, NULL), -EINVAL);
        cr_assert_eq(read_file_at(IDLE, NULL, 4096, &text, NULL), -EINVAL);
        cr_assert_eq(text, UNTOUCHED);
}

Test(fileio, reads_a_path_as_given_without_a_root) {
        _cleanup_free_ char *text = NULL;

        /* Files named on a command line: relative to the working directory (the source root). */
        cr_assert_eq(read_file_at(NULL, "tests/fixtures/proc/idle/proc/meminfo", 1 << 20, &text, NULL), 0);
        cr_assert_not_null(strstr(text, "MemTotal:"));
}

Test(fileio, reports_eisdir_for_a_directory) {
        char *text = UNTOUCHED;

        cr_assert_eq(read_file_at(IDLE, "/proc", 4096, &text, NULL), -EISDIR);
        cr_assert_eq(text, UNTOUCHED);
}

/* A scratch root with an empty file and one of 100 KiB, to cover what proc fixtures do not:
 * nothing to read, and a file spanning many reads and buffer growths. */
static char scratch[] = "/tmp/tide-fileio-XXXXXX";

static void write_scratch(const char *name, size_t size) {
        char path[128];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", scratch, name);
        f = fopen(path, "we");
        cr_assert_not_null(f);
        for (size_t i = 0; i < size; i++)
                fputc('a' + (int) (i % 26), f);
        cr_assert_eq(fclose(f), 0);
}

static void make_scratch(void) {
        cr_assert_not_null(mkdtemp(scratch));
        write_scratch("empty", 0);
        write_scratch("big", 100 * 1024);
}

static void remove_scratch(void) {
        char path[128];

        snprintf(path, sizeof(path), "%s/empty", scratch);
        unlink(path);
        snprintf(path, sizeof(path), "%s/big", scratch);
        unlink(path);
        rmdir(scratch);
}

Test(fileio, reads_an_empty_file_as_an_empty_string, .init = make_scratch, .fini = remove_scratch) {
        _cleanup_free_ char *text = NULL;
        size_t len = 99;

        cr_assert_eq(read_file_at(scratch, "/empty", 0, &text, &len), 0);
        cr_assert_eq(len, 0);
        cr_assert_str_eq(text, "");
}

Test(fileio, reads_a_file_larger_than_one_buffer, .init = make_scratch, .fini = remove_scratch) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;

        cr_assert_eq(read_file_at(scratch, "/big", 1 << 20, &text, &len), 0);
        cr_assert_eq(len, 100 * 1024);
        cr_assert_eq(strlen(text), len);
        for (size_t i = 0; i < len; i++)
                cr_assert_eq(text[i], 'a' + (int) (i % 26), "byte %zu", i);

        free(TAKE_PTR(text));
        cr_assert_eq(read_file_at(scratch, "/big", 100 * 1024 - 1, &text, NULL), -EFBIG);
        cr_assert_eq(read_file_at(scratch, "/big", 100 * 1024, &text, NULL), 0);
}
