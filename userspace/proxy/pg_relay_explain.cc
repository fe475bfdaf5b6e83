// SPDX-License-Identifier: Apache-2.0
//
// PgRelay's blast radius (explain_estimate.h, pg_explain.h): the EXPLAIN of a held
// statement goes on the client's own session like a catalog lookup (pg_relay_lineage.cc),
// only while that session is idle outside a transaction, and its answer is framed by
// lookup_answer(). A prepared statement is explained with the parameters it is bound with:
// a held Bind's own, or for a held Parse the Bind of it that follows in the same read.
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

}  // namespace

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
    // Its Bind, when the client sent it with the Parse (drivers send the group at once).
    const auto rest = in.data().subspan(message.size());
    if (rest.size() >= pgsql::kTypedHeaderSize && rest[0] == 'B') {
      const size_t length = pgsql::ReadBe32(rest.data() + 1);
      if (length >= 4 && rest.size() >= 1 + length &&
          PgBindParameters(rest.subspan(pgsql::kTypedHeaderSize, length - 4), &bound,
                           &parameters) &&
          bound != name) {
        parameters = {};
      }
    }
    if (parameters.empty() && (!types.empty() || NamesParameter(text))) {
      return fail("its parameter values had not arrived with it");
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
