// SPDX-License-Identifier: Apache-2.0
#include "agent/observer.h"

#include <arpa/inet.h>

#include <fstream>
#include <iterator>
#include <vector>

namespace dbwarden::agent {
namespace {

std::string format_address(const uint8_t* addr, uint8_t family) {
  char buf[INET6_ADDRSTRLEN] = {};
  int af = family == DBW_FAMILY_INET6 ? AF_INET6 : AF_INET;
  if (!inet_ntop(af, addr, buf, sizeof(buf))) return "";
  return buf;
}

std::string read_cmdline(uint32_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& c : s) {
    if (c == '\0') c = ' ';
  }
  return s;
}

}  // namespace

bool parse_backend_title(const std::string& title, std::string& user, std::string& database) {
  // ps_status.c: "postgres: [cluster_name: ]user database host activity".
  static constexpr std::string_view kPrefix = "postgres: ";
  if (title.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  std::string rest = title.substr(kPrefix.size());
  if (auto c = rest.find(": "); c != std::string::npos) rest = rest.substr(c + 2);
  auto sp1 = rest.find(' ');
  if (sp1 == std::string::npos || sp1 == 0) return false;
  auto sp2 = rest.find(' ', sp1 + 1);
  if (sp2 == std::string::npos || sp2 == sp1 + 1) return false;
  user = rest.substr(0, sp1);
  database = rest.substr(sp1 + 1, sp2 - sp1 - 1);
  return true;
}

// One client connection: identity, one reassembler per direction, a decoder.
struct Observer::Connection : StatementSink {
  // Adapts a reassembled direction to the decoder.
  struct Direction : stream::Consumer {
    Connection* conn = nullptr;
    pgsql::Direction dir{};
    void on_bytes(std::span<const uint8_t> b, uint64_t ts) override {
      conn->session->on_data(dir, b, ts);
    }
    void on_gap(uint64_t n, uint64_t ts) override {
      conn->had_gap = true;
      conn->session->on_gap(dir, n, ts);
    }
  };

  Connection(StatementSink& out, const pgsql::Limits& limits, const stream::Limits& slimits,
             stream::Counters& scounters, pgsql::Counters& pcounters)
      : downstream(out), ingress(slimits, scounters), egress(slimits, scounters) {
    to_server.conn = this;
    to_server.dir = pgsql::Direction::kFrontend;
    to_client.conn = this;
    to_client.dir = pgsql::Direction::kBackend;
    session = std::make_unique<pgsql::Session>(info, *this, limits, pcounters);
  }

  // Fills identity the startup message did not give us (capture joined late),
  // once per connection, then passes the statement on.
  void on_statement(const Statement& s) override {
    if (info.user.empty() && !title_checked && info.server_pid != 0) {
      title_checked = true;
      parse_backend_title(read_cmdline(info.server_pid), info.user, info.database);
    }
    if (had_gap && !s.capture_gap) {
      Statement copy = s;
      copy.capture_gap = true;
      downstream.on_statement(copy);
      return;
    }
    downstream.on_statement(s);
  }

  StatementSink& downstream;
  ConnectionInfo info;
  uint64_t sock_ino = 0;
  bool title_checked = false;
  bool had_gap = false;  // sticky: later statements may lack context (e.g. prepared text)
  stream::Reassembler ingress, egress;
  Direction to_server, to_client;
  std::unique_ptr<pgsql::Session> session;
};

Observer::Observer(StatementSink& sink, const pgsql::Limits& limits)
    : sink_(sink), limits_(limits) {}
Observer::~Observer() = default;

Observer::Connection& Observer::get_or_create(uint64_t conn_id, uint32_t pid) {
  auto it = conns_.find(conn_id);
  if (it != conns_.end()) return *it->second;
  auto conn = std::make_unique<Connection>(sink_, limits_, stream::Limits{}, stream_counters_,
                                           pgsql_counters_);
  conn->info.connection_id = conn_id;
  conn->info.db_system = "postgresql";
  conn->info.server_pid = pid;
  counters_.connections_opened++;
  return *conns_.emplace(conn_id, std::move(conn)).first->second;
}

void Observer::on_conn_open(const dbw_conn_event& e) {
  Connection& c = get_or_create(e.hdr.conn_id, e.hdr.pid);
  c.sock_ino = e.sock_ino;
  c.info.server_port = e.server_port;
  c.info.unix_socket = e.family == DBW_FAMILY_UNIX;
  if (!c.info.unix_socket) {
    c.info.client_address = format_address(e.client_addr, e.family);
    c.info.client_port = e.client_port;
  }
}

void Observer::on_data(const dbw_data_event& e) {
  auto it = conns_.find(e.hdr.conn_id);
  if (it == conns_.end()) counters_.unknown_connection_records++;
  Connection& c = it != conns_.end() ? *it->second : get_or_create(e.hdr.conn_id, e.hdr.pid);
  c.info.server_pid = e.hdr.pid;
  std::span<const uint8_t> bytes(e.data, e.captured);
  if (e.direction == DBW_DIR_INGRESS) {
    c.ingress.push(e.offset, bytes, e.length, e.hdr.ts_ns, c.to_server);
  } else {
    c.egress.push(e.offset, bytes, e.length, e.hdr.ts_ns, c.to_client);
  }
}

void Observer::close(uint64_t conn_id, uint64_t ts_ns) {
  auto it = conns_.find(conn_id);
  if (it == conns_.end()) return;
  Connection& c = *it->second;
  c.ingress.flush(c.to_server);
  c.egress.flush(c.to_client);
  c.session->on_close(ts_ns);
  counters_.connections_closed++;
  conns_.erase(it);
}

void Observer::on_conn_close(const dbw_conn_event& e) { close(e.hdr.conn_id, e.hdr.ts_ns); }

void Observer::on_proc_exit(const dbw_proc_event& e) {
  // The process's sockets closed without close(2): retire what it owned.
  std::vector<uint64_t> owned;
  for (const auto& [id, conn] : conns_) {
    if (conn->info.server_pid == e.hdr.pid) owned.push_back(id);
  }
  for (uint64_t id : owned) {
    if (capture_ && conns_[id]->sock_ino) capture_->forget_socket(conns_[id]->sock_ino);
    close(id, e.hdr.ts_ns);
  }
}

void Observer::close_all(uint64_t ts_ns) {
  std::vector<uint64_t> ids;
  for (const auto& [id, conn] : conns_) ids.push_back(id);
  for (uint64_t id : ids) close(id, ts_ns);
}

}  // namespace dbwarden::agent
