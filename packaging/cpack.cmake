# SPDX-License-Identifier: Apache-2.0
#
# Debian package: `cpack -G DEB` in a build directory (build the dbwarden target
# first; Release is what ships). Included from the top-level CMakeLists.txt after
# the agent, whose install(TARGETS dbwarden RUNTIME DESTINATION sbin) puts the
# binary in /usr/sbin. The BPF object is embedded in the binary (libbpf
# skeleton), so there is no separate object to install.
#
# Layout of the package:
#   /usr/sbin/dbwarden
#   /etc/dbwarden/dbwarden.conf         conffile (local edits survive upgrades)
#   /etc/dbwarden/policy.yaml           conffile: the default guardrails of enforce mode
#   /lib/systemd/system/dbwarden.service
#   /lib/systemd/system/dbwarden-enforce.service   enforce mode (installed, not enabled)
#   /usr/share/doc/dbwarden/dbwarden.conf.default   the shipped config, for diffing

set(_dbw_pkg_dir ${CMAKE_CURRENT_LIST_DIR})

# Absolute destinations: Debian keeps configuration in /etc and system units in
# /lib/systemd/system whatever the install prefix.
install(FILES ${_dbw_pkg_dir}/dbwarden.conf DESTINATION /etc/dbwarden
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${_dbw_pkg_dir}/dbwarden.service ${_dbw_pkg_dir}/dbwarden-enforce.service
        DESTINATION /lib/systemd/system
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${_dbw_pkg_dir}/policy.yaml DESTINATION /etc/dbwarden
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${_dbw_pkg_dir}/dbwarden.conf DESTINATION share/doc/dbwarden
        RENAME dbwarden.conf.default
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME dbwarden)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "dbwarden project")
set(CPACK_PACKAGE_CONTACT "dbwarden maintainers <maintainers@dbwarden.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "database activity monitor: eBPF audit trail of PostgreSQL and MySQL statements")
set(CPACK_PACKAGE_DESCRIPTION
    "dbwarden watches the PostgreSQL and MySQL/MariaDB servers on this host with eBPF,\n\
decodes their wire protocols and writes one tamper-evident audit record per SQL\n\
statement (JSON Lines, SHA-256 hash chain) together with Prometheus metrics.\n\
It needs no change to the database. The service runs from a hardened systemd\n\
unit; the kernel must provide BTF (/sys/kernel/btf/vmlinux).")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# The install prefix of a developer's `cmake --install` must not leak into the package.
set(CPACK_SET_DESTDIR OFF)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_PACKAGE_NAME dbwarden)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
# Shared-library dependencies come from dpkg-shlibdeps (versioned, and right for
# whatever the binary was linked with); on Debian 12 that is libbpf1,
# libboost-program-options1.74.0, libc6, libgcc-s1, libprometheus-cpp-core1.0,
# libprometheus-cpp-pull1.0, libssl3, libstdc++6 and libzstd1.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${_dbw_pkg_dir}/deb/conffiles
    ${_dbw_pkg_dir}/deb/postinst
    ${_dbw_pkg_dir}/deb/prerm
    ${_dbw_pkg_dir}/deb/postrm)
# Maintainer scripts 0755, conffiles 0644, whatever the checkout's modes are.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

include(CPack)
