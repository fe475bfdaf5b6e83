// SPDX-License-Identifier: Apache-2.0
#include "proxy/mysql_results.h"

#include <algorithm>

#include "protocol/mysql/values.h"

namespace dbwarden::proxy {

namespace {

// What a refused answer keeps of each message while swallowing it: enough for the header
// byte, a column count and an OK's status (int<1>, two int<lenenc>, int<2>).
constexpr size_t kPrefixBytes = 32;

// ER_COLUMNACCESS_DENIED_ERROR's SQLSTATE; the code the proxy's refusals carry.
constexpr uint16_t kRefusedErrno = 1143;
constexpr std::string_view kRefusedSqlstate = "42000";
constexpr std::string_view kMalformed = "dbwarden: malformed row in a masked result";

uint16_t OkStatus(std::span<const uint8_t> payload) {
  mysql::Reader r(payload);
  uint8_t header = 0;
  uint64_t affected = 0, insert_id = 0;
  uint16_t status = 0;
  if (r.u8(&header) && r.lenenc(&affected) && r.lenenc(&insert_id) && r.u16(&status)) {
    return status;
  }
  return 0;
}

// Bytes a length-encoded integer at the front of `b` takes (0: not one / cut).
size_t LenencAt(std::span<const uint8_t> b, uint64_t* v) {
  mysql::Reader r(b);
  if (!r.lenenc(v)) return 0;
  return b.size() - r.remaining();
}

}  // namespace

void MysqlResultMasker::start(MysqlResultPlanner& planner, bool binary, bool deprecate_eof,
                              bool metadata_byte) {
  planner_ = &planner;
  binary_ = binary;
  deprecate_eof_ = deprecate_eof;
  metadata_byte_ = metadata_byte;
  state_ = State::kRunning;
  part_ = Part::kFirst;
  swallow_ = false;
  header_have_ = 0;
  left_ = 0;
  in_payload_ = continued_ = false;
  seq_shift_ = 0;
  held_.clear();
  refusal_.clear();
}

size_t MysqlResultMasker::feed(std::span<const uint8_t> bytes, std::vector<uint8_t>& out) {
  size_t used = 0;
  while (used < bytes.size() && state_ == State::kRunning) {
    const auto rest = bytes.subspan(used);
    if (!in_payload_) {
      const size_t n = std::min(rest.size(), mysql::kHeaderSize - header_have_);
      std::copy_n(rest.begin(), n, header_ + header_have_);
      header_have_ += n;
      used += n;
      if (header_have_ < mysql::kHeaderSize) break;
      header_have_ = 0;
      const uint32_t length =
          uint32_t{header_[0]} | (uint32_t{header_[1]} << 8) | (uint32_t{header_[2]} << 16);
      if (!continued_) {
        msg_seq_ = header_[3];
        msg_packets_ = 0;
        msg_length_ = 0;
        first_length_ = length;
        overflow_ = false;
        msg_.clear();
      }
      ++msg_packets_;
      left_ = length;
      continued_ = length == mysql::kMaxPacket;
      in_payload_ = length > 0;
      if (!in_payload_ && !continued_) on_message(out);
      continue;
    }
    const size_t n = std::min<size_t>(rest.size(), left_);
    const auto chunk = rest.first(n);
    if (swallow_ || overflow_) {
      if (msg_.size() < kPrefixBytes) {
        const size_t keep = std::min(n, kPrefixBytes - msg_.size());
        msg_.insert(msg_.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(keep));
      }
    } else if (msg_.size() + n > limits_.max_message_bytes) {
      overflow_ = true;
    } else {
      msg_.insert(msg_.end(), chunk.begin(), chunk.end());
    }
    msg_length_ += n;
    left_ -= static_cast<uint32_t>(n);
    used += n;
    if (left_ == 0) {
      in_payload_ = false;
      if (!continued_) on_message(out);
    }
  }
  return used;
}

void MysqlResultMasker::on_message(std::vector<uint8_t>& out) {
  switch (part_) {
    case Part::kFirst:
      return first(out);
    case Part::kColumns:
      return column(out);
    case Part::kColumnsEof: {
      emit(msg_, out);
      if (!msg_.empty() && msg_[0] == 0xff) {
        end_of_result(0);
        return;
      }
      uint16_t status = 0;
      mysql::ParseEofStatus(msg_, &status);
      part_ = Part::kRows;
      // A cursor was opened: rows come later, by COM_STMT_FETCH (which the relay does not
      // let a masked statement do): this answer ends here.
      if (status & mysql::kStatusCursorExists) end_of_result(status & ~mysql::kStatusMoreResults);
      return;
    }
    case Part::kRows:
      return rows(out);
  }
}

void MysqlResultMasker::first(std::vector<uint8_t>& out) {
  const uint8_t b = msg_.empty() ? 0 : msg_[0];
  if (msg_length_ == 0 || b == 0xff) {
    emit(msg_, out);
    end_of_result(0);
    return;
  }
  if (b == 0x00) {
    emit(msg_, out);
    return end_of_result(OkStatus(msg_));
  }
  if (b == 0xfe && first_length_ < 9) {  // an EOF where an OK would be (old servers)
    emit(msg_, out);
    uint16_t status = 0;
    mysql::ParseEofStatus(msg_, &status);
    return end_of_result(status);
  }
  if (b == 0xfb) {
    emit(msg_, out);
    state_ = State::kInfile;
    return;
  }
  uint64_t columns = 0;
  const size_t at = LenencAt(msg_, &columns);
  uint8_t metadata = 1;
  if (metadata_byte_ && at < msg_.size()) metadata = msg_[at];
  if (at == 0 || columns == 0 || columns > 4096 || metadata == 0) {
    // No definitions to judge the columns by (or a count no server sends): what the rows
    // hold cannot be told apart, so none of them goes out.
    refuse(metadata == 0 ? "dbwarden: a masked result must carry its column metadata"
                         : "dbwarden: unreadable result set on a masked statement",
           msg_seq_, out);
    if (at == 0 || columns == 0) {
      state_ = State::kBroken;  // where its rows end cannot be told either
    } else {
      part_ = deprecate_eof_ ? Part::kRows : Part::kColumnsEof;
    }
    return;
  }
  count_seq_ = msg_seq_;
  columns_left_ = columns;
  part_ = Part::kColumns;
  if (swallow_) return;
  held_.clear();
  emit(msg_, held_);
  columns_.clear();
  types_.clear();
  any_mask_ = false;
}

void MysqlResultMasker::column(std::vector<uint8_t>& out) {
  if (!msg_.empty() && msg_[0] == 0xff) {  // the server gave up mid-metadata
    if (!swallow_) out.insert(out.end(), held_.begin(), held_.end());
    held_.clear();
    emit(msg_, out);
    end_of_result(0);
    return;
  }
  const bool last = --columns_left_ == 0;
  if (!swallow_) {
    mysql::ColumnDefinition def;
    if (!mysql::ParseColumnDefinition(msg_, &def)) def = {};  // no origin: the plan fails closed
    masking::Column c;
    c.type = masking::mysql_value_type(def.type, def.flags, def.charset);
    c.encoding = binary_ ? masking::Encoding::kMysqlBinary : masking::Encoding::kMysqlText;
    c.nullable = (def.flags & mysql::kFlagNotNull) == 0;
    planner_->column(columns_.size(), def);
    columns_.push_back(c);
    types_.push_back(def.type);
    emit(msg_, held_);
  }
  if (!last) return;
  part_ = deprecate_eof_ ? Part::kRows : Part::kColumnsEof;
  if (swallow_) return;
  std::string why;
  switch (planner_->columns_done(columns_.size(), why)) {
    case MysqlResultPlanner::Rows::kRefuse:
      held_.clear();
      refuse(why, count_seq_, out);
      return;
    case MysqlResultPlanner::Rows::kMask:
      any_mask_ = true;
      break;
    case MysqlResultPlanner::Rows::kPass:
      break;
  }
  out.insert(out.end(), held_.begin(), held_.end());
  held_.clear();
}

void MysqlResultMasker::rows(std::vector<uint8_t>& out) {
  const uint8_t b = msg_.empty() ? 0 : msg_[0];
  if (msg_length_ > 0 && b == 0xff) {
    emit(msg_, out);
    end_of_result(0);
    return;
  }
  if (msg_length_ > 0 && mysql::IsEndOfRows(b, first_length_, deprecate_eof_)) {
    uint16_t status = 0;
    if (first_length_ < 9 && !deprecate_eof_) {
      mysql::ParseEofStatus(msg_, &status);
    } else {
      status = OkStatus(msg_);
    }
    emit(msg_, out);
    return end_of_result(status);
  }
  if (swallow_) return;
  if (overflow_) {
    refuse("dbwarden: a row of a masked result is larger than the proxy reads whole", msg_seq_,
           out);
    return;
  }
  if (!any_mask_) {
    emit(msg_, out);
    return;
  }
  if (binary_) {
    rewrite_binary_row(out);
  } else {
    rewrite_text_row(out);
  }
}

void MysqlResultMasker::end_of_result(uint16_t status) {
  planner_->result_done();
  if (status & mysql::kStatusMoreResults) {
    part_ = Part::kFirst;
  } else {
    state_ = State::kDone;
  }
}

bool MysqlResultMasker::mask(size_t i, std::string_view value, bool& to_null) {
  repl_.clear();
  const masking::Outcome o = planner_->value(i, columns_[i], value, repl_);
  to_null = o == masking::Outcome::kNull;
  return o != masking::Outcome::kUnchanged;
}

void MysqlResultMasker::rewrite_text_row(std::vector<uint8_t>& out) {
  const std::span<const uint8_t> row(msg_);
  row_.clear();
  bool changed = false;
  size_t pos = 0;
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (pos >= row.size()) return refuse(kMalformed, msg_seq_, out);
    if (row[pos] == 0xfb) {  // NULL: nothing to hide
      row_.push_back(0xfb);
      ++pos;
      continue;
    }
    uint64_t n = 0;
    const size_t prefix = LenencAt(row.subspan(pos), &n);
    if (prefix == 0 || n > row.size() - pos - prefix) {
      return refuse(kMalformed, msg_seq_, out);
    }
    const auto raw = row.subspan(pos, prefix + n);
    const std::string_view value(reinterpret_cast<const char*>(row.data() + pos + prefix), n);
    pos += prefix + n;
    bool to_null = false;
    if (mask(i, value, to_null)) {
      changed = true;
      if (to_null) {
        row_.push_back(0xfb);
      } else {
        mysql::AppendLenencString(repl_, &row_);
      }
      continue;
    }
    row_.insert(row_.end(), raw.begin(), raw.end());
  }
  emit(changed ? std::span<const uint8_t>(row_) : row, out);
}

void MysqlResultMasker::rewrite_binary_row(std::vector<uint8_t>& out) {
  const std::span<const uint8_t> row(msg_);
  const size_t bitmap_bytes = (columns_.size() + 9) / 8;
  if (row.size() < 1 + bitmap_bytes || row[0] != 0x00) {
    return refuse(kMalformed, msg_seq_, out);
  }
  row_.assign(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(1 + bitmap_bytes));
  bool changed = false;
  size_t pos = 1 + bitmap_bytes;
  for (size_t i = 0; i < columns_.size(); ++i) {
    const size_t bit = i + 2;
    if (row[1 + bit / 8] & (1u << (bit % 8))) continue;  // NULL
    const mysql::BinaryLayout layout = mysql::BinaryLayoutOf(types_[i]);
    size_t prefix = 0;
    uint64_t n = 0;
    switch (layout.kind) {
      case mysql::BinaryLayout::kFixed:
        n = layout.width;
        break;
      case mysql::BinaryLayout::kLengthByte:
        if (pos >= row.size()) return refuse(kMalformed, msg_seq_, out);
        prefix = 1;
        n = row[pos];
        break;
      case mysql::BinaryLayout::kLenenc:
        prefix = LenencAt(row.subspan(pos), &n);
        if (prefix == 0) return refuse(kMalformed, msg_seq_, out);
        break;
      case mysql::BinaryLayout::kNone:
        break;
      case mysql::BinaryLayout::kUnknown:
        return refuse("dbwarden: a masked result has a column of an unknown type", msg_seq_, out);
    }
    if (pos + prefix > row.size() || n > row.size() - pos - prefix) {
      return refuse(kMalformed, msg_seq_, out);
    }
    const auto raw = row.subspan(pos, prefix + n);
    const std::string_view value(reinterpret_cast<const char*>(row.data() + pos + prefix), n);
    pos += prefix + n;
    bool to_null = false;
    if (!mask(i, value, to_null)) {
      row_.insert(row_.end(), raw.begin(), raw.end());
      continue;
    }
    changed = true;
    if (to_null) {
      row_[1 + bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
      continue;
    }
    switch (layout.kind) {
      case mysql::BinaryLayout::kFixed:
        // A fixed-width number keeps its width (masking.h); anything else would shift every
        // value after it, so it becomes zero bytes of the width instead.
        if (repl_.size() != layout.width) repl_.assign(layout.width, '\0');
        row_.insert(row_.end(), repl_.begin(), repl_.end());
        break;
      case mysql::BinaryLayout::kLengthByte:
        if (repl_.size() > 0xff) repl_.clear();  // length 0: the zero date / time
        row_.push_back(static_cast<uint8_t>(repl_.size()));
        row_.insert(row_.end(), repl_.begin(), repl_.end());
        break;
      default:
        mysql::AppendLenencString(repl_, &row_);
        break;
    }
  }
  emit(changed ? std::span<const uint8_t>(row_) : row, out);
}

void MysqlResultMasker::emit(std::span<const uint8_t> payload, std::vector<uint8_t>& out) {
  if (swallow_) return;
  // Packets of at most 0xffffff bytes; one of exactly that size is followed by another
  // (possibly empty).
  uint32_t packets = 0;
  size_t at = 0;
  uint8_t seq = static_cast<uint8_t>(msg_seq_ + seq_shift_);
  while (true) {
    const size_t n = std::min<size_t>(payload.size() - at, mysql::kMaxPacket);
    out.push_back(static_cast<uint8_t>(n));
    out.push_back(static_cast<uint8_t>(n >> 8));
    out.push_back(static_cast<uint8_t>(n >> 16));
    out.push_back(seq++);
    out.insert(out.end(), payload.begin() + static_cast<std::ptrdiff_t>(at),
               payload.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
    ++packets;
    if (n < mysql::kMaxPacket) break;
  }
  seq_shift_ += static_cast<int>(packets) - static_cast<int>(msg_packets_);
}

void MysqlResultMasker::refuse(std::string_view why, uint8_t seq, std::vector<uint8_t>& out) {
  if (swallow_) return;
  // In place of the result set when its definitions were held (`seq` the column count's);
  // in place of the current row otherwise (a server may end a result set with an ERR too).
  held_.clear();
  mysql::AppendErrPacket(static_cast<uint8_t>(seq + seq_shift_), kRefusedErrno, kRefusedSqlstate,
                         why, &out);
  swallow_ = true;
  refusal_.assign(why);
}

}  // namespace dbwarden::proxy
