// SPDX-License-Identifier: Apache-2.0
#include "agent/approval_blast.h"

#include "audit/json_escape.h"

namespace dbwarden::agent {

bool has_blast_radius(const approvals::RequestSpec& s) {
  return s.blast_rows >= 0 || !s.blast_unavailable.empty();
}

std::string blast_line(const approvals::RequestSpec& s) {
  if (s.blast_rows >= 0) {
    return "about " + std::to_string(s.blast_rows) + (s.blast_rows == 1 ? " row" : " rows") +
           (s.blast_via.empty() ? "" : " (" + s.blast_via + ")");
  }
  if (!s.blast_unavailable.empty()) return "estimate unavailable: " + s.blast_unavailable;
  return "";
}

std::string blast_column(const approvals::RequestSpec& s) {
  if (s.blast_rows >= 0)
    return std::to_string(s.blast_rows) + (s.blast_rows == 1 ? " row" : " rows");
  return s.blast_unavailable.empty() ? "-" : "unknown";
}

std::string blast_json(const approvals::RequestSpec& s) {
  std::string out;
  if (s.blast_rows >= 0) {
    out = "{\"rows\":" + std::to_string(s.blast_rows);
    if (!s.blast_via.empty()) {
      out += ",\"via\":";
      audit::append_json_string(s.blast_via, out);
    }
    return out + "}";
  }
  if (s.blast_unavailable.empty()) return out;
  out = "{\"unavailable\":";
  audit::append_json_string(s.blast_unavailable, out);
  return out + "}";
}

}  // namespace dbwarden::agent
