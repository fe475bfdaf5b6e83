// SPDX-License-Identifier: Apache-2.0
#include "learn/learn.h"

namespace dbwarden::learn {

void apply_learn(const policy::Policy& policy, Store* store, const std::string& key,
                 const ConnectionInfo& who, const sql::Analysis& a, int64_t now_s,
                 policy::Decision& d, std::string* why, bool dry_run) {
  const policy::LearnSettings* learn = policy.learn();
  if (learn == nullptr) return;
  // Rules first: what they block is neither learned (it never ran) nor judged again.
  if (d.action == policy::Action::kBlock) {
    if (why) *why += "learn: not consulted (the rules block the statement)\n";
    return;
  }
  if (a.normalized.empty()) return;  // nothing ran: no fingerprint to learn
  std::string covered;
  if (!policy.learn_covers(who, a, why ? &covered : nullptr)) {
    if (why) *why += "learn: identity not covered (" + covered + ")\n";
    return;
  }
  const int64_t created = store != nullptr ? store->created_s() : now_s;
  const bool learning = learn->mode_at(now_s, created) == policy::LearnSettings::Mode::kLearn;
  if (why) {
    *why += "learn: identity " + Identity::of(who).to_string() + " covered (" + covered +
            "); mode " + (learning ? "learn" : "protect") + "\n";
  }
  if (store == nullptr) {
    if (why) *why += "learn: no learned set given (--state-dir): fingerprint not looked up\n";
    return;
  }
  Store::Seen seen;
  if (dry_run) {
    seen = store->known(key, a.fingerprint_value) ? Store::Seen::kKnown
           : learning                             ? Store::Seen::kLearned
                                                  : Store::Seen::kNovel;
  } else {
    seen = store->observe(key, a.fingerprint_value, now_s, learning);
  }
  if (why) {
    *why += "learn: fingerprint " + a.fingerprint +
            (seen == Store::Seen::kKnown     ? " was learned for this identity\n"
             : seen == Store::Seen::kLearned ? " is new: learned (now, while learning)\n"
             : seen == Store::Seen::kCapped  ? " is new: not learned, a cap is reached\n"
                                             : " was never learned for this identity: novel\n");
  }
  if (seen != Store::Seen::kNovel) return;
  d.action = learn->action;
  d.rule = std::string(policy::kNovelFingerprintRule);
  if (d.action != policy::Action::kBlock) return;
  const bool mysql = a.dialect == sql::Dialect::kMysql;
  d.message = !learn->message.empty()
                  ? learn->message
                  : "dbwarden: statement blocked: this identity never ran a statement of its "
                    "kind while learning (learn:novel_fingerprint " +
                        a.fingerprint + ")";
  d.sqlstate = !learn->sqlstate.empty() ? learn->sqlstate : (mysql ? "42000" : "42501");
  d.mysql_errno = learn->mysql_errno.value_or(1142);
}

}  // namespace dbwarden::learn
