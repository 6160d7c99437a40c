#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "daemon/snapshot.h"

void snapshot_done(struct snapshot *s) {
        if (!s)
                return;
        free(s->domains);
        s->domains = NULL;
        s->n_domains = 0;
        free(s->cpus);
        s->cpus = NULL;
        s->n_cpus = 0;
}
