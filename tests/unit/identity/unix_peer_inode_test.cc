// SPDX-License-Identifier: Apache-2.0
//
// A unix client whose socket inode the capture already read is named from
// /proc alone: unix_diag is not asked (it could not even answer here, the
// server inode is made up).
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "../support/temp_dir.h"
#include "identity/identity.h"

namespace dbwarden::identity {
namespace {

namespace fs = std::filesystem;

// An inode no unix socket has (unix_diag: no such socket).
constexpr uint64_t kNoSuchSocket = 0xfffffff0;

void write_file(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

// <root>/<pid>: status with its uid, comm, and fd 3 holding socket `inode`.
void make_process(const std::string& root, uint32_t pid, uint32_t uid, const std::string& comm,
                  uint64_t inode) {
  fs::path dir = fs::path(root) / std::to_string(pid);
  fs::create_directories(dir / "fd");
  const std::string id = std::to_string(uid);
  write_file(dir / "status",
             "Name:\t" + comm + "\nUid:\t" + id + "\t" + id + "\t" + id + "\t" + id + "\n");
  write_file(dir / "comm", comm + "\n");
  fs::create_symlink("socket:[" + std::to_string(inode) + "]", dir / "fd" / "3");
}

TEST_CASE("identity: a unix peer inode from the capture needs no unix_diag") {
  dbw_test::TempDir proc;
  make_process(proc.path, 4242, 0, "psql", 90001);
  Resolver::Options o;
  o.proc_root = proc.path;
  Resolver r(o);

  auto p = r.unix_peer(kNoSuchSocket, nullptr, 90001);
  REQUIRE(p);
  CHECK(p->pid == 4242);
  CHECK(p->comm == "psql");
  CHECK(p->user_name == "root");
  CHECK(r.stats().peer_inode_given == 1);
  CHECK(r.stats().socket_not_found == 0);  // unix_diag was not asked

  // A peer inode nobody holds: unnamed, not someone else.
  CHECK(!r.unix_peer(kNoSuchSocket, nullptr, 90002));
  CHECK(r.stats().owner_not_found == 1);

  // Without it, unix_diag decides, and it knows no such server socket.
  CHECK(!r.unix_peer(kNoSuchSocket));
  CHECK(r.stats().socket_not_found == 1);
}

}  // namespace
}  // namespace dbwarden::identity
