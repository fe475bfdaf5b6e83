// SPDX-License-Identifier: Apache-2.0
#include "agent/approvals_server.h"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <fstream>
#include <vector>

#include "agent/approval_blast.h"
#include "agent/log.h"

namespace dbwarden::agent {
namespace {

constexpr size_t kMaxRequest = 4096;
constexpr uint64_t kNsPerSecond = 1'000'000'000ull;

uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * kNsPerSecond + static_cast<uint64_t>(ts.tv_nsec);
}

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string_view::npos ? tab : tab - start));
    if (tab == std::string_view::npos) return out;
    start = tab + 1;
  }
}

bool parse_u64(std::string_view s, uint64_t& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

std::string identity_line(const approvals::Requester& w) {
  std::string s = "db user " + w.db_user + ", database " + w.database;
  if (!w.application_name.empty()) s += ", application_name " + w.application_name;
  if (!w.client_address.empty()) {
    s += ", client " + w.client_address;
    if (w.client_port != 0) s += " port " + std::to_string(w.client_port);
  }
  if (w.pid != 0) {
    s +=
        ", process " + std::to_string(w.pid) + " " + w.executable + " uid " + std::to_string(w.uid);
    if (!w.user_name.empty()) s += " (" + w.user_name + ")";
    if (w.login_uid != approvals::kUnknownId) {
      s += " login uid " + std::to_string(w.login_uid);
      if (!w.login_user.empty()) s += " (" + w.login_user + ")";
    }
    if (!w.unit.empty()) s += ", unit " + w.unit;
    if (!w.container.empty()) s += ", container " + w.container;
  } else if (w.client_address.empty()) {
    s += ", local client process unknown";
  }
  return s;
}

std::string one_line(const approvals::RequestView& r, uint64_t now_ns) {
  std::string text = r.spec.text.substr(0, 80);
  for (char& c : text) {
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
  }
  return std::to_string(r.id) + "\t" + std::to_string((now_ns - r.created_ns) / kNsPerSecond) +
         "s\t" + r.spec.rule + "\t" + r.spec.who.db_user + "@" + r.spec.who.database + "\t" +
         std::to_string(r.approved_by.size()) + "/" + std::to_string(r.spec.approvals) + "\t" +
         blast_column(r.spec) + "\t" + text + "\n";
}

std::string details(const approvals::RequestView& r, uint64_t now_ns) {
  std::string s = "request:    " + std::to_string(r.id) + "\n";
  s += "state:      " + std::string(approvals::state_name(r.state)) + "\n";
  s +=
      "waiting:    " + std::to_string((now_ns - r.created_ns) / kNsPerSecond) + "s (times out in " +
      std::to_string(r.deadline_ns > now_ns ? (r.deadline_ns - now_ns) / kNsPerSecond : 0) + "s)\n";
  s += "rule:       " + r.spec.rule + "\n";
  s += "operation:  " + r.spec.operation + "\n";
  char fp[17];
  snprintf(fp, sizeof fp, "%016llx", static_cast<unsigned long long>(r.spec.fingerprint));
  s += "fingerprint: " + std::string(fp) + "\n";
  s += "statement:  " + r.spec.text + "\n";
  s += "tables:     ";
  for (size_t i = 0; i < r.spec.tables.size(); ++i) s += (i ? ", " : "") + r.spec.tables[i];
  s += "\n";
  if (!r.spec.why.empty()) s += "why:        " + r.spec.why + "\n";
  if (has_blast_radius(r.spec)) s += "blast radius: " + blast_line(r.spec) + "\n";
  s += "who:        " + identity_line(r.spec.who) + "\n";
  s += "history:    " +
       std::string(r.spec.ran_before == 1   ? "this identity ran this statement shape before"
                   : r.spec.ran_before == 0 ? "this identity never ran this statement shape"
                                            : "not known (learn mode does not cover it)") +
       "; approved " + std::to_string(r.spec.approved_before) + " time" +
       (r.spec.approved_before == 1 ? "" : "s") + " before\n";
  s += "approvals:  " + std::to_string(r.approved_by.size()) + " of " +
       std::to_string(r.spec.approvals);
  for (size_t i = 0; i < r.approved_by.size(); ++i) s += (i ? ", " : " by ") + r.approved_by[i];
  s += "\napprovers:  ";
  for (size_t i = 0; i < r.spec.approvers.size(); ++i) s += (i ? ", " : "") + r.spec.approvers[i];
  return s + "\n";
}

}  // namespace

std::string HandleApprovalsRequest(approvals::Broker& broker, const approvals::Approver& who,
                                   std::string_view line, uint64_t now_ns,
                                   ApprovalRefusals* refusals) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  const auto f = split_tabs(line);
  const std::string_view verb = f[0];
  if (verb == "list") {
    std::string out = "ok\n";
    for (const auto& r : broker.list()) out += one_line(r, now_ns);
    return out;
  }
  const bool deciding = verb == "approve" || verb == "deny";
  // A refused decision (or a malformed request) is counted and recorded as the API's are.
  auto refused = [&](RefusalReason reason, uint64_t id, const std::string& why) {
    if (refusals != nullptr) {
      std::string caller = "uid " + std::to_string(who.uid);
      if (who.login_uid != approvals::kUnknownId) {
        caller += " (login uid " + std::to_string(who.login_uid) + ")";
      }
      refusals->refuse("cli", reason, id, who.name,
                       std::string(verb.substr(0, 20)) + (id ? " " + std::to_string(id) : "") +
                           " by " + caller + ": " + why,
                       now_ns);
    }
    return "error: " + why + "\n";
  };
  uint64_t id = 0;
  if (f.size() < 2 || !parse_u64(f[1], id)) {
    if (!deciding && verb != "show") {
      return refused(RefusalReason::kBadRequest, 0,
                     "unknown request `" + std::string(verb.substr(0, 20)) + "`");
    }
    return deciding ? refused(RefusalReason::kBadRequest, 0, "give a request id")
                    : "error: give a request id\n";
  }
  if (verb == "show") {
    auto r = broker.show(id);
    if (!r) return "error: no request " + std::to_string(id) + "\n";
    return "ok\n" + details(*r, now_ns);
  }
  if (!deciding) {
    return refused(RefusalReason::kBadRequest, 0,
                   "unknown request `" + std::string(verb.substr(0, 20)) + "`");
  }
  uint64_t for_seconds = 0;
  if (f.size() >= 3 && !f[2].empty() && !parse_u64(f[2], for_seconds)) {
    return refused(RefusalReason::kBadRequest, id, "bad grant window");
  }
  const std::string reason(f.size() >= 4 ? f[3] : "");
  approvals::Refusal why = approvals::Refusal::kNone;
  auto s = verb == "approve"
               ? broker.approve(id, who, reason, for_seconds * kNsPerSecond, now_ns, &why)
               : broker.deny(id, who, reason, now_ns, &why);
  if (!s.ok()) {
    if (why == approvals::Refusal::kUnknownRequest && refusals != nullptr) {
      // The proxy forgets a request once it has acted on its decision; the history has not.
      if (const std::string kind = refusals->decided_as(id); !kind.empty()) {
        return refused(RefusalReason::kAlreadyDecided, id,
                       "request " + std::to_string(id) + " is already " + kind);
      }
    }
    return refused(reason_of(why), id, s.status().message());
  }
  if (verb == "deny") return "ok\nrequest " + std::to_string(id) + " denied\n";
  if (s.value() == approvals::State::kPending) {
    return "ok\nrequest " + std::to_string(id) + ": your approval is recorded; it needs more\n";
  }
  return "ok\nrequest " + std::to_string(id) + " approved" +
         (for_seconds ? " (and granted for " + std::to_string(for_seconds) + "s)" : "") + "\n";
}

Result<approvals::Approver> ApproverOfPeer(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Status::Error(std::string("SO_PEERCRED: ") + std::strerror(errno));
  }
  approvals::Approver a;
  a.uid = cred.uid;
  a.channel = "cli";
  uint64_t login = 0;
  std::ifstream f("/proc/" + std::to_string(cred.pid) + "/loginuid");
  std::string text;
  // 4294967295: no login uid (a daemon, or a session without pam_loginuid).
  if (f >> text && parse_u64(text, login) && login != 4294967295u) {
    a.login_uid = static_cast<int64_t>(login);
  }
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwuid_r(cred.uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
    a.name = found->pw_name;
  } else {
    a.name = std::to_string(cred.uid);
  }
  return a;
}

Result<std::unique_ptr<ApprovalsServer>> ApprovalsServer::Start(const std::string& path,
                                                                const std::string& group,
                                                                approvals::Broker& broker,
                                                                ApprovalRefusals* refusals) {
  std::unique_ptr<ApprovalsServer> s(new ApprovalsServer(broker, refusals));
  s->path_ = path;
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  if (path.size() >= sizeof(un.sun_path)) return Status::Error("approvals socket path too long");
  std::memcpy(un.sun_path, path.c_str(), path.size() + 1);
  gid_t gid = 0;
  if (!group.empty()) {
    ::group g{};
    ::group* found = nullptr;
    std::vector<char> buf(16384);
    if (getgrnam_r(group.c_str(), &g, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
      return Status::Error("approvals-group: no unix group `" + group + "`");
    }
    gid = found->gr_gid;
  }
  // Non-blocking: the workers all wait for it, and those that lose the race for a
  // connection must not block in accept().
  s->listen_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  s->stop_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!s->listen_.valid() || !s->stop_.valid()) {
    return Status::Error(std::string("approvals socket: ") + std::strerror(errno));
  }
  unlink(path.c_str());
  // Created with no access for anyone but root, then opened to the group: never a moment
  // in which others could connect.
  const mode_t old = umask(0177);
  const int bound = bind(s->listen_.get(), reinterpret_cast<sockaddr*>(&un), sizeof un);
  umask(old);
  if (bound != 0) {
    return Status::Error("approvals socket " + path + ": " + std::strerror(errno));
  }
  if (!group.empty() && (chown(path.c_str(), 0, gid) != 0 || chmod(path.c_str(), 0660) != 0)) {
    return Status::Error("approvals socket " + path + ": " + std::strerror(errno));
  }
  if (listen(s->listen_.get(), 64) != 0) {
    return Status::Error("approvals socket " + path + ": " + std::strerror(errno));
  }
  ApprovalsServer* raw = s.get();
  for (size_t i = 0; i < kApprovalsWorkers; ++i) s->workers_.emplace_back([raw] { raw->run(); });
  return s;
}

ApprovalsServer::~ApprovalsServer() {
  if (!workers_.empty()) {
    // Never read: it stays readable, and every worker sees it.
    const uint64_t one = 1;
    (void)!write(stop_.get(), &one, sizeof one);
    for (std::thread& t : workers_) t.join();
  }
  if (!path_.empty()) unlink(path_.c_str());
}

void ApprovalsServer::run() {
  pthread_setname_np(pthread_self(), "dbw-approvals");
  for (;;) {
    pollfd p[2] = {{listen_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents) return;
    if (!(p[0].revents & POLLIN)) continue;
    // Blocking (no SOCK_NONBLOCK), read and written under serve()'s timeouts.
    UniqueFd c(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (c.valid()) serve(c.get());
  }
}

void ApprovalsServer::serve(int fd) {
  // A caller gets two seconds to send its line: the CLI sends it at once.
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string line;
  char buf[512];
  while (line.find('\n') == std::string::npos && line.size() < kMaxRequest) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  std::string reply;
  auto who = ApproverOfPeer(fd);
  if (!who.ok()) {
    reply = "error: " + who.status().message() + "\n";
  } else if (line.find('\n') == std::string::npos) {
    reply = "error: incomplete request\n";
  } else {
    line.resize(line.find('\n'));
    reply = HandleApprovalsRequest(broker_, who.value(), line, mono_ns(), refusals_);
  }
  size_t off = 0;
  while (off < reply.size()) {
    // A caller that left before its answer must not end the agent (SIGPIPE).
    const ssize_t n = send(fd, reply.data() + off, reply.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

}  // namespace dbwarden::agent
