// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes the policy loader (YAML is untrusted input: a policy file may come
// from anyone who can write the config): yaml-cpp's parser, the tree builder's
// limits, every key's validation and compilation (CIDRs, globs, RE2). A file
// that loads is then asked for decisions, plain and explained, on a few
// statements from a few clients, so that compiled conditions run too; the two
// must agree; so must the mask rules that apply and what explain says of them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "sql/analyzer.h"

namespace {

using dbwarden::ConnectionInfo;
using dbwarden::policy::Policy;
using dbwarden::sql::Dialect;

constexpr const char* kStatements[] = {
    "DELETE FROM public.accounts",
    "SELECT * FROM orders o JOIN items i ON i.o = o.id WHERE o.id = 1",
    "GRANT SELECT ON t TO PUBLIC",
    "ALTER TABLE t DROP COLUMN c",
    "EXPLAIN ANALYZE DELETE FROM t",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT 1",
    "SELEC 1",
    "",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto loaded = Policy::load_string(yaml, "fuzz.yaml");
  if (!loaded.ok()) {
    if (loaded.status().message().rfind("fuzz.yaml:", 0) != 0) std::abort();  // always located
    return 0;
  }
  const Policy& policy = *loaded.value();
  ConnectionInfo remote;
  remote.user = "app";
  remote.database = "shop";
  remote.client_address = "10.1.2.3";
  ConnectionInfo local;
  local.user = "postgres";
  local.peer.pid = 7;
  local.peer.uid = 1000;
  local.peer.login_uid = 1000;
  local.peer.executable = "/usr/bin/psql";
  local.peer.systemd_unit = "cron.service";
  local.peer.container_id = "3f2a9c0d11e7";
  dbwarden::sql::Analyzer analyzer;
  for (Dialect dialect : {Dialect::kPostgresql, Dialect::kMysql}) {
    for (const char* sql : kStatements) {
      const auto& a = analyzer.analyze(dialect, sql);
      for (const ConnectionInfo* who : {&remote, &local}) {
        const auto d = policy.decide(*who, a, sql);
        const auto e = policy.explain(*who, a, sql);
        if (d.rule != e.rule || d.action != e.action || d.message != e.message) std::abort();
        if (e.why.empty()) std::abort();
        // Mask rules decide nothing; the ones that apply are those explain
        // says apply, and the file's masker exists when there are any.
        if (d.action == dbwarden::policy::Action::kMask) std::abort();
        std::vector<const dbwarden::policy::MaskRule*> masks;
        policy.mask_rules_for(*who, a, masks);
        const std::string why = policy.explain_masks(*who, a);
        size_t applies = 0;
        for (size_t at = why.find("): APPLIES"); at != std::string::npos;
             at = why.find("): APPLIES", at + 1)) {
          ++applies;
        }
        if (applies != masks.size()) std::abort();
        if (policy.mask_rule_count() > 0 && policy.masker() == nullptr) std::abort();
      }
    }
  }
  return 0;
}
