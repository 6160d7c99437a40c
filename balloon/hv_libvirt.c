/* struct hv_ops over libvirt: the only file in tide that includes libvirt.
 *
 * Everything tide needs to know about a domain is read from its XML (virDomainGetXMLDesc) with
 * libxml2 + XPath rather than from a dozen getters, so one call gives one consistent picture.
 * Errors are libvirt's own messages, copied into the caller's err; libvirt's habit of also
 * printing every error on stderr is switched off, since tided logs once where it decides. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "balloon/hv.h"
#include "common/macro.h"
#include "common/units.h"

/* hv.h's bits are libvirt's own values, so masks and callbacks pass through unchanged (no
 * per-handle wrapper to allocate); these keep it so. */
_Static_assert(HV_FD_READABLE == VIR_EVENT_HANDLE_READABLE, "HV_FD_READABLE");
_Static_assert(HV_FD_WRITABLE == VIR_EVENT_HANDLE_WRITABLE, "HV_FD_WRITABLE");
_Static_assert(HV_FD_ERROR == VIR_EVENT_HANDLE_ERROR, "HV_FD_ERROR");
_Static_assert(HV_FD_HANGUP == VIR_EVENT_HANDLE_HANGUP, "HV_FD_HANGUP");
_Static_assert(HV_UUID_MAX == VIR_UUID_STRING_BUFLEN, "HV_UUID_MAX");

#define HV_FD_ALL (HV_FD_READABLE | HV_FD_WRITABLE | HV_FD_ERROR | HV_FD_HANGUP)

/* Which domain events we register for, and where their callback ids live. */
enum { CB_LIFECYCLE, CB_REBOOT, CB_METADATA, CB_COUNT };

struct hv_libvirt {
        virConnectPtr conn;
        int cb_ids[CB_COUNT]; /* -1: not registered */
        bool close_cb;        /* close callback registered */
        bool closed;          /* libvirt told us the connection is gone */
        hv_event_cb cb;
        void *userdata;
};

/* ---- errors ---- */

static int set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_err(char *err, size_t errlen, const char *fmt, ...) {
        if (err && errlen > 0) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err, errlen, fmt, ap);
                va_end(ap);
        }
        return 0;
}

/* The last libvirt error as -errno, its message copied into err. The mapping is documented in
 * hv.h; everything without a better errno is -EIO. */
static int lv_error(char *err, size_t errlen) {
        const virError *e = virGetLastError();
        int code = e ? e->code : VIR_ERR_INTERNAL_ERROR;

        set_err(err, errlen, "%s", virGetLastErrorMessage());
        switch (code) {
        case VIR_ERR_NO_DOMAIN:
                return -ENOENT;
        case VIR_ERR_NO_DOMAIN_METADATA:
                return -ENODATA;
        case VIR_ERR_INVALID_ARG:
        case VIR_ERR_OPERATION_INVALID: /* e.g. "domain is not running" for a live change */
        case VIR_ERR_XML_ERROR:
        case VIR_ERR_XML_DETAIL:
                return -EINVAL;
        case VIR_ERR_NO_SUPPORT:
        case VIR_ERR_OPERATION_UNSUPPORTED:
        case VIR_ERR_ARGUMENT_UNSUPPORTED:
                return -EOPNOTSUPP;
        default:
                return -EIO;
        }
}

/* tided reports errors itself, once; libvirt's default handler would print each one again on
 * stderr, including the expected ones (a domain that vanished, absent metadata). */
static void silent_error(void *userdata, virErrorPtr error) {
}

static void quiet_libvirt(void) {
        virSetErrorFunc(NULL, silent_error);
}

/* ---- event loop ---- */

static bool event_loop_registered;

int hv_event_init(void) {
        quiet_libvirt();
        /* Registering twice would create a second wakeup pipe and leak the first: make repeats
         * harmless instead of making every caller track it. */
        if (event_loop_registered)
                return 0;
        if (virEventRegisterDefaultImpl() < 0)
                return -EIO;
        event_loop_registered = true;
        return 0;
}

int hv_event_run_once(void) {
        return virEventRunDefaultImpl() < 0 ? -EIO : 0;
}

/* libvirt's timers are in milliseconds; round up so a short timer never becomes 0, which to
 * libvirt means "fire on every loop iteration". */
static int usec_to_ms(uint64_t usec, int *ret) {
        uint64_t ms = usec / USEC_PER_MSEC + (usec % USEC_PER_MSEC != 0);
        if (ms == 0)
                ms = 1;
        if (ms > INT_MAX)
                return -ERANGE;
        *ret = (int) ms;
        return 0;
}

int hv_event_add_timer(uint64_t interval_usec, hv_timer_cb cb, void *userdata) {
        int ms, r;
        if (!cb)
                return -EINVAL;
        if ((r = usec_to_ms(interval_usec, &ms)) < 0)
                return r;
        /* hv_timer_cb has virEventTimeoutCallback's exact type. */
        int id = virEventAddTimeout(ms, cb, userdata, NULL);
        return id < 0 ? -EIO : id;
}

int hv_event_update_timer(int id, uint64_t interval_usec) {
        int ms, r;
        if (id < 0)
                return -EINVAL;
        if ((r = usec_to_ms(interval_usec, &ms)) < 0)
                return r;
        virEventUpdateTimeout(id, ms);
        return 0;
}

int hv_event_remove_timer(int id) {
        if (id < 0)
                return -EINVAL;
        return virEventRemoveTimeout(id) < 0 ? -ENOENT : 0;
}

int hv_event_add_fd(int fd, int events, hv_fd_cb cb, void *userdata) {
        if (fd < 0 || !cb || (events & ~HV_FD_ALL))
                return -EINVAL;
        int id = virEventAddHandle(fd, events, cb, userdata, NULL);
        return id < 0 ? -EIO : id;
}

int hv_event_update_fd(int id, int events) {
        if (id < 0 || (events & ~HV_FD_ALL))
                return -EINVAL;
        virEventUpdateHandle(id, events);
        return 0;
}

int hv_event_remove_fd(int id) {
        if (id < 0)
                return -EINVAL;
        return virEventRemoveHandle(id) < 0 ? -ENOENT : 0;
}

/* ---- XML helpers ---- */

static void doc_freep(xmlDocPtr *d) {
        if (*d)
                xmlFreeDoc(*d);
}
static void xpath_ctxt_freep(xmlXPathContextPtr *c) {
        if (*c)
                xmlXPathFreeContext(*c);
}
static void xpath_obj_freep(xmlXPathObjectPtr *o) {
        if (*o)
                xmlXPathFreeObject(*o);
}
static void xml_freep(xmlChar **s) {
        if (*s)
                xmlFree(*s);
}
static void domain_freep(virDomainPtr *d) {
        if (*d)
                virDomainFree(*d);
}

/* libvirt's own output, but parsed with the same locks as untrusted text: nothing fetched,
 * nothing printed. */
static xmlDocPtr xml_read(const char *text) {
        return xmlReadMemory(text, (int) strlen(text), "domain.xml", NULL,
                             XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

/* The first node expr selects relative to ctx (the document when NULL), or NULL. */
static xmlNodePtr xp_node(xmlXPathContextPtr xp, xmlNodePtr ctx, const char *expr) {
        _cleanup_(xpath_obj_freep) xmlXPathObjectPtr o = NULL;
        xp->node = ctx ? ctx : xmlDocGetRootElement(xp->doc);
        o = xmlXPathEvalExpression((const xmlChar *) expr, xp);
        if (!o || o->type != XPATH_NODESET || !o->nodesetval || o->nodesetval->nodeNr == 0)
                return NULL;
        return o->nodesetval->nodeTab[0];
}

/* A libvirt scaled integer (<memory unit='KiB'>N</memory>) in KiB. libvirt writes KiB, and
 * unit defaults to KiB when absent; size_parse() knows the other suffixes libvirt accepts. */
static int node_kib(xmlNodePtr n, uint64_t *ret) {
        _cleanup_(xml_freep) xmlChar *text = xmlNodeGetContent(n);
        _cleanup_(xml_freep) xmlChar *unit = xmlGetProp(n, (const xmlChar *) "unit");
        char buf[96];
        if (!text)
                return -EINVAL;
        int l = snprintf(buf, sizeof(buf), "%s%s", (const char *) text, unit ? (const char *) unit : "KiB");
        if (l < 0 || (size_t) l >= sizeof(buf))
                return -EINVAL;
        return size_parse(buf, ret, NULL);
}

static int xp_kib(xmlXPathContextPtr xp, xmlNodePtr ctx, const char *expr, uint64_t *ret) {
        xmlNodePtr n = xp_node(xp, ctx, expr);
        return n ? node_kib(n, ret) : -ENOENT;
}

/* Copies an attribute into buf; false when absent or too long to be meaningful. */
static bool xp_attr(xmlXPathContextPtr xp, xmlNodePtr ctx, const char *expr, const char *attr, char *buf, size_t len) {
        xmlNodePtr n = xp_node(xp, ctx, expr);
        if (!n)
                return false;
        _cleanup_(xml_freep) xmlChar *v = xmlGetProp(n, (const xmlChar *) attr);
        if (!v || strlen((const char *) v) >= len)
                return false;
        memcpy(buf, v, strlen((const char *) v) + 1);
        return true;
}

/* ---- domains ---- */

static int lookup(struct hv_libvirt *h, const char *uuid, virDomainPtr *ret, char *err, size_t errlen) {
        if (!uuid) {
                set_err(err, errlen, "no domain UUID given");
                return -EINVAL;
        }
        virDomainPtr d = virDomainLookupByUUIDString(h->conn, uuid);
        if (!d)
                return lv_error(err, errlen);
        *ret = d;
        return 0;
}

/* The memory part of a domain's XML (live when running, else config) into d. */
static int parse_domain_xml(const char *text, struct hv_domain *d, char *err, size_t errlen) {
        _cleanup_(doc_freep) xmlDocPtr doc = xml_read(text);
        _cleanup_(xpath_ctxt_freep) xmlXPathContextPtr xp = NULL;
        uint64_t total_kib, devices_kib = 0;
        char buf[HV_PATH_MAX];

        if (!doc || !(xp = xmlXPathNewContext(doc))) {
                set_err(err, errlen, "cannot parse the domain XML libvirt returned");
                return -EIO;
        }
        if (xp_kib(xp, NULL, "/domain/memory", &total_kib) < 0) {
                set_err(err, errlen, "domain XML without a readable <memory>");
                return -EIO;
        }
        /* With memory devices libvirt's <memory> is the total: boot memory plus the full size of
         * every <memory> device (qemu driver: 512 MiB of NUMA cells + a 1 GiB virtio-mem device
         * read back as 1536 MiB). The boot size is what is left; the devices are reported on
         * their own. */
        {
                _cleanup_(xpath_obj_freep) xmlXPathObjectPtr o = NULL;
                xp->node = xmlDocGetRootElement(doc);
                o = xmlXPathEvalExpression((const xmlChar *) "/domain/devices/memory/target/size", xp);
                for (int i = 0; o && o->nodesetval && i < o->nodesetval->nodeNr; i++) {
                        uint64_t k;
                        if (node_kib(o->nodesetval->nodeTab[i], &k) == 0)
                                devices_kib += k;
                }
        }
        d->max_kib = sat_sub_u64(total_kib, devices_kib);
        if (xp_kib(xp, NULL, "/domain/currentMemory", &d->current_kib) < 0)
                d->current_kib = d->max_kib; /* libvirt omits nothing here, but a hand-made XML may */

        if (xp_attr(xp, NULL, "/domain/devices/memballoon", "model", buf, sizeof(buf)))
                /* virtio-transitional and virtio-non-transitional are the same balloon */
                d->has_balloon = strncmp(buf, "virtio", 6) == 0;
        if (xp_attr(xp, NULL, "/domain/devices/memballoon", "autodeflate", buf, sizeof(buf)))
                d->balloon_deflate_on_oom = strcmp(buf, "on") == 0;

        /* tide drives one virtio-mem device, the first; more than one (say one per guest NUMA
         * node) would need a per-device split the engine does not make yet. */
        xmlNodePtr vmem = xp_node(xp, NULL, "/domain/devices/memory[@model='virtio-mem']");
        if (vmem) {
                d->has_virtio_mem = true;
                xp_attr(xp, vmem, "alias", "name", d->virtio_mem_alias, sizeof(d->virtio_mem_alias));
                if (xp_kib(xp, vmem, "target/size", &d->virtio_mem_max_kib) < 0)
                        d->virtio_mem_max_kib = 0;
                if (xp_kib(xp, vmem, "target/block", &d->virtio_mem_block_kib) < 0)
                        d->virtio_mem_block_kib = 0;
                if (xp_kib(xp, vmem, "target/requested", &d->virtio_mem_requested_kib) < 0)
                        d->virtio_mem_requested_kib = 0;
                /* <current> is output-only, in the live XML of a running domain. */
                if (xp_kib(xp, vmem, "target/current", &d->virtio_mem_current_kib) < 0)
                        d->virtio_mem_current_kib = 0;
        }

        /* Only "strict" to a single node binds the memory; "preferred"/"interleave" or a set of
         * nodes leave the kernel free to place it anywhere. */
        if (xp_attr(xp, NULL, "/domain/numatune/memory[@mode='strict']", "nodeset", buf, sizeof(buf)) && buf[0] &&
            strlen(buf) < 6 && strspn(buf, "0123456789") == strlen(buf))
                d->numa_node = atoi(buf);

        /* A path longer than the buffer could not be connected to anyway (sun_path is 108). */
        xp_attr(xp, NULL,
                "/domain/devices/channel[@type='unix'][target/@type='virtio'][target/@name='org.tide.agent.0']/source",
                "path", d->agent_socket, sizeof(d->agent_socket));
        return 0;
}

static int describe(virDomainPtr dom, struct hv_domain *ret, char *err, size_t errlen) {
        struct hv_domain d = {.id = -1, .numa_node = -1};
        _cleanup_free_ char *xml = NULL;
        int r;

        if (virDomainGetUUIDString(dom, d.uuid) < 0)
                return lv_error(err, errlen);
        const char *name = virDomainGetName(dom);
        /* The name is for people; the UUID is the key. A name past 255 bytes is cut, not fatal. */
        snprintf(d.name, sizeof(d.name), "%s", name ? name : "");
        unsigned id = virDomainGetID(dom);
        d.id = id == (unsigned) -1 || id > INT_MAX ? -1 : (int) id;
        if ((r = virDomainIsActive(dom)) < 0)
                return lv_error(err, errlen);
        d.active = r == 1;
        if ((r = virDomainIsPersistent(dom)) < 0)
                return lv_error(err, errlen);
        d.persistent = r == 1;

        if (!(xml = virDomainGetXMLDesc(dom, 0)))
                return lv_error(err, errlen);
        if ((r = parse_domain_xml(xml, &d, err, errlen)) < 0)
                return r;
        *ret = d;
        return 0;
}

static int lv_list_domains(void *hp, struct hv_domain **ret, size_t *ret_n, char *err, size_t errlen) {
        struct hv_libvirt *h = hp;
        virDomainPtr *doms = NULL;
        int n = virConnectListAllDomains(h->conn, &doms, 0);
        if (n < 0)
                return lv_error(err, errlen);

        struct hv_domain *a = calloc(n > 0 ? (size_t) n : 1, sizeof(*a));
        size_t k = 0;
        int r = a ? 0 : -ENOMEM;
        bool told = false;
        for (int i = 0; i < n; i++) {
                if (r == 0) {
                        char why[HV_ERR_MAX] = "";
                        int q = describe(doms[i], &a[k], why, sizeof(why));
                        /* Undefined between the listing and the look: it is not a domain any more. */
                        if (q == 0)
                                k++;
                        else if (q == -ENOMEM)
                                r = q;
                        else if (q != -ENOENT && virDomainGetUUIDString(doms[i], a[k].uuid) == 0) {
                                /* One domain that cannot be described must not hide the others,
                                 * nor be taken for gone: it is listed by its UUID and name. */
                                const char *name = virDomainGetName(doms[i]);
                                snprintf(a[k].name, sizeof(a[k].name), "%s", name ? name : a[k].uuid);
                                a[k].id = -1;
                                a[k].numa_node = -1;
                                a[k].undescribed = true;
                                k++;
                                if (!told)
                                        snprintf(err, errlen, "%s", why);
                                told = true;
                        }
                }
                virDomainFree(doms[i]);
        }
        if (r < 0)
                snprintf(err, errlen, "out of memory");
        free(doms);
        if (r < 0) {
                free(a);
                return r;
        }
        *ret = a;
        *ret_n = k;
        return 0;
}

static int lv_get_domain(void *hp, const char *uuid, struct hv_domain *ret, char *err, size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        int r = lookup(hp, uuid, &dom, err, errlen);
        return r < 0 ? r : describe(dom, ret, err, errlen);
}

static int lv_memory_stats(void *hp, const char *uuid, struct hv_mem_stats *ret, char *err, size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        virDomainMemoryStatStruct st[VIR_DOMAIN_MEMORY_STAT_NR];
        int r;

        if ((r = lookup(hp, uuid, &dom, err, errlen)) < 0)
                return r;
        int n = virDomainMemoryStats(dom, st, VIR_DOMAIN_MEMORY_STAT_NR, 0);
        if (n < 0)
                return lv_error(err, errlen);

        struct hv_mem_stats s = {
                .actual_kib = UINT64_MAX,
                .unused_kib = UINT64_MAX,
                .available_kib = UINT64_MAX,
                .usable_kib = UINT64_MAX,
                .disk_caches_kib = UINT64_MAX,
                .swap_in_kib = UINT64_MAX,
                .swap_out_kib = UINT64_MAX,
                .major_faults = UINT64_MAX,
                .minor_faults = UINT64_MAX,
                .rss_kib = UINT64_MAX,
                .last_update_sec = UINT64_MAX,
        };
        /* libvirt's units already match ours (KiB, counts, seconds); hugetlb counters are not
         * used by tide. */
        for (int i = 0; i < n && i < VIR_DOMAIN_MEMORY_STAT_NR; i++) {
                uint64_t v = st[i].val;
                switch (st[i].tag) {
                case VIR_DOMAIN_MEMORY_STAT_SWAP_IN:
                        s.swap_in_kib = v;
                        break;
                case VIR_DOMAIN_MEMORY_STAT_SWAP_OUT:
                        s.swap_out_kib = v;
                        break;
                case VIR_DOMAIN_MEMORY_STAT_MAJOR_FAULT:
                        s.major_faults = v;
                        break;
                case VIR_DOMAIN_MEMORY_STAT_MINOR_FAULT:
                        s.minor_faults = v;
                        break;
                case VIR_DOMAIN_MEMORY_STAT_UNUSED:
                        s.unused_kib = v;
                        break;
                case VIR_DOMAIN_MEMORY_STAT_AVAILABLE:
                        s.available_kib = v;
                        break;
                case VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON:
                        s.actual_kib = v;
                        break;
                case VIR_DOMAIN_MEMORY_STAT_RSS:
                        s.rss_kib = v;
                        break;
                case VIR_DOMAIN_MEMORY_STAT_USABLE:
                        s.usable_kib = v;
                        break;
                case VIR_DOMAIN_MEMORY_STAT_LAST_UPDATE:
                        s.last_update_sec = v;
                        break;
                case VIR_DOMAIN_MEMORY_STAT_DISK_CACHES:
                        s.disk_caches_kib = v;
                        break;
                default:
                        break;
                }
        }
        *ret = s;
        return 0;
}

static int lv_set_stats_period(void *hp, const char *uuid, int seconds, char *err, size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        int r;
        if (seconds < 0) {
                set_err(err, errlen, "stats period %d is negative", seconds);
                return -EINVAL;
        }
        if ((r = lookup(hp, uuid, &dom, err, errlen)) < 0)
                return r;
        if (virDomainSetMemoryStatsPeriod(dom, seconds, VIR_DOMAIN_AFFECT_LIVE) < 0)
                return lv_error(err, errlen);
        return 0;
}

/* virDomainSetMemoryFlags takes KiB in an unsigned long: 32 bits on some targets. */
static int kib_to_ulong(uint64_t kib, unsigned long *ret, char *err, size_t errlen) {
        if (kib == 0 || kib > ULONG_MAX) {
                set_err(err, errlen, "memory size %" PRIu64 " KiB out of range", kib);
                return -EINVAL;
        }
        *ret = (unsigned long) kib;
        return 0;
}

static int lv_set_balloon(void *hp, const char *uuid, uint64_t kib, char *err, size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        unsigned long mem;
        int r;
        if ((r = kib_to_ulong(kib, &mem, err, errlen)) < 0 || (r = lookup(hp, uuid, &dom, err, errlen)) < 0)
                return r;
        if (virDomainSetMemoryFlags(dom, mem, VIR_DOMAIN_AFFECT_LIVE) < 0)
                return lv_error(err, errlen);
        return 0;
}

/* The domain's XML (flags: 0 live, VIR_DOMAIN_XML_INACTIVE persistent) parsed, with an XPath
 * context on it. Returns 0, or -errno with err set; *doc and *xp are the caller's to free. */
static int domain_xpath(virDomainPtr dom, unsigned flags, xmlDocPtr *doc, xmlXPathContextPtr *xp, char *err,
                        size_t errlen) {
        _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, flags);

        if (!xml)
                return lv_error(err, errlen);
        if (!(*doc = xml_read(xml)) || !(*xp = xmlXPathNewContext(*doc))) {
                set_err(err, errlen, "cannot parse the domain XML libvirt returned");
                return -EIO;
        }
        return 0;
}

static int lv_set_boot_memory(void *hp, const char *uuid, uint64_t kib, char *err, size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        _cleanup_(doc_freep) xmlDocPtr doc = NULL;
        _cleanup_(xpath_ctxt_freep) xmlXPathContextPtr xp = NULL;
        uint64_t config_max_kib;
        unsigned long mem;
        int r;

        if ((r = kib_to_ulong(kib, &mem, err, errlen)) < 0 || (r = lookup(hp, uuid, &dom, err, errlen)) < 0)
                return r;
        /* The persistent <memory>, not the live one: a running domain's live maximum says
         * nothing about what its next boot may use. */
        if ((r = domain_xpath(dom, VIR_DOMAIN_XML_INACTIVE, &doc, &xp, err, errlen)) < 0)
                return r;
        if (xp_kib(xp, NULL, "/domain/memory", &config_max_kib) < 0) {
                set_err(err, errlen, "cannot read <memory> from the domain's config");
                return -EIO;
        }
        /* libvirt refuses a currentMemory above <memory>, so the ceiling goes up first. (With
         * guest NUMA cells, which virtio-mem needs, libvirt refuses this step: the cells hold
         * the size.) */
        if (kib > config_max_kib &&
            virDomainSetMemoryFlags(dom, mem, VIR_DOMAIN_MEM_MAXIMUM | VIR_DOMAIN_AFFECT_CONFIG) < 0)
                return lv_error(err, errlen);
        if (virDomainSetMemoryFlags(dom, mem, VIR_DOMAIN_AFFECT_CONFIG) < 0)
                return lv_error(err, errlen);
        return 0;
}

static int lv_set_virtio_mem(void *hp, const char *uuid, uint64_t requested_kib, char *err, size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        _cleanup_(doc_freep) xmlDocPtr doc = NULL;
        _cleanup_(xpath_ctxt_freep) xmlXPathContextPtr xp = NULL;
        uint64_t size_kib, block_kib;
        char num[32];
        int r;

        if ((r = lookup(hp, uuid, &dom, err, errlen)) < 0 || (r = domain_xpath(dom, 0, &doc, &xp, err, errlen)) < 0)
                return r;
        xmlNodePtr dev = xp_node(xp, NULL, "/domain/devices/memory[@model='virtio-mem']");
        if (!dev) {
                set_err(err, errlen, "domain has no virtio-mem device");
                return -ENODEV;
        }
        /* Checked here so the message names the numbers; QEMU would refuse with less. */
        if (xp_kib(xp, dev, "target/size", &size_kib) < 0 || xp_kib(xp, dev, "target/block", &block_kib) < 0 ||
            block_kib == 0) {
                set_err(err, errlen, "virtio-mem device without a readable <size> and <block>");
                return -EIO;
        }
        if (requested_kib > size_kib || requested_kib % block_kib != 0) {
                set_err(err, errlen,
                        "virtio-mem requested size %" PRIu64 " KiB must be a multiple of the %" PRIu64
                        " KiB block and at most the %" PRIu64 " KiB device size",
                        requested_kib, block_kib, size_kib);
                return -EINVAL;
        }

        /* libvirt finds the device to change by its address and alias and refuses a change to
         * anything but <requested> (qemuDomainChangeMemoryLive), so the device goes back as
         * libvirt described it, with only <requested> replaced — what `virsh
         * update-memory-device` and KubeVirt do. <current> is output-only and is dropped. */
        xmlNodePtr target = xp_node(xp, dev, "target");
        if (!target) {
                set_err(err, errlen, "virtio-mem device without <target>");
                return -EIO;
        }
        xmlNodePtr cur = xp_node(xp, target, "current");
        if (cur) {
                xmlUnlinkNode(cur);
                xmlFreeNode(cur);
        }
        snprintf(num, sizeof(num), "%" PRIu64, requested_kib);
        xmlNodePtr req = xp_node(xp, target, "requested");
        if (req)
                xmlNodeSetContent(req, (const xmlChar *) num);
        else if (!(req = xmlNewTextChild(target, NULL, (const xmlChar *) "requested", (const xmlChar *) num)))
                return -ENOMEM;
        if (!xmlSetProp(req, (const xmlChar *) "unit", (const xmlChar *) "KiB"))
                return -ENOMEM;

        xmlBufferPtr buf = xmlBufferCreate();
        if (!buf)
                return -ENOMEM;
        if (xmlNodeDump(buf, doc, dev, 0, 0) < 0) {
                xmlBufferFree(buf);
                return -ENOMEM;
        }
        r = virDomainUpdateDeviceFlags(dom, (const char *) xmlBufferContent(buf), VIR_DOMAIN_AFFECT_LIVE);
        xmlBufferFree(buf);
        return r < 0 ? lv_error(err, errlen) : 0;
}

/* HV_LIVE/HV_CONFIG to VIR_DOMAIN_AFFECT_*; neither is libvirt's "current" (live when running,
 * else config). */
static int affect_flags(unsigned flags, unsigned *ret, char *err, size_t errlen) {
        if (flags & ~(HV_LIVE | HV_CONFIG)) {
                set_err(err, errlen, "unknown flags 0x%x", flags);
                return -EINVAL;
        }
        *ret = ((flags & HV_LIVE) ? VIR_DOMAIN_AFFECT_LIVE : 0) | ((flags & HV_CONFIG) ? VIR_DOMAIN_AFFECT_CONFIG : 0);
        return 0;
}

static int lv_get_metadata(void *hp, const char *uuid, unsigned flags, char **ret, char *err, size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        unsigned vflags;
        int r;
        if ((r = affect_flags(flags, &vflags, err, errlen)) < 0 || (r = lookup(hp, uuid, &dom, err, errlen)) < 0)
                return r;
        /* Returns the element with tide's namespace stripped: <policy ...>, not <tide:policy>. */
        char *xml = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, HV_METADATA_URI, vflags);
        if (!xml)
                return lv_error(err, errlen);
        *ret = xml;
        return 0;
}

static int lv_set_metadata(void *hp, const char *uuid, const char *xml, unsigned flags, char *err, size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        unsigned vflags;
        int r;
        if ((r = affect_flags(flags, &vflags, err, errlen)) < 0 || (r = lookup(hp, uuid, &dom, err, errlen)) < 0)
                return r;
        /* libvirt puts the element (and its children) into tide's namespace under the "tide"
         * prefix; xml NULL removes it, and removing an absent one succeeds. */
        if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml, HV_METADATA_PREFIX, HV_METADATA_URI, vflags) < 0)
                return lv_error(err, errlen);
        return 0;
}

static const struct hv_ops libvirt_ops = {
        .list_domains = lv_list_domains,
        .get_domain = lv_get_domain,
        .memory_stats = lv_memory_stats,
        .set_stats_period = lv_set_stats_period,
        .set_balloon = lv_set_balloon,
        .set_boot_memory = lv_set_boot_memory,
        .set_virtio_mem = lv_set_virtio_mem,
        .get_metadata = lv_get_metadata,
        .set_metadata = lv_set_metadata,
};

/* ---- connection ---- */

static void emit(struct hv_libvirt *h, enum hv_event_kind kind, virDomainPtr dom) {
        char uuid[VIR_UUID_STRING_BUFLEN];
        if (h->cb && virDomainGetUUIDString(dom, uuid) == 0)
                h->cb(kind, uuid, h->userdata);
}

enum hv_event_kind hv_libvirt_started_kind(int detail) {
        /* A migrated, restored or woken guest brings its memory and its balloon driver with it.
         * A boot does not, nor may a snapshot revert (a disk-only or offline snapshot starts
         * cold), nor any detail a newer libvirt adds: those get the boot's startup memory. */
        switch (detail) {
        case VIR_DOMAIN_EVENT_STARTED_MIGRATED:
        case VIR_DOMAIN_EVENT_STARTED_RESTORED:
        case VIR_DOMAIN_EVENT_STARTED_WAKEUP:
                return HV_EVENT_RESUMED;
        default:
                return HV_EVENT_STARTED;
        }
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        switch (event) {
        case VIR_DOMAIN_EVENT_STARTED:
                emit(opaque, hv_libvirt_started_kind(detail), dom);
                break;
        case VIR_DOMAIN_EVENT_STOPPED:
                emit(opaque, HV_EVENT_STOPPED, dom);
                break;
        case VIR_DOMAIN_EVENT_DEFINED:
                emit(opaque, HV_EVENT_DEFINED, dom);
                break;
        case VIR_DOMAIN_EVENT_UNDEFINED:
                emit(opaque, HV_EVENT_UNDEFINED, dom);
                break;
        default:
                /* Suspend/resume keep the memory; a crash that ends the domain comes as STOPPED. */
                break;
        }
        return 0;
}

static void on_reboot(virConnectPtr conn, virDomainPtr dom, void *opaque) {
        emit(opaque, HV_EVENT_REBOOTED, dom);
}

static void on_metadata(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri, void *opaque) {
        /* Only tide's own element: titles, descriptions and other tools' metadata are not ours. */
        if (type == VIR_DOMAIN_METADATA_ELEMENT && nsuri && streq(nsuri, HV_METADATA_URI))
                emit(opaque, HV_EVENT_METADATA, dom);
}

static void on_close(virConnectPtr conn, int reason, void *opaque) {
        struct hv_libvirt *h = opaque;
        h->closed = true;
}

static void unregister_all(struct hv_libvirt *h) {
        for (int i = 0; i < CB_COUNT; i++)
                if (h->cb_ids[i] >= 0) {
                        virConnectDomainEventDeregisterAny(h->conn, h->cb_ids[i]);
                        h->cb_ids[i] = -1;
                }
        if (h->close_cb) {
                virConnectUnregisterCloseCallback(h->conn, on_close);
                h->close_cb = false;
        }
}

static void handle_free(struct hv_libvirt *h) {
        if (!h)
                return;
        if (h->conn) {
                unregister_all(h);
                virConnectClose(h->conn);
        }
        free(h);
}

int hv_libvirt_open(const char *uri, hv_event_cb cb, void *userdata, struct hv *ret, char *err, size_t errlen) {
        struct hv_libvirt *h = calloc(1, sizeof(*h));
        int r;

        if (!h)
                return -ENOMEM;
        for (int i = 0; i < CB_COUNT; i++)
                h->cb_ids[i] = -1;
        h->cb = cb;
        h->userdata = userdata;

        quiet_libvirt();
        if (!(h->conn = virConnectOpen(uri))) {
                r = lv_error(err, errlen);
                free(h);
                return r;
        }

        /* libvirt needs an event loop for any of these (hv_event_init()); without one they
         * fail, and so does the open: tided depends on hearing about reboots. */
        if (cb) {
                h->cb_ids[CB_LIFECYCLE] = virConnectDomainEventRegisterAny(
                        h->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), h, NULL);
                if (h->cb_ids[CB_LIFECYCLE] >= 0)
                        h->cb_ids[CB_REBOOT] = virConnectDomainEventRegisterAny(
                                h->conn, NULL, VIR_DOMAIN_EVENT_ID_REBOOT, VIR_DOMAIN_EVENT_CALLBACK(on_reboot), h, NULL);
                if (h->cb_ids[CB_REBOOT] >= 0)
                        h->cb_ids[CB_METADATA] = virConnectDomainEventRegisterAny(
                                h->conn, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, VIR_DOMAIN_EVENT_CALLBACK(on_metadata),
                                h, NULL);
                if (h->cb_ids[CB_METADATA] < 0) {
                        r = lv_error(err, errlen);
                        handle_free(h);
                        return r;
                }
        }
        /* A dead connection (libvirtd restarted) is noticed here and reported by
         * hv_libvirt_alive(); the caller reconnects. */
        if (virConnectRegisterCloseCallback(h->conn, on_close, h, NULL) == 0)
                h->close_cb = true;

        *ret = (struct hv){.ops = &libvirt_ops, .h = h};
        return 0;
}

bool hv_libvirt_alive(const struct hv *hv) {
        const struct hv_libvirt *h = hv ? hv->h : NULL;
        return h && h->conn && !h->closed && virConnectIsAlive(h->conn) == 1;
}

void hv_libvirt_close(struct hv *hv) {
        if (!hv)
                return;
        handle_free(hv->h);
        *hv = (struct hv){0};
}

/* Hardware virtualization as the host kernel sees it. A VM without nested virtualization can
 * still offer a /dev/kvm that opens and creates VMs (tide's own CI machine does), and libvirt
 * then lists kvm among its domain types, yet guests hang; what such a VM lacks is the CPU flag.
 * Only x86 has a flag to check; elsewhere libvirt's word stands. */
static bool cpu_has_hw_virt(void) {
#if defined(__x86_64__) || defined(__i386__)
        _cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
        _cleanup_free_ char *line = NULL;
        size_t n = 0;
        if (!f)
                return true; /* cannot tell: trust libvirt */
        while (getline(&line, &n, f) > 0) {
                if (strncmp(line, "flags", 5) != 0)
                        continue;
                for (char *save = NULL, *t = strtok_r(line, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save))
                        if (streq(t, "vmx") || streq(t, "svm"))
                                return true;
                return false; /* one CPU's flags speak for all */
        }
        return true;
#else
        return true;
#endif
}

const char *hv_libvirt_domain_type(const struct hv *hv) {
        const struct hv_libvirt *h = hv ? hv->h : NULL;
        _cleanup_free_ char *caps = NULL;
        _cleanup_(doc_freep) xmlDocPtr doc = NULL;
        _cleanup_(xpath_ctxt_freep) xmlXPathContextPtr xp = NULL;
        char arch[64], expr[256];

        /* "qemu" (TCG) runs everywhere; "kvm" only where every sign says it works. */
        if (!h || !h->conn || !(caps = virConnectGetCapabilities(h->conn)))
                return "qemu";
        if (!(doc = xml_read(caps)) || !(xp = xmlXPathNewContext(doc)))
                return "qemu";
        xmlNodePtr host_arch = xp_node(xp, NULL, "/capabilities/host/cpu/arch");
        _cleanup_(xml_freep) xmlChar *a = host_arch ? xmlNodeGetContent(host_arch) : NULL;
        /* The arch goes into an XPath literal: refuse anything that could end it. */
        if (!a || strlen((const char *) a) >= sizeof(arch) || strchr((const char *) a, '\''))
                return "qemu";
        snprintf(arch, sizeof(arch), "%s", (const char *) a);
        snprintf(expr, sizeof(expr), "/capabilities/guest[os_type='hvm']/arch[@name='%s']/domain[@type='kvm']", arch);
        if (!xp_node(xp, NULL, expr))
                return "qemu";

        /* libvirt lists kvm when /dev/kvm is accessible to *it*; tided checks the same device
         * from its side, and the CPU flag that no virtual device can fake. */
        _cleanup_close_ int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (fd < 0 || !cpu_has_hw_virt())
                return "qemu";
        return "kvm";
}
