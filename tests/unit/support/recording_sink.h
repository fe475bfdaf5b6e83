// SPDX-License-Identifier: Apache-2.0
//
// A statement sink for decoder tests: keeps every record, and renders each as
// one line holding every field so whole runs compare as strings.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "protocol/statement.h"

namespace dbw_test {

// One line per statement holding every field, so runs compare as strings.
inline std::string DescribeStatement(const dbwarden::Statement& s) {
  std::ostringstream o;
  o << s.start_ns << '|' << s.end_ns << '|' << s.text << '|' << s.text_truncated << '|'
    << s.status_code << '|' << s.sqlstate << '|' << s.error_message << '|'
    << (s.returned_rows ? std::to_string(*s.returned_rows) : "-") << '|' << s.command_tag << '|'
    << s.statement_name << '|' << s.capture_gap << '|' << s.request_bytes << '|'
    << s.response_bytes;
  return o.str();
}

class RecordingSink : public dbwarden::StatementSink {
 public:
  // The decoder must always say which connection a record belongs to; the
  // copy drops the pointer because the connection may not outlive the run.
  void on_statement(const dbwarden::Statement& s) override {
    if (s.connection == nullptr) throw std::runtime_error("statement without connection");
    got.push_back(s);
    got.back().connection = nullptr;
  }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    for (const dbwarden::Statement& s : got) out.push_back(DescribeStatement(s));
    return out;
  }
  std::vector<dbwarden::Statement> got;
};

}  // namespace dbw_test
