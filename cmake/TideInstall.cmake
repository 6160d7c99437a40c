# What `make install` (cmake --install) puts where, and what the Debian package holds: one set of
# rules for both (cmake/TidePackage.cmake packs exactly this). Honours DESTDIR and
# CMAKE_INSTALL_PREFIX (default /usr/local; the package uses /usr).
#
#   PREFIX/sbin/tided, PREFIX/bin/tidectl
#   PREFIX/lib/tide/tide-agent (static, for guests) and tide-agent.service (a systemd guest's unit)
#   the tided.service unit: systemd's system unit directory for PREFIX /usr (pkg-config systemd),
#     else PREFIX/lib/systemd/system (/usr/local/lib/systemd/system is on systemd's search path)
#   PREFIX/share/man/man5, man8: tided.conf(5), tided(8), tidectl(8), tide-agent(8)
#   PREFIX/share/doc/tide: README and docs/*.md; PREFIX/share/tide: the Grafana dashboard and
#     Prometheus alert rules (data, not docs: Debian's minimal images drop /usr/share/doc)
#   /etc/tide/tided.conf: every key commented out at its default. tided reads /etc/tide/tided.conf
#     whatever the prefix (CONFIG_PATH_DEFAULT), so it goes there, not PREFIX/etc; `make install`
#     never overwrites an operator's file (it installs tided.conf.example beside it instead); the
#     package marks it a conffile, so dpkg asks.
# GNUInstallDirs is included at the top (docs/man needs CMAKE_INSTALL_MANDIR).

set(TIDE_CONFDIR "/etc/tide" CACHE PATH "Where the example tided.conf goes (tided reads /etc/tide/tided.conf)")
set(TIDE_LIBEXECDIR "${CMAKE_INSTALL_PREFIX}/lib/tide")
set(TIDE_FULL_SBINDIR "${CMAKE_INSTALL_FULL_SBINDIR}")

# Worked out again at every configure from the prefix (a cached default would keep the first
# prefix's: make test's /usr, then make install's /usr/local), unless given: -DTIDE_SYSTEMD_UNITDIR=.
if(NOT DEFINED CACHE{TIDE_SYSTEMD_UNITDIR})
  set(TIDE_SYSTEMD_UNITDIR "")
  if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    pkg_get_variable(TIDE_SYSTEMD_UNITDIR systemd systemdsystemunitdir)
  endif()
  if(NOT TIDE_SYSTEMD_UNITDIR)
    set(TIDE_SYSTEMD_UNITDIR "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
  endif()
endif()

# The unit names this build's tided.
configure_file(${PROJECT_SOURCE_DIR}/contrib/tided.service.in ${PROJECT_BINARY_DIR}/contrib/tided.service @ONLY)

install(TARGETS tided DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS tidectl DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS tide-agent DESTINATION ${TIDE_LIBEXECDIR})
install(FILES ${PROJECT_SOURCE_DIR}/guest-agent/tide-agent.service DESTINATION ${TIDE_LIBEXECDIR})
install(FILES ${PROJECT_BINARY_DIR}/contrib/tided.service DESTINATION ${TIDE_SYSTEMD_UNITDIR})

install(FILES README.md docs/ARCHITECTURE.md docs/POLICY.md docs/PROTOCOL.md docs/SIMULATOR.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES contrib/tided.conf DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES contrib/grafana/tide-dashboard.json DESTINATION ${CMAKE_INSTALL_DATADIR}/tide/grafana)
install(FILES contrib/prometheus/tide-alerts.yml DESTINATION ${CMAKE_INSTALL_DATADIR}/tide/prometheus)

# The example configuration, never over an operator's own. file(INSTALL) puts DESTDIR before an
# absolute destination itself; the check for an existing file must add it.
install(CODE "
  if(EXISTS \"\$ENV{DESTDIR}${TIDE_CONFDIR}/tided.conf\")
    message(STATUS \"Keeping: \$ENV{DESTDIR}${TIDE_CONFDIR}/tided.conf (the example goes beside it as tided.conf.example)\")
    file(INSTALL \"${PROJECT_SOURCE_DIR}/contrib/tided.conf\" DESTINATION \"${TIDE_CONFDIR}\"
         RENAME tided.conf.example PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  else()
    file(INSTALL \"${PROJECT_SOURCE_DIR}/contrib/tided.conf\" DESTINATION \"${TIDE_CONFDIR}\"
         PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
")
