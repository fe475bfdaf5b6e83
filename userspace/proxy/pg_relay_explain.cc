// SPDX-License-Identifier: Apache-2.0
//
// PgRelay's blast radius (explain_estimate.h, pg_explain.h): the EXPLAIN of a held
// statement goes on the client's own session like a catalog lookup (pg_relay_lineage.cc),
// only while that session is idle outside a transaction, and its answer is framed by
// lookup_answer(). A prepared statement is explained with the parameters it is bound with:
// a held Bind's own, or for a held Parse the Bind of it in its Sync group. A client may
// write the Parse and its Bind apart (libpq's pipeline mode flushed between them, a driver
// that writes message by message): the held Parse waits for it (awaiting_bind()), as the
// server would, which answers nothing before a Sync or Flush either.
#include <algorithm>

#include "protocol/pgsql/messages.h"
#include "proxy/pg_relay.h"

namespace dbwarden::proxy {

namespace {

// Whether `text` names a parameter ($1 ...) outside quotes (a rough look: a "$1" inside a
// literal makes it wait for a Bind it does not need, and the estimate is then unavailable).
bool NamesParameter(std::string_view text) {
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] == '$' && text[i + 1] >= '1' && text[i + 1] <= '9') return true;
  }
  return false;
}

enum class BindSearch : uint8_t { kFound, kAbsent, kMore };

// The Bind of prepared statement `name` among the whole messages of `rest`, what follows its
// Parse: kFound (its body in `body`); kAbsent when a message that ends the wait comes first
// (Sync, Flush, a Query, a Parse that names the statement again: the client expects an
// answer before it binds, or binds nothing); kMore when `rest` ends first. Describe, Close,
// Execute, and Parses and Binds of other statements are passed over.
BindSearch FindBind(std::span<const uint8_t> rest, std::string_view name,
                    std::span<const uint8_t>* body) {
  size_t pos = 0;
  for (;;) {
    if (rest.size() - pos < pgsql::kTypedHeaderSize) return BindSearch::kMore;
    const uint8_t type = rest[pos];
    const size_t length = pgsql::ReadBe32(rest.data() + pos + 1);
    if (length < 4 || (type != 'B' && type != 'P' && type != 'D' && type != 'C' && type != 'E')) {
      return BindSearch::kAbsent;
    }
    if (rest.size() - pos - 1 < length) return BindSearch::kMore;
    const auto message = rest.subspan(pos + pgsql::kTypedHeaderSize, length - 4);
    pos += 1 + length;
    if (type != 'B' && type != 'P') continue;
    pgsql::BodyReader r(message);
    std::string_view portal, statement;
    if (type == 'B' ? !r.cstring(&portal) || !r.cstring(&statement) : !r.cstring(&statement)) {
      return BindSearch::kAbsent;
    }
    if (statement != name) continue;
    if (type == 'P') return BindSearch::kAbsent;
    *body = message;
    return BindSearch::kFound;
  }
}

// Whether a held Parse (`body`, its text `text`) is explained with the values of a Bind.
bool WantsBind(std::string_view text, std::span<const uint8_t> body, std::string_view* name,
               std::vector<uint32_t>& types) {
  pgsql::BodyReader r(body);
  if (!r.cstring(name) || !PgParseParameterTypes(body, types)) return false;
  return !types.empty() || NamesParameter(text);
}

}  // namespace

bool PgRelay::awaiting_bind(const ByteBuffer& in, size_t total) {
  // An approved Parse (stepped again from released_) waits for nothing.
  if (&in == &released_ || !blast_radius_ || broker_ == nullptr ||
      verdict_.statements.size() != 1 || !WantsBlastRadius(verdict_.statements.front().text)) {
    return false;
  }
  const auto message = in.data().first(total);
  std::string_view name;
  std::vector<uint32_t> types;
  std::span<const uint8_t> body;
  if (!WantsBind(verdict_.statements.front().text, message.subspan(pgsql::kTypedHeaderSize), &name,
                 types)) {
    return false;
  }
  // Bounded: the Parse and what follows it up to the size a judged message may have (the
  // proxy reads on past that while it holds, so the wait always ends).
  return FindBind(in.data().subspan(total), name, &body) == BindSearch::kMore &&
         in.size() < limits_.max_judged_bytes;
}

bool PgRelay::start_explain(std::string_view text, std::span<const uint8_t> message,
                            const ByteBuffer& in, RelayOutput& out, std::string& unavailable,
                            ExplainJob& role) {
  // Why the session cannot run it now (the agent's role may instead).
  std::string busy;
  if (closing_ || looking_up_ || holding_ || skip_to_sync_) {
    busy = "the proxy was busy on the session";
  } else if (session_.transaction_status() != 'I') {
    busy = "the session is inside a transaction";
  } else if (!session_.idle() || session_.sync_pending()) {
    busy = "the session was still answering earlier statements";
  }
  const auto fail = [&](std::string why) {
    unavailable = busy.empty() ? std::move(why) : busy + ", and " + why;
    return false;
  };
  const uint8_t type = message[0];
  const auto body = message.subspan(pgsql::kTypedHeaderSize);
  std::vector<uint32_t> types;
  std::span<const uint8_t> parameters;
  std::string_view bound;
  if (type == 'P') {
    std::string_view name;
    pgsql::BodyReader r(body);
    if (!r.cstring(&name) || !PgParseParameterTypes(body, types)) {
      return fail("the Parse message is malformed");
    }
    // Its Bind in its Sync group (waited for: awaiting_bind()).
    std::span<const uint8_t> bind;
    const BindSearch found = FindBind(in.data().subspan(message.size()), name, &bind);
    if (found == BindSearch::kFound && !PgBindParameters(bind, &bound, &parameters)) {
      unavailable = "the Bind message is malformed";
      return false;
    }
    if (parameters.empty() && (!types.empty() || NamesParameter(text))) {
      return fail(found == BindSearch::kMore
                      ? "its Bind is larger than the proxy waits for"
                      : "its parameter values did not come with it (no Bind of it before Sync "
                        "or Flush)");
    }
  } else if (type == 'B') {
    if (!PgBindParameters(body, &bound, &parameters)) return fail("the Bind message is malformed");
    // The types the statement was prepared with; none given: the server infers them, as
    // it did for the client's Parse.
    if (const auto* prepared = session_.prepared_types(bound)) types = *prepared;
  }
  if (!busy.empty()) {
    if (!PgBindValues(parameters, role.values, role.formats)) {
      return fail("the Bind message is malformed");
    }
    unavailable = std::move(busy);
    role.text.assign(text);
    role.types = std::move(types);
    role.server_port = info_.server_port;
    role.database = info_.database;
    role.client_user = info_.user;
    return false;
  }
  if (!explain_.query(text, types, parameters, scratch_, unavailable)) return false;
  looking_up_ = true;
  explain_lookup_ = true;
  lookup_buf_.clear();
  lookup_bytes_ += scratch_.size();
  out.to_server(scratch_);  // not to the decoder: no record of it
  return true;
}

}  // namespace dbwarden::proxy
