#include <errno.h>
#include <stdio.h>

#include "common/units.h"
#include "policy/policy.h"

void policy_init(struct vm_policy *p) {
        *p = (struct vm_policy){
                .buffer_pct = POLICY_BUFFER_DEFAULT,
                .weight = POLICY_WEIGHT_DEFAULT,
                .dynamic = true,
        };
}

static int check_size(const char *field, uint64_t kib, char *err, size_t errlen) {
        char a[SIZE_FORMAT_MAX];

        if (kib == 0) {
                snprintf(err, errlen, "%s: must be set (a size such as 1GiB)", field);
                return -EINVAL;
        }
        if (kib % POLICY_ALIGN_KIB != 0) {
                snprintf(err, errlen, "%s: %s is not a multiple of 2MiB", field, size_format_exact(kib, a));
                return -EINVAL;
        }
        if (kib > SIZE_MAX_KIB) {
                snprintf(err, errlen, "%s: %s is too large", field, size_format_human(kib, a));
                return -EINVAL;
        }
        return 0;
}

int policy_validate(const struct vm_policy *p, char *err, size_t errlen) {
        char a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX];
        int r;

        /* Checked in the order a person fills the fields in, so the first complaint is the one
         * to fix first. */
        if ((r = check_size("startup", p->startup_kib, err, errlen)) < 0 ||
            (r = check_size("minimum", p->minimum_kib, err, errlen)) < 0 ||
            (r = check_size("maximum", p->maximum_kib, err, errlen)) < 0)
                return r;

        if (p->minimum_kib < POLICY_MINIMUM_FLOOR_KIB) {
                snprintf(err, errlen, "minimum: %s is below the lowest allowed minimum %s",
                         size_format_human(p->minimum_kib, a), size_format_human(POLICY_MINIMUM_FLOOR_KIB, b));
                return -EINVAL;
        }
        if (p->minimum_kib > p->startup_kib) {
                snprintf(err, errlen, "minimum: %s is above startup %s", size_format_human(p->minimum_kib, a),
                         size_format_human(p->startup_kib, b));
                return -EINVAL;
        }
        if (p->startup_kib > p->maximum_kib) {
                snprintf(err, errlen, "startup: %s is above maximum %s", size_format_human(p->startup_kib, a),
                         size_format_human(p->maximum_kib, b));
                return -EINVAL;
        }
        if (p->buffer_pct < POLICY_BUFFER_MIN || p->buffer_pct > POLICY_BUFFER_MAX) {
                snprintf(err, errlen, "buffer: %u is out of range %d-%d (percent)", p->buffer_pct, POLICY_BUFFER_MIN,
                         POLICY_BUFFER_MAX);
                return -EINVAL;
        }
        if (p->weight > POLICY_WEIGHT_MAX) {
                snprintf(err, errlen, "weight: %u is out of range 0-%d", p->weight, POLICY_WEIGHT_MAX);
                return -EINVAL;
        }
        return 0;
}

struct vm_policy policy_apply_change(const struct vm_policy *cur, uint64_t boot_kib, uint64_t reachable_kib,
                                     const struct policy_change *c) {
        struct vm_policy p;

        if (cur)
                p = *cur;
        else {
                /* A domain without a policy keeps the memory it boots with and can reach all it
                 * has; the operator narrows from there. */
                policy_init(&p);
                p.startup_kib = policy_align_down_kib(boot_kib);
                p.minimum_kib = p.startup_kib < POLICY_MINIMUM_DEFAULT_KIB ? p.startup_kib : POLICY_MINIMUM_DEFAULT_KIB;
                p.maximum_kib = policy_align_down_kib(reachable_kib);
        }
        if (c->have_startup)
                p.startup_kib = c->startup_kib;
        if (c->have_minimum)
                p.minimum_kib = c->minimum_kib;
        if (c->have_maximum)
                p.maximum_kib = c->maximum_kib;
        if (c->have_buffer)
                p.buffer_pct = c->buffer_pct;
        if (c->have_weight)
                p.weight = c->weight;
        if (c->have_dynamic)
                p.dynamic = c->dynamic;
        if (c->have_latency_sensitive)
                p.latency_sensitive = c->latency_sensitive;
        if (!c->have_startup && !cur && p.startup_kib < p.minimum_kib)
                p.startup_kib = p.minimum_kib;
        if (!c->have_maximum && !cur && p.maximum_kib < p.startup_kib)
                p.maximum_kib = p.startup_kib;
        return p;
}

struct vm_policy policy_within_reach(const struct vm_policy *p, uint64_t reachable_kib) {
        struct vm_policy q = *p;

        if (reachable_kib > 0 && q.maximum_kib > reachable_kib)
                q.maximum_kib = policy_align_down_kib(reachable_kib);
        if (q.startup_kib > q.maximum_kib)
                q.startup_kib = q.maximum_kib;
        if (q.minimum_kib > q.startup_kib)
                q.minimum_kib = q.startup_kib;
        return q;
}
