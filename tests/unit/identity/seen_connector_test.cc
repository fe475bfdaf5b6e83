// SPDX-License-Identifier: Apache-2.0
//
// When /proc has nothing (the client exited, its socket is gone), the resolver
// answers from what the connect hook saw, and only then.
#include <catch2/catch.hpp>

#include "../support/temp_dir.h"
#include "identity/identity.h"

namespace dbwarden::identity {
namespace {

// An inode no unix socket has (unix_diag: no such socket).
constexpr uint64_t kNoSuchSocket = 0xfffffff0;

TEST_CASE("identity: a gone client is named from the connect hook's view") {
  dbw_test::TempDir proc;  // an empty /proc: nothing can be found there
  Resolver::Options o;
  o.proc_root = proc.path;
  Resolver r(o);
  SeenConnector seen;
  seen.pid = 4321;
  seen.uid = 0;
  seen.login_uid = 0;
  seen.comm = "psql";

  auto p = r.unix_peer(kNoSuchSocket, &seen);
  REQUIRE(p);
  CHECK(p->pid == 4321);
  CHECK(p->comm == "psql");
  CHECK(p->uid == 0);
  CHECK(p->user_name == "root");
  REQUIRE(p->login_uid);
  CHECK(*p->login_uid == 0);
  CHECK(p->login_user == "root");
  CHECK(p->executable.empty());  // not seen by the hook: not made up
  CHECK(p->systemd_unit.empty());
  CHECK(r.stats().socket_not_found == 1);
  CHECK(r.stats().from_connector == 1);

  SeenConnector no_login = seen;
  no_login.login_uid.reset();
  auto q = r.unix_peer(kNoSuchSocket, &no_login);
  REQUIRE(q);
  CHECK(!q->login_uid);
  CHECK(q->login_user.empty());
}

TEST_CASE("identity: a gone client's unit and container come from the hook's cgroup names") {
  Resolver r;
  SeenConnector seen;
  seen.pid = 77;
  seen.comm = "psql";
  seen.cgroup = ".../system.slice/backup.service";
  auto p = r.unix_peer(kNoSuchSocket, &seen);
  REQUIRE(p);
  CHECK(p->systemd_unit == "backup.service");
  CHECK(p->cgroup == seen.cgroup);

  const std::string id(64, 'c');
  seen.cgroup = "/system.slice/docker-" + id + ".scope";
  p = r.unix_peer(kNoSuchSocket, &seen);
  REQUIRE(p);
  CHECK(p->container_id == id);
}

TEST_CASE("identity: without the connect hook's view a gone client stays unnamed") {
  Resolver r;
  CHECK(!r.unix_peer(kNoSuchSocket));
  CHECK(r.stats().from_connector == 0);
}

}  // namespace
}  // namespace dbwarden::identity
