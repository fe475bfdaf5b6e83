// SPDX-License-Identifier: Apache-2.0
#include "agent/catalog_columns.h"

#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <span>
#include <sstream>

#include "masking/masking.h"
#include "protocol/mysql/messages.h"
#include "protocol/pgsql/messages.h"

namespace dbwarden::agent {

namespace {

constexpr size_t kMaxColumns = 2'000'000;    // bounded memory, whatever the server says
constexpr uint32_t kMaxMessage = 64u << 20;  // one catalog row is far below this

// A connected unix socket, closed on scope exit; reads and writes give up after 30 s.
class Socket {
 public:
  Socket() = default;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Status connect(const std::string& path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof(addr.sun_path)) return Status::Error(path + ": path too long");
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Status::Error(std::string("socket: ") + std::strerror(errno));
    timeval tv{30, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
      return Status::Error(path + ": cannot connect: " + std::strerror(errno));
    }
    return Status::Ok();
  }
  Status write(std::span<const uint8_t> bytes) {
    size_t at = 0;
    while (at < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Status::Error(std::string("write: ") + std::strerror(errno));
      at += static_cast<size_t>(n);
    }
    return Status::Ok();
  }
  Status read(size_t n, std::vector<uint8_t>& out) {
    out.resize(n);
    size_t at = 0;
    while (at < n) {
      const ssize_t got = ::recv(fd_, out.data() + at, n - at, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return Status::Error(std::string("read: ") + std::strerror(errno));
      if (got == 0) return Status::Error("the server closed the connection");
      at += static_cast<size_t>(got);
    }
    return Status::Ok();
  }

 private:
  int fd_ = -1;
};

// A new column from a row's first four values (schema, table, column, type); null past
// the bound.
policy::DbColumn* add_column(std::vector<policy::DbColumn>& out, const std::string_view* v) {
  if (out.size() >= kMaxColumns) return nullptr;
  policy::DbColumn& c = out.emplace_back();
  c.schema.assign(v[0]);
  c.table.assign(v[1]);
  c.column.assign(v[2]);
  c.type.assign(v[3]);
  return &c;
}

std::string os_user() {
  const passwd* pw = ::getpwuid(::geteuid());
  return pw != nullptr ? pw->pw_name : "";
}

// --- PostgreSQL ---

// Wire layout (protocol-message-formats.html): StartupMessage Int32 length, Int32 196608,
// then name/value C strings and a final NUL; every later message a type byte and an Int32
// length that counts itself.
constexpr std::string_view kPgQuery =
    "SELECT n.nspname, c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), "
    "a.atttypid::pg_catalog.text, CASE WHEN a.attnotnull THEN 't' ELSE 'f' END "
    "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) "
    "a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
    "WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f}'::pg_catalog.\"char\"[]) AND "
    "a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped AND n.nspname "
    "OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[]) AND "
    "n.nspname::pg_catalog.text OPERATOR(pg_catalog.!~~) 'pg\\_toast%' AND "
    "n.nspname::pg_catalog.text OPERATOR(pg_catalog.!~~) 'pg\\_temp\\_%'";

struct PgTarget {
  std::string socket, user, database;
};

Result<PgTarget> pg_target(const std::string& target) {
  std::string host = "/var/run/postgresql", port = "5432", user = os_user(), dbname;
  if (target.find('=') != std::string::npos) {
    std::istringstream words(target);
    std::string w;
    while (words >> w) {
      const size_t eq = w.find('=');
      const std::string k = w.substr(0, eq), v = eq == std::string::npos ? "" : w.substr(eq + 1);
      if (k == "host") {
        host = v;
      } else if (k == "port") {
        port = v;
      } else if (k == "dbname") {
        dbname = v;
      } else if (k == "user") {
        user = v;
      } else {
        return Status::Error("--postgres: unknown key `" + k +
                             "` (host, port, dbname, user; no password: peer authentication)");
      }
    }
    if (host.empty() || host[0] != '/') {
      return Status::Error("--postgres: host must be a unix socket directory (an absolute path)");
    }
  } else {
    host = target;
  }
  struct stat st {};
  std::string socket = host;
  if (::stat(host.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) socket = host + "/.s.PGSQL." + port;
  if (user.empty()) return Status::Error("--postgres: the invoking user has no name");
  return PgTarget{socket, user, dbname.empty() ? user : dbname};
}

// Reads one whole message: its type and body.
Status pg_message(Socket& s, uint8_t& type, std::vector<uint8_t>& body) {
  std::vector<uint8_t> head;
  if (Status st = s.read(pgsql::kTypedHeaderSize, head); !st.ok()) return st;
  pgsql::Header h;
  if (pgsql::ParseTypedHeader(pgsql::Direction::kBackend, head, &h) !=
          pgsql::ParseState::kSuccess ||
      h.length > kMaxMessage) {
    return Status::Error("the server's answer is not PostgreSQL protocol 3");
  }
  type = h.type;
  return s.read(h.length - 4, body);
}

Status pg_error(std::span<const uint8_t> body, const std::string& what) {
  pgsql::ErrorFields f;
  pgsql::ParseErrorFields(body, &f);
  return Status::Error(what + ": " + std::string(f.message) + " (SQLSTATE " +
                       std::string(f.sqlstate) + ")");
}

// DataRow: Int16 n, n x (Int32 length or -1, bytes).
bool pg_row(std::span<const uint8_t> body, std::vector<std::string_view>& values) {
  values.clear();
  if (body.size() < 2) return false;
  const size_t n = static_cast<size_t>((body[0] << 8) | body[1]);
  size_t pos = 2;
  for (size_t i = 0; i < n; ++i) {
    if (body.size() - pos < 4) return false;
    const auto len = static_cast<int32_t>(pgsql::ReadBe32(body.data() + pos));
    pos += 4;
    if (len < 0) {
      values.emplace_back();
      continue;
    }
    if (body.size() - pos < static_cast<size_t>(len)) return false;
    values.emplace_back(reinterpret_cast<const char*>(body.data() + pos), static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
  }
  return true;
}

}  // namespace

Result<std::vector<policy::DbColumn>> read_pg_columns(const std::string& target) {
  Result<PgTarget> t = pg_target(target);
  if (!t.ok()) return t.status();
  Socket s;
  if (Status st = s.connect(t->socket); !st.ok()) return st;
  std::vector<uint8_t> m(8, 0);
  for (const std::string& kv :
       {std::string("user"), t->user, std::string("database"), t->database,
        std::string("application_name"), std::string("dbwarden policy check")}) {
    m.insert(m.end(), kv.begin(), kv.end());
    m.push_back(0);
  }
  m.push_back(0);
  const uint32_t len = static_cast<uint32_t>(m.size());
  const uint32_t version = 196608;  // 3.0
  for (int i = 0; i < 4; ++i) {
    m[i] = static_cast<uint8_t>(len >> (24 - 8 * i));
    m[4 + i] = static_cast<uint8_t>(version >> (24 - 8 * i));
  }
  if (Status st = s.write(m); !st.ok()) return st;
  uint8_t type = 0;
  std::vector<uint8_t> body;
  const std::string who = t->socket + " as " + t->user + ", database " + t->database;
  for (;;) {  // authentication, then the session's parameters, up to ReadyForQuery
    if (Status st = pg_message(s, type, body); !st.ok())
      return Status::Error(who + ": " + st.message());
    if (type == 'E') return pg_error(body, who);
    if (type == 'R' && (body.size() < 4 || pgsql::ReadBe32(body.data()) != 0)) {
      return Status::Error(who +
                           ": the server asks for a password; `policy check` connects "
                           "as the invoking OS user with peer authentication only (run "
                           "it as a user the server's pg_hba.conf admits by `peer`)");
    }
    if (type == 'Z') break;
  }
  m.clear();
  pgsql::AppendQuery(kPgQuery, &m);
  m.insert(m.end(), {'X', 0, 0, 0, 4});  // Terminate, once the answer is read
  if (Status st = s.write(m); !st.ok()) return st;
  std::vector<policy::DbColumn> out;
  std::vector<std::string_view> v;
  Status failed = Status::Ok();
  for (;;) {
    if (Status st = pg_message(s, type, body); !st.ok())
      return Status::Error(who + ": " + st.message());
    if (type == 'E' && failed.ok()) failed = pg_error(body, who);
    if (type == 'Z') break;
    if (type != 'D' || !failed.ok()) continue;
    if (!pg_row(body, v) || v.size() != 6) return Status::Error(who + ": a malformed row");
    policy::DbColumn* c = add_column(out, v.data());
    if (c == nullptr) return Status::Error(who + ": more columns than can be checked");
    uint32_t oid = 0;
    for (const char ch : v[4]) oid = oid * 10 + static_cast<uint32_t>(ch - '0');
    c->text = masking::is_text_type(masking::pg_value_type(oid));
    c->not_null = v[5] == "t";
  }
  if (!failed.ok()) return failed;
  return out;
}

// --- MySQL / MariaDB ---

namespace {

constexpr std::string_view kMysqlQuery =
    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, IS_NULLABLE, "
    "IFNULL(CHARACTER_SET_NAME, '') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA NOT IN "
    "('mysql', 'information_schema', 'performance_schema', 'sys')";

// One packet: int<3> payload length, int<1> sequence id, payload (protocol_basic_packets).
Status mysql_packet(Socket& s, uint8_t& seq, std::vector<uint8_t>& payload) {
  std::vector<uint8_t> head;
  if (Status st = s.read(mysql::kHeaderSize, head); !st.ok()) return st;
  const uint32_t len = head[0] | (head[1] << 8) | (head[2] << 16);
  seq = head[3];
  if (len >= mysql::kMaxPacket) return Status::Error("a packet of 16 MiB or more");
  return s.read(len, payload);
}

Status mysql_send(Socket& s, uint8_t seq, std::span<const uint8_t> payload) {
  std::vector<uint8_t> p = {static_cast<uint8_t>(payload.size()),
                            static_cast<uint8_t>(payload.size() >> 8),
                            static_cast<uint8_t>(payload.size() >> 16), seq};
  p.insert(p.end(), payload.begin(), payload.end());
  return s.write(p);
}

Status mysql_error(std::span<const uint8_t> payload, const std::string& who) {
  mysql::ErrPacket e;
  if (!mysql::ParseErr(payload, &e)) return Status::Error(who + ": an unreadable error");
  std::string msg = who + ": " + std::string(e.message) + " (error " + std::to_string(e.code) + ")";
  if (mysql::IsAuthenticationError(e)) {
    msg +=
        "; `policy check` connects as the invoking OS user with unix_socket authentication "
        "only (CREATE USER ... IDENTIFIED VIA unix_socket)";
  }
  return Status::Error(msg);
}

bool text_data_type(std::string_view t) {
  for (const char* n :
       {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}) {
    if (t == n) return true;
  }
  return false;
}

}  // namespace

Result<std::vector<policy::DbColumn>> read_mysql_columns(const std::string& socket) {
  const std::string user = os_user();
  const std::string who = socket + " as " + user;
  Socket s;
  if (Status st = s.connect(socket); !st.ok()) return st;
  uint8_t seq = 0;
  std::vector<uint8_t> p;
  if (Status st = mysql_packet(s, seq, p); !st.ok())
    return Status::Error(who + ": " + st.message());
  if (!p.empty() && p[0] == 0xff) return mysql_error(p, who);
  mysql::Greeting g;
  if (!mysql::ParseGreeting(p, &g) || (g.capabilities & mysql::kClientProtocol41) == 0) {
    return Status::Error(who + ": not a MySQL protocol 4.1 greeting");
  }
  // HandshakeResponse41 with no password: unix_socket authentication needs none.
  const uint32_t caps = static_cast<uint32_t>(
      mysql::kClientProtocol41 | mysql::kClientSecureConnection | mysql::kClientPluginAuth);
  std::vector<uint8_t> r = {static_cast<uint8_t>(caps),
                            static_cast<uint8_t>(caps >> 8),
                            static_cast<uint8_t>(caps >> 16),
                            static_cast<uint8_t>(caps >> 24),
                            0,
                            0,
                            0,
                            1,    // max packet 16 MiB
                            45};  // utf8mb4_general_ci
  r.resize(r.size() + 23, 0);
  r.insert(r.end(), user.begin(), user.end());
  r.push_back(0);
  r.push_back(0);  // auth response: empty
  const std::string plugin = "mysql_native_password";
  r.insert(r.end(), plugin.begin(), plugin.end());
  r.push_back(0);
  if (Status st = mysql_send(s, static_cast<uint8_t>(seq + 1), r); !st.ok()) return st;
  for (;;) {  // OK, an error, or an authentication switch answered with nothing
    if (Status st = mysql_packet(s, seq, p); !st.ok())
      return Status::Error(who + ": " + st.message());
    if (p.empty()) return Status::Error(who + ": an empty packet during authentication");
    if (p[0] == 0x00) break;
    if (p[0] == 0xff) return mysql_error(p, who);
    if (p[0] == 0xfe) {
      if (Status st = mysql_send(s, static_cast<uint8_t>(seq + 1), {}); !st.ok()) return st;
      continue;
    }
    // 0x01: more authentication data, which unix_socket never sends.
    return Status::Error(who +
                         ": the server asks for a password; `policy check` connects as "
                         "the invoking OS user with unix_socket authentication only");
  }
  p.clear();
  mysql::AppendQueryPacket(kMysqlQuery, &p);
  if (Status st = s.write(p); !st.ok()) return st;
  // Column count, column definitions, EOF, rows, EOF (no CLIENT_DEPRECATE_EOF).
  if (Status st = mysql_packet(s, seq, p); !st.ok())
    return Status::Error(who + ": " + st.message());
  if (!p.empty() && p[0] == 0xff) return mysql_error(p, who);
  int eofs = 0;
  std::vector<policy::DbColumn> out;
  while (eofs < 2) {
    if (Status st = mysql_packet(s, seq, p); !st.ok())
      return Status::Error(who + ": " + st.message());
    if (!p.empty() && p[0] == 0xff) return mysql_error(p, who);
    if (!p.empty() && mysql::IsEndOfRows(p[0], p.size(), false)) {
      ++eofs;
      continue;
    }
    if (eofs == 0) continue;  // a column definition
    mysql::Reader rd(p);
    std::string_view v[7];
    for (std::string_view& x : v) {
      if (!rd.lenenc_string(&x)) return Status::Error(who + ": a malformed row");
    }
    policy::DbColumn* c = add_column(out, v);
    if (c == nullptr) return Status::Error(who + ": more columns than can be checked");
    c->text = text_data_type(v[4]) && v[6] != "binary";
    c->not_null = v[5] == "NO";
  }
  p = {0x01};  // COM_QUIT
  (void)mysql_send(s, 0, p);
  return out;
}

}  // namespace dbwarden::agent
