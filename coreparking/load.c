#include "coreparking/load.h"

#include <errno.h>
#include <libproc2/stat.h>
#include <stdlib.h>

double parking_busy_share(const struct parking_tics *d) {
        if (!d || d->user < 0 || d->nice < 0 || d->system < 0 || d->idle < 0 || d->iowait < 0 || d->irq < 0 ||
            d->softirq < 0)
                return -1;
        double busy = (double) d->user + (double) d->nice + (double) d->system + (double) d->irq + (double) d->softirq;
        double all = busy + (double) d->idle + (double) d->iowait;
        return all > 0 ? busy / all : -1;
}

struct parking_load {
        struct stat_info *info;
        bool primed; /* a first read was taken: the next one has deltas */
};

int parking_load_new(struct parking_load **ret) {
        struct parking_load *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        int r = procps_stat_new(&l->info);
        if (r < 0) {
                free(l);
                return r;
        }
        *ret = l;
        return 0;
}

struct parking_load *parking_load_free(struct parking_load *l) {
        if (l) {
                procps_stat_unref(&l->info);
                free(l);
        }
        return NULL;
}

/* The order of the items asked for; their values come back in it. */
static enum stat_item items[] = {
        STAT_TIC_ID,          STAT_TIC_DELTA_USER,   STAT_TIC_DELTA_NICE,    STAT_TIC_DELTA_SYSTEM,
        STAT_TIC_DELTA_IDLE,  STAT_TIC_DELTA_IOWAIT, STAT_TIC_DELTA_IRQ,     STAT_TIC_DELTA_SOFTIRQ,
        STAT_TIC_DELTA_STOLEN,
};

int parking_load_read(struct parking_load *l, double *busy, unsigned n, bool *ret_known) {
        if (!l || (n && !busy) || !ret_known)
                return -EINVAL;
        struct stat_reaped *r = procps_stat_reap(l->info, STAT_REAP_CPUS_ONLY, items, sizeof(items) / sizeof(items[0]));
        if (!r)
                return errno ? -errno : -EIO;
        for (unsigned c = 0; c < n; c++)
                busy[c] = -1;
        bool known = l->primed;
        l->primed = true;
        int top = 0;
        for (int i = 0; i < r->cpus->total; i++) {
                struct stat_result *v = r->cpus->stacks[i]->head;
                int cpu = v[0].result.s_int;
                if (cpu < 0)
                        continue;
                top = cpu + 1 > top ? cpu + 1 : top;
                if (!known || (unsigned) cpu >= n)
                        continue;
                struct parking_tics d = { v[1].result.sl_int, v[2].result.sl_int, v[3].result.sl_int,
                                          v[4].result.sl_int, v[5].result.sl_int, v[6].result.sl_int,
                                          v[7].result.sl_int, v[8].result.sl_int };
                busy[cpu] = parking_busy_share(&d);
        }
        *ret_known = known;
        return top;
}
