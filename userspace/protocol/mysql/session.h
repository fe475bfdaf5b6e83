// SPDX-License-Identifier: Apache-2.0
//
// MySQL / MariaDB decoder for one connection: the public entry point. Feeds
// both directions into a Framer each and stitches commands and responses into
// one Statement per SQL statement the server executed.
//
// Protocol: https://mariadb.com/kb/en/clientserver-protocol/
//
// What comes out, and when:
// - Handshake: the greeting gives the server's capabilities and its version:
//   `info.db_system` becomes "mariadb" when the version names MariaDB,
//   "mysql" otherwise (a connection joined mid-stream keeps what the caller
//   set, "mysql" by default); the client's
//   HandshakeResponse41 gives `info.user` and `info.database` (with
//   CLIENT_CONNECT_WITH_DB). Authentication data (responses, auth switch,
//   more-data exchanges, COM_CHANGE_USER's token) is skipped and any copy of
//   it zeroed: it never reaches a record or the heap beyond one packet.
//   An SSLRequest means TLS follows: both directions are ignored and
//   `encrypted_connections` counts it. CLIENT_COMPRESS (or zstd) negotiated:
//   after the authentication OK the stream is compressed, which this decoder
//   does not inflate: both directions are ignored and
//   `compressed_connections` counts it. An ERR refusing the login (before
//   the greeting, after the response, or answering COM_CHANGE_USER) counts
//   `login_failures_authentication` (bad credentials) or
//   `login_failures_other`; it gives no record.
// - COM_QUERY: split into statements (split.h) when multi-statements are on
//   (CLIENT_MULTI_STATEMENTS / COM_SET_OPTION; assumed on after a mid-stream
//   join). Each result (OK, ERR, or a result set ended by EOF/OK) completes
//   the next statement; SERVER_MORE_RESULTS_EXISTS chains them. A statement
//   starting with CALL collects every result up to its final OK. ERR ends the
//   query: later statements never ran and get no record. Records are held
//   back one result so that if the server confirms fewer statements than we
//   split (a BEGIN ... END body), the leftover text is appended to the last
//   confirmed record. Results beyond our pieces come out with empty text and
//   count as `unmatched_responses`.
//   `returned_rows`: rows of the result set(s), or affected rows of an OK.
//   `status_code`: "00000", or the ERR's error number ("1146", as the
//   OpenTelemetry MySQL/MariaDB conventions say) with its SQLSTATE in
//   `sqlstate`; `command_tag`: "OK"
//   / "RESULTSET" / "ERR <code>" (e.g. "ERR 1146"); `error_message`.
//   First statement starts at the command's first byte, later ones at the
//   previous result.
// - COM_INIT_DB: a record with text "USE `<db>`" (backticks doubled inside)
//   and `command_tag` "COM_INIT_DB"; updates `info.database` on success. An
//   OK carrying the session-state schema (a `USE db` with session tracking)
//   updates `info.database` too, as does a successful `USE db` statement
//   (servers without session tracking report it nowhere else). Records are
//   read with `info` when emitted, so a record held back is emitted before
//   the schema changes: each record carries the schema it ran in.
// - COM_STMT_PREPARE: no record on success (nothing ran), the text is kept by
//   statement id; a failed prepare gives a record with its text and the ERR.
//   COM_STMT_EXECUTE: a record with the prepared text and `statement_name`
//   the statement id in decimal ("7"); an id never seen prepared gives empty
//   text and `statement_unresolved`, is counted in `unresolved_statements`
//   and is never dropped. Bound parameters are decoded by type (values.h)
//   into `Statement::parameters` (nullopt for NULL) and also handed, one by
//   one, to the parameter observer just before the record is emitted.
//   COM_STMT_SEND_LONG_DATA values are collected (bounded) and reported as
//   their parameter's value. COM_STMT_FETCH (cursor) rows are counted and
//   give no record. COM_STMT_CLOSE forgets the id;
//   COM_STMT_RESET drops long data; COM_RESET_CONNECTION and a successful
//   COM_CHANGE_USER forget all ids (the server does).
// - COM_PING, COM_QUIT, COM_STMT_RESET, COM_SET_OPTION, COM_STATISTICS, ...:
//   no record. COM_CHANGE_USER: `info.user` / `info.database` on success.
// - LOCAL INFILE: the server's 0xFB request, the client's file packets (only
//   counted: `local_infile_bytes`, and the statement's request_bytes) and the
//   final OK/ERR completing the LOAD DATA statement.
// - Outcome unknown: a command still pending at close, or whose response was
//   lost when the server framing was lost, is emitted with
//   `capture_gap = true` and `status_code = ""` (not "00000": we do not know
//   it succeeded).
// - Gaps: inside a known packet they are skipped exactly; a gap over a header
//   loses the framing. The client side then scans for a plausible command
//   header (sequence 0, known command, fitting length); the server side waits
//   for the next client command, whose answer starts at the next server
//   byte (the protocol is request/response). Both count `resyncs`; records in
//   flight are marked `capture_gap`.
// - Mid-stream join: a first client packet that is a command (sequence 0)
//   rather than a handshake response counts `midstream_joins`; server bytes
//   before it are skipped. Capabilities are then unknown: multi-statements
//   are assumed on, and CLIENT_DEPRECATE_EOF is learned from the first result
//   set (a row where the EOF after the column definitions would be), and the
//   metadata flag of MariaDB's cached result set metadata from the first
//   column count packet that carries one (the binary protocol then omits
//   column definitions the client already has).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/mysql/framer.h"
#include "protocol/mysql/messages.h"
#include "protocol/mysql/split.h"
#include "protocol/mysql/values.h"
#include "protocol/statement.h"

namespace dbwarden::mysql {

// True for a greeting's server version that names MariaDB.
bool IsMariaDbVersion(std::string_view version);

class Session final : private FrameHandler {
 public:
  using ParameterObserver =
      std::function<void(const Statement& statement, size_t index, std::string_view value)>;

  // `info`, `sink` and `counters` must outlive the session.
  Session(ConnectionInfo& info, StatementSink& sink, const Limits& limits, Counters& counters);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() override;

  // Calls arrive in capture order (a request's bytes before its response's).
  void on_data(Direction dir, std::span<const uint8_t> bytes, uint64_t ts_ns);
  // `length` bytes of `dir` were not captured (known length).
  void on_gap(Direction dir, uint64_t length, uint64_t ts_ns);
  // Emits everything still pending (outcome unknown, see above).
  void on_close(uint64_t ts_ns);

  // Called for each bound parameter of a COM_STMT_EXECUTE (index from 0;
  // NULL as "NULL") right before its record goes to the sink.
  void set_parameter_observer(ParameterObserver observer) { observer_ = std::move(observer); }

  // For the enforcement proxy, which feeds a session exactly the bytes the client sent
  // and saw. The login is done: a client packet with sequence id 0 is a command.
  bool in_command_phase() const { return phase_ == Phase::kCommand; }
  // Logged in and every command fed so far has its whole answer (LOCAL INFILE included):
  // an answer of the proxy's own goes next.
  bool idle() const { return phase_ == Phase::kCommand && ops_.empty() && !infile_; }
  // The text of prepared statement `id` (known once the server answered its prepare), or
  // null when unknown.
  // Id 0xffffffff is MariaDB's "the statement prepared last" (a pipelined prepare).
  const std::string* prepared_text(uint32_t id) const {
    if (id == 0xffffffffu) return last_prepared_ ? &last_prepared_->text : nullptr;
    auto it = prepared_.find(id);
    return it == prepared_.end() ? nullptr : &it->second->text;
  }
  // What the proxy needs to send prepared statement `id`'s parameters again (the blast
  // radius's EXPLAIN of a held execute, proxy/mysql_explain.h): its parameter count, the
  // types its executes bound so far (type | 0x8000 if unsigned; empty: none yet; a client
  // sends them with its first execute and may leave them out of later ones), and whether
  // long data (COM_STMT_SEND_LONG_DATA) waits for its next execute. False when its
  // prepare's answer is not known (id 0xffffffff included).
  struct PreparedParams {
    uint16_t count = 0;
    const std::vector<uint16_t>* types = nullptr;
    bool long_data = false;
  };
  bool prepared_params(uint32_t id, PreparedParams* out) const;
  // CLIENT_QUERY_ATTRIBUTES (MySQL 8): an execute's parameter block carries a count and names.
  bool query_attributes() const { return (caps_ & kClientQueryAttributes) != 0; }
  // How a COM_QUERY's text is split and lexed (sql_mode NO_BACKSLASH_ESCAPES, multi-statements).
  bool backslash_escapes() const { return backslash_escapes_; }
  bool multi_statements() const { return multi_statements_; }
  // How result sets are framed: an OK (0xfe) instead of EOF packets; a metadata flag after
  // each column count (MariaDB's cache-metadata, MySQL's optional metadata).
  bool deprecate_eof() const { return deprecate_eof_; }
  bool metadata_flag() const { return metadata_byte_; }
  // SERVER_STATUS_IN_TRANS in the last OK / EOF the server sent.
  bool in_transaction() const { return (last_status_ & kStatusInTransaction) != 0; }

 private:
  enum class Phase : uint8_t { kStart, kAuth, kCommand, kStopped };
  enum class Resp : uint8_t {
    kFirst,        // the first packet of a result
    kColumns,      // column definitions
    kColumnsEof,   // the EOF after them (without CLIENT_DEPRECATE_EOF)
    kRows,         // rows until EOF / OK / ERR
    kPrepareDefs,  // parameter and column definitions after a prepare OK
    kFieldList,    // COM_FIELD_LIST definitions until EOF
    kInfile,       // LOCAL INFILE: waiting for the final OK / ERR
  };
  struct Prepared {
    std::string text;
    bool truncated = false;
    bool known = false;  // prepare answered OK: id and params are known
    uint32_t id = 0;
    uint16_t params = 0;
    BoundParameters bound;
    std::vector<std::string> long_data;
    std::vector<bool> has_long_data;
  };
  struct Cmd {
    uint8_t command = 0;
    bool gap = false;
    uint64_t start_ns = 0;
    uint64_t request_bytes = 0;
    // COM_QUERY
    std::string text;
    bool truncated = false;
    std::vector<SqlPiece> pieces;
    size_t next = 0;
    uint64_t last_end_ns = 0;
    bool has_held = false;
    size_t held_piece = 0;
    Statement held;
    uint64_t call_rows = 0;  // rows of a CALL's result sets so far
    bool call_rowsets = false;
    // COM_STMT_PREPARE / EXECUTE
    std::shared_ptr<Prepared> prepared;
    uint32_t statement_id = 0;
    std::vector<std::optional<std::string>> params;  // nullopt: SQL NULL
    bool unresolved = false;                         // executed id never seen prepared
    // COM_CHANGE_USER / COM_INIT_DB / COM_SET_OPTION
    std::string user, database;
    uint16_t option = 0;
  };

  Keep keep(Direction dir, uint8_t seq, int first, uint32_t packet_length) override;
  Keep keep_client(uint8_t seq, int first, uint32_t packet_length);
  Keep keep_server(uint8_t seq, int first, uint32_t packet_length);
  void on_frame(Direction dir, const Frame& frame) override;
  void on_framing_lost(Direction dir) override;
  void mark_gap(Direction dir);
  void stop_decoding();

  void on_client(const Frame& f);
  void on_handshake_response(const Frame& f);
  void on_data_after_ssl_request(Direction dir, std::span<const uint8_t> bytes, uint64_t ts_ns);
  void on_command(const Frame& f);
  Cmd& push(uint8_t command, const Frame& f);
  void on_query(const Frame& f);
  void on_execute(const Frame& f);
  void on_long_data(const Frame& f);
  void on_statement_id_command(const Frame& f);

  void on_server(const Frame& f);
  void on_greeting(const Frame& f);
  void on_auth_reply(const Frame& f);
  void count_login_failure(const Frame& err);
  void on_first(Cmd& c, const Frame& f);
  void on_err(Cmd& c, const Frame& f);
  void on_ok(Cmd& c, const Frame& f, bool eof);
  void on_prepare_ok(Cmd& c, const Frame& f);
  void change_schema(Cmd& c, std::string_view schema);
  void end_of_rows(Cmd& c, const Frame& f);
  // One result of `c` is complete.
  void result(Cmd& c, const Frame& f, bool rowset, uint64_t rows, uint16_t status);
  void finish(uint64_t end_ns);
  void abandon_pending(uint64_t ts_ns);

  Statement base_statement(const Cmd& c) const;
  Statement piece_statement(const Cmd& c, size_t piece) const;
  void complete_piece(Cmd& c, const Frame& f, std::string_view tag, std::optional<uint64_t> rows,
                      const ErrPacket* err);
  void finish_query(Cmd& c, uint64_t end_ns, bool closing);
  void emit_unknown(Cmd& c, uint64_t end_ns);
  void emit(Statement& s, const Cmd* c = nullptr);
  void flush_held(Cmd& c);
  void remember(const std::shared_ptr<Prepared>& p);

  ConnectionInfo& info_;
  StatementSink& sink_;
  const Limits limits_;
  Counters& counters_;
  Framer client_;
  Framer server_;
  ParameterObserver observer_;

  Phase phase_ = Phase::kStart;
  uint64_t server_caps_ = 0;
  uint64_t caps_ = 0;  // negotiated
  bool handshake_seen_ = false;
  // After the client's SSL request: the HandshakeResponse comes next as
  // sequence 2, in plaintext when the TLS library's calls are captured
  // (capture/tls_attach.h) and as a TLS record (16 03 ..) when they are not.
  // The first two bytes of each direction are held until that is decided.
  bool tls_pending_ = false;
  uint8_t response_seq_ = 1;
  std::vector<uint8_t> tls_hold_[2];  // index: Direction
  bool multi_statements_ = true;
  bool backslash_escapes_ = true;
  bool deprecate_eof_ = false;
  bool metadata_byte_ = false;  // column count packets carry a metadata flag
  uint16_t last_status_ = 0;    // of the last OK / EOF

  std::deque<Cmd> ops_;
  std::unordered_map<uint32_t, std::shared_ptr<Prepared>> prepared_;
  size_t prepared_bytes_ = 0;
  std::shared_ptr<Prepared> last_prepared_;

  bool client_gap_ = false;   // client bytes lost since the last command
  bool server_lost_ = false;  // server framing lost: pending answers unknown
  bool infile_ = false;       // client is sending LOCAL INFILE content
  Resp resp_ = Resp::kFirst;
  uint64_t columns_left_ = 0;
  uint64_t defs_left_ = 0;
  uint64_t rows_ = 0;
  uint64_t response_bytes_ = 0;
  uint64_t exec_rows_ = 0;  // COM_STMT_EXECUTE: rows over all its results
  bool exec_rowsets_ = false;
};

}  // namespace dbwarden::mysql
