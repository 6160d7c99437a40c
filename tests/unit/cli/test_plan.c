/* tidectl plan, end to end through the command table: the examples in docs/examples/ against
 * golden outputs, and bad scenario files against the errors they must produce. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidectl_run.h"

#define GOLDEN "tests/golden/plan"

static struct run tidectl(const char *a1, const char *a2, const char *a3, const char *a4) {
        const char *args[] = { a1, a2, a3, a4, NULL };
        return tidectl_argv(args);
}

static void expect_golden(const char *golden, const char *actual) {
        _cleanup_free_ char *want = slurp(golden);
        cr_expect_str_eq(actual, want, "%s differs.\n--- expected\n%s--- actual\n%s", golden, want, actual);
}

/* Every example, plain and settled, text and JSON, matches its golden output. */
Test(plan, examples_match_golden_output) {
        static const char *names[] = { "roomy-host", "short-host", "overcommitted", "holds", "numa" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char example[256], golden[256];
                snprintf(example, sizeof(example), "docs/examples/%s.json", names[i]);

                struct run r = tidectl("plan", example, NULL, NULL);
                cr_assert_eq(r.code, 0, "%s: %s", example, r.err);
                snprintf(golden, sizeof(golden), GOLDEN "/%s.txt", names[i]);
                expect_golden(golden, r.out);
                run_done(&r);

                r = tidectl("plan", example, "--settle", NULL);
                cr_assert_eq(r.code, 0, "%s: %s", example, r.err);
                snprintf(golden, sizeof(golden), GOLDEN "/%s.settle.txt", names[i]);
                expect_golden(golden, r.out);
                run_done(&r);

                r = tidectl("plan", example, "--settle", "--json");
                cr_assert_eq(r.code, 0, "%s: %s", example, r.err);
                snprintf(golden, sizeof(golden), GOLDEN "/%s.settle.json", names[i]);
                expect_golden(golden, r.out);
                run_done(&r);
        }
}

static json_object *plan_json(const char *example, const char *settle) {
        struct run r = tidectl("plan", example, "--json", settle);
        cr_assert_eq(r.code, 0, "%s", r.err);
        json_object *o = json_tokener_parse(r.out);
        cr_assert_not_null(o, "not JSON: %s", r.out);
        run_done(&r);
        return o;
}

static int64_t vm_field(json_object *root, size_t i, const char *key) {
        json_object *vms, *v;
        cr_assert(json_object_object_get_ex(root, "vms", &vms));
        cr_assert(json_object_object_get_ex(json_object_array_get_idx(vms, i), key, &v));
        return json_object_get_int64(v);
}

Test(plan, json_has_the_documented_fields) {
        json_object *o = plan_json("docs/examples/roomy-host.json", NULL);
        json_object *vms, *v0, *x;
        cr_assert(json_object_object_get_ex(o, "vms", &vms));
        cr_assert_eq(json_object_array_length(vms), 3);
        v0 = json_object_array_get_idx(vms, 0);
        static const char *keys[] = { "name", "target_kib", "assigned_kib", "demand_kib", "status", "reason" };
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                cr_assert(json_object_object_get_ex(v0, keys[i], &x), "missing %s", keys[i]);
        cr_assert_str_eq(json_object_get_string(json_object_object_get(v0, "name")), "web1");
        /* web1: demand 1000 MiB + 20 % = 1200 MiB */
        cr_assert_eq(vm_field(o, 0, "target_kib"), 1200 * 1024);
        json_object_put(o);
}

Test(plan, settled_short_host_shares_by_weight_within_capacity) {
        json_object *o = plan_json("docs/examples/short-host.json", "--settle");
        int64_t gold = vm_field(o, 0, "target_kib"), silver = vm_field(o, 1, "target_kib");
        int64_t batch = vm_field(o, 2, "target_kib"), fixed = vm_field(o, 3, "target_kib");
        cr_assert_eq(gold + silver + batch + fixed, 7 * 1024 * 1024, "the whole capacity is used");
        cr_assert_eq(fixed, 1024 * 1024, "a static VM keeps its startup");
        cr_assert_eq(batch, 512 * 1024, "weight 0 stays at its minimum while others are short");
        /* 3.5 GiB above the floors; at weight 100:50 gold's share (2.33 GiB) exceeds its 2 GiB
         * of demand above minimum, so gold gets its demand and silver the rest (docs/POLICY.md). */
        cr_assert_eq(gold, 3 * 1024 * 1024);
        cr_assert_eq(silver, 2560 * 1024);
        json_object_put(o);
}

Test(plan, settle_reports_how_many_ticks) {
        json_object *o = plan_json("docs/examples/roomy-host.json", "--settle"), *x;
        cr_assert(json_object_object_get_ex(o, "settled", &x));
        cr_assert(json_object_get_boolean(x));
        cr_assert(json_object_object_get_ex(o, "ticks", &x));
        cr_assert_gt(json_object_get_int64(x), 1, "idle1 shrinks over several ticks");
        json_object_put(o);
}

/* Bad scenarios: each fail-*.json in the golden folder gives exit 1 and exactly its .err text. */
Test(plan, bad_scenarios_name_file_field_and_problem) {
        DIR *dir = opendir(GOLDEN);
        struct dirent *de;
        int seen = 0;
        cr_assert_not_null(dir);
        while ((de = readdir(dir))) {
                size_t len = strlen(de->d_name);
                if (strncmp(de->d_name, "fail-", 5) != 0 || len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
                        continue;
                char path[512], errpath[512];
                snprintf(path, sizeof(path), GOLDEN "/%s", de->d_name);
                snprintf(errpath, sizeof(errpath), GOLDEN "/%.*s.err", (int) (len - 5), de->d_name);
                struct run r = tidectl("plan", path, NULL, NULL);
                cr_expect_eq(r.code, 1, "%s: exit %d", path, r.code);
                cr_expect_str_empty(r.out, "%s printed a plan", path);
                expect_golden(errpath, r.err);
                run_done(&r);
                seen++;
        }
        closedir(dir);
        cr_assert_geq(seen, 10);
}

Test(plan, missing_file_is_a_clear_error) {
        struct run r = tidectl("plan", "docs/examples/does-not-exist.json", NULL, NULL);
        cr_assert_eq(r.code, 1);
        cr_assert_str_eq(r.err, "tidectl: docs/examples/does-not-exist.json: No such file or directory\n");
        run_done(&r);
}

Test(plan, usage_errors_exit_2) {
        struct run r = tidectl("plan", NULL, NULL, NULL);
        cr_assert_eq(r.code, 2);
        cr_assert(strstr(r.err, "expected one scenario file"));
        run_done(&r);
        r = tidectl("plan", "a.json", "--bogus", NULL);
        cr_assert_eq(r.code, 2);
        cr_assert(strstr(r.err, "--bogus"), "%s", r.err);
        run_done(&r);
        r = tidectl("plan", "a.json", "--max-ticks", "-3");
        cr_assert_eq(r.code, 2);
        run_done(&r);
        r = tidectl("frobnicate", NULL, NULL, NULL);
        cr_assert_eq(r.code, 2);
        run_done(&r);
}

Test(tidectl, help_is_generated_from_the_command_table) {
        struct run r = tidectl("--help", NULL, NULL, NULL);
        cr_assert_eq(r.code, 0);
        cr_assert(strstr(r.out, "  plan   FILE.json [--settle]"), "%s", r.out);
        cr_assert(strstr(r.out, "  help   [COMMAND]"));
        run_done(&r);
        r = tidectl("help", "plan", NULL, NULL);
        cr_assert_eq(r.code, 0);
        cr_assert(strstr(r.out, "--settle"));
        run_done(&r);
}

/* The socket tidectl tried shows in its error: no tided listens at these paths. */
static void expect_socket(struct run r, const char *path) {
        cr_assert_eq(r.code, 1, "%s", r.err);
        cr_assert(strstr(r.err, path), "wanted %s in: %s", path, r.err);
        run_done(&r);
}

Test(tidectl, global_options_work_before_and_after_the_command) {
        expect_socket(tidectl("--socket", "/nonexistent/a.sock", "stats", NULL), "/nonexistent/a.sock");
        expect_socket(tidectl("stats", "--socket", "/nonexistent/b.sock", NULL), "/nonexistent/b.sock");
        expect_socket(tidectl("--socket=/nonexistent/c.sock", "policy", "show", NULL), "/nonexistent/c.sock");
        expect_socket(tidectl("policy", "--socket", "/nonexistent/d.sock", "show"), "/nonexistent/d.sock");
        expect_socket(tidectl("policy", "show", "--socket", "/nonexistent/e.sock"), "/nonexistent/e.sock");
        expect_socket(tidectl("--socket", "/nonexistent/f.sock", "top", "--iterations=1"), "/nonexistent/f.sock");
        /* After the command, the last one given wins, as getopt has it. */
        expect_socket(tidectl("--socket", "/nonexistent/g.sock", "stats", "--socket=/nonexistent/h.sock"),
                      "/nonexistent/h.sock");

        const char *versions[][2] = { { "--version", NULL }, { "stats", "--version" }, { "plan", "--version" },
                                      { "help", "--version" } };
        for (size_t i = 0; i < ELEMENTSOF(versions); i++) {
                struct run r = tidectl(versions[i][0], versions[i][1], NULL, NULL);
                cr_assert_eq(r.code, 0);
                cr_assert(strncmp(r.out, "tidectl ", 8) == 0, "%s", r.out);
                run_done(&r);
        }
        /* --help anywhere shows the command's own help. */
        const char *helps[][3] = { { "--help", "stats", NULL }, { "stats", "--help", NULL }, { "stats", "-h", NULL },
                                   { "policy", "set", "--help" }, { "help", "stats", NULL } };
        for (size_t i = 0; i < ELEMENTSOF(helps); i++) {
                struct run r = tidectl(helps[i][0], helps[i][1], helps[i][2], NULL);
                cr_assert_eq(r.code, 0, "%s %s: %s", helps[i][0], helps[i][1], r.err);
                cr_assert(strstr(r.out, "Usage: tidectl ") && strstr(r.out, "--socket PATH"), "%s", r.out);
                run_done(&r);
        }
        struct run r = tidectl("--bogus", "stats", NULL, NULL);
        cr_assert_eq(r.code, 2);
        cr_assert(strstr(r.err, "'--bogus'"), "%s", r.err);
        run_done(&r);
        r = tidectl("--socket", NULL, NULL, NULL);
        cr_assert_eq(r.code, 2);
        cr_assert(strstr(r.err, "'--socket'"), "%s", r.err);
        run_done(&r);
        r = tidectl("stats", "--socket=", NULL, NULL);
        cr_assert_eq(r.code, 2);
        run_done(&r);
        /* Unambiguous abbreviations, as getopt_long takes them after the command too. */
        expect_socket(tidectl("--sock", "/nonexistent/i.sock", "stats", NULL), "/nonexistent/i.sock");
}
