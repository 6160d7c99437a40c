/* Policy metadata XML: what tide writes reads back the same; what people write by hand with
 * virsh is understood; what a hostile or broken writer puts there is refused with a message that
 * names the element. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "balloon/metadata.h"
#include "common/macro.h"

static struct vm_policy sample(void) {
        struct vm_policy p;
        policy_init(&p);
        p.startup_kib = KIB_PER_GIB;
        p.minimum_kib = 512 * KIB_PER_MIB;
        p.maximum_kib = 4 * KIB_PER_GIB;
        return p;
}

/* A policy different from the defaults in every field, so a field that is not written or not
 * read shows. */
static struct vm_policy unusual(void) {
        struct vm_policy p = sample();
        p.buffer_pct = 35;
        p.weight = 0;
        p.dynamic = false;
        p.latency_sensitive = true;
        return p;
}

static void expect_equal(const struct vm_policy *a, const struct vm_policy *b) {
        cr_assert_eq(a->startup_kib, b->startup_kib);
        cr_assert_eq(a->minimum_kib, b->minimum_kib);
        cr_assert_eq(a->maximum_kib, b->maximum_kib);
        cr_assert_eq(a->buffer_pct, b->buffer_pct);
        cr_assert_eq(a->weight, b->weight);
        cr_assert_eq(a->dynamic, b->dynamic);
        cr_assert_eq(a->latency_sensitive, b->latency_sensitive);
}

static struct vm_policy parse_ok(const char *xml) {
        struct vm_policy p;
        char err[256] = "";
        int r = metadata_parse(xml, &p, err, sizeof(err));
        cr_assert_eq(r, 0, "metadata_parse failed (%d): %s\n%s", r, err, xml);
        return p;
}

/* Checks -EINVAL, the exact message, and that *ret was left alone. */
static void expect_error(const char *xml, const char *message) {
        struct vm_policy p, untouched;
        char err[256] = "";
        memset(&p, 0xa5, sizeof(p));
        untouched = p;
        cr_assert_eq(metadata_parse(xml, &p, err, sizeof(err)), -EINVAL, "accepted:\n%s", xml ? xml : "(null)");
        cr_assert_str_eq(err, message);
        cr_assert_eq(memcmp(&p, &untouched, sizeof(p)), 0, "wrote *ret on failure");
}

/* For inputs whose exact wording comes from libxml2: the start is ours. */
static void expect_error_prefix(const char *xml, const char *prefix) {
        struct vm_policy p;
        char err[256] = "";
        cr_assert_eq(metadata_parse(xml, &p, err, sizeof(err)), -EINVAL, "accepted:\n%s", xml);
        cr_assert(strncmp(err, prefix, strlen(prefix)) == 0, "message \"%s\" does not start with \"%s\"", err, prefix);
}

/* A valid policy with `extra` inserted after the three sizes. */
static char *with(const char *extra) {
        static char buf[2048];
        snprintf(buf, sizeof(buf),
                 "<policy version=\"1\"><startup unit=\"MiB\">1024</startup><minimum unit=\"MiB\">512</minimum>"
                 "<maximum unit=\"GiB\">4</maximum>%s</policy>",
                 extra);
        return buf;
}

Test(metadata, round_trips_every_field) {
        struct vm_policy in = unusual();
        char xml[METADATA_XML_MAX];
        cr_assert_eq(metadata_format(&in, xml, sizeof(xml)), 0);
        struct vm_policy out = parse_ok(xml);
        expect_equal(&in, &out);

        in = sample();
        cr_assert_eq(metadata_format(&in, xml, sizeof(xml)), 0);
        out = parse_ok(xml);
        expect_equal(&in, &out);
}

Test(metadata, format_is_the_documented_element) {
        struct vm_policy p = sample();
        char xml[METADATA_XML_MAX];
        cr_assert_eq(metadata_format(&p, xml, sizeof(xml)), 0);
        cr_assert_str_eq(xml, "<policy version=\"1\"><startup unit=\"KiB\">1048576</startup>"
                              "<minimum unit=\"KiB\">524288</minimum><maximum unit=\"KiB\">4194304</maximum>"
                              "<buffer>20</buffer><weight>50</weight><dynamic>yes</dynamic></policy>");
        /* Latency-sensitive is written only when set, so the common policy reads in an older tided. */
        p.latency_sensitive = true;
        cr_assert_eq(metadata_format(&p, xml, sizeof(xml)), 0);
        cr_assert(strstr(xml, "<dynamic>yes</dynamic><latency_sensitive>yes</latency_sensitive></policy>"), "%s", xml);
}

Test(metadata, format_fits_the_documented_maximum_and_refuses_a_short_buffer) {
        struct vm_policy p = unusual();
        char xml[METADATA_XML_MAX];
        p.startup_kib = p.minimum_kib = p.maximum_kib = UINT64_MAX;
        p.buffer_pct = p.weight = UINT32_MAX;
        cr_assert_eq(metadata_format(&p, xml, sizeof(xml)), 0, "largest values must fit METADATA_XML_MAX");

        p = sample();
        cr_assert_eq(metadata_format(&p, xml, 16), -ENOBUFS);
        cr_assert_eq(metadata_format(&p, NULL, 0), -ENOBUFS);
}

/* What virsh metadata / virDomainGetMetadata hand back: libvirt strips the namespace and
 * re-indents. */
Test(metadata, reads_what_libvirt_returns) {
        struct vm_policy p = parse_ok("<policy version=\"1\">\n"
                                      "  <startup unit=\"KiB\">1048576</startup>\n"
                                      "  <minimum unit=\"KiB\">524288</minimum>\n"
                                      "  <maximum unit=\"KiB\">4194304</maximum>\n"
                                      "  <buffer>35</buffer>\n"
                                      "  <weight>0</weight>\n"
                                      "  <dynamic>no</dynamic>\n"
                                      "  <latency_sensitive>yes</latency_sensitive>\n"
                                      "</policy>\n");
        struct vm_policy want = unusual();
        expect_equal(&p, &want);
}

/* The same element as it sits inside the domain XML, in tide's namespace. */
Test(metadata, reads_the_prefixed_form_from_the_domain_xml) {
        struct vm_policy p = parse_ok("<tide:policy xmlns:tide=\"urn:x-tide:policy:1\" version=\"1\">"
                                      "<tide:startup unit=\"KiB\">1048576</tide:startup>"
                                      "<tide:minimum unit=\"KiB\">524288</tide:minimum>"
                                      "<tide:maximum unit=\"KiB\">4194304</tide:maximum>"
                                      "</tide:policy>");
        struct vm_policy want = sample();
        expect_equal(&p, &want);

        p = parse_ok("<policy xmlns=\"urn:x-tide:policy:1\"><startup>1048576</startup>"
                     "<minimum>524288</minimum><maximum>4194304</maximum></policy>");
        expect_equal(&p, &want);
}

Test(metadata, reads_hand_written_units) {
        struct vm_policy p = parse_ok("<policy><startup unit='GiB'>1</startup><minimum unit='MiB'>512</minimum>"
                                      "<maximum unit='KiB'>4194304</maximum></policy>");
        struct vm_policy want = sample();
        expect_equal(&p, &want);
}

Test(metadata, unit_defaults_to_kib) {
        struct vm_policy p = parse_ok("<policy><startup>1048576</startup><minimum>524288</minimum>"
                                      "<maximum>4194304</maximum></policy>");
        cr_assert_eq(p.startup_kib, KIB_PER_GIB);
}

Test(metadata, missing_optional_elements_take_defaults) {
        struct vm_policy p = parse_ok(with(""));
        cr_assert_eq(p.buffer_pct, POLICY_BUFFER_DEFAULT);
        cr_assert_eq(p.weight, POLICY_WEIGHT_DEFAULT);
        cr_assert(p.dynamic);

        p = parse_ok(with("<weight>80</weight>"));
        cr_assert_eq(p.weight, 80);
        cr_assert_eq(p.buffer_pct, POLICY_BUFFER_DEFAULT);
}

Test(metadata, tolerates_blanks_comments_and_element_order) {
        struct vm_policy p = parse_ok("<?xml version=\"1.0\"?>\n<!-- written by hand -->\n"
                                      "<policy>\n\t<dynamic> yes </dynamic>\n"
                                      "  <maximum unit=\"GiB\">\n    4\n  </maximum><!-- ceiling -->\n"
                                      "  <minimum unit=\"MiB\">512</minimum>\n"
                                      "  <startup unit=\"GiB\"><![CDATA[1]]></startup>\n"
                                      "</policy>");
        struct vm_policy want = sample();
        expect_equal(&p, &want);
}

Test(metadata, requires_the_three_sizes) {
        expect_error("<policy><minimum>524288</minimum><maximum>4194304</maximum></policy>",
                     "startup: missing (a size such as <startup unit=\"MiB\">1024</startup>)");
        expect_error("<policy><startup>1048576</startup><minimum>524288</minimum></policy>",
                     "maximum: missing (a size such as <maximum unit=\"MiB\">1024</maximum>)");
}

Test(metadata, validates_the_policy) {
        expect_error("<policy><startup unit='GiB'>1</startup><minimum unit='GiB'>2</minimum>"
                     "<maximum unit='GiB'>4</maximum></policy>",
                     "minimum: 2GiB is above startup 1GiB");
        expect_error("<policy><startup>1048577</startup><minimum>524288</minimum><maximum>4194304</maximum></policy>",
                     "startup: 1048577KiB is not a multiple of 2MiB");
        expect_error("<policy><startup>0</startup><minimum>524288</minimum><maximum>4194304</maximum></policy>",
                     "startup: must be set (a size such as 1GiB)");
        expect_error("<policy><startup unit='MiB'>16</startup><minimum unit='MiB'>16</minimum>"
                     "<maximum unit='MiB'>16</maximum></policy>",
                     "minimum: 16MiB is below the lowest allowed minimum 32MiB");
}

Test(metadata, refuses_huge_numbers) {
        expect_error("<policy><startup>99999999999999999999999</startup><minimum>524288</minimum>"
                     "<maximum>4194304</maximum></policy>",
                     "startup: 99999999999999999999999KiB is too large");
        /* Fits in 64 bits as a number, overflows once scaled. */
        expect_error("<policy><startup unit='GiB'>18014398509481984</startup><minimum>524288</minimum>"
                     "<maximum>4194304</maximum></policy>",
                     "startup: 18014398509481984GiB is too large");
        expect_error(with("<buffer>99999999999999999999</buffer>"),
                     "buffer: 99999999999999999999 is out of range 5-2000 (percent)");
        expect_error(with("<weight>4294967396</weight>"), "weight: 4294967396 is out of range 0-100");
        expect_error("<policy><startup>000000000000000000000000000000001</startup></policy>", "startup: value too long");
}

Test(metadata, refuses_anything_but_digits) {
        expect_error("<policy><startup>-1048576</startup></policy>",
                     "startup: \"-1048576\" is not a whole number (digits only)");
        expect_error("<policy><startup>+1048576</startup></policy>",
                     "startup: \"+1048576\" is not a whole number (digits only)");
        expect_error("<policy><startup unit='GiB'>1.5</startup></policy>",
                     "startup: \"1.5\" is not a whole number (digits only)");
        expect_error("<policy><startup>0x100000</startup></policy>",
                     "startup: \"0x100000\" is not a whole number (digits only)");
        expect_error("<policy><startup>1e6</startup></policy>", "startup: \"1e6\" is not a whole number (digits only)");
        expect_error("<policy><startup>1 048 576</startup></policy>",
                     "startup: \"1 048 576\" is not a whole number (digits only)");
        expect_error("<policy><startup></startup></policy>", "startup: empty");
        expect_error(with("<buffer>-5</buffer>"), "buffer: \"-5\" is not a whole number (digits only)");
        expect_error(with("<buffer>20%</buffer>"), "buffer: \"20%\" is not a whole number (digits only)");
}

Test(metadata, refuses_values_out_of_range) {
        expect_error(with("<buffer>4</buffer>"), "buffer: 4 is out of range 5-2000 (percent)");
        expect_error(with("<buffer>2001</buffer>"), "buffer: 2001 is out of range 5-2000 (percent)");
        expect_error(with("<weight>101</weight>"), "weight: 101 is out of range 0-100");
        expect_error(with("<dynamic>maybe</dynamic>"), "dynamic: \"maybe\" is not yes or no");
        expect_error(with("<dynamic>true</dynamic>"), "dynamic: \"true\" is not yes or no");
}

Test(metadata, refuses_unknown_units) {
        expect_error("<policy><startup unit='MB'>1024</startup></policy>",
                     "startup: unknown unit \"MB\" (use KiB, MiB or GiB)");
        expect_error("<policy><startup unit='mib'>1024</startup></policy>",
                     "startup: unknown unit \"mib\" (use KiB, MiB or GiB)");
        expect_error("<policy><startup unit=''>1024</startup></policy>",
                     "startup: unknown unit \"\" (use KiB, MiB or GiB)");
}

/* A typo must not silently become a default: "units" instead of "unit" would turn 1024 MiB
 * into 1024 KiB. */
Test(metadata, refuses_unknown_elements_and_attributes) {
        expect_error(with("<bufer>20</bufer>"),
                     "bufer: unknown element (expected startup, minimum, maximum, buffer, weight, dynamic or latency_sensitive)");
        expect_error("<policy><startup units='MiB'>1024</startup></policy>", "startup: unknown attribute \"units\"");
        expect_error(with("<weight unit='KiB'>5</weight>"), "weight: unknown attribute \"unit\"");
        expect_error("<policy mode='fast'><startup>1048576</startup></policy>", "policy: unknown attribute \"mode\"");
        expect_error(with("<weight>5</weight><weight>6</weight>"), "weight: appears more than once");
        expect_error("<policy><startup><value>1048576</value></startup></policy>",
                     "startup: must contain only a value (no elements or entities)");
        expect_error(with("stray text"), "policy: unexpected text \"stray text\"");
        expect_error("<policies><startup>1048576</startup></policies>",
                     "policy: root element is <policies>, expected <policy>");
        expect_error("<policy version='2'><startup>1048576</startup></policy>",
                     "policy: unsupported version \"2\" (this tided reads version 1)");
}

Test(metadata, refuses_other_namespaces) {
        expect_error("<x:policy xmlns:x=\"urn:someone-else\"><x:startup>1048576</x:startup></x:policy>",
                     "policy: in namespace \"urn:someone-else\", expected urn:x-tide:policy:1");
        expect_error("<policy xmlns:x=\"urn:someone-else\"><x:startup>1048576</x:startup></policy>",
                     "startup: in namespace \"urn:someone-else\", expected urn:x-tide:policy:1");
        expect_error("<policy xmlns:x=\"urn:someone-else\"><startup x:unit='GiB'>1</startup></policy>",
                     "startup: unknown attribute \"unit\"");
}

Test(metadata, refuses_entity_expansion) {
        /* "Billion laughs": nine levels of ten-fold expansion, 3 GB if expanded. */
        const char *laughs = "<?xml version=\"1.0\"?>\n"
                             "<!DOCTYPE policy [\n"
                             " <!ENTITY lol \"lol\">\n"
                             " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
                             " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
                             " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
                             " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
                             " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
                             " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
                             " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
                             " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
                             " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
                             "]>\n"
                             "<policy><startup>&lol9;</startup></policy>";
        expect_error_prefix(laughs, "policy: ");
}

Test(metadata, refuses_external_entities) {
        const char *xxe = "<!DOCTYPE policy [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
                          "<policy><startup>&x;</startup></policy>";
        struct vm_policy p;
        char err[256] = "";
        cr_assert_eq(metadata_parse(xxe, &p, err, sizeof(err)), -EINVAL);
        cr_assert_str_eq(err, "policy: a DTD (<!DOCTYPE ...>) is not allowed");

        expect_error("<!DOCTYPE policy SYSTEM \"http://example.invalid/policy.dtd\"><policy/>",
                     "policy: a DTD (<!DOCTYPE ...>) is not allowed");
        /* Without a DTD an entity cannot even be declared. */
        expect_error_prefix("<policy><startup>&x;</startup></policy>", "policy: not well-formed XML (line 1: ");
}

Test(metadata, refuses_broken_xml) {
        expect_error_prefix("<policy><startup unit=\"KiB\">1048576</startup><minimum", "policy: not well-formed XML (line 1: ");
        expect_error_prefix("<policy><startup>1</minimum></policy>", "policy: not well-formed XML (line 1: ");
        expect_error_prefix("", "policy: not well-formed XML");
        expect_error_prefix("\n\n<policy>", "policy: not well-formed XML (line 3: ");
        expect_error(NULL, "policy: no XML");
}

Test(metadata, refuses_deep_nesting) {
        static char deep[40000];
        size_t n = 0;
        n += (size_t) sprintf(deep + n, "<policy>");
        for (int i = 0; i < 3000; i++)
                n += (size_t) sprintf(deep + n, "<a>");
        cr_assert_lt(n, sizeof(deep));
        expect_error_prefix(deep, "policy: ");
}

Test(metadata, refuses_input_above_64kib) {
        size_t len = 100 * 1024;
        char *big = malloc(len + 1);
        cr_assert_not_null(big);
        /* Valid XML, padded with blanks: the size alone is refused, before parsing. */
        const char *head = with("");
        memset(big, ' ', len);
        memcpy(big, head, strlen(head));
        big[len] = '\0';
        expect_error(big, "policy: larger than 64 KiB");
        free(big);
}

Test(metadata, keeps_control_characters_out_of_messages) {
        /* U+202E (right-to-left override) is three bytes of UTF-8: three '?'. */
        expect_error("<policy><startup>1&#x202E;2&#9;3</startup></policy>",
                     "startup: \"1???2?3\" is not a whole number (digits only)");
        expect_error("<policy><startup unit='Gi&#10;B'>1</startup></policy>",
                     "startup: unknown unit \"Gi?B\" (use KiB, MiB or GiB)");
}

Test(metadata, writes_no_message_when_err_is_null) {
        struct vm_policy p;
        cr_assert_eq(metadata_parse("<policy/>", &p, NULL, 0), -EINVAL);
}
