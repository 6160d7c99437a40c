/* tide's policy as domain metadata XML. The metadata is writable by anyone with libvirt access,
 * so the parser is strict: no DTD (so no entities to expand), no network, no unknown elements or
 * attributes, digits-only numbers with an explicit unit, and the result goes through
 * policy_validate() like every other policy source. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "balloon/hv.h"
#include "balloon/metadata.h"
#include "common/macro.h"
#include "common/units.h"

/* Far above any policy we write (< 1 KiB), small enough that a hostile blob costs nothing. */
#define METADATA_INPUT_MAX (64 * 1024)
/* Longest value text we look at. A size in KiB needs at most 16 digits below SIZE_MAX_KIB; a
 * longer text is either padding or an attack, and the message echoes at most this much. */
#define VALUE_MAX 32

int metadata_format(const struct vm_policy *p, char *buf, size_t len) {
        /* Sizes always in KiB: exact, and what libvirt itself writes for every memory size. */
        int n = snprintf(buf, len,
                         "<policy version=\"1\">"
                         "<startup unit=\"KiB\">%" PRIu64 "</startup>"
                         "<minimum unit=\"KiB\">%" PRIu64 "</minimum>"
                         "<maximum unit=\"KiB\">%" PRIu64 "</maximum>"
                         "<buffer>%u</buffer>"
                         "<weight>%u</weight>"
                         "<dynamic>%s</dynamic>"
                         "%s"
                         "</policy>",
                         p->startup_kib, p->minimum_kib, p->maximum_kib, p->buffer_pct, p->weight,
                         p->dynamic ? "yes" : "no",
                         /* Written only when set, so a policy without it still reads in a tided
                          * from before core parking. */
                         p->latency_sensitive ? "<latency_sensitive>yes</latency_sensitive>" : "");
        if (n < 0 || (size_t) n >= len)
                return -ENOBUFS;
        return 0;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
        if (err && errlen > 0) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err, errlen, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

/* Copies untrusted text for an error message: printable ASCII only, so a hostile value cannot
 * put control characters or escape sequences into tided's log. */
static const char *printable(const char *s, char *buf, size_t len) {
        size_t i = 0;
        for (; s[i] && i + 1 < len; i++)
                buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
        buf[i] = '\0';
        return buf;
}

static bool is_xml_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool blank(const xmlChar *s) {
        for (; s && *s; s++)
                if (!is_xml_space((char) *s))
                        return false;
        return true;
}

/* Elements in tide's namespace or in none: libvirt strips the namespace from what
 * virDomainGetMetadata returns, and people writing by hand may leave it out. Any other
 * namespace is someone else's element. */
static bool ns_ok(const xmlNs *ns) {
        return !ns || (ns->href && streq((const char *) ns->href, HV_METADATA_URI));
}

static const char *ns_href(const xmlNs *ns) {
        return ns && ns->href ? (const char *) ns->href : "";
}

/* The element's text, blanks around it trimmed, into buf. Comments inside are skipped; child
 * elements and over-long values are errors. */
static int leaf_text(const xmlNode *e, const char *name, char buf[static VALUE_MAX + 1], char *err, size_t errlen) {
        char raw[VALUE_MAX * 4 + 1];
        size_t n = 0;

        for (const xmlNode *c = e->children; c; c = c->next) {
                if (c->type == XML_COMMENT_NODE)
                        continue;
                if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)
                        return fail(err, errlen, "%s: must contain only a value (no elements or entities)", name);
                size_t l = c->content ? strlen((const char *) c->content) : 0;
                if (n + l >= sizeof(raw))
                        return fail(err, errlen, "%s: value too long", name);
                memcpy(raw + n, c->content, l);
                n += l;
        }
        raw[n] = '\0';

        char *s = raw;
        while (is_xml_space(*s))
                s++;
        size_t l = strlen(s);
        while (l > 0 && is_xml_space(s[l - 1]))
                l--;
        if (l == 0)
                return fail(err, errlen, "%s: empty", name);
        if (l > VALUE_MAX)
                return fail(err, errlen, "%s: value too long", name);
        memcpy(buf, s, l);
        buf[l] = '\0';
        return 0;
}

/* Digits only: no sign, no blanks inside, no exponent, no hex. Saturates at UINT64_MAX so the
 * caller's range check reports "too large" instead of a wrapped value. */
static bool parse_digits(const char *s, uint64_t *ret) {
        uint64_t v = 0;
        if (!*s)
                return false;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return false;
                unsigned d = (unsigned) (*s - '0');
                v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
        }
        *ret = v;
        return true;
}

/* Only attribute `allowed` (NULL: none) may appear on e; its value goes to *ret_value. */
static int only_attribute(const xmlNode *e, const char *name, const char *allowed, const xmlChar **ret_value,
                          char *err, size_t errlen) {
        char p[VALUE_MAX + 1];
        for (const xmlAttr *a = e->properties; a; a = a->next) {
                if (!allowed || !streq((const char *) a->name, allowed) || !ns_ok(a->ns))
                        return fail(err, errlen, "%s: unknown attribute \"%s\"", name,
                                    printable((const char *) a->name, p, sizeof(p)));
                *ret_value = a->children && a->children->content ? a->children->content : (const xmlChar *) "";
        }
        return 0;
}

static int parse_size(const xmlNode *e, const char *name, uint64_t *ret_kib, char *err, size_t errlen) {
        static const struct {
                const char *name;
                uint64_t kib;
        } units[] = {
                {"KiB", 1},
                {"MiB", KIB_PER_MIB},
                {"GiB", KIB_PER_GIB},
        };
        const xmlChar *unit_attr = NULL;
        char text[VALUE_MAX + 1], p[VALUE_MAX + 1];
        uint64_t scale = 0, v;
        int r;

        if ((r = only_attribute(e, name, "unit", &unit_attr, err, errlen)) < 0)
                return r;
        /* Default KiB, as libvirt's own memory elements: what a bare number means there. */
        const char *unit = unit_attr ? (const char *) unit_attr : "KiB";
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (streq(unit, units[i].name))
                        scale = units[i].kib;
        if (scale == 0)
                return fail(err, errlen, "%s: unknown unit \"%s\" (use KiB, MiB or GiB)", name,
                            printable(unit, p, sizeof(p)));

        if ((r = leaf_text(e, name, text, err, errlen)) < 0)
                return r;
        if (!parse_digits(text, &v))
                return fail(err, errlen, "%s: \"%s\" is not a whole number (digits only)", name,
                            printable(text, p, sizeof(p)));
        if (v > SIZE_MAX_KIB / scale)
                return fail(err, errlen, "%s: %s%s is too large", name, text, unit);
        *ret_kib = v * scale;
        return 0;
}

static int parse_uint(const xmlNode *e, const char *name, unsigned lo, unsigned hi, const char *what,
                      unsigned *ret, char *err, size_t errlen) {
        char text[VALUE_MAX + 1], p[VALUE_MAX + 1];
        uint64_t v;
        int r;

        if ((r = only_attribute(e, name, NULL, NULL, err, errlen)) < 0 || (r = leaf_text(e, name, text, err, errlen)) < 0)
                return r;
        if (!parse_digits(text, &v))
                return fail(err, errlen, "%s: \"%s\" is not a whole number (digits only)", name,
                            printable(text, p, sizeof(p)));
        /* Same wording as policy_validate(), with the number as written (not as wrapped). */
        if (v < lo || v > hi)
                return fail(err, errlen, "%s: %s is out of range %u-%u%s", name, text, lo, hi, what);
        *ret = (unsigned) v;
        return 0;
}

static int parse_yes_no(const xmlNode *e, const char *name, bool *ret, char *err, size_t errlen) {
        char text[VALUE_MAX + 1], p[VALUE_MAX + 1];
        int r;

        if ((r = only_attribute(e, name, NULL, NULL, err, errlen)) < 0 || (r = leaf_text(e, name, text, err, errlen)) < 0)
                return r;
        /* libvirt's own spelling of booleans; "true"/"1" are refused rather than guessed at. */
        if (streq(text, "yes"))
                *ret = true;
        else if (streq(text, "no"))
                *ret = false;
        else
                return fail(err, errlen, "%s: \"%s\" is not yes or no", name, printable(text, p, sizeof(p)));
        return 0;
}

enum field { F_STARTUP, F_MINIMUM, F_MAXIMUM, F_BUFFER, F_WEIGHT, F_DYNAMIC, F_LATENCY, F_COUNT };
static const char *const field_names[F_COUNT] = {"startup", "minimum", "maximum", "buffer",
                                                 "weight",  "dynamic", "latency_sensitive"};

static int parse_policy(const xmlNode *root, struct vm_policy *p, char *err, size_t errlen) {
        char a[VALUE_MAX + 1], b[VALUE_MAX + 1];
        bool seen[F_COUNT] = {false};
        const xmlChar *version = NULL;
        int r;

        if (!streq((const char *) root->name, "policy"))
                return fail(err, errlen, "policy: root element is <%s>, expected <policy>",
                            printable((const char *) root->name, a, sizeof(a)));
        if (!ns_ok(root->ns))
                return fail(err, errlen, "policy: in namespace \"%s\", expected %s",
                            printable(ns_href(root->ns), a, sizeof(a)), HV_METADATA_URI);
        if ((r = only_attribute(root, "policy", "version", &version, err, errlen)) < 0)
                return r;
        /* A later format gets a new version rather than being half-understood by an old tided. */
        if (version && !streq((const char *) version, "1"))
                return fail(err, errlen, "policy: unsupported version \"%s\" (this tided reads version 1)",
                            printable((const char *) version, a, sizeof(a)));

        for (const xmlNode *c = root->children; c; c = c->next) {
                switch (c->type) {
                case XML_COMMENT_NODE:
                case XML_PI_NODE:
                        continue;
                case XML_TEXT_NODE:
                case XML_CDATA_SECTION_NODE:
                        if (!blank(c->content))
                                return fail(err, errlen, "policy: unexpected text \"%s\"",
                                            printable((const char *) c->content, a, sizeof(a)));
                        continue;
                case XML_ELEMENT_NODE:
                        break;
                default:
                        return fail(err, errlen, "policy: unexpected XML node (type %d)", (int) c->type);
                }

                const char *name = (const char *) c->name;
                if (!ns_ok(c->ns))
                        return fail(err, errlen, "%s: in namespace \"%s\", expected %s",
                                    printable(name, a, sizeof(a)), printable(ns_href(c->ns), b, sizeof(b)),
                                    HV_METADATA_URI);
                enum field f = F_COUNT;
                for (size_t i = 0; i < F_COUNT; i++)
                        if (streq(name, field_names[i]))
                                f = (enum field) i;
                if (f == F_COUNT)
                        return fail(err, errlen,
                                    "%s: unknown element (expected startup, minimum, maximum, buffer, weight, dynamic or "
                                    "latency_sensitive)",
                                    printable(name, a, sizeof(a)));
                /* Two values for one field: which one the writer meant is a guess we refuse. */
                if (seen[f])
                        return fail(err, errlen, "%s: appears more than once", name);
                seen[f] = true;

                switch (f) {
                case F_STARTUP:
                        r = parse_size(c, name, &p->startup_kib, err, errlen);
                        break;
                case F_MINIMUM:
                        r = parse_size(c, name, &p->minimum_kib, err, errlen);
                        break;
                case F_MAXIMUM:
                        r = parse_size(c, name, &p->maximum_kib, err, errlen);
                        break;
                case F_BUFFER:
                        r = parse_uint(c, name, POLICY_BUFFER_MIN, POLICY_BUFFER_MAX, " (percent)", &p->buffer_pct, err,
                                       errlen);
                        break;
                case F_WEIGHT:
                        r = parse_uint(c, name, 0, POLICY_WEIGHT_MAX, "", &p->weight, err, errlen);
                        break;
                case F_DYNAMIC:
                        r = parse_yes_no(c, name, &p->dynamic, err, errlen);
                        break;
                case F_LATENCY:
                        r = parse_yes_no(c, name, &p->latency_sensitive, err, errlen);
                        break;
                case F_COUNT:
                        break;
                }
                if (r < 0)
                        return r;
        }

        for (enum field f = F_STARTUP; f <= F_MAXIMUM; f++)
                if (!seen[f])
                        return fail(err, errlen, "%s: missing (a size such as <%s unit=\"MiB\">1024</%s>)",
                                    field_names[f], field_names[f], field_names[f]);
        return 0;
}

static void doc_freep(xmlDocPtr *d) {
        if (*d)
                xmlFreeDoc(*d);
}
static void parser_ctxt_freep(xmlParserCtxtPtr *c) {
        if (*c)
                xmlFreeParserCtxt(*c);
}

int metadata_parse(const char *xml, struct vm_policy *ret, char *err, size_t errlen) {
        _cleanup_(parser_ctxt_freep) xmlParserCtxtPtr ctxt = NULL;
        _cleanup_(doc_freep) xmlDocPtr doc = NULL;
        char m[128];
        struct vm_policy p;
        int r;

        if (!xml)
                return fail(err, errlen, "policy: no XML");
        size_t len = strnlen(xml, METADATA_INPUT_MAX + 1);
        if (len > METADATA_INPUT_MAX)
                return fail(err, errlen, "policy: larger than %d KiB", METADATA_INPUT_MAX / 1024);

        ctxt = xmlNewParserCtxt();
        if (!ctxt)
                return -ENOMEM;
        /* No XML_PARSE_NOENT (entities stay unexpanded), XML_PARSE_DTDLOAD or XML_PARSE_XINCLUDE
         * (nothing outside the text is read), NONET as a second lock on the network. NOERROR and
         * NOWARNING keep libxml2 from printing on tided's stderr: the message is returned. */
        doc = xmlCtxtReadMemory(ctxt, xml, (int) len, "tide-policy.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        if (!doc) {
                const xmlError *e = xmlCtxtGetLastError(ctxt);
                if (!e || !e->message)
                        return fail(err, errlen, "policy: not well-formed XML");
                char raw[sizeof(m)];
                snprintf(raw, sizeof(raw), "%s", e->message);
                raw[strcspn(raw, "\n")] = '\0'; /* libxml2 ends its messages with one */
                return fail(err, errlen, "policy: not well-formed XML (line %d: %s)", e->line,
                            printable(raw, m, sizeof(m)));
        }
        /* A DTD is the only way to declare entities; with none, "billion laughs" and external
         * entities cannot even be written. Our format never needs one. */
        if (doc->intSubset || doc->extSubset)
                return fail(err, errlen, "policy: a DTD (<!DOCTYPE ...>) is not allowed");

        const xmlNode *root = xmlDocGetRootElement(doc);
        if (!root)
                return fail(err, errlen, "policy: empty document");

        policy_init(&p);
        if ((r = parse_policy(root, &p, err, errlen)) < 0)
                return r;
        if ((r = policy_validate(&p, err, errlen)) < 0)
                return r;
        *ret = p;
        return 0;
}
