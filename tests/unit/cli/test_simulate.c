/* tidectl simulate through the command table: bad scenarios and traces against the errors they
 * must produce, determinism, the oracle bounding every policy, and the documented JSON. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <json.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "tidectl_run.h"

#define GOLDEN "tests/golden/simulate"
#define EXAMPLES "docs/examples/simulate"

/* tidectl simulate with the arguments given (NULLs left out). */
static struct run simulate(const char *a1, const char *a2, const char *a3, const char *a4, const char *a5) {
        const char *given[] = { a1, a2, a3, a4, a5 }, *args[8] = { "simulate" };
        size_t n = 1;
        for (size_t i = 0; i < ELEMENTSOF(given); i++)
                if (given[i])
                        args[n++] = given[i];
        return tidectl_argv(args);
}

Test(simulate, bad_scenarios_name_file_field_and_problem) {
        DIR *dir = opendir(GOLDEN);
        struct dirent *e;
        int n = 0;
        cr_assert_not_null(dir);
        while ((e = readdir(dir))) {
                size_t len = strlen(e->d_name);
                if (strncmp(e->d_name, "fail-", 5) != 0 || len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
                        continue;
                char path[512], golden[512];
                snprintf(path, sizeof(path), GOLDEN "/%s", e->d_name);
                snprintf(golden, sizeof(golden), GOLDEN "/%.*s.err", (int) (len - 5), e->d_name);
                struct run r = simulate(path, NULL, NULL, NULL, NULL);
                _cleanup_free_ char *want = slurp(golden);
                cr_expect_eq(r.code, TIDECTL_EXIT_FAIL, "%s: exit %d", path, r.code);
                cr_expect_str_empty(r.out, "%s printed a result", path);
                cr_expect_str_eq(r.err, want, "%s", path);
                run_done(&r);
                n++;
        }
        closedir(dir);
        cr_assert_geq(n, 10);
}

Test(simulate, bad_traces_name_the_line_and_field) {
        struct run r = simulate("--trace", "tests/fixtures/traces/backwards.csv", NULL, NULL, NULL);
        cr_expect_eq(r.code, TIDECTL_EXIT_FAIL);
        cr_expect_str_eq(r.err, "tidectl: tests/fixtures/traces/backwards.csv: line 3: t_s: before this VM's previous "
                                "sample\n");
        run_done(&r);
        r = simulate("--trace", "tests/fixtures/traces/bad-field.csv", NULL, NULL, NULL);
        cr_expect_str_eq(r.err, "tidectl: tests/fixtures/traces/bad-field.csv: line 3: cpu_pct: expected a percentage\n");
        run_done(&r);
        r = simulate("--trace", "tests/fixtures/traces/bad-header.csv", NULL, NULL, NULL);
        cr_expect_eq(r.code, TIDECTL_EXIT_FAIL);
        cr_expect_not_null(strstr(r.err, "line 1: header: expected vm,t_s,"), "%s", r.err);
        run_done(&r);
        r = simulate("--trace", "tests/fixtures/traces/missing.csv", NULL, NULL, NULL);
        cr_expect_eq(r.code, TIDECTL_EXIT_FAIL);
        cr_expect_not_null(strstr(r.err, "missing.csv: No such file"), "%s", r.err);
        run_done(&r);
}

Test(simulate, usage_errors_exit_2) {
        struct run r = simulate(NULL, NULL, NULL, NULL, NULL);
        cr_expect_eq(r.code, TIDECTL_EXIT_USAGE);
        run_done(&r);
        r = simulate(EXAMPLES "/storm.json", "--policies", "tide,vmware", NULL, NULL);
        cr_expect_eq(r.code, TIDECTL_EXIT_USAGE);
        cr_expect_not_null(strstr(r.err, "unknown policy 'vmware'"), "%s", r.err);
        run_done(&r);
        r = simulate(EXAMPLES "/storm.json", "--hours", "-1", NULL, NULL);
        cr_expect_eq(r.code, TIDECTL_EXIT_USAGE);
        run_done(&r);
        r = simulate(EXAMPLES "/storm.json", "--seed", "x", NULL, NULL);
        cr_expect_eq(r.code, TIDECTL_EXIT_USAGE);
        run_done(&r);
}

static json_object *run_json(const char *a1, const char *a2, const char *a3, const char *a4) {
        struct run r = simulate(a1, a2, a3, a4, "--json");
        cr_assert_eq(r.code, TIDECTL_EXIT_OK, "%s", r.err);
        json_object *o = json_tokener_parse(r.out);
        cr_assert(o && json_object_is_type(o, json_type_object), "not a JSON object: %s", r.out);
        run_done(&r);
        return o;
}

static json_object *policy(json_object *root, const char *name) {
        json_object *pols = json_object_object_get(root, "policies");
        for (size_t i = 0; i < json_object_array_length(pols); i++) {
                json_object *p = json_object_array_get_idx(pols, i);
                if (streq(json_object_get_string(json_object_object_get(p, "policy")), name))
                        return p;
        }
        cr_assert_fail("no policy %s", name);
        return NULL;
}

static double num(json_object *p, const char *key) {
        json_object *v = json_object_object_get(p, key);
        cr_assert(v && !json_object_is_type(v, json_type_null), "%s missing", key);
        return json_object_get_double(v);
}

Test(simulate, json_has_the_documented_fields) {
        json_object *o = run_json(EXAMPLES "/storm.json", NULL, NULL, NULL);
        cr_expect_eq(json_object_get_int(json_object_object_get(o, "vms")), 20);
        cr_expect_float_eq(num(o, "simulated_seconds"), 1800, 1e-9);
        cr_expect(json_object_object_get(o, "wall_seconds"));
        const char *fields[] = { "memory_returned_pct", "peak_assigned_kib", "warning_vm_seconds", "warning_pct",
                                 "oom_events", "paging_gib_seconds", "paging_peak_kib", "paging_files",
                                 "time_to_all_booted_s", "balloon_ops" };
        const char *names[] = { "tide", "hyperv", "mom", "proxmox", "static", "oracle" };
        for (size_t k = 0; k < ELEMENTSOF(names); k++)
                for (size_t f = 0; f < ELEMENTSOF(fields); f++)
                        cr_expect(json_object_object_get_ex(policy(o, names[k]), fields[f], NULL), "%s.%s", names[k],
                                  fields[f]);
        json_object_put(o);
}

/* The same scenario and seed give the same numbers, to the last digit; another seed does not. */
Test(simulate, runs_are_deterministic_for_a_seed) {
        json_object *a = run_json(EXAMPLES "/storm.json", "--seed", "7", NULL);
        json_object *b = run_json(EXAMPLES "/storm.json", "--seed", "7", NULL);
        json_object *c = run_json(EXAMPLES "/storm.json", "--seed", "8", NULL);
        const char *fields[] = { "memory_returned_pct", "peak_assigned_kib", "warning_vm_seconds", "balloon_ops" };
        bool differs = false;
        for (size_t f = 0; f < ELEMENTSOF(fields); f++) {
                cr_expect_eq(num(policy(a, "tide"), fields[f]), num(policy(b, "tide"), fields[f]), "%s", fields[f]);
                cr_expect_eq(num(policy(a, "mom"), fields[f]), num(policy(b, "mom"), fields[f]), "%s", fields[f]);
                differs |= num(policy(a, "tide"), fields[f]) != num(policy(c, "tide"), fields[f]);
        }
        cr_expect(differs, "the seed changes the walk");
        json_object_put(a);
        json_object_put(b);
        json_object_put(c);
}

/* No policy gives back more than the oracle, which holds exactly the demand. */
Test(simulate, the_oracle_bounds_every_policy) {
        const char *examples[] = { EXAMPLES "/storm.json", EXAMPLES "/staggered.json", EXAMPLES "/failover.json",
                                   EXAMPLES "/paging.json" };
        const char *names[] = { "tide", "hyperv", "mom", "proxmox", "static" };
        for (size_t e = 0; e < ELEMENTSOF(examples); e++) {
                json_object *o = run_json(examples[e], NULL, NULL, NULL);
                double bound = num(policy(o, "oracle"), "memory_returned_pct");
                cr_expect_eq(num(policy(o, "oracle"), "warning_vm_seconds"), 0, "%s", examples[e]);
                for (size_t k = 0; k < ELEMENTSOF(names); k++)
                        cr_expect_leq(num(policy(o, names[k]), "memory_returned_pct"), bound + 1e-9, "%s: %s",
                                      examples[e], names[k]);
                json_object_put(o);
        }
}

/* Twenty guests that touch most of their startup while they boot restart on a host 8 GiB short:
 * tide and Hyper-V page the shortfall to the paging disk, the others have none. */
Test(simulate, a_restart_on_a_short_host_with_a_paging_disk_pages_under_tide_and_hyperv) {
        json_object *o = run_json(EXAMPLES "/paging.json", NULL, NULL, NULL);
        const char *paging[] = { "tide", "hyperv" }, *not[] = { "mom", "proxmox", "static", "oracle" };
        for (size_t k = 0; k < ELEMENTSOF(paging); k++) {
                cr_expect_gt(num(policy(o, paging[k]), "paging_gib_seconds"), 0, "%s", paging[k]);
                cr_expect_gt(num(policy(o, paging[k]), "paging_files"), 0, "%s", paging[k]);
                cr_expect_gt(num(policy(o, paging[k]), "paging_peak_kib"), 0, "%s", paging[k]);
        }
        for (size_t k = 0; k < ELEMENTSOF(not); k++)
                cr_expect_eq(num(policy(o, not[k]), "paging_gib_seconds"), 0, "%s", not[k]);
        cr_expect_lt(num(policy(o, "tide"), "time_to_all_booted_s"), num(policy(o, "mom"), "time_to_all_booted_s"));
        json_object_put(o);
}

/* A host fails: its VMs start cold on the survivor, and the storm's end is measured. */
Test(simulate, a_failed_hosts_vms_boot_on_the_survivor) {
        json_object *o = run_json(EXAMPLES "/failover.json", "--policies", "tide,static", NULL);
        json_object *t = policy(o, "tide");
        cr_expect_gt(num(t, "time_to_all_booted_s"), 0);
        cr_expect_eq(num(t, "oom_events"), 0);
        json_object_put(o);
}

/* Three hosts, one fails: its 18 VMs are spread over both survivors, though both are already
 * promised more than they have. A placement that floored the room at 0 sent all 18 to the first
 * survivor: 4938 VM-s in warning and 8652 GiB-s paged, against 412 and 3.9 spread. */
Test(simulate, a_failed_hosts_vms_spread_over_overcommitted_survivors) {
        json_object *o = run_json("tests/fixtures/simulate/three-host-failover.json", "--policies", "tide", NULL);
        json_object *t = policy(o, "tide");
        cr_expect_lt(num(t, "warning_vm_seconds"), 1000);
        cr_expect_lt(num(t, "paging_gib_seconds"), 100);
        json_object_put(o);
}

/* On a host sized from the VMs (every startup fits, with the reserve), static sizing holds all
 * its startup memory all the time, and the oracle exactly the demand. */
Test(simulate, on_a_host_that_fits_static_returns_nothing_and_the_oracle_never_warns) {
        json_object *o = run_json("--trace", "tests/fixtures/traces/small.csv", "--policies", "static,oracle");
        cr_expect_float_eq(num(policy(o, "static"), "memory_returned_pct"), 0, 1e-9);
        cr_expect_eq(num(policy(o, "static"), "warning_vm_seconds"), 0);
        cr_expect_eq(num(policy(o, "oracle"), "warning_vm_seconds"), 0);
        cr_expect_eq(num(policy(o, "oracle"), "oom_events"), 0);
        json_object_put(o);
}

/* A trace in gzip is read like a plain one, and its VMs are simulated over its length. */
Test(simulate, traces_run_plain_or_gzipped) {
        json_object *a = run_json("--trace", "tests/fixtures/traces/small.csv", "--policies", "tide,oracle");
        json_object *b = run_json("--trace", "tests/fixtures/traces/small.csv.gz", "--policies", "tide,oracle");
        cr_expect_eq(json_object_get_int(json_object_object_get(a, "vms")), 2);
        cr_expect_float_eq(num(a, "simulated_seconds"), 900, 1e-9);
        cr_expect_eq(num(policy(a, "tide"), "peak_assigned_kib"), num(policy(b, "tide"), "peak_assigned_kib"));
        json_object_put(a);
        json_object_put(b);
}

/* --find-host: the oracle needs only its peak demand and a reserve; nothing needs less. */
Test(simulate, find_host_never_finds_less_than_the_oracle_needs) {
        json_object *o = run_json(EXAMPLES "/staggered.json", "--find-host", "--policies", "static,oracle,tide");
        double static_host = num(policy(o, "static"), "host_needed_kib");
        double oracle_host = num(policy(o, "oracle"), "host_needed_kib");
        double tide_host = num(policy(o, "tide"), "host_needed_kib");
        /* Peak demand 10 x 900 MiB = 8.8 GiB, + 1 GiB reserve, rounded up to a GiB. */
        cr_expect_eq(oracle_host, 10.0 * 1024 * 1024);
        cr_expect_lt(oracle_host, static_host);
        cr_expect_leq(oracle_host, tide_host);
        cr_expect_leq(tide_host, static_host);
        json_object_put(o);
}

/* --csv writes every tick per policy; --plot draws through gnuplot (installed by install-deps). */
Test(simulate, csv_has_a_row_per_tick_and_plot_draws_an_svg) {
        char dir[] = "/tmp/tide-sim-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        char csv[300], svg[300];
        snprintf(csv, sizeof(csv), "%s/csv", dir);
        snprintf(svg, sizeof(svg), "%s/run.svg", dir);
        const char *args[] = { "simulate", EXAMPLES "/staggered.json", "--policies", "tide,static", "--csv", csv,
                               "--plot", svg, NULL };
        struct run r = tidectl_argv(args);
        cr_assert_eq(r.code, TIDECTL_EXIT_OK, "%s", r.err);
        run_done(&r);
        char path[400];
        snprintf(path, sizeof(path), "%s/tide.csv", csv);
        _cleanup_free_ char *text = slurp(path);
        size_t lines = 0;
        for (const char *p = text; *p; p++)
                lines += *p == '\n';
        cr_expect_eq(lines, 601, "a header and 600 ticks");
        cr_expect(strncmp(text, "t_s,vms_running,vms_booted,vms_in_warning,demand_kib,assigned_kib,paging_kib\n", 77) == 0);
        _cleanup_free_ char *picture = slurp(svg);
        cr_expect_not_null(strstr(picture, "<svg"), "an SVG");
        cr_expect_not_null(strstr(picture, "tide booted"), "the legend names the policies");
        snprintf(path, sizeof(path), "rm -rf '%s'", dir);
        cr_expect_eq(system(path), 0);
}

Test(simulate, a_plot_path_that_is_not_svg_or_png_is_a_usage_error) {
        const char *args[] = { "simulate", EXAMPLES "/storm.json", "--plot", "/tmp/x.gif", NULL };
        struct run r = tidectl_argv(args);
        cr_expect_eq(r.code, TIDECTL_EXIT_USAGE);
        cr_expect_not_null(strstr(r.err, "must end in .svg or .png"), "%s", r.err);
        run_done(&r);
}

/* The last VM of a staggered start begins at 45 s and boots in at least 15 s: the storm lasts
 * from the first start until it has booted, not from the last start. */
Test(simulate, a_staggered_storm_lasts_until_the_last_vm_booted) {
        json_object *o = run_json(EXAMPLES "/staggered.json", "--policies", "oracle,tide", NULL);
        cr_expect_geq(num(policy(o, "oracle"), "time_to_all_booted_s"), 60);
        cr_expect_geq(num(policy(o, "tide"), "time_to_all_booted_s"), 60);
        json_object_put(o);
}

/* The peak is of what the VMs held after time passed, not in the instant a restart resets their
 * balloons: the oracle's peak is its peak demand, below the host. */
Test(simulate, the_oracles_peak_is_its_peak_demand) {
        json_object *o = run_json(EXAMPLES "/storm.json", "--policies", "oracle", NULL);
        double peak = num(policy(o, "oracle"), "peak_assigned_kib");
        cr_expect_lt(peak, 30.0 * 1024 * 1024, "%.0f KiB: the host's 32 GiB less its 2 GiB reserve bounds the demand", peak);
        json_object_put(o);
}

/* Without gnuplot, --plot says so before running, and tidectl is not killed by a broken pipe. */
Test(simulate, plot_without_gnuplot_is_a_clear_error) {
        char *path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
        setenv("PATH", "/nonexistent", 1);
        const char *args[] = { "simulate", EXAMPLES "/storm.json", "--plot", "/tmp/tide-sim-no-gnuplot.svg", NULL };
        struct run r = tidectl_argv(args);
        if (path) {
                setenv("PATH", path, 1);
                free(path);
        }
        cr_expect_eq(r.code, TIDECTL_EXIT_FAIL);
        cr_expect_not_null(strstr(r.err, "--plot needs gnuplot"), "%s", r.err);
        run_done(&r);
        unlink("/tmp/tide-sim-no-gnuplot.svg");
}

/* Everything after the first line (which times the run). */
static const char *after_first_line(const char *text) {
        const char *nl = strchr(text, '\n');
        return nl ? nl + 1 : text;
}

/* The fast path (tide's sleeping VMs, sim/sleep.c) prints what the full loop prints, and writes
 * the same per-tick rows, demand of the sleepers included. */
Test(simulate, the_fast_path_prints_the_full_loops_numbers) {
        const char *inputs[][4] = { { EXAMPLES "/storm.json", NULL, NULL, NULL },
                                    { EXAMPLES "/failover.json", NULL, NULL, NULL },
                                    { "--trace", "tests/fixtures/traces/small.csv", "--vms", "7" },
                                    { "--trace", "tests/fixtures/traces/small.csv", "--hold", NULL } };
        for (size_t k = 0; k < ELEMENTSOF(inputs); k++) {
                char dir[] = "/tmp/tide-sim-XXXXXX";
                cr_assert_not_null(mkdtemp(dir));
                char fast_csv[300], full_csv[300], path[400];
                snprintf(fast_csv, sizeof(fast_csv), "%s/fast", dir);
                snprintf(full_csv, sizeof(full_csv), "%s/full", dir);
                const char *fast_args[12] = { "simulate", "--policies", "tide", "--csv", fast_csv },
                           *full_args[12] = { "simulate", "--policies", "tide", "--csv", full_csv, "--full-loop" };
                size_t nf = 5, nl = 6;
                for (size_t i = 0; i < 4 && inputs[k][i]; i++)
                        fast_args[nf++] = full_args[nl++] = inputs[k][i];
                struct run fast = tidectl_argv(fast_args), full = tidectl_argv(full_args);
                cr_assert_eq(fast.code, TIDECTL_EXIT_OK, "%s", fast.err);
                cr_assert_eq(full.code, TIDECTL_EXIT_OK, "%s", full.err);
                cr_expect_str_eq(after_first_line(fast.out), after_first_line(full.out), "%s", inputs[k][0]);
                run_done(&fast);
                run_done(&full);
                snprintf(path, sizeof(path), "%s/tide.csv", fast_csv);
                _cleanup_free_ char *a = slurp(path);
                snprintf(path, sizeof(path), "%s/tide.csv", full_csv);
                _cleanup_free_ char *b = slurp(path);
                cr_expect_str_eq(a, b, "%s: per-tick rows", inputs[k][0]);
                snprintf(path, sizeof(path), "rm -rf '%s'", dir);
                cr_expect_eq(system(path), 0);
        }
}

/* --hold holds the samples (it once printed the help instead); --vms takes copies of the
 * trace's VMs. */
Test(simulate, hold_and_vms_shape_the_trace) {
        struct run r = simulate("--trace", "tests/fixtures/traces/small.csv", "--hold", NULL, NULL);
        cr_expect_eq(r.code, TIDECTL_EXIT_OK, "%s", r.err);
        cr_expect_not_null(strstr(r.out, "POLICY"), "the table, not the help: %s", r.out);
        run_done(&r);
        json_object *o = run_json("--trace", "tests/fixtures/traces/small.csv", "--vms", "5");
        cr_expect_eq(json_object_get_int(json_object_object_get(o, "vms")), 5);
        json_object_put(o);
        r = simulate("--trace", "tests/fixtures/traces/small.csv", "--vms", "0", NULL);
        cr_expect_eq(r.code, TIDECTL_EXIT_USAGE);
        cr_expect_not_null(strstr(r.err, "--vms: '0' is not a number of VMs"), "%s", r.err);
        run_done(&r);
        r = simulate(EXAMPLES "/storm.json", "--vms", "10", NULL, NULL);
        cr_expect_eq(r.code, TIDECTL_EXIT_USAGE);
        cr_expect_not_null(strstr(r.err, "--vms takes VMs from a --trace"), "%s", r.err);
        run_done(&r);
}

/* ---- --parking: core parking on the trace's CPU demand ---- */

#define SMALL "tests/fixtures/traces/small.csv"

Test(simulate, parking_compares_none_tide_and_lpmd_on_the_traces_cpu) {
        struct run r = simulate("--parking", "--trace", SMALL, "--cores", "4");
        cr_assert_eq(r.code, TIDECTL_EXIT_OK, "%s", r.err);
        cr_expect_not_null(strstr(r.out, "on 4 cores x 2 threads (8 CPUs, 1 node)"), "%s", r.out);
        cr_expect_not_null(strstr(r.out, "\nnone "), "%s", r.out);
        cr_expect_not_null(strstr(r.out, "\ntide "), "%s", r.out);
        cr_expect_not_null(strstr(r.out, "\nlpmd "), "%s", r.out);
        run_done(&r);

        const char *args[] = { "simulate", "--parking", "--trace", SMALL, "--cores", "4", "--smt", "1", "--json", NULL };
        r = tidectl_argv(args);
        cr_assert_eq(r.code, TIDECTL_EXIT_OK, "%s", r.err);
        json_object *o = json_tokener_parse(r.out), *rules = json_object_object_get(o, "rules");
        cr_assert_eq(json_object_array_length(rules), 3, "%s", r.out);
        const char *fields[] = { "seconds", "joules", "avg_watts", "saved_pct", "demand_cpu_s", "wait_cpu_s",
                                 "wait_seconds", "parked_cores_avg", "parked_cores_max", "deep_idle_cores_avg",
                                 "parks", "unparks", "reversals" };
        for (size_t i = 0; i < 3; i++)
                for (size_t f = 0; f < ELEMENTSOF(fields); f++)
                        cr_expect(json_object_object_get_ex(json_object_array_get_idx(rules, i), fields[f], NULL),
                                  "%zu.%s", i, fields[f]);
        json_object *tide = json_object_array_get_idx(rules, 1);
        cr_expect_str_eq(json_object_get_string(json_object_object_get(tide, "rule")), "tide");
        /* The small trace's VMs want a few hundredths of a CPU: tide parks all but one core. That
         * costs more than it saves: idle cores that see a hundredth of the load already sleep
         * deep 95 % of their idle time in the model, and the one core left gets busier (the
         * case Microsoft warns of: parking alone saves nothing). */
        cr_expect_eq(json_object_get_int(json_object_object_get(tide, "parked_cores_max")), 3);
        cr_expect_lt(num(tide, "saved_pct"), 0);
        cr_expect_float_eq(num(json_object_array_get_idx(rules, 0), "saved_pct"), 0, 1e-12);
        json_object_put(o);
        run_done(&r);
}

Test(simulate, parking_usage_errors_exit_2) {
        struct run r = simulate("--parking", NULL, NULL, NULL, NULL);
        cr_expect_eq(r.code, TIDECTL_EXIT_USAGE);
        cr_expect_not_null(strstr(r.err, "--parking needs a --trace"), "%s", r.err);
        run_done(&r);
        r = simulate("--trace", SMALL, "--cores", "4", NULL);
        cr_expect_eq(r.code, TIDECTL_EXIT_USAGE);
        cr_expect_not_null(strstr(r.err, "describe the host of --parking"), "%s", r.err);
        run_done(&r);
        r = simulate("--parking", "--trace", SMALL, "--smt", "0");
        cr_expect_eq(r.code, TIDECTL_EXIT_USAGE);
        cr_expect_not_null(strstr(r.err, "--smt: '0' is not a whole number from 1 to 8"), "%s", r.err);
        run_done(&r);
        r = simulate("--parking", "--trace", SMALL, "--find-host", NULL);
        cr_expect_eq(r.code, TIDECTL_EXIT_USAGE);
        run_done(&r);
        r = simulate("--parking", "--trace", SMALL, "--nodes", "3");
        cr_expect_eq(r.code, TIDECTL_EXIT_USAGE, "more nodes than its cores (the VMs' 3 vCPUs make one core)");
        run_done(&r);
}
