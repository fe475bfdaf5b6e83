// SPDX-License-Identifier: Apache-2.0
#include "approvals/journal.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

namespace dbwarden::approvals {
namespace {

using nlohmann::json;

// At most kMaxJournalField bytes, never ending inside a UTF-8 sequence.
std::string cut(const std::string& s) {
  if (s.size() <= kMaxJournalField) return s;
  size_t n = kMaxJournalField;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// A field of `o` as a string, "" when absent or not one.
std::string str(const json& o, const char* key) {
  const auto it = o.find(key);
  return it != o.end() && it->is_string() ? cut(it->get<std::string>()) : std::string();
}

int64_t num(const json& o, const char* key, int64_t otherwise) {
  const auto it = o.find(key);
  return it != o.end() && it->is_number_integer() ? it->get<int64_t>() : otherwise;
}

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string next_line(uint64_t id) { return "{\"op\":\"next\",\"id\":" + std::to_string(id) + "}"; }

}  // namespace

std::string JournalAddLine(const RequestView& r) {
  const Requester& w = r.spec.who;
  char fp[17];
  std::snprintf(fp, sizeof fp, "%016llx", static_cast<unsigned long long>(r.spec.fingerprint));
  json who = {{"db_user", cut(w.db_user)},
              {"database", cut(w.database)},
              {"application_name", cut(w.application_name)},
              {"client_address", cut(w.client_address)},
              {"client_port", w.client_port},
              {"pid", w.pid},
              {"uid", w.uid},
              {"login_uid", w.login_uid},
              {"executable", cut(w.executable)},
              {"user_name", cut(w.user_name)},
              {"login_user", cut(w.login_user)},
              {"command", cut(w.command)},
              {"unit", cut(w.unit)},
              {"container", cut(w.container)}};
  json line = {{"op", "add"},
               {"id", r.id},
               {"rule", cut(r.spec.rule)},
               {"operation", cut(r.spec.operation)},
               {"fingerprint", fp},
               {"who", std::move(who)}};
  // Invalid UTF-8 in a name must not stop the journal: replaced, as the trail escapes it.
  return line.dump(-1, ' ', false, json::error_handler_t::replace);
}

JournalContents ParseJournal(std::string_view text) {
  JournalContents c;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    // A last line without its end is torn (a crash mid-write): never acted on.
    if (end == std::string_view::npos) {
      ++c.bad_lines;
      break;
    }
    const std::string_view line = text.substr(0, end);
    text.remove_prefix(end + 1);
    if (line.empty()) continue;
    ++c.lines;
    const json o = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!o.is_object() || !o.contains("op") || !o["op"].is_string() || !o.contains("id") ||
        !o["id"].is_number_unsigned()) {
      ++c.bad_lines;
      continue;
    }
    const std::string op = o["op"].get<std::string>();
    const uint64_t id = o["id"].get<uint64_t>();
    if (id == 0 || id == UINT64_MAX) {
      ++c.bad_lines;
      continue;
    }
    if (op == "next") {
      c.next_id = std::max(c.next_id, id);
      continue;
    }
    c.next_id = std::max(c.next_id, id + 1);
    if (op == "done") {
      c.pending.erase(id);
      continue;
    }
    if (op != "add") {
      ++c.bad_lines;
      continue;
    }
    RequestView r;
    r.id = id;
    r.spec.rule = str(o, "rule");
    r.spec.operation = str(o, "operation");
    const std::string fp = str(o, "fingerprint");
    r.spec.fingerprint = std::strtoull(fp.c_str(), nullptr, 16);
    if (const auto who = o.find("who"); who != o.end() && who->is_object()) {
      Requester& w = r.spec.who;
      w.db_user = str(*who, "db_user");
      w.database = str(*who, "database");
      w.application_name = str(*who, "application_name");
      w.client_address = str(*who, "client_address");
      w.client_port = static_cast<uint16_t>(num(*who, "client_port", 0));
      w.pid = static_cast<uint32_t>(num(*who, "pid", 0));
      w.uid = num(*who, "uid", kUnknownId);
      w.login_uid = num(*who, "login_uid", kUnknownId);
      w.executable = str(*who, "executable");
      w.user_name = str(*who, "user_name");
      w.login_user = str(*who, "login_user");
      w.command = str(*who, "command");
      w.unit = str(*who, "unit");
      w.container = str(*who, "container");
    }
    c.pending[id] = std::move(r);
  }
  return c;
}

Result<std::unique_ptr<Journal>> Journal::Open(const std::string& path,
                                               std::vector<RequestView>* left) {
  std::unique_ptr<Journal> j(new Journal(path));
  std::string text;
  {
    UniqueFd in(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in.valid() && errno != ENOENT) {
      return Status::Error(errno_text("approvals journal " + path));
    }
    char buf[65536];
    for (ssize_t n; in.valid() && (n = read(in.get(), buf, sizeof buf)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::Error(errno_text("approvals journal " + path));
      text.append(buf, static_cast<size_t>(n));
    }
  }
  JournalContents c = ParseJournal(text);
  j->next_id_ = c.next_id;
  for (auto& [id, r] : c.pending) {
    j->live_[id] = JournalAddLine(r);
    if (left != nullptr) left->push_back(std::move(r));
  }
  // Rewritten at once: what a crash tore or left dead goes, and the file is ours to append.
  if (Status s = j->replace(j->compacted()); !s.ok()) return s;
  Journal* raw = j.get();
  j->writer_ = std::thread([raw] { raw->run(); });
  return j;
}

Journal::~Journal() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_one();
  if (writer_.joinable()) writer_.join();
}

uint64_t Journal::next_id() const {
  std::lock_guard<std::mutex> lock(mu_);
  return next_id_;
}

size_t Journal::live() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_.size();
}

std::string Journal::compacted() const {
  std::string bytes = next_line(next_id_) + "\n";
  for (const auto& [id, line] : live_) bytes += line + "\n";
  return bytes;
}

bool Journal::append(const std::string& bytes) {
  return fd_.valid() && write_all(fd_.get(), bytes) && fdatasync(fd_.get()) == 0;
}

Status Journal::replace(const std::string& bytes) {
  const std::string tmp = path_ + ".new";
  UniqueFd out(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out.valid()) return Status::Error(errno_text("approvals journal " + tmp));
  if (!write_all(out.get(), bytes) || fdatasync(out.get()) != 0 ||
      rename(tmp.c_str(), path_.c_str()) != 0) {
    Status s = Status::Error(errno_text("approvals journal " + path_));
    unlink(tmp.c_str());
    return s;
  }
  // The rename itself lasts once the directory is synced.
  const size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash + 1);
  if (UniqueFd d(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); d.valid()) {
    (void)fsync(d.get());
  }
  UniqueFd appended(open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  if (!appended.valid()) return Status::Error(errno_text("approvals journal " + path_));
  fd_ = std::move(appended);
  return Status::Ok();
}

void Journal::run() {
  pthread_setname_np(pthread_self(), "dbw-appr-journal");
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || !queued_.empty() || !waiters_.empty(); });
    if (queued_.empty() && waiters_.empty()) return;  // stopped, and everything is written
    std::string bytes;
    bytes.swap(queued_);
    std::vector<Waiter*> waiters;
    waiters.swap(waiters_);
    std::vector<std::pair<uint64_t, Done>> added;
    added.swap(added_);
    lock.unlock();
    const bool ok = bytes.empty() || append(bytes);
    const std::string error = ok ? "" : errno_text("approvals journal " + path_);
    lock.lock();
    if (!ok) {
      write_errors_.fetch_add(1, std::memory_order_relaxed);
      last_error_ = error;
      for (const auto& [id, done] : added) live_.erase(id);  // refused: never made
    }
    // The broker hears of its adds without this lock (it calls remove() under its own), and
    // before the flush()es of the same batch return.
    lock.unlock();
    const Status written = ok ? Status::Ok() : Status::Error(error);
    for (const auto& [id, done] : added) done(written);
    lock.lock();
    for (Waiter* w : waiters) {
      w->ok = ok;
      w->done = true;
    }
    written_.notify_all();
    if (dead_ >= kCompactAfter && dead_ > live_.size()) {
      // Lines queued meanwhile go to the new file: an add twice or a done of a request the
      // new file no longer has reads the same.
      const std::string bytes_now = compacted();
      dead_ = 0;
      lock.unlock();
      const bool replaced = replace(bytes_now).ok();
      lock.lock();
      if (!replaced) write_errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

void Journal::add(const RequestView& r, Done done) {
  std::string line = JournalAddLine(r);
  std::lock_guard<std::mutex> lock(mu_);
  queued_ += line + "\n";
  live_[r.id] = std::move(line);
  next_id_ = std::max(next_id_, r.id + 1);
  added_.emplace_back(r.id, std::move(done));
  wake_.notify_one();
}

void Journal::remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (live_.erase(id) == 0) return;
  queued_ += "{\"op\":\"done\",\"id\":" + std::to_string(id) + "}\n";
  dead_ += 2;
  wake_.notify_one();
}

void Journal::flush() {
  Waiter w;
  std::unique_lock<std::mutex> lock(mu_);
  // The writer takes `w` out of waiters_ (swaps the list) before it sets w.done, and this
  // returns only after that: the pointer never outlives `w`.
  // cppcheck-suppress danglingLifetime
  waiters_.push_back(&w);
  wake_.notify_one();
  written_.wait(lock, [&] { return w.done; });
}

}  // namespace dbwarden::approvals
