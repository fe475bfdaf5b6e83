// SPDX-License-Identifier: Apache-2.0
//
// The approvals inbox's files (agent/web/), compiled into the binary at build time
// (agent/web/embed.cmake) so that the agent serves exactly what it was built with and
// reads nothing from disk to serve them.
#pragma once

#include <optional>
#include <string_view>

namespace dbwarden::agent {

struct WebAsset {
  std::string_view content_type;
  std::string_view body;
};

// "/", "/inbox.js", "/inbox.css"; nullopt for anything else.
std::optional<WebAsset> find_web_asset(std::string_view path);

}  // namespace dbwarden::agent
