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
}

/* `to` is overwritten, not released first: a caller reusing a snapshot calls snapshot_done()
 * on it before. On failure `to` is left untouched, so the previous copy (if the caller kept
 * one there) stays usable. The string pointers inside a domain (status, agent, balloon) point
 * at static strings, so copying them by value is the deep copy. */
int snapshot_copy(const struct snapshot *from, struct snapshot *to) {
        struct snapshot_domain *domains = NULL;

        if (!from || !to || (from->n_domains > 0 && !from->domains))
                return -EINVAL;

        if (from->n_domains > 0) {
                domains = calloc(from->n_domains, sizeof(*domains));
                if (!domains)
                        return -ENOMEM;
                memcpy(domains, from->domains, from->n_domains * sizeof(*domains));
        }

        to->host = from->host;
        to->domains = domains;
        to->n_domains = from->n_domains;
        return 0;
}
