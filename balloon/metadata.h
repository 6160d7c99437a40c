/* A VM's tide policy as libvirt domain metadata, in tide's own XML namespace (HV_METADATA_URI):
 *
 *   <metadata>
 *     <tide:policy xmlns:tide="urn:x-tide:policy:1" version="1">
 *       <tide:startup unit="KiB">1048576</tide:startup>
 *       <tide:minimum unit="KiB">524288</tide:minimum>
 *       <tide:maximum unit="KiB">4194304</tide:maximum>
 *       <tide:buffer>20</tide:buffer>
 *       <tide:weight>50</tide:weight>
 *       <tide:dynamic>yes</tide:dynamic>
 *       <tide:latency_sensitive>yes</tide:latency_sensitive>  (only when set: core parking
 *                                                                never packs this VM)
 *     </tide:policy>
 *   </metadata>
 *
 * Living in the domain's own XML, the policy survives tided restarts, travels with live
 * migration and is visible to `virsh metadata DOMAIN urn:x-tide:policy:1`. Anyone with libvirt
 * access can write it, so reading it is parsing untrusted input. */
#pragma once

#include <stddef.h>

#include "policy/policy.h"

/* Longest element metadata_format() writes, with the NUL. */
#define METADATA_XML_MAX 1024

/* Writes the <policy> element (as virDomainSetMetadata wants it: the element without the
 * <metadata> wrapper; libvirt adds the namespace declaration from the key/URI it is given).
 * Returns 0, or -ENOBUFS when len is too small. */
int metadata_format(const struct vm_policy *p, char *buf, size_t len);

/* Parses what virDomainGetMetadata returns for tide's namespace. Accepts units KiB, MiB, GiB
 * (the `unit` attribute, default KiB) so a person can write it by hand with virsh. Unknown
 * elements are errors (a typo must not silently become a default); missing buffer, weight,
 * dynamic, latency_sensitive take their defaults. The policy is validated (policy_validate). Returns 0 and fills
 * *ret, or -EINVAL with a message naming the element in err. Input above 64 KiB is refused. */
int metadata_parse(const char *xml, struct vm_policy *ret, char *err, size_t errlen);
