// SPDX-License-Identifier: Apache-2.0
//
// ERR packet (https://mariadb.com/kb/en/err_packet/): int<1> 0xff, int<2> error code, then
// with CLIENT_PROTOCOL_41 '#' and a 5-byte SQLSTATE, then the message to the packet's end.
#include "proxy/mysql_explain.h"

#include "protocol/mysql/messages.h"

namespace dbwarden::proxy {

namespace {

// Whether `text` holds a ';' (a trailing run of them and blanks is cut from `text` first).
// Anywhere, quoted or not: a reading of quotes and comments that differs from the server's
// by one character (a quote inside a comment) could let a second statement through.
bool HasSemicolon(std::string_view& text) {
  while (!text.empty() && (text.back() == ';' || text.back() == ' ' || text.back() == '\n' ||
                           text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text.find(';') != std::string_view::npos;
}

}  // namespace

bool MysqlExplainSql(std::string_view text, bool mariadb, std::string& sql, std::string& why) {
  if (text.size() > MysqlExplainLookup::kMaxStatementBytes) {
    why = "the statement is too long to EXPLAIN (over " +
          std::to_string(MysqlExplainLookup::kMaxStatementBytes / 1024) + " KiB)";
    return false;
  }
  if (HasSemicolon(text)) {
    why = "the statement holds a ';', and the EXPLAIN must be one statement";
    return false;
  }
  sql = mariadb ? "SET STATEMENT max_statement_time=" + std::to_string(kExplainTimeoutMs / 1000) +
                      ", lock_wait_timeout=" + std::to_string(kExplainTimeoutMs / 1000) + " FOR "
                : std::string();
  sql += "EXPLAIN FORMAT=JSON ";
  sql += text;
  return true;
}

bool MysqlExplainLookup::query(std::string_view text, bool mariadb, std::vector<uint8_t>& packet,
                               std::string& why) {
  shape_ok_ = too_large_ = false;
  json_.clear();
  std::string sql;
  if (!MysqlExplainSql(text, mariadb, sql, why)) return false;
  packet.clear();
  mysql::AppendQueryPacket(sql, &packet);
  return true;
}

MysqlResultPlanner::Rows MysqlExplainLookup::columns_done(size_t count, std::string&) {
  shape_ok_ = count == 1;
  return Rows::kMask;  // every value goes through value(), where it is kept
}

masking::Outcome MysqlExplainLookup::value(size_t index, const masking::Column&,
                                           std::string_view in, std::string&) {
  if (index != 0 || too_large_) return masking::Outcome::kUnchanged;
  if (json_.size() + in.size() > kMaxExplainJson) {
    too_large_ = true;
    json_.clear();
  } else {
    json_.append(in);
  }
  return masking::Outcome::kUnchanged;
}

BlastEstimate MysqlExplainLookup::result(std::span<const uint8_t> sent, bool ok) const {
  // An ERR among the packets the client would have been sent: the EXPLAIN failed.
  size_t pos = 0;
  while (sent.size() - pos >= mysql::kHeaderSize) {
    const size_t length =
        size_t{sent[pos]} | (size_t{sent[pos + 1]} << 8) | (size_t{sent[pos + 2]} << 16);
    const size_t start = pos + mysql::kHeaderSize;
    if (sent.size() - start < length) break;
    const auto payload = sent.subspan(start, length);
    if (payload.size() >= 3 && payload[0] == 0xff) {
      std::string_view state;
      std::string_view message(reinterpret_cast<const char*>(payload.data() + 3),
                               payload.size() - 3);
      if (message.size() >= 6 && message[0] == '#') {
        state = message.substr(1, 5);
        message.remove_prefix(6);
      }
      BlastEstimate e;
      e.failure = ExplainFailure(state, message);
      return e;
    }
    pos = start + length;
  }
  BlastEstimate e;
  if (!ok || !shape_ok_) {
    e.failure = "EXPLAIN gave no plan";
  } else if (too_large_) {
    e.failure = "EXPLAIN's answer is too large";
  } else if (json_.empty()) {
    e.failure = "EXPLAIN gave no plan";
  } else {
    e = ReadMysqlExplain(json_);
  }
  return e;
}

}  // namespace dbwarden::proxy
