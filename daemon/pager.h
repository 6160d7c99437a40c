/* Smart Paging's slow half for tided: switching a paging file off (swapoff pages everything in
 * it back in, which can take minutes) on a thread of its own, so the tick, the control socket
 * and the agent channels keep running meanwhile. The manager starts a job per release and
 * looks at it every tick; a job outlives the manager that started it (tided exiting mid-swapoff
 * leaves the file on, and the next tided adopts it from /proc/swaps). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pager_job;

/* How a file is switched off and removed: paging_file_off() (smartpaging/file.h), or a test's. */
typedef int (*pager_off_fn)(const char *path, char *err, size_t errlen);

/* Starts off(path) on a new thread. Returns 0 and *ret, or -errno (the thread could not start:
 * nothing was done). */
int pager_job_start(const char *path, pager_off_fn off, struct pager_job **ret);
/* Whether the job has ended; if so *ret_r is its result (0 or -errno) and err says why it
 * failed. Never blocks. */
bool pager_job_done(struct pager_job *j, int *ret_r, char *err, size_t errlen);
/* Drops the caller's hold on the job: a finished one is freed, a running one frees itself when
 * it ends. Accepts NULL, returns NULL. */
struct pager_job *pager_job_drop(struct pager_job *j);
