// SPDX-License-Identifier: Apache-2.0
#include "audit/verify.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "audit/compress.h"
#include "audit/frame.h"
#include "audit/verify_cursor.h"
#include "audit/verify_parse.h"

namespace dbwarden::audit {
namespace {

std::string range(uint64_t from, uint64_t to_exclusive) {
  if (to_exclusive - from == 1) return "record seq " + std::to_string(from) + " is";
  return "records seq " + std::to_string(from) + ".." + std::to_string(to_exclusive - 1) + " are";
}

}  // namespace

// A record whose chain value did not match: judged once the next line is
// known (an inserted or swapped record is told apart by what follows it).
struct ChainVerifier::Pending {
  uint64_t line;
  std::string text;
  RecordChain rc;
};

Result<std::unique_ptr<ChainVerifier>> ChainVerifier::Create(VerifyOptions options) {
  std::unique_ptr<ChainVerifier> v(new ChainVerifier(std::move(options)));
  auto h = ChainHasher::Create(v->options_.hmac_key);
  if (!h.ok()) return h.status();
  v->hasher_ = std::move(h.value());
  v->cursor_ = std::make_unique<ChainCursor>(v->options_, *v->hasher_, v->summary_,
                                             /*framed=*/false);
  return v;
}

ChainVerifier::ChainVerifier(VerifyOptions options) : options_(std::move(options)) {}
ChainVerifier::~ChainVerifier() = default;

void ChainVerifier::fail(uint64_t line, std::string reason, bool needs_key) {
  if (failed()) return;
  summary_.failure = VerifyFailure{cursor_->file(), line, std::move(reason), needs_key};
}

void ChainVerifier::begin_file(const std::string& name) {
  cursor_->begin_file(name);
  line_ = 0;
  partial_.clear();
}

void ChainVerifier::feed(std::string_view bytes) {
  while (!bytes.empty() && !failed()) {
    const size_t nl = bytes.find('\n');
    if (nl == std::string_view::npos) {
      if (partial_.size() + bytes.size() > options_.max_line_bytes) {
        fail(line_ + 1, "line longer than " + std::to_string(options_.max_line_bytes) +
                            " bytes: not an audit record");
        return;
      }
      partial_.append(bytes);
      return;
    }
    if (partial_.empty()) {
      on_line(bytes.substr(0, nl));
    } else {
      partial_.append(bytes.substr(0, nl));
      const std::string line = std::move(partial_);
      partial_.clear();
      on_line(line);
    }
    bytes.remove_prefix(nl + 1);
  }
}

void ChainVerifier::end_file(std::optional<std::string> damaged) {
  if (pending_) {
    if (!partial_.empty()) {
      const std::string_view next = partial_;
      finalize_pending(&next);
    } else {
      finalize_pending(nullptr);
    }
  }
  if (!failed() && !partial_.empty()) {
    fail(line_ + 1, "truncated: the last line is incomplete (" + std::to_string(partial_.size()) +
                        " bytes without a newline)");
  }
  if (!failed() && damaged) fail(0, *damaged);
  if (!failed() && line_ == 0) summary_.notes.push_back(cursor_->file() + ": empty file");
  partial_.clear();
}

void ChainVerifier::on_line(std::string_view line) {
  if (failed()) return;
  if (pending_) {
    finalize_pending(&line);
    return;
  }
  ++line_;
  const auto rc = parse_record_chain(line);
  if (!rc) {
    fail(line_, line.empty() ? "inserted or damaged: an empty line"
                             : "damaged or inserted: the line does not end in valid "
                               "\"dbwarden.seq\" and \"dbwarden.chain\" fields");
    return;
  }
  if (!cursor_->anchored()) {
    if (auto f = cursor_->anchor(rc->seq, parse_checkpoint_view(rc->prefix))) {
      fail(line_, std::move(f->reason), f->needs_key);
      return;
    }
  }
  if (rc->seq == cursor_->expect_seq() && hasher_->next(cursor_->prev(), rc->prefix) == rc->chain) {
    accept(*rc);
    return;
  }
  pending_ = std::make_unique<Pending>(Pending{line_, std::string(line), {}});
  pending_->rc = *parse_record_chain(pending_->text);  // views into the copy
}

void ChainVerifier::accept(const RecordChain& rc) {
  if (auto f = cursor_->record(rc.seq, rc.prefix, cursor_->prev(), line_)) {
    fail(line_, std::move(*f));
    return;
  }
  if (auto f = cursor_->advance(rc.seq + 1, rc.chain)) fail(line_, std::move(*f));
}

void ChainVerifier::finalize_pending(const std::string_view* next) {
  const std::unique_ptr<Pending> p = std::move(pending_);
  const uint64_t s = p->rc.seq;
  const uint64_t e = cursor_->expect_seq();
  const std::string& prev_file_base = cursor_->prev_file_base();
  if (next != nullptr) {
    const auto n = parse_record_chain(*next);
    if (n && n->seq == e && hasher_->next(cursor_->prev(), n->prefix) == n->chain) {
      if (s == e + 1 && hasher_->next(n->chain, p->rc.prefix) == p->rc.chain) {
        fail(p->line, "reordered: this record (seq " + std::to_string(s) +
                          ") belongs after the next line's (seq " + std::to_string(e) + ")");
      } else {
        fail(p->line,
             "inserted: this record is not part of the chain (the next line continues it)");
      }
      return;
    }
  }
  if (s == e) {
    fail(p->line,
         "edited: the record does not match its chain value (seq " + std::to_string(s) + ")");
  } else if (s > e) {
    const auto cp = parse_checkpoint_view(p->rc.prefix);
    if (p->line == 1 && cp && cp->reason == "rotation" && cp->prev_file != prev_file_base) {
      fail(p->line, "file missing: '" + cp->prev_file + "' comes before this file (" + range(e, s) +
                        " missing)");
    } else if (p->line == 1 && summary_.files > 1) {
      fail(p->line, "deleted: " + range(e, s) + " missing before this file (the end of '" +
                        prev_file_base + "' was removed)");
    } else {
      fail(p->line, "deleted: " + range(e, s) + " missing before this line");
    }
  } else {
    fail(p->line, "reordered or duplicated: seq " + std::to_string(s) + " comes after seq " +
                      std::to_string(e == 0 ? 0 : e - 1));
  }
}

void ChainVerifier::finish() {
  if (pending_) finalize_pending(nullptr);
  if (auto f = cursor_->finish()) fail(f->past_end ? line_ + 1 : 0, f->reason);
}

Result<std::vector<std::string>> expand_audit_paths(const std::vector<std::string>& paths,
                                                    std::string* state_file) {
  std::vector<std::string> files;
  for (const std::string& path : paths) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      return Status::Error("cannot access " + path + ": " + std::strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
      files.push_back(path);
      continue;
    }
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr)
      return Status::Error("cannot read directory " + path + ": " + std::strerror(errno));
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.empty() || name[0] == '.' || name.ends_with(".state") || name.ends_with(".tmp"))
        continue;
      names.push_back(std::move(name));
    }
    ::closedir(d);
    // A rotated name is `<active>.YYYYMMDDTHHMMSS.uuuuuuZ[.zst]`; its time
    // stamp sorts as text. The active file comes after its rotated ones.
    std::map<std::string, std::vector<std::string>> families;
    auto is_stamp = [](std::string_view s) {
      if (s.size() != 23 || s[8] != 'T' || s[15] != '.' || s[22] != 'Z') return false;
      for (size_t i : {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 21}) {
        if (s[i] < '0' || s[i] > '9') return false;
      }
      return true;
    };
    // A framed trail's active file is `<name>.zst` and its rotated files
    // `<name>.<stamp>.zst`: one family, `<name>`, whose active file is that.
    std::map<std::string, std::string> actives;
    for (const std::string& name : names) {
      std::string_view n = name;
      if (n.ends_with(kZstdSuffix)) n.remove_suffix(kZstdSuffix.size());
      if (n.size() > 24 && n[n.size() - 24] == '.' && is_stamp(n.substr(n.size() - 23))) {
        // A compressor killed between renaming the .zst into place and
        // removing its source leaves both, with the same records: the next
        // agent finishes the job; until then the source is read.
        if (name.ends_with(kZstdSuffix) &&
            std::find(names.begin(), names.end(), std::string(n)) != names.end()) {
          continue;
        }
        families[std::string(n.substr(0, n.size() - 24))].push_back(name);
      } else {
        families[std::string(n)];
        actives[std::string(n)] = name;
      }
    }
    if (families.size() != 1) {
      return Status::Error(families.empty()
                               ? "no audit files in " + path
                               : "directory " + path + " holds several audit logs: name the files");
    }
    auto& [family, rotated] = *families.begin();
    const std::string active = actives.count(family) ? actives[family] : family;
    std::sort(rotated.begin(), rotated.end());
    for (const std::string& name : rotated) files.push_back(path + "/" + name);
    if (std::find(names.begin(), names.end(), active) != names.end()) {
      files.push_back(path + "/" + active);
    }
    const std::string state = path + "/" + active + ".state";
    if (state_file != nullptr && ::stat(state.c_str(), &st) == 0) *state_file = state;
  }
  return files;
}

Result<bool> is_framed_trail(const std::vector<std::string>& files) {
  // An active file named .zst (not a rotated `<stamp>Z.zst`) is a framed
  // trail's, even when its first frame was damaged.
  if (!files.empty() && files.back().ends_with(kZstdSuffix) &&
      !files.back().ends_with("Z" + std::string(kZstdSuffix))) {
    return true;
  }
  for (const std::string& file : files) {
    auto m = MappedFile::Open(file);
    if (!m.ok()) return m.status();
    const std::string_view bytes = m.value()->bytes();
    if (!bytes.empty()) return starts_with_sealed_frame(bytes);
  }
  return false;
}

Result<VerifySummary> verify_audit_files(const std::vector<std::string>& files,
                                         VerifyOptions options) {
  auto framed = is_framed_trail(files);
  if (!framed.ok()) return framed.status();
  if (framed.value()) return verify_framed_files(files, std::move(options));
  auto v = ChainVerifier::Create(std::move(options));
  if (!v.ok()) return v.status();
  ChainVerifier& verifier = *v.value();
  std::unique_ptr<char[]> buf(new char[1 << 16]);
  for (const std::string& file : files) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::Error("cannot open " + file + ": " + std::strerror(errno));
    verifier.begin_file(file);
    const bool zst = file.ends_with(kZstdSuffix);
    ZstdDecoder decoder;
    std::optional<std::string> damaged;
    auto sink = [&](std::string_view piece) { verifier.feed(piece); };
    while (!verifier.failed()) {
      const ssize_t n = ::read(fd, buf.get(), 1 << 16);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const std::string err = std::strerror(errno);
        ::close(fd);
        return Status::Error("cannot read " + file + ": " + err);
      }
      if (n == 0) break;
      const std::string_view chunk(buf.get(), static_cast<size_t>(n));
      if (!zst) {
        verifier.feed(chunk);
      } else if (Status s = decoder.feed(chunk, sink); !s.ok()) {
        damaged = s.message();
        break;
      }
    }
    ::close(fd);
    if (zst && !damaged && !decoder.at_frame_end()) damaged = "compressed data is truncated";
    verifier.end_file(damaged);
    if (verifier.failed()) break;
  }
  verifier.finish();
  return verifier.summary();
}

}  // namespace dbwarden::audit
