/* Runs tidectl's command table in-process for the CLI tests: arguments in, exit code and what
 * it printed out. */
#pragma once

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "common/fileio.h"
#include "common/macro.h"

struct run {
        int code;
        char *out, *err;
        size_t out_len, err_len;
};

/* tidectl with up to 14 arguments; NULL ends them (more is the test's mistake). */
static inline struct run tidectl_argv(const char *const *args) {
        char *argv[16] = { (char *) "tidectl" };
        int argc = 1;
        struct run r = { 0 };
        for (size_t i = 0; args[i]; i++) {
                cr_assert_lt(i, 14, "tidectl_argv takes at most 14 arguments");
                argv[argc++] = (char *) args[i];
        }
        FILE *out = open_memstream(&r.out, &r.out_len), *err = open_memstream(&r.err, &r.err_len);
        cr_assert(out && err);
        r.code = tidectl_main(argc, argv, out, err);
        fclose(out);
        fclose(err);
        return r;
}

static inline void run_done(struct run *r) {
        free(r->out);
        free(r->err);
}

static inline char *slurp(const char *path) {
        char *text = NULL;
        int r = read_file_at(NULL, path, 1 << 20, &text, NULL);
        cr_assert_eq(r, 0, "cannot read %s: %s", path, strerror(-r));
        return text;
}
