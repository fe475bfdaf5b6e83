// SPDX-License-Identifier: Apache-2.0
//
// Wire layouts (https://www.postgresql.org/docs/current/protocol-message-formats.html):
//   Parse 'P':  String name, String query, Int16 n, n x Int32 parameter type OID
//   Bind 'B':   String portal, String statement, Int16 nf, nf x Int16 format, Int16 np,
//               np x (Int32 length (-1: NULL), Byte[length]), Int16 nr, nr x Int16 format
//   Execute 'E': String portal, Int32 max rows (0: all)
//   Close 'C':  Byte1 'S' (statement), String name
//   DataRow 'D': Int16 n, n x (Int32 length, Byte[length])
#include "proxy/pg_explain.h"

#include "protocol/pgsql/messages.h"
#include "protocol/pgsql/parameters.h"

namespace dbwarden::proxy {

namespace {

constexpr std::string_view kTimeoutName = "dbwarden_blast_t";
constexpr std::string_view kExplainName = "dbwarden_blast";

void Put16(uint16_t v, std::vector<uint8_t>& out) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

void Put32(uint32_t v, std::vector<uint8_t>& out) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

void PutString(std::string_view s, std::vector<uint8_t>& out) {
  out.insert(out.end(), s.begin(), s.end());
  out.push_back(0);
}

// Starts message `type`; Finish() writes its length.
size_t Begin(uint8_t type, std::vector<uint8_t>& out) {
  out.push_back(type);
  const size_t at = out.size();
  Put32(0, out);
  return at;
}

void Finish(size_t at, std::vector<uint8_t>& out) {
  const auto length = static_cast<uint32_t>(out.size() - at);
  for (int i = 0; i < 4; ++i) out[at + i] = static_cast<uint8_t>(length >> (24 - 8 * i));
}

void ParseBindExecute(std::string_view name, std::string_view sql, std::span<const uint32_t> types,
                      std::span<const uint8_t> parameters, std::vector<uint8_t>& out) {
  size_t at = Begin('P', out);
  PutString(name, out);
  PutString(sql, out);
  Put16(static_cast<uint16_t>(types.size()), out);
  for (const uint32_t t : types) Put32(t, out);
  Finish(at, out);
  at = Begin('B', out);
  PutString("", out);
  PutString(name, out);
  if (parameters.empty()) {
    Put16(0, out);  // no format codes
    Put16(0, out);  // no parameters
  } else {
    out.insert(out.end(), parameters.begin(), parameters.end());
  }
  Put16(0, out);  // results in text
  Finish(at, out);
  at = Begin('E', out);
  PutString("", out);
  Put32(0, out);
  Finish(at, out);
}

void Close(std::string_view name, std::vector<uint8_t>& out) {
  const size_t at = Begin('C', out);
  out.push_back('S');
  PutString(name, out);
  Finish(at, out);
}

void Sync(std::vector<uint8_t>& out) { Finish(Begin('S', out), out); }

}  // namespace

bool PgParseParameterTypes(std::span<const uint8_t> body, std::vector<uint32_t>& types) {
  return pgsql::ReadParseParameterTypes(body, &types);
}

bool PgBindParameters(std::span<const uint8_t> body, std::string_view* statement,
                      std::span<const uint8_t>* parameters) {
  pgsql::BodyReader r(body);
  std::string_view portal;
  if (!r.cstring(&portal) || !r.cstring(statement)) return false;
  const size_t start = portal.size() + 1 + statement->size() + 1;
  pgsql::ParameterLayout layout;
  if (!pgsql::ReadParameterLayout(body, start, &layout)) return false;
  size_t pos = layout.values_at;
  std::optional<std::span<const uint8_t>> value;
  for (size_t i = 0; i < layout.value_count; ++i) {
    if (!pgsql::NextParameterValue(body, &pos, &value)) return false;
  }
  *parameters = body.subspan(start, pos - start);
  return true;
}

bool PgBindValues(std::span<const uint8_t> p, std::vector<std::optional<std::string>>& values,
                  std::vector<int>& formats) {
  values.clear();
  formats.clear();
  if (p.empty()) return true;  // no parameters at all
  pgsql::ParameterLayout layout;
  if (!pgsql::ReadParameterLayout(p, 0, &layout)) return false;
  size_t pos = layout.values_at;
  std::optional<std::span<const uint8_t>> value;
  for (size_t i = 0; i < layout.value_count; ++i) {
    if (!pgsql::NextParameterValue(p, &pos, &value)) return false;
    formats.push_back(layout.format(i));
    if (value) {
      values.emplace_back(std::string(reinterpret_cast<const char*>(value->data()), value->size()));
    } else {
      values.emplace_back(std::nullopt);
    }
  }
  return true;
}

bool PgExplainLookup::query(std::string_view text, std::span<const uint32_t> types,
                            std::span<const uint8_t> parameters, std::vector<uint8_t>& out,
                            std::string& why) {
  completes_ = readies_ = 0;
  too_large_ = no_plan_ = false;
  json_.clear();
  error_.clear();
  if (text.size() > kMaxStatementBytes) {
    why = "the statement is too long to EXPLAIN (over " +
          std::to_string(kMaxStatementBytes / 1024) + " KiB)";
    return false;
  }
  if (text.find('\0') != std::string_view::npos || types.size() > 65535) {
    why = "the statement cannot be sent in an EXPLAIN";
    return false;
  }
  out.clear();
  const std::string limit = "SELECT pg_catalog.set_config('statement_timeout', '" +
                            std::to_string(kExplainTimeoutMs) + "', true)";
  ParseBindExecute(kTimeoutName, limit, {}, {}, out);
  ParseBindExecute(kExplainName, "EXPLAIN (FORMAT JSON) " + std::string(text), types, parameters,
                   out);
  Sync(out);
  Close(kTimeoutName, out);
  Close(kExplainName, out);
  Sync(out);
  return true;
}

bool PgExplainLookup::on_message(uint8_t type, std::span<const uint8_t> body, bool* forward) {
  *forward = false;
  switch (type) {
    case 'C':
      ++completes_;
      break;
    case 'D': {
      if (completes_ != 1 || readies_ != 0) break;  // set_config's row, or not ours
      // One column: Int16 1, Int32 length, the plan's JSON.
      if (body.size() < 6 || pgsql::ReadBe16(body.data()) != 1) {
        no_plan_ = true;
        break;
      }
      const auto length = static_cast<int32_t>(pgsql::ReadBe32(body.data() + 2));
      if (length < 0 || body.size() - 6 < static_cast<size_t>(length)) {
        no_plan_ = true;
        break;
      }
      if (json_.size() + static_cast<size_t>(length) > kMaxExplainJson) {
        too_large_ = true;
        break;
      }
      json_.append(reinterpret_cast<const char*>(body.data() + 6), static_cast<size_t>(length));
      break;
    }
    case 'E':
      if (error_.empty() && readies_ == 0) {
        pgsql::ErrorFields f;
        pgsql::ParseErrorFields(body, &f);
        error_ = ExplainFailure(f.sqlstate, f.message);
      }
      break;
    case 'Z':
      return ++readies_ >= 2;
    case 'S':  // ParameterStatus and notifications may come at any time: the client's
    case 'A':
      *forward = true;
      break;
    default:  // '1', '2', '3', 'N' (a notice the EXPLAIN caused): its own
      break;
  }
  return false;
}

BlastEstimate PgExplainLookup::result() const {
  BlastEstimate e;
  if (!error_.empty()) {
    e.failure = error_;
  } else if (too_large_) {
    e.failure = "EXPLAIN's answer is too large";
  } else if (no_plan_ || json_.empty()) {
    e.failure = "EXPLAIN gave no plan";
  } else {
    e = ReadPgExplain(json_);
  }
  return e;
}

}  // namespace dbwarden::proxy
