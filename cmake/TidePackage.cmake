# The Debian package (`make deb`): CPack's DEB generator over exactly what `make install` puts in
# place (cmake/TideInstall.cmake), from a tree configured with CMAKE_INSTALL_PREFIX=/usr.
#   - Depends: computed from the binaries' shared libraries (dpkg-shlibdeps), plus
#     init-system-helpers for the maintainer scripts and libvirt-daemon-system recommended (tided
#     talks to libvirtd; a host may run the modular daemons or a remote one instead).
#   - /etc/tide/tided.conf is a conffile: an operator's edits survive upgrades, dpkg asks.
#   - packaging/debian/postinst, prerm, postrm enable and start tided.service the Debian way
#     (deb-systemd-helper, deb-systemd-invoke), restart it on upgrade, stop it on removal and
#     forget it on purge.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tide)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "tide developers <tide@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "dynamic memory, smart paging and core parking for libvirt/KVM hosts")
# CPack writes the summary as the Description's first line and this, each line indented, below.
set(CPACK_PACKAGE_DESCRIPTION "tided moves each VM's memory between its minimum and maximum at its
demand plus a buffer (virtio-balloon and virtio-mem), shares a short host by
weight, lets a VM that restarts on a host short of its startup memory boot
anyway (Smart Paging), and packs idle VMs' vCPUs onto fewer cores so the rest
reach deep idle (core parking). tidectl sets policies, shows stats and plans,
and simulates boot storms and real traces against other hypervisors' rules.
The static tide-agent for guests is in /usr/lib/tide.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# procps: the unit's ExecReload is /bin/kill.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "init-system-helpers (>= 1.54~), procps")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libvirt-daemon-system")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
    ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# The unit (/lib/systemd/system) and the configuration (/etc) are absolute destinations.
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
include(CPack)
