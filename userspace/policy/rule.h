// SPDX-License-Identifier: Apache-2.0
//
// One compiled rule: its conditions in the form matching wants them (upper-
// cased operation words, parsed CIDRs, compiled RE2s), checked by match.cc.
// Built only by the loader; immutable afterwards.
#pragma once

#include <re2/re2.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/cidr.h"
#include "policy/policy.h"
#include "sql/dialect.h"

namespace dbwarden::policy {

// "DROP" (any DROP) or "DROP TABLE": the verb and, optionally, the object type
// as sql::Analysis names them.
struct OperationPattern {
  std::string verb;
  std::string object;  // "" = any
  std::string text;    // as normalised for messages: "DROP TABLE"
};

struct Rule {
  std::string name;
  int line = 0;
  int column = 0;
  Action action = Action::kAllow;
  // Block response; empty sqlstate / unset errno: the dialect's default.
  std::string message;
  std::string sqlstate;
  std::optional<uint16_t> mysql_errno;

  // Conditions. An empty list or an unset optional is not a condition.
  std::vector<std::string> users, databases, application_names;
  std::vector<Cidr> client_cidrs;
  std::vector<uint32_t> uids, login_uids;
  std::vector<std::string> executables, units, containers;  // globs
  std::vector<sql::Dialect> dialects;
  std::vector<OperationPattern> operations;
  // Table globs split at '.': compared part by part from the right, as many
  // parts as both the pattern and the statement's name have.
  std::vector<std::vector<std::string>> collections;
  std::vector<std::string> collection_texts;  // as written, for explain
  std::optional<bool> has_where, alter_table_drop, grant_to_public, copy_program;
  std::vector<uint64_t> fingerprints;
  std::vector<std::string> fingerprint_texts;  // as written, for explain
  std::vector<std::unique_ptr<re2::RE2>> regexes;

  // action: mask only.
  std::unique_ptr<MaskRule> mask;
  // action: require_approval only.
  ApprovalRule approval;

  // No condition at all: the rule matches every statement.
  bool matches_everything() const {
    return users.empty() && databases.empty() && application_names.empty() &&
           client_cidrs.empty() && uids.empty() && login_uids.empty() && executables.empty() &&
           units.empty() && containers.empty() && dialects.empty() && operations.empty() &&
           collections.empty() && !has_where && !alter_table_drop && !grant_to_public &&
           !copy_program && fingerprints.empty() && regexes.empty();
  }
};

// The block response defaults: PostgreSQL insufficient_privilege; MySQL
// ER_TABLEACCESS_DENIED_ERROR (1142) with its SQLSTATE 42000.
inline constexpr std::string_view kDefaultPgSqlstate = "42501";
inline constexpr std::string_view kDefaultMysqlSqlstate = "42000";
inline constexpr uint16_t kDefaultMysqlErrno = 1142;

}  // namespace dbwarden::policy
