/* What-if scenarios for `tidectl plan` and the simulator: a host and VMs described in JSON
 * (format in docs/POLICY.md, "Asking the engine"). Everything in the file is untrusted input:
 * every field is checked and an error names the file, the field and what is wrong. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "policy/config.h"
#include "policy/engine.h"

#define SCENARIO_NAME_MAX 64
#define SCENARIO_VMS_MAX 100000
#define SCENARIO_FILE_MAX (64u * 1024 * 1024)

struct scenario_vm {
        char name[SCENARIO_NAME_MAX];
        struct engine_vm vm;
        uint64_t demand_age_usec; /* how old the demand sample is when the scenario starts */
};

struct scenario {
        struct engine_host host;
        uint64_t host_memory_kib;
        struct scenario_vm *vms;
        size_t n_vms;
};

/* Parses scenario JSON. `source` names the input in messages ("examples/a.json").
 * `cfg` supplies the reserve when the file gives none. Returns 0 and fills *ret (release with
 * scenario_done()), or -EINVAL with "source: field: message" in err. */
int scenario_parse(const char *text, size_t len, const char *source, const struct tide_config *cfg,
                   struct scenario *ret, char *err, size_t errlen);

/* Reads and parses a file (at most SCENARIO_FILE_MAX bytes). Returns 0, -EINVAL or -errno. */
int scenario_load(const char *path, const struct tide_config *cfg, struct scenario *ret, char *err, size_t errlen);

/* Accepts a zeroed or filled scenario; leaves it zeroed. */
void scenario_done(struct scenario *s);
