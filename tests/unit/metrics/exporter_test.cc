// SPDX-License-Identifier: Apache-2.0
#include "metrics/exporter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <sstream>
#include <string>

#include "exposition.h"
#include "metrics/label_value.h"

namespace {

using dbwarden::ConnectionInfo;
using dbwarden::Statement;
using dbwarden::metrics::CaptureCounters;
using dbwarden::metrics::DecoderCounters;
using dbwarden::metrics::Exporter;

using dbw_metrics_test::count_series;
using dbw_metrics_test::make_exporter;
using dbw_metrics_test::value_of;

ConnectionInfo pg_connection(const std::string& user) {
  ConnectionInfo c;
  c.db_system = "postgresql";
  c.database = "shop";
  c.user = user;
  return c;
}

Statement statement(const ConnectionInfo* c, const std::string& op, uint64_t duration_ns,
                    const std::string& status = "00000") {
  Statement s;
  s.connection = c;
  s.start_ns = 1000;
  s.end_ns = 1000 + duration_ns;
  s.operation = op;
  s.status_code = status;
  return s;
}

// One HTTP/1.0 GET; returns the whole response.
std::string http_get(uint16_t port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  REQUIRE(write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size()));
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) response.append(buf, n);
  close(fd);
  return response;
}

// A listening socket on an ephemeral loopback port.
int listen_ephemeral(uint16_t* port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(listen(fd, 1) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  *port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

TEST_CASE("exporter: build info and zeroed counters exist from the start", "[metrics]") {
  const auto e = make_exporter();
  const std::string text = e->serialize();
  CHECK(value_of(text, R"(dbwarden_build_info{version="1.2.3-test"})") == 1);
  CHECK(value_of(text, "dbwarden_capture_events_total") == 0);
  CHECK(value_of(text, R"(dbwarden_capture_dropped_total{reason="conn_table_full"})") == 0);
  CHECK(value_of(text, R"(dbwarden_decoder_errors_total{kind="resync"})") == 0);
  CHECK(value_of(text, "dbwarden_audit_dropped_total") == 0);
  CHECK(text.find("# TYPE dbwarden_capture_events_total counter") != std::string::npos);
}

TEST_CASE("exporter: statements by labels, durations by db_system", "[metrics]") {
  const auto e = make_exporter();
  const ConnectionInfo alice = pg_connection("alice");
  const ConnectionInfo bob = pg_connection("bob");
  e->on_statement(statement(&alice, "SELECT", 30'000));        // 30 µs
  e->on_statement(statement(&alice, "SELECT", 2'000'000));     // 2 ms
  e->on_statement(statement(&bob, "INSERT", 20'000'000'000));  // 20 s: only +Inf
  e->on_statement(statement(&bob, "INSERT", 1'000, "23505"));
  const std::string text = e->serialize();
  CHECK(value_of(text, R"(dbwarden_statements_total{db_namespace="shop",db_system="postgresql",)"
                       R"(db_user="alice",operation="SELECT",status_code="00000"})") == 2);
  CHECK(value_of(text, R"(dbwarden_statements_total{db_namespace="shop",db_system="postgresql",)"
                       R"(db_user="bob",operation="INSERT",status_code="00000"})") == 1);
  CHECK(value_of(text, R"(dbwarden_statements_total{db_namespace="shop",db_system="postgresql",)"
                       R"(db_user="bob",operation="INSERT",status_code="23505"})") == 1);
  CHECK(count_series(text, "dbwarden_statements_total") == 3);
  const std::string h = "dbwarden_statement_duration_seconds";
  CHECK(value_of(text, h + R"(_count{db_system="postgresql"})") == 4);
  CHECK(value_of(text, h + R"(_sum{db_system="postgresql"})") == Approx(20.002031));
  CHECK(value_of(text, h + R"(_bucket{db_system="postgresql",le="5e-05"})") == 2);
  CHECK(value_of(text, h + R"(_bucket{db_system="postgresql",le="0.0025"})") == 3);
  CHECK(value_of(text, h + R"(_bucket{db_system="postgresql",le="10"})") == 3);
  CHECK(value_of(text, h + R"(_bucket{db_system="postgresql",le="+Inf"})") == 4);
}

TEST_CASE("exporter: a statement without connection is still counted", "[metrics]") {
  const auto e = make_exporter();
  e->on_statement(statement(nullptr, "", 5));
  CHECK(value_of(e->serialize(), R"(dbwarden_statements_total{db_namespace="",db_system="",)"
                                 R"(db_user="",operation="",status_code="00000"})") == 1);
}

TEST_CASE("exporter: label sets are bounded and overflow to __other__", "[metrics]") {
  const auto e = make_exporter();
  for (int i = 0; i < 1500; ++i) {
    const ConnectionInfo c = pg_connection("user" + std::to_string(i));
    e->on_statement(statement(&c, "SELECT", 1000));
  }
  const ConnectionInfo first = pg_connection("user0");
  e->on_statement(statement(&first, "SELECT", 1000));  // a known set keeps its own series
  const std::string text = e->serialize();
  CHECK(count_series(text, "dbwarden_statements_total") == 1001);
  CHECK(value_of(text, R"(dbwarden_statements_total{db_namespace="__other__",)"
                       R"(db_system="__other__",db_user="__other__",operation="__other__",)"
                       R"(status_code="__other__"})") == 500);
  CHECK(value_of(text, "dbwarden_metrics_label_overflow_total") == 500);
  CHECK(value_of(text, R"(dbwarden_statements_total{db_namespace="shop",db_system="postgresql",)"
                       R"(db_user="user0",operation="SELECT",status_code="00000"})") == 2);
}

TEST_CASE("exporter: hostile label values are made valid and short", "[metrics]") {
  using dbwarden::metrics::label_value;
  CHECK(label_value("alice") == "alice");
  CHECK(label_value("a\xff"
                    "b") ==
        "a\xEF\xBF\xBD"
        "b");
  CHECK(label_value("\xed\xa0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(label_value(std::string(500, 'x')) == std::string(128, 'x'));
  // Cut on a character boundary: 127 ASCII bytes then a 2-byte character.
  CHECK(label_value(std::string(127, 'x') + "\xc3\xa9") == std::string(127, 'x'));

  const auto e = make_exporter();
  const ConnectionInfo c = pg_connection("ev\"il\n\xff");
  e->on_statement(statement(&c, "SELECT", 1));
  CHECK(value_of(e->serialize(),
                 "dbwarden_statements_total{db_namespace=\"shop\","
                 "db_system=\"postgresql\",db_user=\"ev\\\"il\\n\xEF\xBF\xBD\","
                 "operation=\"SELECT\",status_code=\"00000\"}") == 1);
}

TEST_CASE("exporter: published totals become counter increments", "[metrics]") {
  const auto e = make_exporter();
  CaptureCounters cap;
  DecoderCounters dec;
  cap.events = 10;
  cap.bytes = 1000;
  cap.drops[0] = 1;
  cap.drops[3] = 4;
  cap.gaps = 2;
  cap.gap_bytes = 300;
  dec.messages = 50;
  dec.invalid_messages = 1;
  dec.resyncs = 2;
  dec.truncated_queries = 3;
  dec.encrypted_connections = 4;
  dec.midstream_joins = 5;
  e->publish(cap, dec);
  e->publish(cap, dec);  // same totals: nothing added
  cap.events = 25;
  dec.messages = 70;
  e->publish(cap, dec);
  std::string text = e->serialize();
  CHECK(value_of(text, "dbwarden_capture_events_total") == 25);
  CHECK(value_of(text, "dbwarden_capture_bytes_total") == 1000);
  CHECK(value_of(text, R"(dbwarden_capture_dropped_total{reason="ringbuf_full"})") == 1);
  CHECK(value_of(text, R"(dbwarden_capture_dropped_total{reason="truncated"})") == 0);
  CHECK(value_of(text, R"(dbwarden_capture_dropped_total{reason="read_failed"})") == 4);
  CHECK(value_of(text, "dbwarden_capture_gaps_total") == 2);
  CHECK(value_of(text, "dbwarden_capture_gap_bytes_total") == 300);
  CHECK(value_of(text, "dbwarden_decoder_messages_total") == 70);
  CHECK(value_of(text, R"(dbwarden_decoder_errors_total{kind="invalid_message"})") == 1);
  CHECK(value_of(text, R"(dbwarden_decoder_errors_total{kind="resync"})") == 2);
  CHECK(value_of(text, "dbwarden_decoder_truncated_queries_total") == 3);
  CHECK(value_of(text, "dbwarden_decoder_encrypted_connections_total") == 4);
  CHECK(value_of(text, "dbwarden_decoder_midstream_joins_total") == 5);

  cap.events = 5;  // the source restarted: its new total counts from zero
  e->publish(cap, dec);
  CHECK(value_of(e->serialize(), "dbwarden_capture_events_total") == 30);

  e->publish_audit(10, 2000, 1, 3);
  e->publish_audit(12, 2500, 1, 3);
  text = e->serialize();
  CHECK(value_of(text, "dbwarden_audit_records_total") == 12);
  CHECK(value_of(text, "dbwarden_audit_bytes_total") == 2500);
  CHECK(value_of(text, "dbwarden_audit_write_errors_total") == 1);
  CHECK(value_of(text, "dbwarden_audit_dropped_total") == 3);
}

TEST_CASE("exporter: decoder details and SQL analysis counters", "[metrics]") {
  const auto e = make_exporter();
  DecoderCounters dec;
  dec.unresolved_statements = 2;
  dec.cancel_requests = 1;
  dec.compressed_connections = 3;
  dec.tls_not_captured = 4;
  dec.parameters_cut = 5;
  dec.parameters_dropped = 6;
  e->publish(CaptureCounters{}, dec);
  dbwarden::metrics::SqlCounters sql;
  sql.cache_hits = 90;
  sql.cache_misses = 10;
  sql.parsed = 3;
  sql.parse_failures = 1;
  sql.parses_skipped = 6;
  sql.cache_entries = 10;
  e->publish_sql(sql);
  sql.cache_hits = 95;
  sql.cache_entries = 9;
  e->publish_sql(sql);
  const std::string text = e->serialize();
  CHECK(value_of(text, "dbwarden_decoder_unresolved_statements_total") == 2);
  CHECK(value_of(text, "dbwarden_decoder_cancel_requests_total") == 1);
  CHECK(value_of(text, "dbwarden_decoder_compressed_connections_total") == 3);
  CHECK(value_of(text, "dbwarden_decoder_tls_not_captured_total") == 4);
  CHECK(value_of(text, R"(dbwarden_decoder_parameters_bounded_total{outcome="cut"})") == 5);
  CHECK(value_of(text, R"(dbwarden_decoder_parameters_bounded_total{outcome="dropped"})") == 6);
  CHECK(value_of(text, R"(dbwarden_sql_analyses_total{result="cache_hit"})") == 95);
  CHECK(value_of(text, R"(dbwarden_sql_analyses_total{result="cache_miss"})") == 10);
  CHECK(value_of(text, R"(dbwarden_sql_parses_total{result="parsed"})") == 3);
  CHECK(value_of(text, R"(dbwarden_sql_parses_total{result="failed"})") == 1);
  CHECK(value_of(text, R"(dbwarden_sql_parses_total{result="skipped"})") == 6);
  CHECK(value_of(text, "dbwarden_sql_cache_entries") == 9);
}

TEST_CASE("exporter: local client identity sources count differences", "[metrics]") {
  const auto e = make_exporter();
  dbwarden::metrics::IdentityCounters c;
  c.from_proc = 7;
  c.from_connect_hook = 2;
  c.unresolved = 1;
  e->publish_identity(c);
  c.from_proc = 9;
  e->publish_identity(c);
  const std::string text = e->serialize();
  CHECK(value_of(text, R"(dbwarden_identity_local_clients_total{source="proc"})") == 9);
  CHECK(value_of(text, R"(dbwarden_identity_local_clients_total{source="connect_hook"})") == 2);
  CHECK(value_of(text, R"(dbwarden_identity_local_clients_total{source="unresolved"})") == 1);
}

TEST_CASE("exporter: active connections gauge", "[metrics]") {
  const auto e = make_exporter();
  e->set_active_connections("postgresql", 7);
  e->set_active_connections("mysql", 2);
  e->set_active_connections("postgresql", 5);
  const std::string text = e->serialize();
  CHECK(value_of(text, R"(dbwarden_connections_active{db_system="postgresql"})") == 5);
  CHECK(value_of(text, R"(dbwarden_connections_active{db_system="mysql"})") == 2);
}

TEST_CASE("exporter: serves /metrics over HTTP", "[metrics]") {
  uint16_t port = 0;
  const int holder = listen_ephemeral(&port);
  close(holder);  // free the port for the exporter (racy only against other binders)
  auto r = Exporter::Start("127.0.0.1:" + std::to_string(port), "9.9.9");
  REQUIRE(r.ok());
  const ConnectionInfo c = pg_connection("alice");
  r.value()->on_statement(statement(&c, "SELECT", 1));
  const std::string response = http_get(port, "/metrics");
  CHECK(response.compare(0, 12, "HTTP/1.1 200") == 0);
  CHECK(response.find(R"(dbwarden_build_info{version="9.9.9"} 1)") != std::string::npos);
  CHECK(response.find(R"(db_user="alice")") != std::string::npos);
}

TEST_CASE("exporter: a busy port is a clear error", "[metrics]") {
  uint16_t port = 0;
  const int holder = listen_ephemeral(&port);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  auto r = Exporter::Start(address, "x");
  close(holder);
  REQUIRE(!r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains(address));
}

TEST_CASE("metrics: masked values are counted by rule and detector", "[metrics][masking]") {
  auto exporter = make_exporter();
  const ConnectionInfo c = pg_connection("analyst");
  Statement s = statement(&c, "SELECT", 1000);
  s.masked_columns = 2;
  s.masked_values = 5;
  s.masked_by = {{"pii", "column", 3}, {"pii", "email", 2}};
  exporter->on_statement(s);
  s.masked_by = {{"pii", "email", 4}};
  exporter->on_statement(s);
  const std::string text = exporter->serialize();
  CHECK(value_of(text, R"(dbwarden_masked_values_total{detector="column",rule="pii"})") == 3);
  CHECK(value_of(text, R"(dbwarden_masked_values_total{detector="email",rule="pii"})") == 6);
  CHECK(count_series(text, "dbwarden_masked_values_total") == 2);
}
