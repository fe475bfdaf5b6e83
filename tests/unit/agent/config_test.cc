// SPDX-License-Identifier: Apache-2.0
#include "agent/config.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "agent/observer.h"

namespace dbwarden::agent {
namespace {

Result<std::optional<Config>> parse(std::vector<const char*> args, std::string* printed = nullptr) {
  args.insert(args.begin(), "run");
  std::ostringstream out;
  auto r = parse_run_config(static_cast<int>(args.size()), args.data(), out);
  if (printed) *printed = out.str();
  return r;
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    char tmpl[] = "/tmp/dbw-config-XXXXXX";
    int fd = mkstemp(tmpl);
    REQUIRE(fd >= 0);
    close(fd);
    path = tmpl;
    std::ofstream(path) << text;
  }
  ~TempFile() { std::remove(path.c_str()); }
};

TEST_CASE("defaults without options", "[agent][config]") {
  auto r = parse({});
  REQUIRE(r.ok());
  REQUIRE(r.value().has_value());
  const Config& c = *r.value();
  CHECK(c.audit_file == "/var/log/dbwarden/audit.jsonl.zst");
  CHECK(c.audit_format == "zst");
  CHECK(c.metrics_address == "127.0.0.1:9977");
  CHECK(c.postgres_ports == std::vector<uint16_t>{5432});
  CHECK(c.max_query_bytes == 1u << 20);
}

TEST_CASE("audit-format: zst by default, jsonl on request, from the file too", "[agent][config]") {
  auto j = parse({"--audit-format", "jsonl"});
  REQUIRE(j.ok());
  CHECK(j.value()->audit_format == "jsonl");
  CHECK(j.value()->audit_file == "/var/log/dbwarden/audit.jsonl");  // the default follows
  auto named = parse({"--audit-format", "jsonl", "--audit-file", "/tmp/x.jsonl"});
  REQUIRE(named.ok());
  CHECK(named.value()->audit_file == "/tmp/x.jsonl");
  TempFile f("audit-format = jsonl\n");
  auto file = parse({"--config", f.path.c_str()});
  REQUIRE(file.ok());
  CHECK(file.value()->audit_format == "jsonl");
  CHECK_THAT(parse({"--audit-format", "gzip"}).status().message(),
             Catch::Contains("--audit-format must be zst or jsonl"));
}

TEST_CASE("the bulk-data bound: defaults, off, and bad values named", "[agent][config]") {
  auto d = parse({});
  REQUIRE(d.ok());
  CHECK(d.value()->bulk_head_bytes == 1024);
  CHECK(d.value()->bulk_tail_bytes == 1024);
  auto off = parse({"--bulk-head-bytes", "0", "--bulk-tail-bytes", "0"});
  REQUIRE(off.ok());
  CHECK(off.value()->bulk_tail_bytes == 0);
  TempFile f("bulk-head-bytes = 256\nbulk-tail-bytes = 512\n");
  auto file = parse({"--config", f.path.c_str()});
  REQUIRE(file.ok());
  CHECK(file.value()->bulk_head_bytes == 256);
  CHECK(file.value()->bulk_tail_bytes == 512);
  auto big = parse({"--bulk-head-bytes", "9000"});
  REQUIRE_FALSE(big.ok());
  CHECK_THAT(big.status().message(), Catch::Contains("--bulk-head-bytes"));
  auto short_tail = parse({"--bulk-tail-bytes", "10"});
  REQUIRE_FALSE(short_tail.ok());
  CHECK_THAT(short_tail.status().message(), Catch::Contains("--bulk-tail-bytes"));
  auto head_only = parse({"--bulk-tail-bytes", "0"});
  REQUIRE_FALSE(head_only.ok());
  CHECK_THAT(head_only.status().message(), Catch::Contains("both to 0"));
}

TEST_CASE("enforce-observer: on by default, off only in enforce mode, from the file too",
          "[agent][config]") {
  auto r = parse({"--mode", "enforce", "--policy", "/etc/dbwarden/policy.yaml"});
  REQUIRE(r.ok());
  CHECK(r.value()->enforce_observer == "on");
  r = parse({"--mode", "enforce", "--policy", "p.yaml", "--enforce-observer", "off"});
  REQUIRE(r.ok());
  CHECK(r.value()->enforce_observer == "off");
  TempFile f("mode = enforce\npolicy = p.yaml\nenforce-observer = off\n");
  r = parse({"--config", f.path.c_str()});
  REQUIRE(r.ok());
  CHECK(r.value()->enforce_observer == "off");
  r = parse({"--mode", "enforce", "--policy", "p.yaml", "--enforce-observer", "no"});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("--enforce-observer must be on or off") != std::string::npos);
  // Observe mode is the observer: it cannot be switched off there.
  r = parse({"--enforce-observer", "off"});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("needs --mode enforce") != std::string::npos);
}

TEST_CASE("options on the command line", "[agent][config]") {
  auto r = parse({"--audit-file", "/tmp/a.jsonl", "--metrics-address", "127.0.0.1:19000",
                  "--postgres-port", "5433", "--postgres-port", "6000", "--max-query-bytes",
                  "4096"});
  REQUIRE(r.ok());
  const Config& c = *r.value();
  CHECK(c.audit_file == "/tmp/a.jsonl");
  CHECK(c.metrics_address == "127.0.0.1:19000");
  CHECK(c.postgres_ports == std::vector<uint16_t>{5433, 6000});
  CHECK(c.max_query_bytes == 4096);
}

TEST_CASE("the config file takes the same keys, the command line wins", "[agent][config]") {
  TempFile f("# comment\naudit-file = /tmp/from-file.jsonl\npostgres-port = 7000\n"
             "postgres-port = 7001\nmetrics-address = 127.0.0.1:9100\n");
  auto r = parse({"--config", f.path.c_str(), "--metrics-address", "127.0.0.1:9200"});
  REQUIRE(r.ok());
  const Config& c = *r.value();
  CHECK(c.audit_file == "/tmp/from-file.jsonl");
  CHECK(c.postgres_ports == std::vector<uint16_t>{7000, 7001});
  CHECK(c.metrics_address == "127.0.0.1:9200");
}

TEST_CASE("MySQL ports are their own option and may stand alone", "[agent][config]") {
  auto r = parse({"--mysql-port", "3306", "--mysql-port", "3307"});
  REQUIRE(r.ok());
  CHECK(r.value()->mysql_ports == std::vector<uint16_t>{3306, 3307});
  CHECK(r.value()->postgres_ports == std::vector<uint16_t>{5432});
  CHECK_THAT(parse({"--postgres-port", "3306", "--mysql-port", "3306"}).status().message(),
             Catch::Contains("both"));
  CHECK_THAT(parse({"--mysql-port", "0"}).status().message(), Catch::Contains("mysql-port"));
}

TEST_CASE("bad input gives one clear error", "[agent][config]") {
  CHECK_THAT(parse({"--bogus"}).status().message(), Catch::Contains("bogus"));
  CHECK_THAT(parse({"--postgres-port", "70000"}).status().message(),
             Catch::Contains("postgres-port"));
  CHECK_THAT(parse({"--postgres-port", "abc"}).status().message(),
             Catch::Contains("postgres-port"));
  CHECK_THAT(parse({"--metrics-address", "nocolon"}).status().message(),
             Catch::Contains("HOST:PORT"));
  CHECK_THAT(parse({"--config", "/nonexistent/dbwarden.conf"}).status().message(),
             Catch::Contains("/nonexistent/dbwarden.conf"));
  CHECK_THAT(parse({"--ringbuf-bytes", "5000"}).status().message(),
             Catch::Contains("power of two"));
  CHECK_THAT(parse({"--log-level", "loud"}).status().message(), Catch::Contains("log-level"));
  CHECK_THAT(parse({"--audit-compress-level", "20"}).status().message(),
             Catch::Contains("audit-compress-level"));
  CHECK_THAT(parse({"--audit-compress-level", "-1"}).status().message(),
             Catch::Contains("audit-compress-level"));
  TempFile bad("no-such-key = 1\n");
  CHECK_FALSE(parse({"--config", bad.path.c_str()}).ok());
}

TEST_CASE("--help and --version print and ask to exit", "[agent][config]") {
  std::string printed;
  auto r = parse({"--help"}, &printed);
  REQUIRE(r.ok());
  CHECK_FALSE(r.value().has_value());
  CHECK_THAT(printed, Catch::Contains("--postgres-port"));
  r = parse({"--version"}, &printed);
  REQUIRE(r.ok());
  CHECK_THAT(printed, Catch::StartsWith("dbwarden "));
}

TEST_CASE("backend process titles give user and database", "[agent][identity]") {
  std::string user, db;
  REQUIRE(parse_backend_title("postgres: alice shop 127.0.0.1(50312) idle", user, db));
  CHECK(user == "alice");
  CHECK(db == "shop");
  REQUIRE(parse_backend_title("postgres: 15/main: bob postgres [local] SELECT", user, db));
  CHECK(user == "bob");
  CHECK(db == "postgres");
  CHECK_FALSE(parse_backend_title("postgres: checkpointer ", user, db));
  CHECK_FALSE(parse_backend_title("/usr/lib/postgresql/15/bin/postgres -D x", user, db));
}

}  // namespace
}  // namespace dbwarden::agent

namespace dbwarden::agent {
namespace {

TEST_CASE("the shipped default config parses and matches the built-in defaults",
          "[agent][config]") {
  const std::string path = std::string(DBW_TEST_DATA_DIR) + "/../../packaging/dbwarden.conf";
  auto r = parse({"--config", path.c_str()});
  REQUIRE(r.ok());
  const Config& c = *r.value();
  const Config defaults;
  CHECK(c.audit_file == defaults.audit_file);
  CHECK(c.metrics_address == defaults.metrics_address);
  CHECK(c.postgres_ports == defaults.postgres_ports);
  CHECK(c.max_query_bytes == defaults.max_query_bytes);
  CHECK(c.ringbuf_bytes == defaults.ringbuf_bytes);
  CHECK(c.audit_rotate_bytes == defaults.audit_rotate_bytes);
  CHECK(c.audit_checkpoint_records == defaults.audit_checkpoint_records);
  CHECK(c.audit_compress_level == defaults.audit_compress_level);
  CHECK(c.audit_fsync_interval_ms == defaults.audit_fsync_interval_ms);
}

TEST_CASE("the audit fsync interval: 200 ms by default, 0 leaves it to the kernel",
          "[agent][config]") {
  auto d = parse({"--postgres-port", "5432"});
  REQUIRE(d.ok());
  CHECK(d.value()->audit_fsync_interval_ms == 200);
  auto off = parse({"--audit-fsync-interval-ms", "0"});
  REQUIRE(off.ok());
  CHECK(off.value()->audit_fsync_interval_ms == 0);
  CHECK(!parse({"--audit-fsync-interval-ms", "soon"}).ok());
}

TEST_CASE("the approvals webhook: an http(s) URL, a secret file only with it",
          "[agent][config][approvals]") {
  auto none = parse({});
  REQUIRE(none.ok());
  CHECK(none.value()->approvals_webhook_url.empty());
  TempFile conf(
      "approvals-webhook-url = https://hooks.example.net/services/T0/B0/x\n"
      "approvals-webhook-secret-file = /etc/dbwarden/webhook.key\n");
  auto r = parse({"--config", conf.path.c_str()});
  REQUIRE(r.ok());
  CHECK(r.value()->approvals_webhook_url == "https://hooks.example.net/services/T0/B0/x");
  CHECK(r.value()->approvals_webhook_secret_file == "/etc/dbwarden/webhook.key");
  auto ftp = parse({"--approvals-webhook-url", "ftp://example.net/x"});
  REQUIRE_FALSE(ftp.ok());
  CHECK(ftp.status().message().find("http:// or https://") != std::string::npos);
  auto alone = parse({"--approvals-webhook-secret-file", "/etc/dbwarden/webhook.key"});
  REQUIRE_FALSE(alone.ok());
  CHECK(alone.status().message().find("needs --approvals-webhook-url") != std::string::npos);
}

TEST_CASE("the blast radius's own role: off by default, enforce mode only, names checked",
          "[agent][config][approvals]") {
  auto none = parse({});
  REQUIRE(none.ok());
  CHECK(none.value()->approvals_blast_radius_postgres_role.empty());
  CHECK(none.value()->approvals_blast_radius_mysql_user.empty());
  TempFile conf(
      "mode = enforce\n"
      "policy = /etc/dbwarden/policy.yaml\n"
      "approvals-blast-radius-postgres-role = dbwarden_explain\n"
      "approvals-blast-radius-mysql-user = dbwarden-explain\n");
  auto r = parse({"--config", conf.path.c_str()});
  REQUIRE(r.ok());
  CHECK(r.value()->approvals_blast_radius_postgres_role == "dbwarden_explain");
  CHECK(r.value()->approvals_blast_radius_mysql_user == "dbwarden-explain");
  // The command line wins over the file, as for every key.
  auto over =
      parse({"--config", conf.path.c_str(), "--approvals-blast-radius-postgres-role", "reader"});
  REQUIRE(over.ok());
  CHECK(over.value()->approvals_blast_radius_postgres_role == "reader");
  auto observe = parse({"--approvals-blast-radius-postgres-role", "dbwarden_explain"});
  REQUIRE_FALSE(observe.ok());
  CHECK(observe.status().message() ==
        "--approvals-blast-radius-postgres-role needs --mode enforce (the blast radius is "
        "estimated for statements the proxy holds)");
  auto quoted = parse({"--mode", "enforce", "--policy", "p.yaml",
                       "--approvals-blast-radius-postgres-role", "x\"; DROP"});
  REQUIRE_FALSE(quoted.ok());
  CHECK(quoted.status().message().find("must be 1-63 letters, digits") != std::string::npos);
  auto long_user = parse({"--mode", "enforce", "--policy", "p.yaml",
                          "--approvals-blast-radius-mysql-user", std::string(33, 'u').c_str()});
  REQUIRE_FALSE(long_user.ok());
  CHECK(long_user.status().message().find("--approvals-blast-radius-mysql-user must be 1-32") !=
        std::string::npos);
}

}  // namespace
}  // namespace dbwarden::agent
