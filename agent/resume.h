// SPDX-License-Identifier: Apache-2.0
//
// Resuming after a restart: the pinned programs kept tracking connections
// while the agent was down (capture/pinning.h). The new agent learns them from
// the pinned `conns` map before reading the ring buffer, so that their records
// get the right protocol, port, client address and connection id; their
// streams are decoded from wherever the ring buffer resumes, like connections
// that predate the agent.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/observer.h"
#include "capture/capture.h"

namespace dbwarden::agent {

// One established TCP socket from /proc/net/tcp or /proc/net/tcp6.
struct TcpSocketLine {
  uint8_t local_addr[16] = {};  // network order; IPv4 in the first 4 bytes
  uint8_t remote_addr[16] = {};
  uint16_t local_port = 0;
  uint16_t remote_port = 0;
  uint64_t inode = 0;
};
// Parses one data line of /proc/net/tcp (ipv6 = false) or /proc/net/tcp6.
bool parse_tcp_socket_line(const std::string& line, bool ipv6, TcpSocketLine& out);

// Announces every connection the kernel tracks to the observer as if its open
// record had just been read. Returns how many.
size_t resume_connections(const capture::BpfCapture& capture, Observer& observer,
                          const std::string& proc_root = "/proc");

// Pinned state may carry ports of a previous configuration: stop watching
// those not in `configured`.
Status unwatch_stale_ports(capture::BpfCapture& capture, const std::vector<uint16_t>& configured);

}  // namespace dbwarden::agent
