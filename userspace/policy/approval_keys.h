// SPDX-License-Identifier: Apache-2.0
//
// The policy file's approval settings (README "Approvals"): the top-level
// `approver_groups:` mapping and a require_approval rule's `approvers`,
// `approvals` and `timeout`. Kept out of loader.cc, which calls these with its
// own error reporter so every mistake still reads file:line:column.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "policy/yaml_tree.h"

namespace dbwarden::policy {

using YamlError = std::function<void(const YamlNode&, const std::string&)>;

inline constexpr size_t kMaxApproverGroups = 256;
inline constexpr size_t kMaxGroupUsers = 1024;
inline constexpr uint32_t kMaxApprovals = 16;
inline constexpr uint64_t kMinApprovalTimeoutMs = 1000;
inline constexpr uint64_t kMaxApprovalTimeoutMs = 7 * 24 * 3600 * 1000ull;

// "90s", "5m", "2h", "1d" -> milliseconds; false on anything else.
bool parse_duration_ms(std::string_view text, uint64_t* ms);

// `approver_groups: {dba: [alice, bob], ...}` into `out` (sorted, deduplicated users).
void read_approver_groups(const YamlNode& v, std::vector<ApproverGroup>& out,
                          const YamlError& error);

// One of a rule's approval keys (`approvers`, `approvals`, `timeout`). False when `key`
// is not one of them.
bool read_approval_key(const YamlNode& key, const YamlNode& value, ApprovalRule& out,
                       const YamlError& error);
bool is_approval_key(std::string_view key);

// After all rules are read: every named group exists, and its members can reach the
// quorum. `at` is where the rule's `approvers` (or the rule itself) was written.
void check_approval_rule(const YamlNode& at, const ApprovalRule& rule,
                         const std::vector<ApproverGroup>& groups, const YamlError& error);

}  // namespace dbwarden::policy
