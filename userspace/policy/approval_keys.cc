// SPDX-License-Identifier: Apache-2.0
#include "policy/approval_keys.h"

#include <algorithm>
#include <charconv>

namespace dbwarden::policy {
namespace {

// Group and user names become parts of messages and audit records: plain words only
// (the characters a Unix login name may hold).
bool plain_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string quoted(std::string_view s) { return "`" + std::string(s.substr(0, 80)) + "`"; }

// A scalar or a list of scalars, each a plain name.
bool read_names(const YamlNode& v, std::string_view what, std::vector<std::string>& out, size_t max,
                const YamlError& error) {
  std::vector<const YamlNode*> items;
  if (v.kind == YamlNode::Kind::kScalar) {
    items.push_back(&v);
  } else if (v.kind == YamlNode::Kind::kSequence && !v.items.empty()) {
    for (const YamlNode& i : v.items) items.push_back(&i);
  } else {
    error(v, std::string(what) + " must be a name or a non-empty list of names");
    return false;
  }
  if (items.size() > max) {
    error(v, std::string(what) + " lists more than " + std::to_string(max) + " names");
    return false;
  }
  bool ok = true;
  for (const YamlNode* i : items) {
    if (i->kind != YamlNode::Kind::kScalar || !plain_name(i->value)) {
      error(*i, std::string(what) + " entry " + quoted(i->value) +
                    " must be a name of 1-64 letters, digits, - _ .");
      ok = false;
      continue;
    }
    out.push_back(i->value);
  }
  return ok;
}

}  // namespace

bool parse_duration_ms(std::string_view text, uint64_t* ms) {
  if (text.size() < 2) return false;
  uint64_t unit = 0;
  switch (text.back()) {
    case 's':
      unit = 1000;
      break;
    case 'm':
      unit = 60 * 1000;
      break;
    case 'h':
      unit = 3600 * 1000;
      break;
    case 'd':
      unit = 24 * 3600 * 1000;
      break;
    default:
      return false;
  }
  const std::string_view digits = text.substr(0, text.size() - 1);
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size()) return false;
  if (n > UINT64_MAX / unit) return false;
  *ms = n * unit;
  return true;
}

void read_approver_groups(const YamlNode& v, std::vector<ApproverGroup>& out,
                          const YamlError& error) {
  if (v.kind != YamlNode::Kind::kMap || v.items.empty()) {
    error(v, "`approver_groups` must be a mapping of group name to a list of user names");
    return;
  }
  if (v.items.size() / 2 > kMaxApproverGroups) {
    error(v, "`approver_groups` holds more than " + std::to_string(kMaxApproverGroups) + " groups");
    return;
  }
  for (size_t i = 0; i + 1 < v.items.size(); i += 2) {
    const YamlNode& key = v.items[i];
    if (key.kind != YamlNode::Kind::kScalar || !plain_name(key.value)) {
      error(key, "approver group name " + quoted(key.value) +
                     " must be a name of 1-64 letters, digits, - _ .");
      continue;
    }
    const bool duplicate = std::any_of(out.begin(), out.end(),
                                       [&](const ApproverGroup& g) { return g.name == key.value; });
    if (duplicate) {
      error(key, "duplicate approver group " + quoted(key.value));
      continue;
    }
    ApproverGroup g;
    g.name = key.value;
    if (!read_names(v.items[i + 1], "approver group " + quoted(key.value), g.users, kMaxGroupUsers,
                    error)) {
      continue;
    }
    std::sort(g.users.begin(), g.users.end());
    g.users.erase(std::unique(g.users.begin(), g.users.end()), g.users.end());
    out.push_back(std::move(g));
  }
}

bool is_approval_key(std::string_view key) {
  return key == "approvers" || key == "approvals" || key == "timeout";
}

bool read_approval_key(const YamlNode& key, const YamlNode& value, ApprovalRule& out,
                       const YamlError& error) {
  if (key.value == "approvers") {
    out.groups.clear();
    read_names(value, "`approvers`", out.groups, kMaxApproverGroups, error);
    return true;
  }
  if (key.value == "approvals") {
    uint32_t n = 0;
    const std::string& s = value.value;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (value.kind != YamlNode::Kind::kScalar || ec != std::errc() || end != s.data() + s.size() ||
        n < 1 || n > kMaxApprovals) {
      error(value, "`approvals` must be a whole number from 1 to " + std::to_string(kMaxApprovals) +
                       " (distinct approvers needed)");
      return true;
    }
    out.approvals = n;
    return true;
  }
  if (key.value == "timeout") {
    uint64_t ms = 0;
    if (value.kind != YamlNode::Kind::kScalar || !parse_duration_ms(value.value, &ms) ||
        ms < kMinApprovalTimeoutMs || ms > kMaxApprovalTimeoutMs) {
      error(value,
            "`timeout` must be a duration from 1s to 7d written as a number and s, m, h "
            "or d (e.g. 90s, 5m, 2h)");
      return true;
    }
    out.timeout_ms = ms;
    return true;
  }
  return false;
}

void check_approval_rule(const YamlNode& at, const ApprovalRule& rule,
                         const std::vector<ApproverGroup>& groups, const YamlError& error) {
  if (rule.groups.empty()) {
    error(at, "`action: require_approval` needs `approvers:` (approver group names)");
    return;
  }
  std::vector<std::string> users;
  for (const std::string& name : rule.groups) {
    auto g = std::find_if(groups.begin(), groups.end(),
                          [&](const ApproverGroup& x) { return x.name == name; });
    if (g == groups.end()) {
      error(at, "`approvers` names group " + quoted(name) +
                    ", which `approver_groups:` does not define");
      return;
    }
    users.insert(users.end(), g->users.begin(), g->users.end());
  }
  std::sort(users.begin(), users.end());
  users.erase(std::unique(users.begin(), users.end()), users.end());
  if (users.size() < rule.approvals) {
    error(at, "`approvals: " + std::to_string(rule.approvals) + "` can never be reached: its " +
                  "groups have " + std::to_string(users.size()) + " distinct member(s)");
  }
}

}  // namespace dbwarden::policy
