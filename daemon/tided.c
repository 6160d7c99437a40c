/* tided: the dynamic-memory controller. For now only its configuration front end exists.
 *
 * The controller (collect -> decide -> act) arrives with issue 3. Until then tided refuses to
 * start rather than pretending: a unit file pointing at a daemon that sits idle would look like
 * a working dynamic-memory host while no VM's memory ever moves. --check-config is already
 * real, so configurations can be written and validated now with the parser tided will use. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "policy/config.h"

#ifndef TIDE_VERSION
#error "TIDE_VERSION must be defined by the build (daemon/CMakeLists.txt)"
#endif

/* Exit codes: 0 success, 1 the configuration (or stdout) failed, 2 usage. */
#define EXIT_CONFIG 1
#define EXIT_USAGE 2

static void help(void) {
        printf("Usage: tided [OPTION]...\n"
               "The tide dynamic-memory controller for libvirt/KVM hosts.\n"
               "\n"
               "  -c, --check-config FILE  parse FILE, print the configuration in effect and exit\n"
               "                           (0: valid; 1: invalid, the first error on stderr)\n"
               "  -h, --help               show this help and exit\n"
               "  -V, --version            show the version and exit\n"
               "\n"
               "The controller itself is not built yet (issue 3); only --check-config works.\n"
               "Default configuration file: %s\n",
               CONFIG_PATH_DEFAULT);
}

static int check_config(const char *path) {
        struct tide_config cfg;
        char err[1024];

        config_init(&cfg);
        if (config_load_file(path, &cfg, err, sizeof(err)) < 0) {
                /* Exactly "PATH:LINE: message", no program prefix: the config goldens
                 * (tests/golden/config/fail-*.err) are this line. */
                fprintf(stderr, "%s\n", err);
                return EXIT_CONFIG;
        }
        config_format(&cfg, stdout);
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "tided: failed to write the configuration to stdout\n");
                return EXIT_CONFIG;
        }
        return EXIT_SUCCESS;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "check-config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { NULL, 0, NULL, 0 },
        };
        const char *check = NULL;
        int c;

        while ((c = getopt_long(argc, argv, "c:hV", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        check = optarg;
                        break;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case 'V':
                        printf("tided %s\n", TIDE_VERSION);
                        return EXIT_SUCCESS;
                default: /* getopt_long() has printed what was wrong */
                        fprintf(stderr, "Try 'tided --help'.\n");
                        return EXIT_USAGE;
                }

        if (optind < argc) {
                fprintf(stderr, "tided: unexpected argument '%s'\nTry 'tided --help'.\n", argv[optind]);
                return EXIT_USAGE;
        }
        if (check)
                return check_config(check);

        fprintf(stderr, "tided: the controller is not built yet (issue 3); only --check-config is available\n");
        return EXIT_USAGE;
}
