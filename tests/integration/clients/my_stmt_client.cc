// SPDX-License-Identifier: Apache-2.0
//
// A small client of our own that uses server-side prepared statements through
// the MariaDB C API (libmariadb), for the MySQL observation acceptance test
// (tests/integration/test_observe_mariadb.py, my_stmt_steps() there lists
// what it sends and what the server must answer).
//
// It prepares, executes with int, double, string, NULL and a blob sent by
// mysql_stmt_send_long_data, fetches binary result sets, resets and closes.
// For each statement the server answered it prints one line
//   OUTCOME <SQLSTATE> <rows or -> [<parameter> ...]
// so the harness can check what the client saw against what it expected, and
// the tag query's answer as "dbw-session:<name>\t<host>".
//
// API: https://mariadb.com/kb/en/mariadb-connectorc-api-prepared-statement-functions/
//
// Usage: my_stmt_client (--socket PATH | --port N) --user U --password P
//                       --database D --session NAME --table T
//        my_stmt_client (--socket PATH | --port N) --user U --password P
//                       --database D --exec SQL [--param VALUE ...] [--print 1]
//                       [--repeat N]
// The second form prepares SQL, binds each VALUE as a string, executes once
// and prints its outcome (tests/integration/test_redaction.py); with --print 1 it
// also prints each row of the binary result set first, every column converted to text
// by the client library ("NULL" for NULL), tab-separated (test_enforce_mask_mariadb.py).
// --repeat N executes it N times, bound once: the library sends the parameters' types
// with the first execute only (test_approvals_gaps.py).
#include <mysql.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Args {
  std::string socket, user, password, database, session, table, exec;
  std::vector<std::string> params;
  unsigned port = 0;
  bool print = false;
  int repeat = 1;
};

[[noreturn]] void Die(const std::string& what, const char* why) {
  std::fprintf(stderr, "my_stmt_client: %s: %s\n", what.c_str(), why);
  std::exit(1);
}

void Outcome(const char* sqlstate, long long rows) {
  if (rows < 0) {
    std::printf("OUTCOME %s -\n", sqlstate);
  } else {
    std::printf("OUTCOME %s %lld\n", sqlstate, rows);
  }
}

// A text query; prints its outcome. Returns the rows of its result set (or
// affected rows), -1 on error.
long long Query(MYSQL* db, const std::string& sql, bool print_rows = false) {
  if (mysql_real_query(db, sql.data(), sql.size()) != 0) {
    Outcome(mysql_sqlstate(db), -1);
    return -1;
  }
  MYSQL_RES* res = mysql_store_result(db);
  long long rows = 0;
  if (res) {
    rows = static_cast<long long>(mysql_num_rows(res));
    if (print_rows) {
      while (MYSQL_ROW row = mysql_fetch_row(res)) {
        std::printf("%s\t%s\n", row[0] ? row[0] : "NULL", row[1] ? row[1] : "NULL");
      }
    }
    mysql_free_result(res);
  } else {
    rows = static_cast<long long>(mysql_affected_rows(db));
  }
  Outcome("00000", rows);
  return rows;
}

MYSQL_STMT* Prepare(MYSQL* db, const std::string& sql) {
  MYSQL_STMT* st = mysql_stmt_init(db);
  if (!st) Die("mysql_stmt_init", mysql_error(db));
  if (mysql_stmt_prepare(st, sql.data(), sql.size()) != 0) {
    // A refused prepare is a statement the server answered: it gets a record.
    Outcome(mysql_stmt_sqlstate(st), -1);
    mysql_stmt_close(st);
    return nullptr;
  }
  return st;
}

// Executes; prints the outcome and returns null unless the statement returned a result set.
MYSQL_RES* ExecuteForRows(MYSQL_STMT* st) {
  if (mysql_stmt_execute(st) != 0) {
    Outcome(mysql_stmt_sqlstate(st), -1);
    return nullptr;
  }
  MYSQL_RES* meta = mysql_stmt_result_metadata(st);
  if (!meta) Outcome("00000", static_cast<long long>(mysql_stmt_affected_rows(st)));
  return meta;
}

// Fetches every row into the bound buffers, calling on_row after each; then prints the outcome.
template <typename OnRow>
void FetchAll(MYSQL_STMT* st, MYSQL_RES* meta, OnRow on_row) {
  long long rows = 0;
  int rc = 0;
  while ((rc = mysql_stmt_fetch(st)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
    on_row();
    ++rows;
  }
  if (rc != MYSQL_NO_DATA) Die("fetch", mysql_stmt_error(st));
  mysql_free_result(meta);
  mysql_stmt_free_result(st);
  Outcome("00000", rows);
}

// Executes and, for a result set, fetches every row (binary protocol).
void Execute(MYSQL_STMT* st) {
  MYSQL_RES* meta = ExecuteForRows(st);
  if (!meta) return;
  // Bind one LONGLONG output column (the id); the rest are fetched unbound.
  long long id = 0;
  MYSQL_BIND out[4];
  std::memset(out, 0, sizeof(out));
  const unsigned columns = mysql_num_fields(meta);
  std::vector<char> scratch(columns * 64);
  std::vector<unsigned long> lengths(columns);
  for (unsigned i = 0; i < columns && i < 4; ++i) {
    if (i == 0) {
      out[i].buffer_type = MYSQL_TYPE_LONGLONG;
      out[i].buffer = &id;
    } else {
      out[i].buffer_type = MYSQL_TYPE_STRING;
      out[i].buffer = scratch.data() + i * 64;
      out[i].buffer_length = 64;
      out[i].length = &lengths[i];
    }
  }
  if (mysql_stmt_bind_result(st, out) != 0) Die("bind_result", mysql_stmt_error(st));
  FetchAll(st, meta, [] {});
}

// Executes and prints every row, each column fetched as a string (the library converts
// the binary protocol's integers, dates and decimals), then the outcome.
void ExecutePrint(MYSQL_STMT* st) {
  MYSQL_RES* meta = ExecuteForRows(st);
  if (!meta) return;
  const unsigned columns = mysql_num_fields(meta);
  constexpr size_t kWidth = 1024;
  std::vector<char> buffers(columns * kWidth);
  std::vector<unsigned long> lengths(columns);
  std::vector<my_bool> nulls(columns);
  std::vector<MYSQL_BIND> out(columns);
  for (unsigned i = 0; i < columns; ++i) {
    std::memset(&out[i], 0, sizeof(out[i]));
    out[i].buffer_type = MYSQL_TYPE_STRING;
    out[i].buffer = buffers.data() + i * kWidth;
    out[i].buffer_length = kWidth;
    out[i].length = &lengths[i];
    out[i].is_null = &nulls[i];
  }
  if (mysql_stmt_bind_result(st, out.data()) != 0) Die("bind_result", mysql_stmt_error(st));
  FetchAll(st, meta, [&] {
    for (unsigned i = 0; i < columns; ++i) {
      if (i > 0) std::printf("\t");
      if (nulls[i]) {
        std::printf("NULL");
      } else {
        std::printf("%.*s", static_cast<int>(std::min<unsigned long>(lengths[i], kWidth)),
                    buffers.data() + i * kWidth);
      }
    }
    std::printf("\n");
  });
}

// Prepares `sql`, binds `params` as strings, executes `repeat` times; prints each outcome.
void ExecOnce(MYSQL* db, const std::string& sql, const std::vector<std::string>& params, bool print,
              int repeat) {
  MYSQL_STMT* st = Prepare(db, sql);
  if (!st) return;
  std::vector<MYSQL_BIND> in(params.size());
  std::vector<unsigned long> lengths(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    std::memset(&in[i], 0, sizeof(in[i]));
    lengths[i] = params[i].size();
    in[i].buffer_type = MYSQL_TYPE_STRING;
    in[i].buffer = const_cast<char*>(params[i].data());
    in[i].buffer_length = lengths[i];
    in[i].length = &lengths[i];
  }
  if (!in.empty() && mysql_stmt_bind_param(st, in.data()) != 0) {
    Die("bind_param", mysql_stmt_error(st));
  }
  for (int i = 0; i < repeat; ++i) {
    if (print) {
      ExecutePrint(st);
    } else {
      Execute(st);
    }
    std::fflush(stdout);
  }
  mysql_stmt_close(st);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--socket") {
      a.socket = v;
    } else if (k == "--port") {
      a.port = static_cast<unsigned>(std::atoi(v));
    } else if (k == "--user") {
      a.user = v;
    } else if (k == "--password") {
      a.password = v;
    } else if (k == "--database") {
      a.database = v;
    } else if (k == "--session") {
      a.session = v;
    } else if (k == "--table") {
      a.table = v;
    } else if (k == "--exec") {
      a.exec = v;
    } else if (k == "--param") {
      a.params.emplace_back(v);
    } else if (k == "--print") {
      a.print = std::string(v) == "1";
    } else if (k == "--repeat") {
      a.repeat = std::max(1, std::atoi(v));
    } else {
      Die("usage", ("unknown option " + k).c_str());
    }
  }
  if ((a.exec.empty() && (a.table.empty() || a.session.empty())) ||
      (a.socket.empty() && a.port == 0)) {
    Die("usage", "need --exec or --table and --session, and --socket or --port");
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  MYSQL* db = mysql_init(nullptr);
  if (!db) Die("mysql_init", "out of memory");
  // Plaintext: the agent has no TLS capture for MySQL yet.
  const my_bool no = 0;
  mysql_optionsv(db, MYSQL_OPT_SSL_ENFORCE, &no);
  const unsigned protocol = a.socket.empty() ? MYSQL_PROTOCOL_TCP : MYSQL_PROTOCOL_SOCKET;
  mysql_optionsv(db, MYSQL_OPT_PROTOCOL, &protocol);
  if (!mysql_real_connect(db, a.socket.empty() ? "127.0.0.1" : nullptr, a.user.c_str(),
                          a.password.c_str(), a.database.c_str(), a.port,
                          a.socket.empty() ? nullptr : a.socket.c_str(), 0)) {
    Die("connect", mysql_error(db));
  }
  if (!a.exec.empty()) {
    ExecOnce(db, a.exec, a.params, a.print, a.repeat);
    mysql_close(db);
    return 0;
  }
  const std::string& t = a.table;
  Query(db,
        "SELECT 'dbw-session:" + a.session +
            "' AS tag, HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()",
        /*print_rows=*/true);
  Query(db, "CREATE TABLE " + t + " (id INT PRIMARY KEY, d DOUBLE, s VARCHAR(64), n INT, b BLOB)");

  // INSERT with five parameter types; the blob travels as long data, in two
  // pieces, before each execute (the server forgets it after one).
  MYSQL_STMT* ins = Prepare(db, "INSERT INTO " + t + " (id, d, s, n, b) VALUES (?, ?, ?, ?, ?)");
  if (!ins) Die("prepare insert", "refused");
  struct Row {
    int id;
    double d;
    const char* s;
  };
  const Row rows[] = {{1, 1.5, "alpha"}, {2, -2.25, "it's"}, {3, 1e20, "gamma"}, {1, 0, "dup"}};
  for (const Row& r : rows) {
    int id = r.id;
    double d = r.d;
    unsigned long s_len = std::strlen(r.s);
    my_bool is_null = 1;
    MYSQL_BIND in[5];
    std::memset(in, 0, sizeof(in));
    in[0].buffer_type = MYSQL_TYPE_LONG;
    in[0].buffer = &id;
    in[1].buffer_type = MYSQL_TYPE_DOUBLE;
    in[1].buffer = &d;
    in[2].buffer_type = MYSQL_TYPE_STRING;
    in[2].buffer = const_cast<char*>(r.s);
    in[2].buffer_length = s_len;
    in[2].length = &s_len;
    in[3].buffer_type = MYSQL_TYPE_LONG;
    in[3].is_null = &is_null;
    in[4].buffer_type = MYSQL_TYPE_BLOB;  // value from mysql_stmt_send_long_data
    if (mysql_stmt_bind_param(ins, in) != 0) Die("bind_param", mysql_stmt_error(ins));
    const std::string part1 = "blob-" + std::to_string(r.id) + "-part1;";
    const std::string part2 = "part2";
    if (mysql_stmt_send_long_data(ins, 4, part1.data(), part1.size()) != 0 ||
        mysql_stmt_send_long_data(ins, 4, part2.data(), part2.size()) != 0) {
      Die("send_long_data", mysql_stmt_error(ins));
    }
    Execute(ins);
  }
  mysql_stmt_close(ins);

  // A binary result set, executed, reset, executed again.
  MYSQL_STMT* sel = Prepare(db, "SELECT id, d, s, b FROM " + t + " WHERE id >= ? ORDER BY id");
  if (!sel) Die("prepare select", "refused");
  for (long long from : {1LL, 2LL}) {
    MYSQL_BIND in[1];
    std::memset(in, 0, sizeof(in));
    in[0].buffer_type = MYSQL_TYPE_LONGLONG;
    in[0].buffer = &from;
    if (mysql_stmt_bind_param(sel, in) != 0) Die("bind_param", mysql_stmt_error(sel));
    Execute(sel);
    if (mysql_stmt_reset(sel) != 0) Die("reset", mysql_stmt_error(sel));
  }
  mysql_stmt_close(sel);

  // Two parameters in an UPDATE; affected rows.
  MYSQL_STMT* upd = Prepare(db, "UPDATE " + t + " SET s = ? WHERE id <= ?");
  if (!upd) Die("prepare update", "refused");
  {
    const char* s = "updated";
    unsigned long s_len = 7;
    int upto = 2;
    MYSQL_BIND in[2];
    std::memset(in, 0, sizeof(in));
    in[0].buffer_type = MYSQL_TYPE_VAR_STRING;
    in[0].buffer = const_cast<char*>(s);
    in[0].buffer_length = s_len;
    in[0].length = &s_len;
    in[1].buffer_type = MYSQL_TYPE_LONG;
    in[1].buffer = &upto;
    if (mysql_stmt_bind_param(upd, in) != 0) Die("bind_param", mysql_stmt_error(upd));
    Execute(upd);
  }
  mysql_stmt_close(upd);

  Query(db, "DROP TABLE " + t);
  mysql_close(db);  // COM_QUIT
  return 0;
}
