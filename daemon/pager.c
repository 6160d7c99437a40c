/* Off-loop swapoff for Smart Paging (pager.h). */
#include "daemon/pager.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smartpaging/file.h"

struct pager_job {
        char path[PAGING_PATH_MAX];
        char err[PAGING_ERR_MAX];
        pager_off_fn off;
        int r;
        atomic_bool done;   /* r and err are the worker's until this is set (release order) */
        atomic_int holders; /* the manager and the worker: the last one frees */
};

static void drop(struct pager_job *j) {
        if (atomic_fetch_sub(&j->holders, 1) == 1)
                free(j);
}

static void *work(void *userdata) {
        struct pager_job *j = userdata;
        j->r = j->off(j->path, j->err, sizeof(j->err));
        atomic_store_explicit(&j->done, true, memory_order_release);
        drop(j);
        return NULL;
}

int pager_job_start(const char *path, pager_off_fn off, struct pager_job **ret) {
        struct pager_job *j = calloc(1, sizeof(*j));
        pthread_attr_t attr;
        pthread_t t;
        int r;

        if (!j)
                return -ENOMEM;
        if (snprintf(j->path, sizeof(j->path), "%s", path) >= (int) sizeof(j->path)) {
                free(j);
                return -ENAMETOOLONG;
        }
        j->off = off ? off : paging_file_off;
        atomic_init(&j->done, false);
        atomic_init(&j->holders, 2);
        if ((r = pthread_attr_init(&attr)) != 0) {
                free(j);
                return -r;
        }
        /* Nobody joins it: the job's flag says when it ended, and tided may exit before. */
        (void) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = pthread_create(&t, &attr, work, j);
        pthread_attr_destroy(&attr);
        if (r != 0) {
                free(j);
                return -r;
        }
        *ret = j;
        return 0;
}

bool pager_job_done(struct pager_job *j, int *ret_r, char *err, size_t errlen) {
        if (!j || !atomic_load_explicit(&j->done, memory_order_acquire))
                return false;
        if (ret_r)
                *ret_r = j->r;
        if (err && errlen)
                snprintf(err, errlen, "%s", j->err);
        return true;
}

struct pager_job *pager_job_drop(struct pager_job *j) {
        if (j)
                drop(j);
        return NULL;
}
