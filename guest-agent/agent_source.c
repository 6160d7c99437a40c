#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <libproc2/meminfo.h>
#include <libproc2/vmstat.h>

#include "common/fileio.h"
#include "common/macro.h"
#include "guest-agent/agent_source.h"

/* Sizes as in common/meminfo.c and psi.c; /proc/vmstat is ~5 KiB on 6.x kernels. */
#define MEMINFO_FILE_MAX (64 * 1024)
#define VMSTAT_FILE_MAX (256 * 1024)
#define PSI_FILE_MAX 4096

int agent_source_open(struct agent_source *src, const char *root) {
        int r;

        *src = (struct agent_source) { .root = root && root[0] ? root : NULL };
        if (src->root)
                return 0;

        r = procps_meminfo_new(&src->meminfo);
        if (r < 0 || !src->meminfo)
                return r < 0 ? r : -EIO;
        /* A guest without /proc/vmstat still reports memory: the fault count is optional. */
        if (procps_vmstat_new(&src->vmstat) < 0)
                src->vmstat = NULL;
        return 0;
}

void agent_source_close(struct agent_source *src) {
        if (src->meminfo)
                procps_meminfo_unref(&src->meminfo);
        if (src->vmstat)
                procps_vmstat_unref(&src->vmstat);
        src->meminfo = NULL;
        src->vmstat = NULL;
}

static int read_live(struct agent_source *src, struct agent_sample *ret, int *ret_psi_error, int *ret_vmstat_error) {
        static enum vmstat_item vm_items[] = { VMSTAT_PGMAJFAULT }; /* not const: select takes plain pointers */
        struct agent_sample s = { 0 };
        struct vmstat_stack *vs;
        int r;

        r = meminfo_read_info(src->meminfo, &s.mem);
        if (r < 0)
                return r;

        *ret_vmstat_error = 0;
        if (!src->vmstat)
                *ret_vmstat_error = -ENOENT;
        else {
                errno = 0;
                vs = procps_vmstat_select(src->vmstat, vm_items, (int) ELEMENTSOF(vm_items));
                if (vs) {
                        s.pgmajfault = vs->head[0].result.ul_int;
                        s.has_pgmajfault = true;
                } else
                        *ret_vmstat_error = errno > 0 ? -errno : -EIO;
        }

        r = psi_read(NULL, "memory", &s.psi);
        s.has_psi = r >= 0;
        if (!s.has_psi)
                memset(&s.psi, 0, sizeof(s.psi));
        *ret_psi_error = r < 0 ? r : 0;

        *ret = s;
        return 0;
}

static int read_root(struct agent_source *src, struct agent_sample *ret, int *ret_psi_error, int *ret_vmstat_error) {
        _cleanup_free_ char *mem = NULL, *vm = NULL, *psi = NULL;
        int r, rv, rp;

        r = read_file_at(src->root, "/proc/meminfo", MEMINFO_FILE_MAX, &mem, NULL);
        if (r < 0)
                return r;
        rv = read_file_at(src->root, "/proc/vmstat", VMSTAT_FILE_MAX, &vm, NULL);
        rp = read_file_at(src->root, "/proc/pressure/memory", PSI_FILE_MAX, &psi, NULL);

        r = agent_sample_parse(mem, vm, psi, ret);
        if (r < 0)
                return r;
        *ret_vmstat_error = rv < 0 ? rv : ret->has_pgmajfault ? 0 : -EINVAL;
        *ret_psi_error = rp < 0 ? rp : ret->has_psi ? 0 : -EINVAL;
        return 0;
}

int agent_source_read(struct agent_source *src, struct agent_sample *ret, int *ret_psi_error, int *ret_vmstat_error) {
        int psi_err = 0, vm_err = 0, r;

        r = src->root ? read_root(src, ret, &psi_err, &vm_err) : read_live(src, ret, &psi_err, &vm_err);
        if (ret_psi_error)
                *ret_psi_error = psi_err;
        if (ret_vmstat_error)
                *ret_vmstat_error = vm_err;
        return r;
}
