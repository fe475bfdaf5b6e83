// SPDX-License-Identifier: Apache-2.0
//
// Golden tests for both lexers' normalisation, fingerprint stability and the
// classifier, from tests/data/sql/*.golden (format in tests/data/sql/README.md).
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "sql/analyzer.h"
#include "sql/normalize.h"

namespace {

using dbwarden::sql::Analysis;
using dbwarden::sql::AnalysisSource;
using dbwarden::sql::Analyzer;
using dbwarden::sql::AnalyzerOptions;
using dbwarden::sql::Dialect;
using dbwarden::sql::MysqlMode;

// One block: its key/value lines in order (keys may repeat).
struct Block {
  int line = 0;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string get(const std::string& key, const std::string& fallback = "") const {
    for (const auto& [k, v] : fields) {
      if (k == key) return v;
    }
    return fallback;
  }
  bool has(const std::string& key) const {
    for (const auto& f : fields) {
      if (f.first == key) return true;
    }
    return false;
  }
};

std::string unescape(std::string s) {
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"{NL}", "\n"}, {"{TAB}", "\t"}, {"{CR}", "\r"}}) {
    for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) {
      s.replace(p, from.size(), to);
    }
  }
  return s;
}

std::vector<Block> read_golden(const std::string& name) {
  std::ifstream in(std::string(DBW_TEST_DATA_DIR) + "/sql/" + name);
  REQUIRE(in.good());
  std::vector<Block> blocks;
  Block cur;
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (!line.empty() && line[0] == '#') continue;
    if (line.empty()) {
      if (!cur.fields.empty()) blocks.push_back(cur);
      cur = Block{};
      continue;
    }
    const size_t colon = line.find(':');
    REQUIRE(colon != std::string::npos);
    if (cur.fields.empty()) cur.line = n;
    std::string value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    cur.fields.emplace_back(line.substr(0, colon), unescape(value));
  }
  if (!cur.fields.empty()) blocks.push_back(cur);
  REQUIRE(!blocks.empty());
  return blocks;
}

MysqlMode mode_of(const Block& b) {
  MysqlMode m;
  const std::string s = b.get("mode");
  m.no_backslash_escapes = s.find("no_backslash_escapes") != std::string::npos;
  m.ansi_quotes = s.find("ansi_quotes") != std::string::npos;
  return m;
}

std::string join(const std::vector<std::string>& v) {
  if (v.empty()) return "-";
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

const char* source_name(AnalysisSource s) {
  switch (s) {
    case AnalysisSource::kParser:
      return "parser";
    case AnalysisSource::kLexerFallback:
      return "fallback";
    case AnalysisSource::kLexer:
      return "lexer";
  }
  return "?";
}

void check_normalize(Dialect d, const std::string& file) {
  for (const Block& b : read_golden(file)) {
    INFO(file << ":" << b.line << " in: " << b.get("in"));
    REQUIRE(b.has("in"));
    REQUIRE(b.has("out"));
    CHECK(dbwarden::sql::normalize(d, b.get("in"), mode_of(b)) == b.get("out"));
  }
}

void check_fingerprints(Dialect d, const std::string& file) {
  for (const Block& b : read_golden(file)) {
    INFO(file << ":" << b.line);
    std::vector<std::string> fps;
    for (const auto& [k, v] : b.fields) {
      const std::string norm = dbwarden::sql::normalize(d, v);
      INFO(k << ": " << v << " -> " << norm);
      fps.push_back(dbwarden::sql::fingerprint_hex(dbwarden::sql::fingerprint64(norm)));
      CHECK(fps.back().size() == 16);
      if (k == "same") CHECK(fps.back() == fps.front());
    }
    if (b.fields.front().first == "differ") {
      CHECK(std::set<std::string>(fps.begin(), fps.end()).size() == fps.size());
    }
  }
}

void check_classify(Dialect d, const std::string& file) {
  for (const Block& b : read_golden(file)) {
    INFO(file << ":" << b.line << " sql: " << b.get("sql"));
    AnalyzerOptions options;
    options.mysql = mode_of(b);
    Analyzer analyzer(options);
    const Analysis& a = analyzer.analyze(d, b.get("sql"));
    CHECK(a.operation == b.get("operation"));
    CHECK(join(a.collections) == b.get("tables"));
    CHECK((a.unbounded_write ? "yes" : "no") == b.get("unbounded"));
    if (b.has("summary")) CHECK(a.summary == b.get("summary"));
    if (b.has("source")) CHECK(source_name(a.source) == b.get("source"));
    CHECK(a.fingerprint.size() == 16);
  }
}

}  // namespace

TEST_CASE("golden: PostgreSQL normalisation", "[sql][golden]") {
  check_normalize(Dialect::kPostgresql, "normalize_postgresql.golden");
}
TEST_CASE("golden: MySQL normalisation", "[sql][golden]") {
  check_normalize(Dialect::kMysql, "normalize_mysql.golden");
}
TEST_CASE("golden: PostgreSQL fingerprints", "[sql][golden]") {
  check_fingerprints(Dialect::kPostgresql, "fingerprint_postgresql.golden");
}
TEST_CASE("golden: MySQL fingerprints", "[sql][golden]") {
  check_fingerprints(Dialect::kMysql, "fingerprint_mysql.golden");
}
TEST_CASE("golden: PostgreSQL classification", "[sql][golden]") {
  check_classify(Dialect::kPostgresql, "classify_postgresql.golden");
}
TEST_CASE("golden: MySQL classification", "[sql][golden]") {
  check_classify(Dialect::kMysql, "classify_mysql.golden");
}
