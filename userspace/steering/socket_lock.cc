// SPDX-License-Identifier: Apache-2.0
//
// Locking the servers' unix sockets to their owner, so that a path steering
// does not know is refused rather than a way around the proxy (steering.h,
// "Locking"). Each lock is pinned before the socket's mode changes, so a
// crash at any point leaves what is needed to put the old bits back.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common/unique_fd.h"
#include "steer.h"
#include "steering/path_key.h"
#include "steering/steering.h"

namespace dbwarden::steering {
namespace {

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

constexpr uint32_t kPermissionBits = 07777;
// What a lock leaves: the owner's bits. Group and others lose write, which is
// what connect() checks; read and execute go too (they mean nothing on a socket).
constexpr uint32_t kLockKeeps = 0700;

std::string mode_text(uint32_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", mode & kPermissionBits);
  return buf;
}

// chmod of exactly the inode (dev, ino) at `path`: opened without following a
// final symlink and changed through /proc/self/fd, so a file swapped in since
// is never touched. The packaged unit mounts the file system read-only for the
// agent (ProtectSystem=strict): then the same inode is reached through pid 1's
// root, the host's own view, where it is writable.
Status chmod_inode(const std::string& path, uint64_t dev, uint64_t ino, uint32_t mode) {
  int last = 0;
  for (const char* prefix : {"", "/proc/1/root"}) {
    UniqueFd fd(open((prefix + path).c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) {
      last = errno;
      continue;
    }
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) return Status::Error("stat " + path + ": " + errno_text(errno));
    if (st.st_dev != dev || st.st_ino != ino || !S_ISSOCK(st.st_mode)) {
      return Status::Error(path + " is no longer the socket that was locked");
    }
    const std::string self = "/proc/self/fd/" + std::to_string(fd.get());
    if (chmod(self.c_str(), mode & kPermissionBits) == 0) return Status::Ok();
    last = errno;
    if (last != EROFS) break;
  }
  return Status::Error("cannot chmod " + path + " to " + mode_text(mode) + ": " + errno_text(last) +
                       (last == EPERM ? " (CAP_FOWNER is needed for another user's socket)" : ""));
}

bool same_inode(const struct stat& st, const dbw_steer_lock& l) {
  return st.st_dev == l.dev && st.st_ino == l.ino && S_ISSOCK(st.st_mode);
}

// Puts back the bits of one lock and forgets it. Only the lock's own bits are
// replaced: a socket its owner changed since, or a new socket at the path (the
// server restarted), keeps what it has. A failed chmod keeps the lock pinned,
// so that a later try can still restore.
Status restore(int locks_fd, const dbw_steer_path& key) {
  dbw_steer_lock l{};
  if (bpf_map_lookup_elem(locks_fd, &key, &l) != 0) return Status::Ok();
  const std::string path(key.path, strnlen(key.path, sizeof(key.path)));
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0 && same_inode(st, l) &&
      (st.st_mode & kPermissionBits) == l.locked_mode && l.mode != l.locked_mode) {
    if (Status s = chmod_inode(path, l.dev, l.ino, l.mode); !s.ok()) return s;
  }
  if (bpf_map_delete_elem(locks_fd, &key) != 0 && errno != ENOENT) {
    return Status::Error("cannot forget the lock of " + path + ": " + errno_text(errno));
  }
  return Status::Ok();
}

// Every locked path. Entries may be deleted while the caller goes through them,
// which a walk with BPF_MAP_GET_NEXT_KEY would not survive: the keys first.
Result<std::vector<dbw_steer_path>> lock_keys(int locks_fd) {
  std::vector<dbw_steer_path> keys;
  dbw_steer_path key{}, next{};
  const dbw_steer_path* prev = nullptr;
  while (keys.size() < DBW_STEER_MAX_LOCKS) {
    if (bpf_map_get_next_key(locks_fd, prev, &next) != 0) {
      if (errno == ENOENT) break;
      return Status::Error("walking steer_locks: " + errno_text(errno));
    }
    keys.push_back(next);
    key = next;
    prev = &key;
  }
  return keys;
}

Result<int> restore_all(int locks_fd) {
  auto keys = lock_keys(locks_fd);
  if (!keys.ok()) return keys.status();
  int restored = 0;
  Status first = Status::Ok();
  for (const dbw_steer_path& k : *keys) {
    if (Status s = restore(locks_fd, k); !s.ok()) {
      if (first.ok()) first = s;
    } else {
      ++restored;
    }
  }
  if (!first.ok()) return first;
  return restored;
}

}  // namespace

Result<bool> Steering::lock_unix(const std::string& server_path, bool new_socket) {
  auto key = path_key(server_path);
  if (!key.ok()) return key.status();
  struct stat st {};
  if (lstat(server_path.c_str(), &st) != 0) {
    return Status::Error("cannot lock " + server_path + ": " + errno_text(errno));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Status::Error("cannot lock " + server_path + ": not a socket");
  }
  const uint32_t now = st.st_mode & kPermissionBits;
  dbw_steer_lock l{};
  if (!new_socket && bpf_map_lookup_elem(locks_fd_, &key.value(), &l) == 0 && same_inode(st, l) &&
      now == l.locked_mode) {
    return false;  // locked already (a restarted agent, or nothing changed)
  }
  // A new inode (the server made its socket again), or one changed since the
  // lock (by its owner: what it holds now is what an unlock gives back).
  l.dev = st.st_dev;
  l.ino = st.st_ino;
  l.mode = now;
  l.locked_mode = now & kLockKeeps;
  l.uid = st.st_uid;
  l.gid = st.st_gid;
  if (bpf_map_update_elem(locks_fd_, &key.value(), &l, BPF_ANY) != 0) {
    return Status::Error(
        "cannot pin the lock of " + server_path + ": " + errno_text(errno) +
        (errno == E2BIG ? " (at most " + std::to_string(DBW_STEER_MAX_LOCKS) + " sockets)" : ""));
  }
  if (now == l.locked_mode) return false;  // only its owner could connect anyway
  if (Status s = chmod_inode(server_path, l.dev, l.ino, l.locked_mode); !s.ok()) {
    (void)bpf_map_delete_elem(locks_fd_, &key.value());
    return s;
  }
  return true;
}

Status Steering::unlock_unix(const std::string& server_path) {
  auto key = path_key(server_path);
  if (!key.ok()) return key.status();
  return restore(locks_fd_, key.value());
}

Result<int> Steering::unlock_all() { return restore_all(locks_fd_); }

Result<std::vector<UnixLock>> Steering::unix_locks() const {
  auto keys = lock_keys(locks_fd_);
  if (!keys.ok()) return keys.status();
  std::vector<UnixLock> out;
  for (const dbw_steer_path& k : *keys) {
    dbw_steer_lock l{};
    if (bpf_map_lookup_elem(locks_fd_, &k, &l) != 0) continue;  // unlocked meanwhile
    out.push_back(UnixLock{std::string(k.path, strnlen(k.path, sizeof(k.path))), l.dev, l.ino,
                           l.mode, l.locked_mode, l.uid, l.gid});
  }
  return out;
}

Result<std::optional<UnixLock>> Steering::current_lock(const std::string& server_path) const {
  auto key = path_key(server_path);
  if (!key.ok()) return key.status();
  dbw_steer_lock l{};
  if (bpf_map_lookup_elem(locks_fd_, &key.value(), &l) != 0) {
    if (errno == ENOENT) return std::optional<UnixLock>();
    return Status::Error("cannot read steer_locks: " + errno_text(errno));
  }
  struct stat st {};
  if (lstat(server_path.c_str(), &st) != 0 || !same_inode(st, l)) {
    return std::optional<UnixLock>();  // gone, or a new socket not locked yet
  }
  return std::optional<UnixLock>(
      UnixLock{server_path, l.dev, l.ino, l.mode, l.locked_mode, l.uid, l.gid});
}

Result<int> Steering::unlock_pinned(const std::string& pin_dir) {
  const std::string path = pin_dir + "/steer_locks";
  UniqueFd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) {
    if (errno == ENOENT) return 0;
    return Status::Error("cannot open " + path + ": " + errno_text(errno));
  }
  // Pins of another build: only a map of this layout is read.
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) {
    return Status::Error("cannot read " + path + ": " + errno_text(errno));
  }
  if (info.key_size != sizeof(dbw_steer_path) || info.value_size != sizeof(dbw_steer_lock)) {
    return Status::Error(path +
                         " has another layout (pinned by another build): its sockets "
                         "keep their locked permissions");
  }
  return restore_all(fd.get());
}

}  // namespace dbwarden::steering
