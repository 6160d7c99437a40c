/* Smart Paging's files without switching any on (a unit test must not add swap to the machine
 * it runs on; tests/e2e does that on its own guests): /proc/swaps, names, the directory, and a
 * file as swapon(2) wants it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "smartpaging/file.h"

#define UUID1 "6f1c2a5e-0000-4000-8000-000000000001"

Test(swaps, parses_files_partitions_and_escaped_paths) {
        struct paging_swap sw[4];
        size_t n = 0;
        char err[PAGING_ERR_MAX];
        cr_assert_eq(paging_swaps_read("tests/fixtures/proc/swaps-paging", sw, 4, &n, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(n, 3);
        cr_expect_str_eq(sw[0].path, "/dev/sda3");
        cr_expect_not(sw[0].is_file);
        cr_expect_eq(sw[0].priority, 10);
        cr_expect_str_eq(sw[1].path, "/var/lib/tide/smartpaging/" UUID1 ".swap");
        cr_expect(sw[1].is_file);
        cr_expect_eq(sw[1].size_kib, 684028);
        cr_expect_eq(sw[1].used_kib, 311296);
        cr_expect_eq(sw[1].priority, -2);
        cr_expect_str_eq(sw[2].path, "/srv/my swap");
}

Test(swaps, counts_what_does_not_fit_and_refuses_what_is_not_proc_swaps) {
        struct paging_swap sw[1];
        size_t n = 0;
        char err[PAGING_ERR_MAX] = "";
        const char *two = "Filename Type Size Used Priority\n/a file 10 0 -2\n/b file 10 0 -3\n";
        cr_assert_eq(paging_swaps_parse(two, sw, 1, &n, err, sizeof(err)), 0);
        cr_expect_eq(n, 2);
        cr_expect_str_eq(sw[0].path, "/a");
        cr_expect_eq(paging_swaps_parse("Filename Type Size Used Priority\n", sw, 1, &n, err, sizeof(err)), 0);
        cr_expect_eq(n, 0, "no swap at all");
        cr_expect_eq(paging_swaps_parse("MemTotal: 1 kB\n", sw, 1, &n, err, sizeof(err)), -EINVAL);
        cr_expect_eq(paging_swaps_parse("", sw, 1, &n, err, sizeof(err)), -EINVAL);
        cr_expect_eq(paging_swaps_parse("Filename Type Size Used Priority\n/a file ten 0 -2\n", sw, 1, &n, err,
                                        sizeof(err)),
                     -EINVAL);
        cr_expect_str_eq(err, "line 2: expected 'path type size used priority'");
        cr_expect_eq(paging_swaps_parse("Filename Type Size Used Priority\n/a file 10 -1 -2\n", sw, 1, &n, err,
                                        sizeof(err)),
                     -EINVAL, "a negative size is no size");
        cr_expect_eq(paging_swaps_parse("Filename Type Size Used Priority\n/a file 10\n", sw, 1, &n, err, sizeof(err)),
                     -EINVAL);
}

Test(names, a_file_is_named_by_its_domains_uuid_and_found_again) {
        char path[PAGING_PATH_MAX], uuid[37];
        cr_assert_eq(paging_file_path("/var/lib/tide/smartpaging/", UUID1, path, sizeof(path)), 0);
        cr_expect_str_eq(path, "/var/lib/tide/smartpaging/" UUID1 ".swap");
        cr_expect(paging_file_uuid("/var/lib/tide/smartpaging", path, uuid));
        cr_expect_str_eq(uuid, UUID1);
        cr_expect_not(paging_file_uuid("/var/lib/tide/other", path, uuid));
        cr_expect_not(paging_file_uuid("/var/lib/tide/smartpaging", "/var/lib/tide/smartpaging/x.swap", uuid));
        cr_expect_eq(paging_file_path("/d", "../../etc/passwd", path, sizeof(path)), -EINVAL);
        cr_expect_eq(paging_file_path("/d", UUID1, path, 20), -ENAMETOOLONG);
}

static char dir[64];

static void tmpdir(void) {
        snprintf(dir, sizeof(dir), "/tmp/tide-paging-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
}

static void rmtree(void) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        cr_expect_eq(system(cmd), 0);
}

Test(dir, is_made_0700_and_its_parents_0755, .init = tmpdir, .fini = rmtree) {
        char sub[128], err[PAGING_ERR_MAX];
        struct stat st;
        bool on_root = true;
        snprintf(sub, sizeof(sub), "%s/a/b", dir);
        cr_assert_eq(paging_dir_prepare(sub, &on_root, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(stat(sub, &st), 0);
        cr_expect_eq(st.st_mode & 0777, 0700);
        snprintf(sub, sizeof(sub), "%s/a", dir);
        cr_assert_eq(stat(sub, &st), 0);
        cr_expect_eq(st.st_mode & 0777 & ~0022, 0755 & ~0022, "a parent others may need to reach");
        cr_expect_eq(paging_dir_prepare("relative/dir", &on_root, err, sizeof(err)), -EINVAL);
        snprintf(sub, sizeof(sub), "%s/file", dir);
        FILE *f = fopen(sub, "w");
        cr_assert_not_null(f);
        fclose(f);
        cr_expect_lt(paging_dir_prepare(sub, &on_root, err, sizeof(err)), 0, "a file is not a directory");
}

Test(file, is_fully_allocated_0600_with_a_swap_signature, .init = tmpdir, .fini = rmtree) {
        char path[PAGING_PATH_MAX], err[PAGING_ERR_MAX];
        struct stat st;
        long page = sysconf(_SC_PAGESIZE);
        cr_assert_eq(paging_file_path(dir, UUID1, path, sizeof(path)), 0);
        cr_assert_eq(paging_file_make(path, 1000, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(stat(path, &st), 0);
        cr_expect_eq(st.st_mode & 0777, 0600);
        uint64_t pages = (1000 * 1024 + (uint64_t) page - 1) / (uint64_t) page;
        cr_expect_eq((uint64_t) st.st_size, pages * (uint64_t) page, "whole pages");
        cr_expect_geq((uint64_t) st.st_blocks * 512, (uint64_t) st.st_size, "no holes");

        unsigned char *h = malloc((size_t) page);
        FILE *f = fopen(path, "rb");
        cr_assert_eq(fread(h, 1, (size_t) page, f), (size_t) page);
        fclose(f);
        cr_expect_eq(memcmp(h + page - 10, "SWAPSPACE2", 10), 0);
        uint32_t info[3];
        memcpy(info, h + 1024, sizeof(info));
        cr_expect_eq(info[0], 1, "version 1");
        cr_expect_eq(info[1], pages - 1, "last_page");
        cr_expect_eq(info[2], 0, "no bad pages");
        free(h);

        /* Made again over a leftover of the same name. */
        cr_expect_eq(paging_file_make(path, 2048, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(stat(path, &st), 0);
        cr_expect_eq((uint64_t) st.st_size, 2048 * 1024);
}

Test(file, a_tiny_one_still_has_the_pages_swapon_wants, .init = tmpdir, .fini = rmtree) {
        char path[PAGING_PATH_MAX], err[PAGING_ERR_MAX];
        struct stat st;
        cr_assert_eq(paging_file_path(dir, UUID1, path, sizeof(path)), 0);
        cr_assert_eq(paging_file_make(path, 1, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(stat(path, &st), 0);
        cr_expect_eq(st.st_size, 10 * sysconf(_SC_PAGESIZE));
}

Test(file, a_missing_directory_is_an_error_that_leaves_nothing, .init = tmpdir, .fini = rmtree) {
        char path[PAGING_PATH_MAX], err[PAGING_ERR_MAX] = "";
        snprintf(path, sizeof(path), "%s/none/" UUID1 ".swap", dir);
        cr_expect_eq(paging_file_make(path, 1024, err, sizeof(err)), -ENOENT);
        cr_expect_not_null(strstr(err, "cannot create"), "%s", err);
}

Test(file, off_removes_a_file_that_is_not_on, .init = tmpdir, .fini = rmtree) {
        char path[PAGING_PATH_MAX], err[PAGING_ERR_MAX];
        if (geteuid() != 0)
                cr_skip_test("swapoff(2) needs CAP_SYS_ADMIN even for a file that is not on");
        cr_assert_eq(paging_file_path(dir, UUID1, path, sizeof(path)), 0);
        cr_assert_eq(paging_file_make(path, 1024, err, sizeof(err)), 0);
        cr_expect_eq(paging_file_off(path, err, sizeof(err)), 0, "%s", err);
        cr_expect_neq(access(path, F_OK), 0);
        cr_expect_eq(paging_file_off(path, err, sizeof(err)), 0, "already gone: nothing to do");
}

Test(record, round_trips_with_no_limit_as_none) {
        char text[512], err[PAGING_ERR_MAX] = "";
        struct paging_record r = { PAGING_NO_LIMIT, 2097152, 393216, 160000 }, back;
        cr_assert_gt(paging_record_format(&r, text, sizeof(text)), 0);
        cr_expect_str_eq(text, "hard_limit = none\nswap_hard_limit = 2097152KiB\nstartup = 393216KiB\n"
                               "grant = 160000KiB\n");
        cr_assert_eq(paging_record_parse(text, &back, err, sizeof(err)), 0, "%s", err);
        cr_expect_eq(memcmp(&r, &back, sizeof(r)), 0);
        cr_expect_eq(paging_record_format(&r, text, 20), -ENOBUFS);
}

Test(record, what_tide_did_not_write_is_refused_by_name) {
        static const struct {
                const char *text, *why;
        } bad[] = {
                { "hard_limit = none\nswap_hard_limit = none\nstartup = 1GiB\n", "missing key 'grant'" },
                { "hard_limit = none\nswap_hard_limit = none\nstartup = 1GiB\ngrant = 1\n",
                  "line 4: grant = '1': missing unit" },
                { "hard_limit = none\nhard_limit = none\n", "line 2: hard_limit given twice" },
                { "startup = none\n", "line 1: startup = 'none'" },
                { "colour = blue\n", "line 1: unknown key 'colour'" },
                { "[x]\ngrant = 1KiB\n", "line 2: unexpected section [x]" },
                { "grant = 99999999999TiB\n", "line 1: grant = '99999999999TiB': too large" },
                { "just words\n", "line 1: not a key = value line" },
                { "hard_limit = 0KiB\n", "line 1: hard_limit = '0KiB': a limit is at least 1KiB, or none" },
                { "colour = blue\nshade = red\n", "line 1: unknown key 'colour'" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char err[PAGING_ERR_MAX] = "";
                struct paging_record r = { 1, 2, 3, 4 };
                cr_expect_eq(paging_record_parse(bad[i].text, &r, err, sizeof(err)), -EINVAL, "%s", bad[i].text);
                cr_expect(strncmp(err, bad[i].why, strlen(bad[i].why)) == 0, "%s: got '%s', want '%s'", bad[i].text,
                          err, bad[i].why);
                cr_expect_eq(r.grant_kib, 4, "left as it was");
        }
}

Test(record, is_kept_0600_next_to_its_file_and_goes_with_it, .init = tmpdir, .fini = rmtree) {
        char path[PAGING_PATH_MAX], rec[PAGING_PATH_MAX + 8], err[PAGING_ERR_MAX] = "";
        struct paging_record r = { 1048576, PAGING_NO_LIMIT, 393216, 200000 }, back;
        struct stat st;
        cr_assert_eq(paging_file_path(dir, UUID1, path, sizeof(path)), 0);
        snprintf(rec, sizeof(rec), "%s/%s.state", dir, UUID1);
        cr_expect_eq(paging_record_read(path, &back, err, sizeof(err)), -ENOENT);
        cr_assert_eq(paging_record_write(path, &r, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(stat(rec, &st), 0);
        cr_expect_eq(st.st_mode & 0777, 0600);
        cr_assert_eq(paging_record_read(path, &back, err, sizeof(err)), 0, "%s", err);
        cr_expect_eq(memcmp(&r, &back, sizeof(r)), 0);
        r.grant_kib = 300000; /* raised: written over */
        cr_assert_eq(paging_record_write(path, &r, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(paging_record_read(path, &back, err, sizeof(err)), 0, "%s", err);
        cr_expect_eq(back.grant_kib, 300000);

        FILE *f = fopen(rec, "w");
        fputs("grant = lots\n", f);
        fclose(f);
        cr_expect_eq(paging_record_read(path, &back, err, sizeof(err)), -EINVAL);
        cr_expect(strstr(err, rec) && strstr(err, "grant"), "names the file and the key: %s", err);

        if (geteuid() != 0)
                cr_skip_test("swapoff(2) needs CAP_SYS_ADMIN even for a file that is not on");
        cr_assert_eq(paging_file_make(path, 1024, err, sizeof(err)), 0);
        cr_expect_eq(paging_file_off(path, err, sizeof(err)), 0, "%s", err);
        cr_expect_neq(access(rec, F_OK), 0, "removed with its file");
}

Test(sweep, removes_files_that_are_not_on_and_nothing_else, .init = tmpdir, .fini = rmtree) {
        char on[PAGING_PATH_MAX], off[PAGING_PATH_MAX], other[PAGING_PATH_MAX], err[PAGING_ERR_MAX];
        cr_assert_eq(paging_file_path(dir, UUID1, on, sizeof(on)), 0);
        cr_assert_eq(paging_file_path(dir, "6f1c2a5e-0000-4000-8000-000000000002", off, sizeof(off)), 0);
        snprintf(other, sizeof(other), "%s/notes.txt", dir);
        cr_assert_eq(paging_file_make(on, 64, err, sizeof(err)), 0);
        cr_assert_eq(paging_file_make(off, 64, err, sizeof(err)), 0);
        FILE *f = fopen(other, "w");
        fclose(f);
        struct paging_swap sw = { .is_file = true };
        snprintf(sw.path, sizeof(sw.path), "%s", on);
        cr_expect_eq(paging_dir_sweep(dir, &sw, 1), 1);
        cr_expect_eq(access(on, F_OK), 0, "on: kept");
        cr_expect_neq(access(off, F_OK), 0, "an orphan: removed");
        cr_expect_eq(access(other, F_OK), 0, "not tide's: kept");
        cr_expect_eq(paging_dir_sweep("/nonexistent/tide", NULL, 0), 0);

        /* Records: kept for a file that is on, removed for one that is not (and not counted). */
        struct paging_record r = { PAGING_NO_LIMIT, PAGING_NO_LIMIT, 1024, 512 };
        cr_assert_eq(paging_record_write(on, &r, err, sizeof(err)), 0);
        cr_assert_eq(paging_record_write(off, &r, err, sizeof(err)), 0);
        char tmp[PAGING_PATH_MAX + 32];
        snprintf(tmp, sizeof(tmp), "%s/%s.state.new", dir, UUID1);
        fclose(fopen(tmp, "w")); /* a tided killed while writing a record */
        cr_expect_eq(paging_dir_sweep(dir, &sw, 1), 0);
        cr_expect_eq(paging_record_read(on, &r, err, sizeof(err)), 0);
        cr_expect_eq(paging_record_read(off, &r, err, sizeof(err)), -ENOENT);
        cr_expect_neq(access(tmp, F_OK), 0, "a half-written record is removed");
}
