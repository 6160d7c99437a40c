/* What sim.c (the simulated host, stepping every VM) and sleep.c (its fast path, which lets
 * settled VMs sleep) share. Not for use outside sim/. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/sim.h"

/* The trace's value at t. *pos (may be NULL) is a cursor: the sample at or before the last t
 * asked, so a run that moves forward costs O(1) a step, not a search. */
uint64_t sim_trace_at(const struct sim_trace *tr, uint64_t t, size_t *pos);
/* The next number of a seeded generator (splitmix64) whose state is *x. */
uint64_t sim_rng_next(uint64_t *x);
/* A random walk's next value: one step of d from kib, the generator in *state. */
uint64_t sim_walk_step(const struct sim_demand *d, uint64_t *state, uint64_t kib);
/* Its balloon driver and agent are up (booted). */
bool sim_driver_up(const struct sim_vm *v);
/* The guest's MemTotal and MemAvailable when it uses used_kib in the host's frame. */
void sim_vm_meminfo(const struct sim_vm *v, uint64_t used_kib, uint64_t *ret_total, uint64_t *ret_avail);
/* The balloon statistics QEMU would report for the VM at now_usec, its guest needing need_kib. */
void sim_vm_stats_at(const struct sim_vm *v, uint64_t need_kib, uint64_t now_usec, struct hv_mem_stats *ret);
/* What its agent would report at at_usec if the guest needed need_kib (false: it says nothing);
 * v->report_seq is left as it is, the report carrying the next number. */
bool sim_agent_report(struct sim_vm *v, uint64_t need_kib, uint64_t at_usec, struct agent_report *ret);
/* Its agent's report at at_usec, received (a guest with an agent that speaks). */
void sim_report(struct sim_vm *v, uint64_t at_usec);
/* What tided observes of one VM at now_usec. */
/* Smart Paging's side of the host tided would observe: whether it can page, and what is out
 * on disk (measured at the last step). */
void sim_paging_host(const struct sim *s, struct core_host_obs *host);
void sim_observe_vm(struct sim_vm *v, uint64_t now_usec, struct core_vm_obs *o);
/* The core's decision o for v applied, the tick's bookkeeping done (ho: the tick's host). */
void sim_apply_vm(struct sim *s, struct sim_vm *v, const struct core_vm_out *o, const struct core_host_out *ho);
/* What the metrics count as its startup memory. */
uint64_t sim_vm_startup_kib(const struct sim_vm *v);

/* sleep.c: the fast path (sim_set_fast()). */
/* The fast path runs: set, the core deciding, no VM bound to a node. */
bool sim_fast_active(const struct sim *s);
/* v is the kind of VM that may sleep: a booted guest with a dynamic policy whose demand reaches
 * the core unchanged (balloon statistics, or an honest agent without pressure). */
bool sim_sleep_candidate(const struct sim_vm *v);
/* vms[i], just added, is awake. Returns 0 or -ENOMEM. */
int sim_sleep_add(struct sim *s, size_t i);
/* A tick over the awake VMs; every VM when the host turns short with the sleepers counted. */
int sim_sleep_tick(struct sim *s);
/* Wakes the sleepers due in the step that ends at until_usec (they take part in it). */
void sim_sleep_wake_due(struct sim *s, uint64_t until_usec);
/* Wakes every sleeper at t_usec: as after the tick at t (ticked) or after the step to t. */
void sim_sleep_wake_all(struct sim *s, uint64_t t_usec, bool ticked);
/* The sleepers' summed demand now (a sleeping walk is stepped on to now). */
uint64_t sim_sleep_demand(struct sim *s);
/* At the end of a step: the awake VMs settled on a hold go to sleep. */
void sim_sleep_settle(struct sim *s);
