// SPDX-License-Identifier: Apache-2.0
//
// What the PostgreSQL and the MySQL relays (pg_relay.h, mysql_relay.h) share: the judge
// asked once per SQL message with its verdicts kept for the records, the decoder session
// that sees every byte either way, the generation each prepared statement was judged under,
// a blocked message held until the server is idle, and the end of a connection with the
// protocol's fatal error. `P` names the protocol's session and decoder types, its two
// directions, its dialect and how it names a prepared statement.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/statement.h"
#include "proxy/annotator.h"
#include "proxy/byte_buffer.h"
#include "proxy/decision_log.h"
#include "proxy/judge.h"
#include "proxy/relay.h"

namespace dbwarden::proxy {

struct RelayLimits {
  // Query/Parse messages up to this size are read whole and judged; a larger one is judged
  // as unparsed (the policy's on_unparsed decides).
  size_t max_judged_bytes = (1u << 20) + 4096;
  // A result message (row) that masking must rewrite is held whole up to this size; a
  // larger one ends the connection rather than leave unmasked.
  size_t max_masked_message_bytes = 64u << 20;
};

template <class P>
class RelayBase : public Relay {
 public:
  void on_client(ByteBuffer& in, RelayOutput& out, uint64_t now_ns) final {
    bool more = true;
    while (more && !closing_ && !holding_ && !in.empty()) more = step(in, out, now_ns);
  }
  bool wants_client_bytes() const final { return !holding_ && !closing_; }
  uint64_t blocked_messages() const { return blocked_; }

 protected:
  RelayBase(ConnectionInfo& info, Judge& judge, RecordSink& records,
            const typename P::Limits& decoder_limits, const RelayLimits& limits,
            typename P::Counters& counters)
      : info_(info),
        judge_(judge),
        annotator_(decisions_, judge, P::kDialect, records),
        session_(info, annotator_, decoder_limits, counters),
        limits_(limits) {}

  // One step over the front of `in`; false when it needs more bytes or holds.
  virtual bool step(ByteBuffer& in, RelayOutput& out, uint64_t now_ns) = 0;
  // Called while holding, after the server's bytes: answers the held message once the
  // server has answered everything before it.
  virtual void release_held(RelayOutput& out, uint64_t now_ns) = 0;

  // Judges one message's text into verdict_ and keeps each statement's verdict for its
  // record.
  void judge(std::string_view text, bool complete, bool backslash_escapes) {
    judge_.judge(info_, P::kDialect, text, complete, backslash_escapes, &verdict_);
    for (const auto& s : verdict_.statements) decisions_.remember(s);
  }
  // Whether prepared statement `key` was judged under the policy in force.
  bool judged_now(const typename P::StatementKey& key) const {
    auto it = judged_at_.find(key);
    return it != judged_at_.end() && it->second == judge_.generation();
  }
  void note_judged(const typename P::StatementKey& key) {
    if (judged_at_.size() >= 4096) judged_at_.clear();  // bounded: they are judged again
    judged_at_[key] = judge_.generation();
  }
  // The blocked message, the first `total` bytes of `in`, waits for release_held().
  bool hold(ByteBuffer& in, size_t total, RelayOutput& out, uint64_t now_ns) {
    const auto message = in.data().first(total);
    held_.assign(message.begin(), message.end());
    in.consume(total);
    holding_ = true;
    release_held(out, now_ns);
    return !holding_;
  }
  // Client bytes: to the server or not, and to the decoder in any case.
  void pass(std::span<const uint8_t> bytes, bool to_server, RelayOutput& out, uint64_t now_ns) {
    if (bytes.empty()) return;
    if (to_server) out.to_server(bytes);
    session_.on_data(P::kFromClient, bytes, now_ns);
  }
  // The proxy's own answer, as the server's would be: to the client and the decoder.
  void answer(std::span<const uint8_t> reply, RelayOutput& out, uint64_t now_ns) {
    out.to_client(reply);
    session_.on_data(P::kFromServer, reply, now_ns);
  }
  // Ends the connection with `reply`, the protocol's fatal error, once it is written.
  // `recorded`: the decoder sees it too (it ends a statement); a reply to bytes that were
  // never the protocol's stays out of the records.
  void close_with(std::span<const uint8_t> reply, bool recorded, RelayOutput& out,
                  uint64_t now_ns) {
    if (recorded) {
      answer(reply, out, now_ns);
    } else {
      out.to_client(reply);
    }
    closing_ = true;
    out.close_after_flush();
  }

  ConnectionInfo& info_;
  Judge& judge_;
  DecisionLog decisions_;
  RecordAnnotator annotator_;
  typename P::Session session_;
  RelayLimits limits_;

  bool holding_ = false;  // a blocked message waits for the server to go idle
  bool closing_ = false;
  std::vector<uint8_t> held_;  // its bytes, fed to the decoder on release
  MessageVerdict verdict_;
  std::vector<uint8_t> scratch_;
  uint64_t blocked_ = 0;

 private:
  // The judge's generation each prepared statement was last judged under: one judged under
  // another (the policy was reloaded since) is judged again when it is executed.
  std::unordered_map<typename P::StatementKey, uint64_t> judged_at_;
};

}  // namespace dbwarden::proxy
