// SPDX-License-Identifier: Apache-2.0
//
// A request's blast radius (RequestSpec::blast_*) as each place a reviewer looks shows it:
// one line for `approvals show` and the webhook's Slack text, a short column for
// `approvals list`, and the JSON object of the API, the inbox and the webhook payload:
//   {"rows": 42, "via": "explain on the client's session"} or {"unavailable": "..."}.
#pragma once

#include <string>

#include "approvals/broker.h"

namespace dbwarden::agent {

// Whether the request carries one (a data-changing statement).
bool has_blast_radius(const approvals::RequestSpec& s);
// "about 42 rows (explain on the client's session)", "estimate unavailable: <why>", "".
std::string blast_line(const approvals::RequestSpec& s);
// "42 rows", "unknown", "-" (none: not a data-changing statement).
std::string blast_column(const approvals::RequestSpec& s);
// The JSON object; "" when there is none.
std::string blast_json(const approvals::RequestSpec& s);

}  // namespace dbwarden::agent
