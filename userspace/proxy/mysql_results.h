// SPDX-License-Identifier: Apache-2.0
//
// The server's answer to one MySQL/MariaDB command whose results are masked: framed packet
// by packet, column definitions read, values of the masked columns rewritten in the text
// protocol's and the binary protocol's rows, every other packet passed as it came.
//
// Answer layout (https://mariadb.com/kb/en/result-set-packets/):
//   OK | ERR | LOCAL INFILE request (0xfb) | result set, where a result set is
//   int<lenenc> column count [int<1> metadata follows, with the cache-metadata capability]
//   column count x column definition (messages.h ColumnDefinition)
//   EOF (without CLIENT_DEPRECATE_EOF)
//   rows: text:   per column 0xfb (NULL) or string<lenenc>
//         binary: int<1> 0x00, byte<(columns + 9) / 8> NULL bitmap (bit i + 2 is column i),
//                 the non-NULL values by type (values.h BinaryLayoutOf)
//   EOF, or OK with header 0xfe under CLIENT_DEPRECATE_EOF; ERR ends it too.
// An OK/EOF ending a result with SERVER_MORE_RESULTS_EXISTS is followed by the next result.
//
// A packet is read whole before any byte of it goes on (a row up to max_message_bytes; a
// payload of 0xffffff bytes continues in the next packet), so a value is never half sent.
// Sequence ids pass unchanged; only a rewritten message that needs a different number of
// packets (rows of 16 MiB) shifts the ids after it, consistently to the answer's end.
// Column definitions are held until the last of them: a column the planner refuses turns
// the whole answer into one ERR (the client saw no part of the result set), and the rest of
// the answer is swallowed.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "masking/masking.h"
#include "protocol/mysql/messages.h"

namespace dbwarden::proxy {

// What a masked answer asks of its statement's plan (the relay's, over proxy/mask_plan.h):
// one call per column definition, one when they are all read, one per non-NULL value.
class MysqlResultPlanner {
 public:
  enum class Rows : uint8_t {
    kPass,    // no value of this result changes: rows go on as they are
    kMask,    // value() for every non-NULL value of every row
    kRefuse,  // the statement's results are refused (`refusal` says why)
  };
  virtual ~MysqlResultPlanner() = default;
  // Definition `index` of the result being read (a new result starts at index 0).
  virtual void column(size_t index, const mysql::ColumnDefinition& def) = 0;
  virtual Rows columns_done(size_t count, std::string& refusal) = 0;
  // One value of column `index`: kUnchanged leaves `out` alone.
  virtual masking::Outcome value(size_t index, const masking::Column& type, std::string_view in,
                                 std::string& out) = 0;
  // One result of the answer ended (OK, ERR or the end of its rows), refused or not.
  virtual void result_done() {}
};

struct MysqlResultLimits {
  size_t max_message_bytes = size_t{64} << 20;  // a longer row is refused (fail closed)
};

class MysqlResultMasker {
 public:
  enum class State : uint8_t {
    kIdle,     // no answer being masked
    kRunning,  // inside the answer
    kDone,     // the answer ended (its last byte was consumed)
    kInfile,   // the server asked for a LOCAL INFILE: the rest is no result set
    kBroken,   // the answer cannot be framed: the connection must end
  };

  explicit MysqlResultMasker(const MysqlResultLimits& limits = {}) : limits_(limits) {}

  // A new answer: `binary` for COM_STMT_EXECUTE's rows; `metadata_byte` when column counts
  // carry the metadata flag. The planner must outlive the answer.
  void start(MysqlResultPlanner& planner, bool binary, bool deprecate_eof, bool metadata_byte);
  // Server bytes of the answer; appends what the client gets to `out`. Returns how many
  // were consumed: fewer than given once the answer ended (the rest is not its own).
  size_t feed(std::span<const uint8_t> bytes, std::vector<uint8_t>& out);
  State state() const { return state_; }
  // Why the answer was refused ("" when it was not).
  const std::string& refusal() const { return refusal_; }

 private:
  enum class Part : uint8_t { kFirst, kColumns, kColumnsEof, kRows };

  void on_message(std::vector<uint8_t>& out);
  void first(std::vector<uint8_t>& out);
  void column(std::vector<uint8_t>& out);
  void rows(std::vector<uint8_t>& out);
  void end_of_result(uint16_t status);
  void rewrite_text_row(std::vector<uint8_t>& out);
  void rewrite_binary_row(std::vector<uint8_t>& out);
  // One value of column `i`: true when it changes, to `repl_` or to NULL (`to_null`).
  bool mask(size_t i, std::string_view value, bool& to_null);
  void emit(std::span<const uint8_t> payload, std::vector<uint8_t>& out);
  // An ERR with sequence id `seq` (before the shift) in place of what is left.
  void refuse(std::string_view why, uint8_t seq, std::vector<uint8_t>& out);

  MysqlResultLimits limits_;
  MysqlResultPlanner* planner_ = nullptr;
  bool binary_ = false, deprecate_eof_ = false, metadata_byte_ = false;
  State state_ = State::kIdle;
  Part part_ = Part::kFirst;
  bool swallow_ = false;  // refused: the rest of the answer is read, never sent

  // The packet being read.
  uint8_t header_[mysql::kHeaderSize] = {};
  size_t header_have_ = 0;
  uint32_t left_ = 0;  // payload bytes of the current packet still to come
  bool in_payload_ = false;
  bool continued_ = false;  // the next header continues the message
  uint8_t msg_seq_ = 0;     // sequence id of the message's first packet
  uint32_t msg_packets_ = 0;
  uint32_t first_length_ = 0;  // payload length of the message's first packet
  uint64_t msg_length_ = 0;
  bool overflow_ = false;     // longer than max_message_bytes: only a prefix kept
  std::vector<uint8_t> msg_;  // the message's payload (or a prefix of it)
  int seq_shift_ = 0;         // packets added (or saved) by rewritten messages so far

  // The result set being read.
  uint64_t columns_left_ = 0;
  uint8_t count_seq_ = 0;      // the column count's sequence id (an ERR in its place)
  std::vector<uint8_t> held_;  // the column count and definitions, until the last
  std::vector<masking::Column> columns_;
  std::vector<uint8_t> types_;  // each column's type byte (binary value layout)
  bool any_mask_ = false;       // the planner said kMask for this result

  std::string repl_;
  std::vector<uint8_t> row_;
  std::string refusal_;
};

}  // namespace dbwarden::proxy
