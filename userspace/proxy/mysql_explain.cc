// SPDX-License-Identifier: Apache-2.0
//
// ERR packet (https://mariadb.com/kb/en/err_packet/): int<1> 0xff, int<2> error code, then
// with CLIENT_PROTOCOL_41 '#' and a 5-byte SQLSTATE, then the message to the packet's end.
#include "proxy/mysql_explain.h"

#include <algorithm>

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

namespace {

// An ERR packet's payload as the reason there is no estimate.
BlastEstimate ErrFailure(std::span<const uint8_t> payload) {
  std::string_view state;
  std::string_view message(reinterpret_cast<const char*>(payload.data() + 3), payload.size() - 3);
  if (message.size() >= 6 && message[0] == '#') {
    state = message.substr(1, 5);
    message.remove_prefix(6);
  }
  BlastEstimate e;
  e.failure = ExplainFailure(state, message);
  return e;
}

void AppendHeader(size_t length, uint8_t seq, std::vector<uint8_t>& out) {
  out.push_back(static_cast<uint8_t>(length));
  out.push_back(static_cast<uint8_t>(length >> 8));
  out.push_back(static_cast<uint8_t>(length >> 16));
  out.push_back(seq);
}

void AppendU32(uint32_t v, std::vector<uint8_t>& out) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// Where the statement id lies in a COM_STMT_EXECUTE / CLOSE packet (after the header and
// the command byte).
constexpr size_t kIdOffset = mysql::kHeaderSize + 1;

}  // namespace

bool RebindExecute(std::span<const uint8_t> payload, uint16_t count,
                   std::span<const uint16_t> types, uint32_t id, std::vector<uint8_t>& packet,
                   std::string& why) {
  constexpr size_t kFixed = 10;  // command, id, flags, iterations
  if (payload.size() < kFixed || payload[0] != mysql::kComStmtExecute) {
    why = "the execute is malformed";
    return false;
  }
  std::span<const uint8_t> rest = payload.subspan(kFixed);
  const size_t bitmap = (size_t{count} + 7) / 8;
  std::span<const uint8_t> nulls, sent_types;
  if (count > 0) {
    if (rest.size() < bitmap + 1) {
      why = "the execute is malformed";
      return false;
    }
    nulls = rest.first(bitmap);
    const bool bound = rest[bitmap] == 1;
    rest = rest.subspan(bitmap + 1);
    if (bound) {
      if (rest.size() < 2 * size_t{count}) {
        why = "the execute is malformed";
        return false;
      }
      sent_types = rest.first(2 * size_t{count});
      rest = rest.subspan(2 * size_t{count});
    } else if (types.size() != count) {
      why = "its parameters' types were bound by an execute the proxy did not read";
      return false;
    }
  }
  const size_t length = kFixed + (count > 0 ? bitmap + 1 + 2 * size_t{count} : 0) + rest.size();
  if (length >= mysql::kMaxPacket) {
    why = "its parameters are too large to EXPLAIN with";
    return false;
  }
  packet.clear();
  packet.reserve(mysql::kHeaderSize + length);
  AppendHeader(length, 0, packet);
  packet.push_back(mysql::kComStmtExecute);
  AppendU32(id, packet);
  packet.push_back(0);  // CURSOR_TYPE_NO_CURSOR: the rows come in the answer
  AppendU32(1, packet);
  if (count > 0) {
    packet.insert(packet.end(), nulls.begin(), nulls.end());
    packet.push_back(1);  // types follow: the EXPLAIN's statement never had any bound
    if (!sent_types.empty()) {
      packet.insert(packet.end(), sent_types.begin(), sent_types.end());
    } else {
      for (const uint16_t t : types) {
        packet.push_back(static_cast<uint8_t>(t & 0xff));
        packet.push_back((t & 0x8000) != 0 ? 0x80 : 0);
      }
    }
  }
  packet.insert(packet.end(), rest.begin(), rest.end());
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

bool MysqlExplainLookup::prepare(std::string_view text, bool mariadb, bool deprecate_eof,
                                 uint16_t params, std::vector<uint8_t> execute,
                                 std::vector<uint8_t>& packet, std::string& why) {
  if (!query(text, mariadb, packet, why)) return false;
  packet[mysql::kHeaderSize] = mysql::kComStmtPrepare;  // the same text, prepared
  execute_ = std::move(execute);
  params_ = params;
  deprecate_eof_ = deprecate_eof;
  prep_done_ = false;
  prep_first_ = true;
  prep_in_payload_ = false;
  prep_header_have_ = 0;
  prep_left_ = 0;
  prep_head_.clear();
  prep_defs_left_ = 0;
  prepared_ = false;
  prep_ = {};
  return true;
}

size_t MysqlExplainLookup::prepare_answer(std::span<const uint8_t> bytes) {
  // Only the first packet is kept (an OK's fields, an ERR's message): the definitions after
  // it are counted, never read.
  constexpr size_t kMaxHead = 1024;
  size_t used = 0;
  while (used < bytes.size() && !prep_done_) {
    if (!prep_in_payload_) {
      const size_t n = std::min(bytes.size() - used, mysql::kHeaderSize - prep_header_have_);
      std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(used), n,
                  prep_header_ + prep_header_have_);
      prep_header_have_ += n;
      used += n;
      if (prep_header_have_ < mysql::kHeaderSize) break;
      prep_header_have_ = 0;
      prep_left_ = uint32_t{prep_header_[0]} | (uint32_t{prep_header_[1]} << 8) |
                   (uint32_t{prep_header_[2]} << 16);
      prep_in_payload_ = true;
    }
    const size_t n = std::min<size_t>(bytes.size() - used, prep_left_);
    if (prep_first_ && prep_head_.size() < kMaxHead) {
      const size_t keep = std::min(n, kMaxHead - prep_head_.size());
      prep_head_.insert(prep_head_.end(), bytes.begin() + static_cast<std::ptrdiff_t>(used),
                        bytes.begin() + static_cast<std::ptrdiff_t>(used + keep));
    }
    used += n;
    prep_left_ -= static_cast<uint32_t>(n);
    if (prep_left_ > 0) break;
    prep_in_payload_ = false;
    if (!prep_first_) {
      prep_done_ = --prep_defs_left_ == 0;
      continue;
    }
    prep_first_ = false;
    if (!prep_head_.empty() && prep_head_[0] == 0x00 && mysql::ParsePrepareOk(prep_head_, &prep_)) {
      prepared_ = true;
      const uint64_t groups = uint64_t{prep_.params > 0} + uint64_t{prep_.columns > 0};
      prep_defs_left_ = uint64_t{prep_.params} + prep_.columns + (deprecate_eof_ ? 0 : groups);
    }
    prep_done_ = prep_defs_left_ == 0;  // an ERR (or anything else) is the whole answer
  }
  return used;
}

bool MysqlExplainLookup::execute(std::vector<uint8_t>& packet, BlastEstimate& failed) const {
  if (!prepared_) {
    failed =
        prep_head_.size() >= 3 && prep_head_[0] == 0xff ? ErrFailure(prep_head_) : BlastEstimate{};
    if (failed.failure.empty()) failed.failure = "EXPLAIN gave no plan";
    return false;
  }
  if (prep_.params != params_ || execute_.size() < kIdOffset + 4) {
    failed.failure = "EXPLAIN's parameters differ from the statement's";
    return false;
  }
  packet = execute_;
  for (size_t i = 0; i < 4; ++i) {
    packet[kIdOffset + i] = static_cast<uint8_t>(prep_.statement_id >> (8 * i));
  }
  return true;
}

bool MysqlExplainLookup::close(std::vector<uint8_t>& packet) {
  if (!prepared_) return false;
  prepared_ = false;
  packet.clear();
  AppendHeader(5, 0, packet);
  packet.push_back(mysql::kComStmtClose);
  AppendU32(prep_.statement_id, packet);
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
    if (payload.size() >= 3 && payload[0] == 0xff) return ErrFailure(payload);
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
