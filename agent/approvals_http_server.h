// SPDX-License-Identifier: Apache-2.0
//
// Serves the approvals HTTP API and web inbox (agent/approvals_http.h) with cpp-httplib:
// on `approvals-listen` (loopback by default), over TLS when `approvals-tls-cert-file` and
// `approvals-tls-key-file` are set, for the approvers in `approvals-tokens`. Started by the
// enforcer next to the approvals socket when a tokens file is configured; without one
// nobody could log in, so nothing listens.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "agent/approval_history.h"
#include "agent/approval_refusals.h"
#include "approvals/broker.h"
#include "common/status.h"

namespace dbwarden::agent {

struct ApprovalsHttpOptions {
  std::string listen = "127.0.0.1:9978";  // HOST:PORT, [v6]:PORT
  std::string tokens_file;
  std::string tls_cert_file, tls_key_file;
  std::string url;  // the inbox's origin as browsers reach it; "" for the listen address
};

// "HOST:PORT" or "[V6]:PORT" into its parts; an error names what is wrong.
Status split_listen_address(const std::string& text, std::string* host, uint16_t* port);

class ApprovalsHttpServer {
 public:
  static Result<std::unique_ptr<ApprovalsHttpServer>> Start(const ApprovalsHttpOptions& o,
                                                            approvals::Broker& broker,
                                                            ApprovalHistory& history,
                                                            ApprovalRefusals& refusals);
  ~ApprovalsHttpServer();
  ApprovalsHttpServer(const ApprovalsHttpServer&) = delete;
  ApprovalsHttpServer& operator=(const ApprovalsHttpServer&) = delete;
  std::string url() const;

 private:
  struct Impl;
  explicit ApprovalsHttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dbwarden::agent
