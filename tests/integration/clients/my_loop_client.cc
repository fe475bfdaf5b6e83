// SPDX-License-Identifier: Apache-2.0
//
// A long-lived MySQL/MariaDB client (libmariadb) that runs statements on one
// connection when told, for the tests of connections found already open
// (tests/integration/test_preexisting_mariadb.py) and of server restarts.
//
// It connects once, then reads commands from stdin, one per line, and answers
// each with "ok <statements run>" on stdout once done:
//   text N TAG     N text-protocol queries  SELECT 'TAG-<i>' AS tag, <i> AS n
//   prepare        prepares  SELECT ? AS n, CONCAT('bin-', ?) AS tag  (binary protocol)
//   binary N TAG   N executes of it with parameters (i, 'TAG-<i>'), rows fetched
//   quit           closes the connection and exits
// Every statement's text (or, for binary, its tag parameter) is unique, so the
// test finds each one in the server's general log and in the audit log.
//
// Usage: my_loop_client (--socket PATH | --port N) --user U --password P --database D
#include <mysql.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>

namespace {

[[noreturn]] void Die(const std::string& what, const char* why) {
  std::fprintf(stderr, "my_loop_client: %s: %s\n", what.c_str(), why);
  std::exit(1);
}

void Text(MYSQL* db, long count, const std::string& tag) {
  for (long i = 0; i < count; ++i) {
    const std::string q = "SELECT '" + tag + "-" + std::to_string(i) + "' AS tag, " +
                          std::to_string(i) + " AS n";
    if (mysql_real_query(db, q.data(), q.size()) != 0) Die(q, mysql_error(db));
    MYSQL_RES* res = mysql_store_result(db);
    if (res) mysql_free_result(res);
  }
}

void Binary(MYSQL* db, MYSQL_STMT* stmt, long count, const std::string& tag) {
  for (long i = 0; i < count; ++i) {
    long long n = i;
    std::string s = tag + "-" + std::to_string(i);
    unsigned long s_len = s.size();
    MYSQL_BIND in[2];
    std::memset(in, 0, sizeof(in));
    in[0].buffer_type = MYSQL_TYPE_LONGLONG;
    in[0].buffer = &n;
    in[1].buffer_type = MYSQL_TYPE_STRING;
    in[1].buffer = s.data();
    in[1].buffer_length = s_len;
    in[1].length = &s_len;
    if (mysql_stmt_bind_param(stmt, in) || mysql_stmt_execute(stmt) ||
        mysql_stmt_store_result(stmt)) {
      Die("execute", mysql_stmt_error(stmt));
    }
    while (mysql_stmt_fetch(stmt) == 0) {
    }
    mysql_stmt_free_result(stmt);
  }
  (void)db;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket, user, password, database;
  unsigned port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--socket") socket = argv[i + 1];
    if (k == "--port") port = static_cast<unsigned>(std::atoi(argv[i + 1]));
    if (k == "--user") user = argv[i + 1];
    if (k == "--password") password = argv[i + 1];
    if (k == "--database") database = argv[i + 1];
  }
  MYSQL* db = mysql_init(nullptr);
  if (!db) Die("mysql_init", "out of memory");
  const my_bool no = 0;
  mysql_optionsv(db, MYSQL_OPT_SSL_ENFORCE, &no);
  const unsigned protocol = socket.empty() ? MYSQL_PROTOCOL_TCP : MYSQL_PROTOCOL_SOCKET;
  mysql_optionsv(db, MYSQL_OPT_PROTOCOL, &protocol);
  if (!mysql_real_connect(db, socket.empty() ? "127.0.0.1" : nullptr, user.c_str(),
                          password.c_str(), database.c_str(), port,
                          socket.empty() ? nullptr : socket.c_str(), 0)) {
    Die("connect", mysql_error(db));
  }
  MYSQL_STMT* stmt = nullptr;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd, tag;
    long count = 0;
    in >> cmd >> count >> tag;
    if (cmd == "quit") break;
    if (cmd == "prepare") {
      if (stmt) mysql_stmt_close(stmt);
      stmt = mysql_stmt_init(db);
      const std::string q = "SELECT ? AS n, CONCAT('bin-', ?) AS tag";
      if (!stmt || mysql_stmt_prepare(stmt, q.data(), q.size())) Die("prepare", mysql_error(db));
    } else if (cmd == "text") {
      Text(db, count, tag);
    } else if (cmd == "binary" && stmt) {
      Binary(db, stmt, count, tag);
    } else {
      Die("command", line.c_str());
    }
    std::printf("ok %ld\n", count);
    std::fflush(stdout);
  }
  if (stmt) mysql_stmt_close(stmt);
  mysql_close(db);
  return 0;
}
