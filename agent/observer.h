// SPDX-License-Identifier: Apache-2.0
//
// The connection table: turns capture records into per-connection byte
// streams (stream::Reassembler, one per direction) and feeds them to the
// decoder of the protocol spoken on the connection's server port (PostgreSQL
// or MySQL). Statements flow on to the pipeline's sink.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "capture/capture.h"
#include "identity/identity.h"
#include "protocol/mysql/session.h"
#include "protocol/pgsql/session.h"
#include "protocol/statement.h"
#include "stream/reassembler.h"

namespace dbwarden::agent {

struct ObserverCounters {
  uint64_t connections_opened = 0;
  uint64_t connections_closed = 0;
  uint64_t unknown_connection_records = 0;  // data for a connection whose open was missed
  uint64_t peers_resolved = 0;    // local client process found
  uint64_t peers_unresolved = 0;  // local client, but its process was not found (gone already)
  // Enforce mode: the proxy's own upstream connections, recorded by the proxy, not here.
  uint64_t proxied_connections = 0;
  uint64_t proxied_muted = 0;  // of those, the kernel stopped copying (capture mute_socket)
};

enum class Protocol { kPostgresql, kMysql };

struct DecoderLimits {
  pgsql::Limits pgsql;
  mysql::Limits mysql;
};

class Observer : public capture::EventHandler {
 public:
  // `mysql_ports`: server ports that speak the MySQL protocol; every other
  // captured port is PostgreSQL.
  // `resolver` (may be null: replay) names the local client process of each
  // new connection, once per connection.
  Observer(StatementSink& sink, const DecoderLimits& limits, std::vector<uint16_t> mysql_ports,
           identity::Resolver* resolver = nullptr);
  ~Observer() override;

  // Lets the observer drop kernel state for sockets of exited processes.
  void set_capture(capture::BpfCapture* capture) { capture_ = capture; }
  // Enforce mode: connections whose local client is this process (the proxy's upstream
  // connections) give no records here: the proxy writes them, with the real client.
  void set_proxy_pid(uint32_t pid) { proxy_pid_ = pid; }

  void on_conn_open(const dbw_conn_event& event) override;
  void on_conn_close(const dbw_conn_event& event) override;
  void on_data(const dbw_data_event& event) override;
  void on_proc_exit(const dbw_proc_event& event) override;
  void on_server(const dbw_server_event& event) override {
    if (server_listener_) server_listener_(event);
  }
  // Told of each server the kernel found on its own (the agent's ServerWatcher).
  void set_server_listener(std::function<void(const dbw_server_event&)> listener) {
    server_listener_ = std::move(listener);
  }

  // Config reload: connections opened from now on use these; open ones keep
  // the decoder (and protocol) they started with.
  void set_limits(const DecoderLimits& limits) { limits_ = limits; }
  void set_mysql_ports(std::vector<uint16_t> ports) { mysql_ports_ = std::move(ports); }

  // Ends every connection, emitting what is pending (agent shutdown).
  void close_all(uint64_t ts_ns);

  size_t active_connections(Protocol protocol) const;
  // By db.system.name ("postgresql", "mysql", "mariadb"): the label of
  // dbwarden_connections_active.
  size_t active_connections(std::string_view db_system) const;
  const stream::Counters& stream_counters() const { return stream_counters_; }
  const pgsql::Counters& pgsql_counters() const { return pgsql_counters_; }
  const mysql::Counters& mysql_counters() const { return mysql_counters_; }
  const ObserverCounters& counters() const { return counters_; }

 private:
  struct Connection;
  Connection& get_or_create(uint64_t conn_id, uint32_t pid, uint16_t server_port);
  Protocol protocol_of(uint16_t server_port) const;
  void resolve_peer(Connection& c, const dbw_conn_event& e);
  void close(uint64_t conn_id, uint64_t ts_ns);

  StatementSink& sink_;
  DecoderLimits limits_;
  std::vector<uint16_t> mysql_ports_;
  capture::BpfCapture* capture_ = nullptr;
  identity::Resolver* resolver_ = nullptr;
  uint32_t proxy_pid_ = 0;
  stream::Counters stream_counters_;
  pgsql::Counters pgsql_counters_;
  mysql::Counters mysql_counters_;
  ObserverCounters counters_;
  std::function<void(const dbw_server_event&)> server_listener_;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> conns_;
};

// The connect(2) hook's note of a local client (capture's local_clients) as the resolver's
// hint; the enforcer's proxy asks for it too.
identity::SeenConnector seen_connector(const dbw_client_info& info);

// "postgres: alice shop 127.0.0.1(50312) idle" -> user, database. Used for
// connections whose startup happened before capture began.
bool parse_backend_title(const std::string& title, std::string& user, std::string& database);

}  // namespace dbwarden::agent
