// SPDX-License-Identifier: Apache-2.0
//
// Helpers shared by the audit tests: a temporary directory, statements,
// reading logs back.
#pragma once

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "audit/chain_state.h"
#include "audit/jsonl_writer.h"
#include "audit/verify.h"
#include "protocol/statement.h"

namespace dbw_audit_test {

namespace fs = std::filesystem;

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/dbw-audit-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { fs::remove_all(path); }
  std::string path;
};

inline std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

inline void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::trunc);
  for (const std::string& l : lines) out << l << '\n';
}

inline bool is_checkpoint(const std::string& line) {
  return line.find("\"dbwarden.record_type\":\"checkpoint\"") != std::string::npos;
}

// The query texts of the statement records (not checkpoints or recovery
// records), in file order.
inline std::vector<std::string> statement_texts(const std::vector<std::string>& lines) {
  std::vector<std::string> out;
  for (const std::string& l : lines) {
    if (l.find("\"dbwarden.record_type\":") != std::string::npos) continue;  // the trail's own
    out.push_back(nlohmann::json::parse(l)["db.query.text"].get<std::string>());
  }
  return out;
}

inline dbwarden::Statement make_statement(const dbwarden::ConnectionInfo* c, uint64_t i) {
  dbwarden::Statement s;
  s.connection = c;
  s.start_ns = 1'000'000 + i;
  s.end_ns = 2'000'000 + i;
  s.text = "SELECT " + std::to_string(i);
  s.operation = "SELECT";
  return s;
}

inline std::unique_ptr<dbwarden::audit::JsonlWriter> open_writer(
    const dbwarden::audit::WriterOptions& o) {
  auto r = dbwarden::audit::JsonlWriter::Open(o);
  if (!r.ok()) FAIL(r.status().message());
  return std::move(r.value());
}

// Writes statements first..first+n-1 with a writer of its own, then closes it.
inline void write_statements(const dbwarden::audit::WriterOptions& o, uint64_t first, uint64_t n) {
  dbwarden::ConnectionInfo c;
  c.db_system = "postgresql";
  c.user = "alice";
  auto w = open_writer(o);
  for (uint64_t i = first; i < first + n; ++i) w->on_statement(make_statement(&c, i));
  REQUIRE(w->flush().ok());
  CHECK(w->write_errors() == 0);
}

inline dbwarden::audit::VerifySummary verify(const std::vector<std::string>& files,
                                             const std::string& state = "",
                                             const std::string& key = "", bool partial = false) {
  dbwarden::audit::VerifyOptions vo;
  vo.hmac_key = key;
  vo.partial = partial;
  if (!state.empty()) {
    auto st = dbwarden::audit::read_state_file(state);
    REQUIRE(st.ok());
    vo.state = st.value();
  }
  auto r = dbwarden::audit::verify_audit_files(files, vo);
  if (!r.ok()) FAIL(r.status().message());
  return r.value();
}

// A directory's audit files in chain order.
inline std::vector<std::string> dir_files(const std::string& dir) {
  auto r = dbwarden::audit::expand_audit_paths({dir}, nullptr);
  REQUIRE(r.ok());
  return r.value();
}

}  // namespace dbw_audit_test
