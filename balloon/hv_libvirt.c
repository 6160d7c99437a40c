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
/* The largest limit hv.h lets through is one below libvirt's "unlimited", which libvirt would
 * read as no limit at all. */
_Static_assert(HV_MEMTUNE_MAX_KIB + 1 == VIR_DOMAIN_MEMORY_PARAM_UNLIMITED, "HV_MEMTUNE_MAX_KIB");
/* A cpumap for every CPU an hv_cpuset can name fits in one stack buffer. */
#define CPUMAP_MAX VIR_CPU_MAPLEN(HV_CPUSET_MAX)

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
        if ((r = affect_flags(flags & ~HV_META_PARKING, &vflags, err, errlen)) < 0 ||
            (r = lookup(hp, uuid, &dom, err, errlen)) < 0)
                return r;
        /* Returns the element with tide's namespace stripped: <policy ...>, not <tide:policy>. */
        char *xml = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
                                         flags & HV_META_PARKING ? HV_METADATA_PARKING_URI : HV_METADATA_URI, vflags);
        if (!xml)
                return lv_error(err, errlen);
        *ret = xml;
        return 0;
}

static int lv_set_metadata(void *hp, const char *uuid, const char *xml, unsigned flags, char *err, size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        unsigned vflags;
        int r;
        if ((r = affect_flags(flags & ~HV_META_PARKING, &vflags, err, errlen)) < 0 ||
            (r = lookup(hp, uuid, &dom, err, errlen)) < 0)
                return r;
        /* libvirt puts the element (and its children) into tide's namespace under the "tide"
         * prefix; xml NULL removes it, and removing an absent one succeeds. */
        bool parking = flags & HV_META_PARKING;
        if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml,
                                 parking ? HV_METADATA_PARKING_PREFIX : HV_METADATA_PREFIX,
                                 parking ? HV_METADATA_PARKING_URI : HV_METADATA_URI, vflags) < 0)
                return lv_error(err, errlen);
        return 0;
}

/* ---- memory limits ---- */

/* Typed parameters with their count, freed together. */
struct typed_params {
        virTypedParameterPtr p;
        int n;
};

static void typed_params_freep(struct typed_params *t) {
        if (t->p)
                virTypedParamsFree(t->p, t->n);
}

/* libvirt reports "no limit" as its UNLIMITED (the qemu driver reads a cgroup's "max" as that). */
static uint64_t memtune_from_lv(unsigned long long kib) {
        return kib >= VIR_DOMAIN_MEMORY_PARAM_UNLIMITED ? HV_MEMTUNE_UNLIMITED : kib;
}

static int memtune_to_lv(uint64_t kib, const char *what, unsigned long long *ret, char *err, size_t errlen) {
        if (kib == HV_MEMTUNE_UNLIMITED) {
                *ret = VIR_DOMAIN_MEMORY_PARAM_UNLIMITED;
                return 0;
        }
        /* 0 is a cgroup limit of nothing: QEMU would be OOM-killed on its next allocation. */
        if (kib == 0 || kib > HV_MEMTUNE_MAX_KIB) {
                set_err(err, errlen, "memory %s %" PRIu64 " KiB out of range (1-%" PRIu64 " KiB or unlimited)", what,
                        kib, (uint64_t) HV_MEMTUNE_MAX_KIB);
                return -EINVAL;
        }
        *ret = kib;
        return 0;
}

static int lv_get_memtune(void *hp, const char *uuid, struct hv_memtune *ret, char *err, size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        _cleanup_(typed_params_freep) struct typed_params t = {0};
        unsigned long long hard = VIR_DOMAIN_MEMORY_PARAM_UNLIMITED, swap = VIR_DOMAIN_MEMORY_PARAM_UNLIMITED;
        int n = 0, r;

        if ((r = lookup(hp, uuid, &dom, err, errlen)) < 0)
                return r;
        /* libvirt's protocol: ask how many parameters the driver has, then for them. */
        if (virDomainGetMemoryParameters(dom, NULL, &n, VIR_DOMAIN_AFFECT_LIVE) < 0)
                return lv_error(err, errlen);
        if (n <= 0) {
                set_err(err, errlen, "the driver reports no memory parameters");
                return -EOPNOTSUPP;
        }
        if (!(t.p = calloc((size_t) n, sizeof(*t.p))))
                return -ENOMEM;
        t.n = n;
        if (virDomainGetMemoryParameters(dom, t.p, &t.n, VIR_DOMAIN_AFFECT_LIVE) < 0)
                return lv_error(err, errlen);
        /* A limit the driver does not report is one it does not enforce: unlimited. */
        if (virTypedParamsGetULLong(t.p, t.n, VIR_DOMAIN_MEMORY_HARD_LIMIT, &hard) < 0 ||
            virTypedParamsGetULLong(t.p, t.n, VIR_DOMAIN_MEMORY_SWAP_HARD_LIMIT, &swap) < 0)
                return lv_error(err, errlen);
        *ret = (struct hv_memtune){
                .hard_limit_kib = memtune_from_lv(hard),
                .swap_hard_limit_kib = memtune_from_lv(swap),
        };
        return 0;
}

static int lv_set_memtune(void *hp, const char *uuid, const struct hv_memtune *m, unsigned flags, char *err,
                          size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        _cleanup_(typed_params_freep) struct typed_params t = {0};
        unsigned long long hard, swap;
        unsigned vflags;
        int max = 0, r;

        if (!m) {
                set_err(err, errlen, "no memory limits given");
                return -EINVAL;
        }
        if ((r = affect_flags(flags, &vflags, err, errlen)) < 0 ||
            (r = memtune_to_lv(m->hard_limit_kib, "hard_limit", &hard, err, errlen)) < 0 ||
            (r = memtune_to_lv(m->swap_hard_limit_kib, "swap_hard_limit", &swap, err, errlen)) < 0)
                return r;
        /* libvirt refuses the same, but says neither number. HV_MEMTUNE_UNLIMITED is the
         * largest uint64_t, so "unlimited" compares as it should. */
        if (m->hard_limit_kib > m->swap_hard_limit_kib) {
                set_err(err, errlen,
                        "memory hard_limit %" PRIu64 " KiB above swap_hard_limit %" PRIu64
                        " KiB: libvirt requires hard_limit <= swap_hard_limit",
                        m->hard_limit_kib, m->swap_hard_limit_kib);
                return -EINVAL;
        }
        if ((r = lookup(hp, uuid, &dom, err, errlen)) < 0)
                return r;
        /* Both in one call: libvirt checks hard <= swap on the pair this call leaves and orders
         * the cgroup writes itself (hv.h, set_memtune); two calls could each be refused, or
         * leave half a change behind. */
        if (virTypedParamsAddULLong(&t.p, &t.n, &max, VIR_DOMAIN_MEMORY_SWAP_HARD_LIMIT, swap) < 0 ||
            virTypedParamsAddULLong(&t.p, &t.n, &max, VIR_DOMAIN_MEMORY_HARD_LIMIT, hard) < 0)
                return lv_error(err, errlen);
        if (virDomainSetMemoryParameters(dom, t.p, t.n, vflags) < 0)
                return lv_error(err, errlen);
        return 0;
}

/* ---- vCPUs and CPU pinning ---- */

static int lv_get_vcpu_count(void *hp, const char *uuid, unsigned *ret, char *err, size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        int r;
        if ((r = lookup(hp, uuid, &dom, err, errlen)) < 0)
                return r;
        int n = virDomainGetVcpusFlags(dom, VIR_DOMAIN_AFFECT_LIVE);
        if (n < 0)
                return lv_error(err, errlen);
        *ret = (unsigned) n;
        return 0;
}

/* The host's CPU count as libvirt sizes cpumaps: present CPUs, online or not (CPU ids run
 * 0..n-1). virNodeGetCPUMap is what virsh uses; drivers without it have virNodeGetInfo, whose
 * nodes x sockets x cores x threads can differ (the test driver: 8 vs 16). Asked on every call:
 * CPUs can be hot-added, and a stale count would refuse them or accept ones that left. */
static int host_cpus(struct hv_libvirt *h, unsigned *ret, char *err, size_t errlen) {
        int n = virNodeGetCPUMap(h->conn, NULL, NULL, 0);
        if (n < 0) {
                const virError *e = virGetLastError();
                virNodeInfo info;
                if (!e || e->code != VIR_ERR_NO_SUPPORT)
                        return lv_error(err, errlen);
                if (virNodeGetInfo(h->conn, &info) < 0)
                        return lv_error(err, errlen);
                n = (int) VIR_NODEINFO_MAXCPUS(info);
        }
        if (n <= 0) {
                set_err(err, errlen, "libvirt reports %d host CPUs", n);
                return -EIO;
        }
        if (n > HV_CPUSET_MAX) {
                set_err(err, errlen, "the host has %d CPUs, more than the %d a CPU set holds", n, HV_CPUSET_MAX);
                return -ERANGE;
        }
        *ret = (unsigned) n;
        return 0;
}

/* libvirt's cpumap (ncpus CPUs, CPU c at bit c % 8 of byte c / 8) as a set. */
static void cpumap_to_set(const unsigned char *map, unsigned ncpus, struct hv_cpuset *ret) {
        struct hv_cpuset s = {0};
        for (unsigned c = 0; c < ncpus; c++)
                if (VIR_CPU_USED(map, c))
                        hv_cpuset_set(&s, c);
        *ret = s;
}

/* A set as libvirt's cpumap for a host of ncpus CPUs (map holds CPUMAP_MAX bytes; *maplen is
 * what libvirt is told). Refuses what no driver could apply: no CPU at all, or a CPU past the
 * host's last (libvirt's test driver would store it; the qemu driver fails later, in cgroups). */
static int set_to_cpumap(const struct hv_cpuset *s, unsigned ncpus, unsigned char map[static CPUMAP_MAX],
                         int *maplen, char *err, size_t errlen) {
        if (!s || hv_cpuset_count(s) == 0) {
                set_err(err, errlen, "empty CPU set");
                return -EINVAL;
        }
        int last = hv_cpuset_last(s);
        if ((unsigned) last >= ncpus) {
                set_err(err, errlen, "CPU %d is not on this host (CPUs 0-%u)", last, ncpus - 1);
                return -EINVAL;
        }
        memset(map, 0, CPUMAP_MAX);
        for (unsigned c = 0; c < ncpus; c++)
                if (hv_cpuset_test(s, c))
                        VIR_USE_CPU(map, c);
        *maplen = VIR_CPU_MAPLEN(ncpus);
        return 0;
}

static int lv_get_vcpu_pins(void *hp, const char *uuid, struct hv_cpuset *ret, unsigned max, unsigned *ret_n,
                            char *err, size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        _cleanup_free_ unsigned char *maps = NULL;
        unsigned ncpus;
        int r;

        if ((r = lookup(hp, uuid, &dom, err, errlen)) < 0 || (r = host_cpus(hp, &ncpus, err, errlen)) < 0)
                return r;
        /* libvirt answers for every vCPU up to the maximum, online or not; "current": live for a
         * running domain, its configuration for a stopped one. */
        int nvcpus = virDomainGetVcpusFlags(dom, VIR_DOMAIN_AFFECT_CURRENT | VIR_DOMAIN_VCPU_MAXIMUM);
        if (nvcpus < 0)
                return lv_error(err, errlen);
        if ((unsigned) nvcpus > max) {
                set_err(err, errlen, "the domain has %d vCPUs, more than the %u asked for", nvcpus, max);
                return -ENOBUFS;
        }
        int maplen = VIR_CPU_MAPLEN(ncpus);
        if (nvcpus == 0) {
                *ret_n = 0;
                return 0;
        }
        if (!(maps = calloc((size_t) nvcpus, (size_t) maplen)))
                return -ENOMEM;
        int n = virDomainGetVcpuPinInfo(dom, nvcpus, maps, maplen, VIR_DOMAIN_AFFECT_CURRENT);
        if (n < 0)
                return lv_error(err, errlen);
        /* n <= nvcpus <= max: libvirt fills at most the maps it was given. */
        for (int v = 0; v < n; v++)
                cpumap_to_set(VIR_GET_CPUMAP(maps, maplen, v), ncpus, &ret[v]);
        *ret_n = (unsigned) n;
        return 0;
}

/* What a pinning call needs: the flags in libvirt's terms, the domain, and the CPU set as a
 * cpumap of the host's size (-EINVAL for an empty set or CPUs the host lacks). */
static int pin_prepare(void *hp, const char *uuid, const struct hv_cpuset *cpus, unsigned flags, virDomainPtr *ret_dom,
                       unsigned char map[static CPUMAP_MAX], int *ret_maplen, unsigned *ret_vflags, char *err,
                       size_t errlen) {
        unsigned ncpus;
        int r;

        if ((r = affect_flags(flags, ret_vflags, err, errlen)) < 0 || (r = lookup(hp, uuid, ret_dom, err, errlen)) < 0 ||
            (r = host_cpus(hp, &ncpus, err, errlen)) < 0)
                return r;
        return set_to_cpumap(cpus, ncpus, map, ret_maplen, err, errlen);
}

static int lv_set_vcpu_pin(void *hp, const char *uuid, unsigned vcpu, const struct hv_cpuset *cpus, unsigned flags,
                           char *err, size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        unsigned char map[CPUMAP_MAX];
        unsigned vflags;
        int maplen, r;

        if ((r = pin_prepare(hp, uuid, cpus, flags, &dom, map, &maplen, &vflags, err, errlen)) < 0)
                return r;
        /* A vCPU the domain lacks is libvirt's to refuse (VIR_ERR_INVALID_ARG): only it knows
         * the live maximum without another call. */
        if (virDomainPinVcpuFlags(dom, vcpu, map, maplen, vflags) < 0)
                return lv_error(err, errlen);
        return 0;
}

static int lv_get_emulator_pin(void *hp, const char *uuid, struct hv_cpuset *ret, char *err, size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        unsigned char map[CPUMAP_MAX] = {0};
        unsigned ncpus;
        int r;

        if ((r = lookup(hp, uuid, &dom, err, errlen)) < 0 || (r = host_cpus(hp, &ncpus, err, errlen)) < 0)
                return r;
        r = virDomainGetEmulatorPinInfo(dom, map, VIR_CPU_MAPLEN(ncpus), VIR_DOMAIN_AFFECT_CURRENT);
        if (r < 0)
                return lv_error(err, errlen);
        /* 0 is libvirt's "no emulator threads are pinned": they may run anywhere, which is how
         * an unpinned vCPU reads too. */
        if (r == 0)
                for (unsigned c = 0; c < ncpus; c++)
                        VIR_USE_CPU(map, c);
        cpumap_to_set(map, ncpus, ret);
        return 0;
}

static int lv_set_emulator_pin(void *hp, const char *uuid, const struct hv_cpuset *cpus, unsigned flags, char *err,
                               size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        unsigned char map[CPUMAP_MAX];
        unsigned vflags;
        int maplen, r;

        if ((r = pin_prepare(hp, uuid, cpus, flags, &dom, map, &maplen, &vflags, err, errlen)) < 0)
                return r;
        if (virDomainPinEmulator(dom, map, maplen, vflags) < 0)
                return lv_error(err, errlen);
        return 0;
}

/* ---- cgroup partition ---- */

static int lv_get_partition(void *hp, const char *uuid, char *ret, size_t len, char *err, size_t errlen) {
        _cleanup_(domain_freep) virDomainPtr dom = NULL;
        _cleanup_(doc_freep) xmlDocPtr doc = NULL;
        _cleanup_(xpath_ctxt_freep) xmlXPathContextPtr xp = NULL;
        int r;

        if (!ret || len == 0) {
                set_err(err, errlen, "no buffer for the partition");
                return -EINVAL;
        }
        if ((r = lookup(hp, uuid, &dom, err, errlen)) < 0 || (r = domain_xpath(dom, 0, &doc, &xp, err, errlen)) < 0)
                return r;
        xmlNodePtr n = xp_node(xp, NULL, "/domain/resource/partition");
        _cleanup_(xml_freep) xmlChar *text = n ? xmlNodeGetContent(n) : NULL;
        const char *p = text ? (const char *) text : "";
        if (strlen(p) >= len) {
                set_err(err, errlen, "partition %s longer than %zu bytes", p, len - 1);
                return -ENAMETOOLONG;
        }
        memcpy(ret, p, strlen(p) + 1);
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
        .get_memtune = lv_get_memtune,
        .set_memtune = lv_set_memtune,
        .get_vcpu_count = lv_get_vcpu_count,
        .get_vcpu_pins = lv_get_vcpu_pins,
        .set_vcpu_pin = lv_set_vcpu_pin,
        .get_emulator_pin = lv_get_emulator_pin,
        .set_emulator_pin = lv_set_emulator_pin,
        .get_partition = lv_get_partition,
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
