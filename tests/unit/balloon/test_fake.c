/* The recording fake behaves like the parts of libvirt tests rely on. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "balloon/hv.h"

Test(fake, records_calls_and_moves_the_balloon_target) {
        struct hv_fake f = { 0 };
        struct hv_domain d = { .uuid = "u1", .name = "one", .active = true, .max_kib = 1048576, .current_kib = 1048576 };
        struct hv_mem_stats s = { .actual_kib = 1048576 };
        cr_assert_eq(hv_fake_add(&f, &d, &s), 0);
        struct hv hv = hv_fake_hv(&f);
        char err[128];

        cr_assert_eq(hv.ops->set_balloon(hv.h, "u1", 524288, err, sizeof(err)), 0);
        cr_assert_eq(f.domains[0].current_kib, 524288);
        cr_assert_eq(hv_fake_count(&f, "set_balloon", "u1"), 1);
        cr_assert_eq(hv_fake_last(&f, "set_balloon")->value, 524288);
        cr_assert_eq(hv.ops->set_balloon(hv.h, "nope", 1, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->set_balloon(hv.h, "u1", 2097152, err, sizeof(err)), -EINVAL, "above boot size");

        char *xml = NULL;
        cr_assert_eq(hv.ops->get_metadata(hv.h, "u1", HV_LIVE, &xml, err, sizeof(err)), -ENODATA);
        cr_assert_eq(hv.ops->set_metadata(hv.h, "u1", "<policy/>", HV_LIVE, err, sizeof(err)), 0);
        cr_assert_eq(hv.ops->get_metadata(hv.h, "u1", HV_LIVE, &xml, err, sizeof(err)), 0);
        cr_assert_str_eq(xml, "<policy/>");
        free(xml);

        f.fail_errno = EIO;
        cr_assert_eq(hv.ops->set_balloon(hv.h, "u1", 524288, err, sizeof(err)), -EIO);
        cr_assert_eq(hv.ops->set_balloon(hv.h, "u1", 524288, err, sizeof(err)), 0, "one failure only");
        hv_fake_done(&f);
}
