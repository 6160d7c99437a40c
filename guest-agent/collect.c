#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/macro.h"
#include "guest-agent/collect.h"
#include "guest-agent/protocol.h"

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

int agent_vmstat_parse_pgmajfault(const char *text, uint64_t *ret) {
        static const char key[] = "pgmajfault";
        const size_t key_len = sizeof(key) - 1;
        uint64_t value = 0;
        bool seen = false;
        const char *p = text;

        if (!text)
                return -EINVAL;

        while (*p) {
                const char *eol = strchrnul(p, '\n'), *line = p, *q;
                uint64_t v = 0;

                p = *eol ? eol + 1 : eol;

                /* Exactly the key: "pgmajfault_file" (6.x?) or "pgmajfaults" must not match. */
                if ((size_t) (eol - line) <= key_len || memcmp(line, key, key_len) != 0 || !is_blank(line[key_len]))
                        continue;
                if (seen)
                        return -EINVAL; /* the kernel never repeats a line */

                q = line + key_len;
                while (q < eol && is_blank(*q))
                        q++;
                if (q == eol)
                        return -EINVAL;
                for (; q < eol && *q >= '0' && *q <= '9'; q++) {
                        unsigned d = (unsigned) (*q - '0');

                        if (v > (UINT64_MAX - d) / 10)
                                return -EINVAL;
                        v = v * 10 + d;
                }
                while (q < eol && is_blank(*q))
                        q++;
                if (q != eol)
                        return -EINVAL;
                value = v;
                seen = true;
        }

        if (!seen)
                return -ENOENT;
        *ret = value;
        return 0;
}

int agent_sample_parse(const char *meminfo_text, const char *vmstat_text, const char *psi_text,
                       struct agent_sample *ret) {
        struct agent_sample s = { 0 };
        int r;

        r = meminfo_parse(meminfo_text, &s.mem);
        if (r < 0)
                return r;
        s.has_pgmajfault = vmstat_text && agent_vmstat_parse_pgmajfault(vmstat_text, &s.pgmajfault) >= 0;
        if (!s.has_pgmajfault)
                s.pgmajfault = 0;
        s.has_psi = psi_text && psi_parse(psi_text, &s.psi) >= 0;
        if (!s.has_psi)
                memset(&s.psi, 0, sizeof(s.psi));

        *ret = s;
        return 0;
}

void agent_collector_init(struct agent_collector *c, const struct agent_sample *baseline) {
        *c = (struct agent_collector) { 0 };
        if (baseline && baseline->has_pgmajfault) {
                c->last_pgmajfault = baseline->pgmajfault;
                c->has_last = true;
        }
}

int agent_report_build(struct agent_collector *c, const struct agent_sample *s, uint64_t seq, uint64_t uptime_ms,
                       struct agent_report *ret) {
        const struct meminfo *m = &s->mem;
        struct agent_report r = { 0 };

        if (m->total_kib == 0)
                return -EINVAL;

        r.seq = seq;
        r.uptime_ms = uptime_ms;
        r.total_kib = m->total_kib;
        /* MemAvailable is an estimate the kernel clamps at 0 but not at MemTotal; tided refuses
         * a report where it exceeds the total, so say the truth that fits. */
        r.available_kib = min_u64(m->available_kib, m->total_kib);
        r.committed_as_kib = min_u64(m->committed_as_kib, AGENT_KIB_MAX);
        r.swap_total_kib = m->swap_total_kib;
        r.swap_free_kib = min_u64(m->swap_free_kib, m->swap_total_kib);

        if (s->has_psi) {
                r.has_psi = true;
                r.some_avg10 = s->psi.some.avg10;
                r.some_avg60 = s->psi.some.avg60;
                r.full_avg10 = s->psi.has_full ? s->psi.full.avg10 : 0;
                r.full_avg60 = s->psi.has_full ? s->psi.full.avg60 : 0;
                r.some_total_usec = min_u64(s->psi.some.total_usec, AGENT_STALL_USEC_MAX);
                r.full_total_usec = s->psi.has_full ? min_u64(s->psi.full.total_usec, AGENT_STALL_USEC_MAX) : 0;
        }

        if (s->has_pgmajfault) {
                /* A counter that went back (it cannot, short of a wrap) restarts the count. */
                if (c->has_last)
                        r.major_faults = min_u64(sat_sub_u64(s->pgmajfault, c->last_pgmajfault), AGENT_MAJOR_FAULTS_MAX);
                c->last_pgmajfault = s->pgmajfault;
                c->has_last = true;
        }

        /* Below 16 MiB the hv_balloon formula exceeds the RAM itself. */
        r.floor_kib = min_u64(agent_floor_kib(r.total_kib), r.total_kib);

        *ret = r;
        return 0;
}

void agent_report_lie(struct agent_report *r) {
        r->total_kib = 64 * KIB_PER_GIB;
        r->available_kib = 256 * KIB_PER_MIB;
        r->committed_as_kib = 96 * KIB_PER_GIB;
        r->swap_total_kib = 0;
        r->swap_free_kib = 0;
        r->has_psi = true;
        r->some_avg10 = 95.0;
        r->some_avg60 = 90.0;
        r->full_avg10 = 80.0;
        r->full_avg60 = 75.0;
        /* Totals must keep growing for the lie to look alive; derive them from the honest seq. */
        r->some_total_usec = r->seq * 950000;
        r->full_total_usec = r->seq * 800000;
        r->major_faults = 100000;
        r->floor_kib = agent_floor_kib(r->total_kib);
}
