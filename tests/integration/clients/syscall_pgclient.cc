// SPDX-License-Identifier: Apache-2.0
//
// A PostgreSQL client of the project's own that moves its bytes with one chosen
// syscall family, so that the capture tests can exercise each path the kernel
// side hooks: read/write, recv/send (recvfrom/sendto), readv/writev,
// recvmsg/sendmsg, recvmmsg/sendmmsg; over TCP (IPv4, IPv6) or a unix socket.
//
// Speaks protocol 3.0 by hand (https://www.postgresql.org/docs/15/protocol-flow.html,
// layouts in https://www.postgresql.org/docs/15/protocol-message-formats.html):
// StartupMessage, trust authentication only (AuthenticationOk), then one simple
// Query per statement, reading until ReadyForQuery; Terminate at the end.
// Every message is sent in two pieces (type+length, then body) so that the
// vector families really use two iovecs / two messages.
//
// Usage: syscall_pgclient --mode rw|send|vec|msg|mmsg --host ADDR|/socket/dir --port N
//          --user U --db D [--app NAME] [--sleep-ms N] SQL...
// Prints one line per statement: "OK <rows|-> <command tag>" or "ERROR <SQLSTATE>".
// Exit code 0 when every statement ran (errors included), 1 on a protocol or I/O failure.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

enum class Mode { kRw, kSend, kVec, kMsg, kMmsg };

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "syscall_pgclient: %s\n", what.c_str());
  std::exit(1);
}

class Conn {
 public:
  Conn(int fd, Mode mode) : fd_(fd), mode_(mode) {}

  // Sends head then body with the mode's send syscall; loops on short sends.
  void send_two(const std::string& head, const std::string& body) {
    std::string all = head + body;
    size_t split = head.size();
    size_t sent = 0;
    while (sent < all.size()) {
      ssize_t n = send_once(all, sent, split);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) die("send failed: " + std::string(std::strerror(errno)));
      sent += static_cast<size_t>(n);
    }
  }

  // Ensures at least `n` unread bytes are buffered.
  void need(size_t n) {
    while (in_.size() - pos_ < n) {
      if (pos_ > 0) {
        in_.erase(0, pos_);
        pos_ = 0;
      }
      ssize_t got = recv_once();
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) die("connection closed or receive failed");
    }
  }

  // One backend message: type and body.
  char read_message(std::string& body) {
    need(5);
    char type = in_[pos_];
    uint32_t len = 0;
    std::memcpy(&len, in_.data() + pos_ + 1, 4);
    len = ntohl(len);
    if (len < 4 || len > (64u << 20)) die("bad message length");
    need(1 + len);
    body.assign(in_, pos_ + 5, len - 4);
    pos_ += 1 + len;
    return type;
  }

 private:
  ssize_t send_once(const std::string& all, size_t from, size_t split) {
    const char* p = all.data() + from;
    size_t left = all.size() - from;
    // Two pieces while the head is not sent yet.
    size_t first = from < split ? split - from : left;
    iovec iov[2] = {{const_cast<char*>(p), first}, {const_cast<char*>(p + first), left - first}};
    int iovcnt = left > first ? 2 : 1;
    switch (mode_) {
      case Mode::kRw: return write(fd_, p, left);
      case Mode::kSend: return send(fd_, p, left, 0);
      case Mode::kVec: return writev(fd_, iov, iovcnt);
      case Mode::kMsg: {
        msghdr m{};
        m.msg_iov = iov;
        m.msg_iovlen = static_cast<size_t>(iovcnt);
        return sendmsg(fd_, &m, 0);
      }
      case Mode::kMmsg: {
        // One message per piece; the byte count is the sum of msg_len.
        mmsghdr v[2]{};
        for (int i = 0; i < iovcnt; i++) {
          v[i].msg_hdr.msg_iov = &iov[i];
          v[i].msg_hdr.msg_iovlen = 1;
        }
        int k = sendmmsg(fd_, v, static_cast<unsigned>(iovcnt), 0);
        if (k <= 0) return k;
        ssize_t total = 0;
        for (int i = 0; i < k; i++) total += v[i].msg_len;
        return total;
      }
    }
    return -1;
  }

  ssize_t recv_once() {
    char small[7];  // odd size: replies straddle the two buffers
    char big[4096];
    iovec iov[2] = {{small, sizeof(small)}, {big, sizeof(big)}};
    ssize_t n = -1;
    switch (mode_) {
      case Mode::kRw: n = read(fd_, big, sizeof(big)); return append_plain(big, n);
      case Mode::kSend: n = recv(fd_, big, sizeof(big), 0); return append_plain(big, n);
      case Mode::kVec: n = readv(fd_, iov, 2); return append_iov(iov, 2, n);
      case Mode::kMsg: {
        msghdr m{};
        m.msg_iov = iov;
        m.msg_iovlen = 2;
        n = recvmsg(fd_, &m, 0);
        return append_iov(iov, 2, n);
      }
      case Mode::kMmsg: {
        // Two messages: the first gets what is there (MSG_WAITFORONE), the
        // second whatever else is ready without blocking.
        mmsghdr v[2]{};
        v[0].msg_hdr.msg_iov = &iov[0];
        v[0].msg_hdr.msg_iovlen = 1;
        v[1].msg_hdr.msg_iov = &iov[1];
        v[1].msg_hdr.msg_iovlen = 1;
        int k = recvmmsg(fd_, v, 2, MSG_WAITFORONE, nullptr);
        if (k <= 0) return k;
        ssize_t total = 0;
        for (int i = 0; i < k; i++) {
          in_.append(static_cast<char*>(iov[i].iov_base), v[i].msg_len);
          total += v[i].msg_len;
        }
        return total;
      }
    }
    return -1;
  }

  ssize_t append_plain(const char* b, ssize_t n) {
    if (n > 0) in_.append(b, static_cast<size_t>(n));
    return n;
  }
  ssize_t append_iov(const iovec* iov, int cnt, ssize_t n) {
    size_t left = n > 0 ? static_cast<size_t>(n) : 0;
    for (int i = 0; i < cnt && left > 0; i++) {
      size_t take = left < iov[i].iov_len ? left : iov[i].iov_len;
      in_.append(static_cast<char*>(iov[i].iov_base), take);
      left -= take;
    }
    return n;
  }

  int fd_;
  Mode mode_;
  std::string in_;
  size_t pos_ = 0;
};

std::string be32(uint32_t v) {
  v = htonl(v);
  return std::string(reinterpret_cast<const char*>(&v), 4);
}

int connect_to(const std::string& host, int port) {
  if (!host.empty() && host[0] == '/') {
    std::string path = host + "/.s.PGSQL." + std::to_string(port);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof(a.sun_path)) die("socket path too long");
    std::memcpy(a.sun_path, path.c_str(), path.size());
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      die("connect " + path + ": " + std::strerror(errno));
    }
    return fd;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
    die("bad numeric address " + host);
  }
  int fd = socket(res->ai_family, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    die("connect " + host + ": " + std::strerror(errno));
  }
  freeaddrinfo(res);
  return fd;
}

// Backend messages until ReadyForQuery; prints the statement's outcome.
void read_until_ready(Conn& c, bool print) {
  std::string body, tag, error;
  long rows = 0;
  bool have_rows = false;
  for (;;) {
    char t = c.read_message(body);
    switch (t) {
      case 'R':
        if (body.size() < 4 || body.compare(0, 4, std::string("\0\0\0\0", 4)) != 0) {
          die("server asks for authentication: only trust is supported");
        }
        break;
      case 'D': rows++; have_rows = true; break;
      case 'T': have_rows = true; break;
      case 'C': tag = body.substr(0, body.find('\0')); break;
      case 'I': tag = "EMPTY"; break;
      case 'E':
        // Fields: code byte + NUL-terminated string; 'C' is the SQLSTATE.
        for (size_t i = 0; i < body.size() && body[i] != '\0';) {
          size_t end = body.find('\0', i + 1);
          if (end == std::string::npos) break;
          if (body[i] == 'C') error = body.substr(i + 1, end - i - 1);
          i = end + 1;
        }
        if (error.empty()) error = "?????";
        break;
      case 'Z':
        if (print) {
          if (!error.empty()) {
            std::printf("ERROR %s\n", error.c_str());
          } else {
            std::printf("OK %s %s\n", have_rows ? std::to_string(rows).c_str() : "-",
                        tag.c_str());
          }
          std::fflush(stdout);
        } else if (!error.empty()) {
          die("startup failed with SQLSTATE " + error);
        }
        return;
      default: break;  // S ParameterStatus, K BackendKeyData, N NoticeResponse, ...
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Mode mode = Mode::kRw;
  std::string host = "127.0.0.1", user = "postgres", db = "postgres", app = "syscall_pgclient";
  int port = 5432, sleep_ms = 0;
  std::vector<std::string> sql;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--mode") {
      std::string m = value();
      if (m == "rw") mode = Mode::kRw;
      else if (m == "send") mode = Mode::kSend;
      else if (m == "vec") mode = Mode::kVec;
      else if (m == "msg") mode = Mode::kMsg;
      else if (m == "mmsg") mode = Mode::kMmsg;
      else die("unknown mode " + m);
    } else if (a == "--host") {
      host = value();
    } else if (a == "--port") {
      port = std::atoi(value().c_str());
    } else if (a == "--user") {
      user = value();
    } else if (a == "--db") {
      db = value();
    } else if (a == "--app") {
      app = value();
    } else if (a == "--sleep-ms") {
      sleep_ms = std::atoi(value().c_str());
    } else {
      sql.push_back(a);
    }
  }
  Conn c(connect_to(host, port), mode);
  // StartupMessage: Int32 length, Int32 196608 (3.0), name/value pairs, a final NUL.
  std::string params = std::string("user") + '\0' + user + '\0' + "database" + '\0' + db + '\0' +
                       "application_name" + '\0' + app + '\0' + '\0';
  c.send_two(be32(static_cast<uint32_t>(8 + params.size())) + be32(196608), params);
  read_until_ready(c, false);
  for (const std::string& q : sql) {
    // Query: Byte1('Q'), Int32 length, String.
    c.send_two(std::string("Q") + be32(static_cast<uint32_t>(4 + q.size() + 1)), q + '\0');
    read_until_ready(c, true);
    if (sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
  }
  c.send_two(std::string("X") + be32(4), "");  // Terminate
  return 0;
}
