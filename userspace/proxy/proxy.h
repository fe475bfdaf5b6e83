// SPDX-License-Identifier: Apache-2.0
//
// The enforcement proxy: accepts the client connections that steering (userspace/steering)
// sends it, connects to the real server on the client's behalf, and passes each message
// through its protocol's relay (pg_relay.h, mysql_relay.h), which asks the Judge before any
// SQL reaches the server and writes one audit record per statement with the decision.
//
// One thread, one epoll loop; per connection two sockets and three bounded buffers. Reading
// stops on a side whose output is above `high_watermark` and resumes when it drains, so a
// client reading a 1 GB result slowly holds the server, not the proxy's memory (a
// connection holds at most about 2 x high_watermark + max_judged_bytes).
//
// Upstream connections: to the original destination (getsockname on the steered socket),
// from a source port bound before connect() so steering can exempt exactly that socket,
// and for unix-socket clients as the client (credentials.h), so the server's peer and
// unix_socket authentication see the client, never the proxy.
//
// Records are handed to `records` on the proxy's thread: it must be thread-safe.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "approvals/broker.h"
#include "common/status.h"
#include "identity/identity.h"
#include "proxy/credentials.h"
#include "proxy/explain_worker.h"
#include "protocol/mysql/messages.h"
#include "protocol/pgsql/messages.h"
#include "protocol/statement.h"
#include "proxy/judge.h"
#include "proxy/pg_relay.h"
#include "proxy/tls.h"

namespace dbwarden::proxy {

enum class Protocol : uint8_t { kPostgresql, kMysql };

struct UnixRoute {
  std::string listen_path;  // the proxy's socket, where steering sends the route's clients
  std::string server_path;  // the server's own socket
  uint16_t server_port = 0;  // the port the server's socket stands for (.s.PGSQL.5432: 5432)
  Protocol protocol = Protocol::kPostgresql;
};

// Who connect(2)ed to a steered TCP destination, as a kernel hook saw it (the capture's
// `local_clients`), or nullopt. With it the resolver reads that one process's fds instead of
// missing a process it has not scanned yet (its full /proc scans are rate-limited).
using ConnectorLookup = std::function<std::optional<identity::SeenConnector>(
    const std::string& client_address, uint16_t client_port, const std::string& server_address,
    uint16_t server_port)>;

struct TcpListener {
  int fd = -1;
  int family = 0;  // AF_INET or AF_INET6
  uint16_t port = 0;
};

struct Options {
  // TCP listeners, each on a free port, taking every steered (address, port) of its family:
  // a socket bound to a specific IPv6 address is IPv6-only, and steering can only hand a
  // connection to a socket of its own family, so there is one per family.
  std::vector<std::string> tcp_listen_addresses{"127.0.0.1"};
  // Destination ports that speak MySQL; every other port is PostgreSQL.
  std::vector<uint16_t> mysql_ports;
  // A client that connected to the TCP listener itself (not steered) goes here; port 0:
  // such a client is refused.
  std::string direct_upstream_address;
  uint16_t direct_upstream_port = 0;
  std::vector<UnixRoute> unix_routes;
  // Local TCP clients: the connector's hint for the resolver (null: /proc alone).
  ConnectorLookup tcp_connector;
  // MySQL over TCP: the pid of the server process listening on a port, for its records'
  // process.pid (one process serves every connection; over a unix socket SO_PEERCRED names
  // it). Called on the proxy's thread at each accept; null or 0: unknown.
  std::function<uint32_t(uint16_t port)> tcp_server_pid;
  // Connect upstream over unix sockets with the client's uid, gid and groups.
  bool preserve_unix_identity = true;
  // Enforce mode: the lock of the server socket now at `server_path`, if it is locked
  // (steering's lock_unix); the proxy then checks its client against the socket's old bits
  // and connects past the lock (credentials.h). Null: sockets are never locked.
  std::function<std::optional<LockedSocket>(const std::string& server_path)> socket_lock;
  // TLS toward clients (config proxy-tls-cert-file/-key-file); null: a client asking for
  // TLS is told the server has none (PostgreSQL 'N'; MySQL: CLIENT_SSL not offered).
  std::shared_ptr<TlsContext> client_tls;
  // Where require_approval statements wait (must outlive the proxy); null: they are
  // blocked.
  approvals::Broker* approvals = nullptr;
  // The blast radius's EXPLAIN through the agent's own role when the client's session cannot
  // run it (must outlive the proxy); null: none (explain_worker.h).
  ExplainWorker* explain_worker = nullptr;
  size_t high_watermark = 256 << 10;
  size_t max_connections = 16384;
  RelayLimits relay;
  pgsql::Limits pgsql;
  mysql::Limits mysql;
};

struct Stats {
  uint64_t accepted = 0;
  uint64_t active = 0;
  uint64_t refused_over_limit = 0;   // beyond max_connections
  uint64_t refused_not_steered = 0;  // reached the listener directly, no direct upstream
  uint64_t upstream_failures = 0;
  uint64_t identity_failures = 0;  // could not take the client's credentials: refused
  uint64_t blocked_messages = 0;
  uint64_t tls_handshakes = 0;  // clients whose TLS the proxy terminated
  uint64_t tls_failures = 0;    // TLS handshakes or records that failed: connection closed
  uint64_t bytes_to_server = 0;
  uint64_t bytes_to_client = 0;
  // PostgreSQL reach sets (pg_catalog.h) shared between connections: taken without a query,
  // asked of the server, waited for; catalog scopes and starts dropped by their bounds.
  uint64_t pg_reach_hits = 0, pg_reach_misses = 0, pg_reach_waits = 0;
  uint64_t pg_catalog_evictions = 0;
};

// Called with each new upstream socket before connect(): `tcp_destination` is where a TCP
// socket will connect (null for a unix socket). It exempts the socket from steering (and,
// for TCP, binds it); what it returns is kept until the connection is established. Without
// one (tests without steering) the proxy binds TCP sockets itself. A failure refuses the
// client: an upstream connect that steering would send back to the proxy must not happen.
using UpstreamGuardFactory =
    std::function<Result<std::shared_ptr<void>>(int fd, const sockaddr* tcp_destination,
                                                socklen_t length)>;

class Proxy {
 public:
  // Binds the listeners and starts the thread. `judge` is used on the proxy's thread only.
  static Result<std::unique_ptr<Proxy>> Start(const Options& options, std::unique_ptr<Judge> judge,
                                              RecordSink& records,
                                              UpstreamGuardFactory guard = nullptr);
  ~Proxy();  // stops the thread; open connections are closed and their records written
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  const std::vector<TcpListener>& tcp_listeners() const { return tcp_; }
  // SIGHUP: the certificate and key for TLS clients from now on (sessions already open keep
  // theirs). Any thread. Only a proxy started with TLS toward clients takes one.
  Status set_client_tls(std::shared_ptr<TlsContext> context);
  Stats stats() const;

 private:
  struct Loop;
  Proxy() = default;
  std::vector<TcpListener> tcp_;
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
};

}  // namespace dbwarden::proxy
