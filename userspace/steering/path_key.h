// SPDX-License-Identifier: Apache-2.0
//
// Internal to userspace/steering: a unix socket path as the key of the steering maps.
#pragma once

#include <cstring>
#include <string>

#include "common/status.h"
#include "steer.h"

namespace dbwarden::steering {

inline Result<dbw_steer_path> path_key(const std::string& path) {
  dbw_steer_path k{};
  if (path.empty() || path.size() > sizeof(k.path) || path.find('\0') != std::string::npos) {
    return Status::Error("unix socket path '" + path + "' must be 1 to " +
                         std::to_string(sizeof(k.path)) + " bytes without NUL");
  }
  std::memcpy(k.path, path.data(), path.size());
  return k;
}

}  // namespace dbwarden::steering
