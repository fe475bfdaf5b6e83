// SPDX-License-Identifier: Apache-2.0
//
// cgroup path shapes seen on real hosts (systemd, docker, containerd, cri-o,
// podman, kubelet with either cgroup driver) -> systemd unit and container id.
#include <catch2/catch.hpp>

#include "identity/identity.h"

namespace dbwarden::identity {
namespace {

const std::string kId = "3f1c2b9e0d8a7f6e5d4c3b2a19081726354433221100ffeeddccbbaa99887766";
const std::string kId2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST_CASE("identity: systemd unit of service and session cgroups") {
  CHECK(systemd_unit_from_cgroup("/system.slice/ssh.service") == "ssh.service");
  CHECK(systemd_unit_from_cgroup("/system.slice/postgresql@15-main.service") ==
        "postgresql@15-main.service");
  CHECK(systemd_unit_from_cgroup("/system.slice/system-getty.slice/getty@tty1.service") ==
        "getty@tty1.service");
  CHECK(systemd_unit_from_cgroup("/user.slice/user-1000.slice/session-3.scope") ==
        "session-3.scope");
  CHECK(systemd_unit_from_cgroup("/system.slice/run-r1234abcd.scope") == "run-r1234abcd.scope");
  CHECK(systemd_unit_from_cgroup("/system.slice/run-u42.service") == "run-u42.service");
  // User manager: the innermost unit is the user's own.
  CHECK(systemd_unit_from_cgroup("/user.slice/user-1000.slice/user@1000.service/app.slice/"
                                 "app-org.gnome.Terminal.slice/vte-spawn-1.scope") ==
        "vte-spawn-1.scope");
  CHECK(systemd_unit_from_cgroup("/user.slice/user-1000.slice/user@1000.service/init.scope") ==
        "init.scope");
  // Delegated sub-cgroups below a service belong to the service.
  CHECK(systemd_unit_from_cgroup("/system.slice/containerd.service/sub/leaf") ==
        "containerd.service");
  CHECK(systemd_unit_from_cgroup("/system.slice/ssh.service/") == "ssh.service");
  CHECK(systemd_unit_from_cgroup("/init.scope") == "init.scope");
}

TEST_CASE("identity: no systemd unit") {
  CHECK(systemd_unit_from_cgroup("/") == "");
  CHECK(systemd_unit_from_cgroup("") == "");
  CHECK(systemd_unit_from_cgroup("/user.slice") == "");
  CHECK(systemd_unit_from_cgroup("/docker/" + kId) == "");
  CHECK(systemd_unit_from_cgroup("/kubepods/besteffort/pod1234/" + kId) == "");
  CHECK(systemd_unit_from_cgroup("/my.scopes/x.services") == "");
  CHECK(systemd_unit_from_cgroup("/dbwarden-test") == "");
}

TEST_CASE("identity: container ids, systemd cgroup driver") {
  CHECK(container_id_from_cgroup("/system.slice/docker-" + kId + ".scope") == kId);
  CHECK(systemd_unit_from_cgroup("/system.slice/docker-" + kId + ".scope") ==
        "docker-" + kId + ".scope");
  CHECK(
      container_id_from_cgroup("/kubepods.slice/kubepods-besteffort.slice/"
                               "kubepods-besteffort-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/"
                               "cri-containerd-" +
                               kId + ".scope") == kId);
  CHECK(container_id_from_cgroup("/kubepods.slice/kubepods-burstable.slice/"
                                 "kubepods-burstable-podaa.slice/crio-" +
                                 kId + ".scope") == kId);
  CHECK(container_id_from_cgroup("/machine.slice/libpod-" + kId + ".scope") == kId);
  // podman puts the payload one level down.
  CHECK(container_id_from_cgroup("/machine.slice/libpod-" + kId + ".scope/container") == kId);
  // rootless podman/docker under the user manager.
  CHECK(container_id_from_cgroup("/user.slice/user-1000.slice/user@1000.service/user.slice/"
                                 "libpod-" +
                                 kId + ".scope") == kId);
  CHECK(container_id_from_cgroup("/user.slice/user-1000.slice/user@1000.service/user.slice/"
                                 "docker-" +
                                 kId + ".scope") == kId);
  // containerd's "slice:prefix:id" cgroupsPath form.
  CHECK(container_id_from_cgroup("/kubepods-besteffort-pod12.slice:cri-containerd:" + kId) == kId);
}

TEST_CASE("identity: container ids, cgroupfs driver") {
  CHECK(container_id_from_cgroup("/docker/" + kId) == kId);
  CHECK(container_id_from_cgroup("/kubepods/besteffort/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/" +
                                 kId) == kId);
  CHECK(container_id_from_cgroup("/kubepods/burstable/podx/" + kId + "/") == kId);
  // Nested: the innermost container wins.
  CHECK(container_id_from_cgroup("/docker/" + kId2 + "/docker/" + kId) == kId);
}

TEST_CASE("identity: not container ids") {
  CHECK(container_id_from_cgroup("/") == "");
  CHECK(container_id_from_cgroup("/system.slice/ssh.service") == "");
  CHECK(container_id_from_cgroup("/system.slice/docker.service") == "");
  CHECK(container_id_from_cgroup("/user.slice/user-1000.slice/session-3.scope") == "");
  // conmon monitors the container from outside it.
  CHECK(container_id_from_cgroup("/machine.slice/libpod-conmon-" + kId + ".scope") == "");
  CHECK(container_id_from_cgroup("/kubepods.slice/crio-conmon-" + kId + ".scope") == "");
  // 63 and 65 hex digits, upper case: not ids.
  CHECK(container_id_from_cgroup("/docker/" + kId.substr(1)) == "");
  CHECK(container_id_from_cgroup("/docker/" + kId + "0") == "");
  std::string upper = kId;
  for (auto& c : upper) c = static_cast<char>(toupper(c));
  CHECK(container_id_from_cgroup("/docker/" + upper) == "");
  CHECK(container_id_from_cgroup("/docker-" + kId.substr(0, 32) + ".scope") == "");
}

TEST_CASE("identity: /proc/<pid>/cgroup picks the v2 line, else name=systemd") {
  // Hybrid host: v1 controllers plus the unified hierarchy.
  CHECK(cgroup_path_from_proc_file("12:pids:/system.slice/ssh.service\n"
                                   "1:name=systemd:/system.slice/ssh.service\n"
                                   "0::/system.slice/ssh.service\n") ==
        "/system.slice/ssh.service");
  // Pure v2.
  CHECK(cgroup_path_from_proc_file("0::/user.slice/user-1000.slice/session-3.scope\n") ==
        "/user.slice/user-1000.slice/session-3.scope");
  // Legacy v1 only.
  CHECK(cgroup_path_from_proc_file("4:memory:/docker/abc\n1:name=systemd:/docker/abc\n") ==
        "/docker/abc");
  // A path containing ':' is kept whole.
  CHECK(cgroup_path_from_proc_file("0::/kubepods-x.slice:cri-containerd:ab\n") ==
        "/kubepods-x.slice:cri-containerd:ab");
  CHECK(cgroup_path_from_proc_file("") == "");
  CHECK(cgroup_path_from_proc_file("garbage\n::\n5:cpu:/x\n") == "");
}

TEST_CASE("identity: status uid and loginuid") {
  CHECK(effective_uid_from_status("Name:\tpsql\nUid:\t1000\t26\t26\t26\nGid:\t0\t0\t0\t0\n") ==
        26u);
  CHECK(effective_uid_from_status("Name:\tx\n") == std::nullopt);
  CHECK(effective_uid_from_status("Uid:\t1000\n") == std::nullopt);
  CHECK(effective_uid_from_status("Uid:\t1000\tx\t0\t0\n") == std::nullopt);
  CHECK(login_uid_from_file("1000") == 1000u);
  CHECK(login_uid_from_file("0\n") == 0u);
  CHECK(login_uid_from_file("4294967295") == std::nullopt);
  CHECK(login_uid_from_file("") == std::nullopt);
  CHECK(login_uid_from_file("-1") == std::nullopt);
  CHECK(login_uid_from_file("99999999999") == std::nullopt);
}

}  // namespace
}  // namespace dbwarden::identity
