// SPDX-License-Identifier: Apache-2.0
#include "agent/observer.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "capture/local_client_key.h"
#include "common/read_file.h"

namespace dbwarden::agent {
namespace {

std::string format_address(const uint8_t* addr, uint8_t family) {
  char buf[INET6_ADDRSTRLEN] = {};
  int af = family == DBW_FAMILY_INET6 ? AF_INET6 : AF_INET;
  if (!inet_ntop(af, addr, buf, sizeof(buf))) return "";
  return buf;
}

std::string read_cmdline(uint32_t pid) {
  std::string s = read_whole_file("/proc/" + std::to_string(pid) + "/cmdline");
  for (char& c : s) {
    if (c == '\0') c = ' ';
  }
  return s;
}

// A MySQL-protocol server process that is MariaDB by its executable's name
// (mariadbd, or mysqld linked to it names itself mariadbd in /proc). Used
// only until the connection's greeting says (a connection found already open
// never shows one).
bool is_mariadb_process(uint32_t pid) {
  char target[256];
  const std::string link = "/proc/" + std::to_string(pid) + "/exe";
  const ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
  if (n <= 0) return false;
  const std::string_view exe(target, static_cast<size_t>(n));
  const std::string_view base = exe.substr(exe.rfind('/') + 1);
  return base.find("mariadb") != std::string_view::npos;
}

}  // namespace

identity::SeenConnector seen_connector(const dbw_client_info& info) {
  identity::SeenConnector s;
  s.pid = info.tgid;
  s.uid = info.uid;
  if (info.loginuid != UINT32_MAX) s.login_uid = info.loginuid;
  s.comm.assign(info.comm, strnlen(info.comm, sizeof(info.comm)));
  s.cgroup = capture::cgroup_path(info);
  return s;
}

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

// The two decoders behind one face: bytes towards the server, bytes towards
// the client, gaps, close.
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void on_data(bool to_server, std::span<const uint8_t> b, uint64_t ts) = 0;
  virtual void on_gap(bool to_server, uint64_t n, uint64_t ts) = 0;
  // Bytes left out on purpose (the bulk-data bound): the PostgreSQL decoder
  // resynchronises on the tail; any other decoder takes them as a gap.
  virtual void on_skip(bool to_server, uint64_t n, uint64_t ts) { on_gap(to_server, n, ts); }
  virtual void on_close(uint64_t ts) = 0;
};

template <typename Session, typename Direction, Direction kToServer, Direction kToClient>
class DecoderFor : public Decoder {
 public:
  template <typename Limits, typename Counters>
  DecoderFor(ConnectionInfo& info, StatementSink& sink, const Limits& limits, Counters& counters)
      : session_(info, sink, limits, counters) {}
  void on_data(bool to_server, std::span<const uint8_t> b, uint64_t ts) override {
    session_.on_data(to_server ? kToServer : kToClient, b, ts);
  }
  void on_gap(bool to_server, uint64_t n, uint64_t ts) override {
    session_.on_gap(to_server ? kToServer : kToClient, n, ts);
  }
  void on_skip(bool to_server, uint64_t n, uint64_t ts) override {
    if constexpr (requires(Session& s) { s.on_skip(kToServer, n, ts); }) {
      session_.on_skip(to_server ? kToServer : kToClient, n, ts);
    } else {
      session_.on_gap(to_server ? kToServer : kToClient, n, ts);
    }
  }
  void on_close(uint64_t ts) override { session_.on_close(ts); }

 private:
  Session session_;
};

using PgsqlDecoder = DecoderFor<pgsql::Session, pgsql::Direction, pgsql::Direction::kFrontend,
                                pgsql::Direction::kBackend>;
using MysqlDecoder = DecoderFor<mysql::Session, mysql::Direction, mysql::Direction::kClient,
                                mysql::Direction::kServer>;

// One client connection: identity, one reassembler per direction, a decoder.
struct Observer::Connection : StatementSink {
  // Adapts a reassembled direction to the decoder.
  struct Direction : stream::Consumer {
    Connection* conn = nullptr;
    bool to_server = false;
    void on_bytes(std::span<const uint8_t> b, uint64_t ts) override {
      conn->decoder->on_data(to_server, b, ts);
    }
    void on_gap(uint64_t n, uint64_t ts) override {
      conn->had_gap = true;
      conn->decoder->on_gap(to_server, n, ts);
    }
    // Not a loss: no sticky had_gap. The decoder marks what it cannot recover.
    void on_skip(uint64_t n, uint64_t ts) override { conn->decoder->on_skip(to_server, n, ts); }
  };

  Connection(Protocol proto, StatementSink& out, const stream::Limits& slimits,
             stream::Counters& scounters)
      : protocol(proto), downstream(out), ingress(slimits, scounters), egress(slimits, scounters) {
    to_server.conn = this;
    to_server.to_server = true;
    to_client.conn = this;
    to_client.to_server = false;
    info.db_system = proto == Protocol::kMysql ? "mysql" : "postgresql";
  }

  // Fills identity the startup message did not give us (capture joined late),
  // once per connection, then passes the statement on.
  void on_statement(const Statement& s) override {
    if (proxied) return;
    if (protocol == Protocol::kPostgresql && info.user.empty() && !title_checked &&
        !client_side && info.server_pid != 0) {
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

  Protocol protocol;
  StatementSink& downstream;
  ConnectionInfo info;
  uint64_t sock_ino = 0;
  // The process whose syscalls feed this connection: the backend on the server
  // side, the local client on the client side (the server is on another host).
  uint32_t owner_pid = 0;
  bool client_side = false;
  bool title_checked = false;
  bool had_gap = false;  // sticky: later statements may lack context (e.g. prepared text)
  bool proxied = false;  // the enforcement proxy's upstream: the proxy records it
  stream::Reassembler ingress, egress;
  Direction to_server, to_client;
  std::unique_ptr<Decoder> decoder;
};

Observer::Observer(StatementSink& sink, const DecoderLimits& limits,
                   std::vector<uint16_t> mysql_ports, identity::Resolver* resolver)
    : sink_(sink), limits_(limits), mysql_ports_(std::move(mysql_ports)), resolver_(resolver) {}
Observer::~Observer() = default;

Protocol Observer::protocol_of(uint16_t server_port) const {
  return std::find(mysql_ports_.begin(), mysql_ports_.end(), server_port) != mysql_ports_.end()
             ? Protocol::kMysql
             : Protocol::kPostgresql;
}

size_t Observer::active_connections(Protocol protocol) const {
  size_t n = 0;
  for (const auto& [id, conn] : conns_) n += conn->protocol == protocol;
  return n;
}

size_t Observer::active_connections(std::string_view db_system) const {
  size_t n = 0;
  for (const auto& [id, conn] : conns_) n += conn->info.db_system == db_system;
  return n;
}

Observer::Connection& Observer::get_or_create(uint64_t conn_id, uint32_t pid,
                                              uint16_t server_port) {
  auto it = conns_.find(conn_id);
  if (it != conns_.end()) return *it->second;
  Protocol proto = protocol_of(server_port);
  auto conn = std::make_unique<Connection>(proto, sink_, stream::Limits{}, stream_counters_);
  conn->info.connection_id = conn_id;
  conn->info.server_pid = pid;
  conn->owner_pid = pid;
  conn->info.server_port = server_port;
  if (proto == Protocol::kMysql) {
    conn->decoder = std::make_unique<MysqlDecoder>(conn->info, *conn, limits_.mysql,
                                                   mysql_counters_);
  } else {
    conn->decoder = std::make_unique<PgsqlDecoder>(conn->info, *conn, limits_.pgsql,
                                                   pgsql_counters_);
  }
  counters_.connections_opened++;
  return *conns_.emplace(conn_id, std::move(conn)).first->second;
}

void Observer::on_conn_open(const dbw_conn_event& e) {
  Connection& c = get_or_create(e.hdr.conn_id, e.hdr.pid, e.server_port);
  c.sock_ino = e.sock_ino;
  c.client_side = e.side == DBW_SIDE_CLIENT;
  // Client side: the server process is on another host; process.pid stays unset.
  if (c.client_side) c.info.server_pid = 0;
  // Server side, live capture only (a replayed recording's pids are not this
  // host's): MariaDB by the server's executable, until a greeting says.
  if (c.protocol == Protocol::kMysql && !c.client_side && capture_ != nullptr &&
      is_mariadb_process(e.hdr.pid)) {
    c.info.db_system = "mariadb";
  }
  c.info.server_port = e.server_port;
  c.info.unix_socket = e.family == DBW_FAMILY_UNIX;
  if (!c.info.unix_socket) {
    c.info.client_address = format_address(e.client_addr, e.family);
    c.info.client_port = e.client_port;
  }
  resolve_peer(c, e);
}

// A client on this host (unix socket, or TCP from one of our own addresses):
// name its process once, now, while it is most likely still there.
void Observer::resolve_peer(Connection& c, const dbw_conn_event& e) {
  if (!resolver_) return;
  // Who connected, as the kernel saw it (capture/local_client_key.h).
  std::optional<identity::SeenConnector> seen;
  if (capture_ != nullptr) {
    if (auto key = capture::local_client_key(e)) {
      if (auto info = capture_->local_client(*key)) seen = seen_connector(*info);
    }
  }
  const identity::SeenConnector* hint = seen ? &*seen : nullptr;
  std::optional<identity::PeerProcess> peer;
  if (c.client_side) {
    // Captured in the client itself: the peer process is the one that connected.
    peer = resolver_->describe(e.hdr.pid);
  } else if (c.info.unix_socket) {
    // peer_ino: the client socket, read at accept (0 for a connection found
    // already open, or from an older recording: unix_diag finds it then).
    peer = resolver_->unix_peer(e.sock_ino, hint, e.peer_ino);
  } else {
    std::string server_address = format_address(e.server_addr, e.family);
    bool local = c.info.client_address == server_address ||
                 c.info.client_address.rfind("127.", 0) == 0 || c.info.client_address == "::1" ||
                 c.info.client_address.rfind("::ffff:127.", 0) == 0;
    if (!local) return;  // a remote peer: its address and port are the identity
    peer = resolver_->tcp_peer(c.info.client_address, c.info.client_port, server_address,
                               c.info.server_port, hint);
  }
  if (!peer) {
    counters_.peers_unresolved++;
    return;
  }
  counters_.peers_resolved++;
  if (proxy_pid_ != 0 && peer->pid == proxy_pid_) {
    c.proxied = true;
    counters_.proxied_connections++;
    // The kernel stops copying it: every proxied statement would otherwise cross the ring
    // (and the decoder) a second time only to be dropped here.
    if (capture_ != nullptr && c.sock_ino != 0 && capture_->mute_socket(c.sock_ino)) {
      counters_.proxied_muted++;
    }
  }
  PeerIdentity& p = c.info.peer;
  p.pid = peer->pid;
  p.uid = peer->uid;
  p.user_name = peer->user_name;
  p.login_uid = peer->login_uid;
  p.login_user = peer->login_user;
  p.command = peer->comm;
  p.executable = peer->executable;
  p.systemd_unit = peer->systemd_unit;
  p.container_id = peer->container_id;
}

void Observer::on_data(const dbw_data_event& e) {
  auto it = conns_.find(e.hdr.conn_id);
  if (it == conns_.end()) counters_.unknown_connection_records++;
  // A connection whose open record was lost: its port, and so its protocol,
  // is unknown; PostgreSQL is the default until the open record says more.
  Connection& c = it != conns_.end() ? *it->second : get_or_create(e.hdr.conn_id, e.hdr.pid, 0);
  if (c.proxied) return;  // copied before it was muted: the proxy records it
  c.owner_pid = e.hdr.pid;
  if (!c.client_side) c.info.server_pid = e.hdr.pid;
  std::span<const uint8_t> bytes(e.data, e.captured);
  if (e.direction == DBW_DIR_INGRESS) {
    c.ingress.push(e.offset, bytes, e.length, e.hdr.ts_ns, c.to_server);
  } else {
    c.egress.push(e.offset, bytes, e.length, e.hdr.ts_ns, c.to_client,
                  (e.flags & DBW_DATA_BULK_SKIPPED) != 0);
  }
}

void Observer::close(uint64_t conn_id, uint64_t ts_ns) {
  auto it = conns_.find(conn_id);
  if (it == conns_.end()) return;
  Connection& c = *it->second;
  c.ingress.flush(c.to_server);
  c.egress.flush(c.to_client);
  c.decoder->on_close(ts_ns);
  counters_.connections_closed++;
  conns_.erase(it);
}

void Observer::on_conn_close(const dbw_conn_event& e) { close(e.hdr.conn_id, e.hdr.ts_ns); }

void Observer::on_proc_exit(const dbw_proc_event& e) {
  // The process's sockets closed without close(2): retire what it owned.
  std::vector<uint64_t> owned;
  for (const auto& [id, conn] : conns_) {
    if (conn->owner_pid == e.hdr.pid) owned.push_back(id);
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
