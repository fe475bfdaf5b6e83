// SPDX-License-Identifier: Apache-2.0
//
// A policy file's YAML as a small tree whose every node knows its line and
// column, built from yaml-cpp's event parser (https://github.com/jbeder/yaml-cpp,
// Debian libyaml-cpp-dev). The file is untrusted input, so the builder refuses
// what a policy never needs and an attacker would: more than one document,
// aliases (*x: shared subtrees that multiply the work of every walk), nesting
// deeper than a policy's few levels, and more nodes than any real policy has.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace dbwarden::policy {

struct YamlNode {
  enum class Kind { kNull, kScalar, kSequence, kMap };
  Kind kind = Kind::kNull;
  int line = 0;        // 1-based
  int column = 0;      // 1-based
  size_t offset = 0;   // byte offset of the node in the text
  std::string value;   // kScalar
  bool plain = false;  // kScalar written without quotes (so `true`, `12` may be typed)
  // kSequence: the elements; kMap: key, value, key, value, ...
  std::vector<YamlNode> items;
};

struct YamlLimits {
  size_t max_bytes = 4 << 20;
  size_t max_depth = 16;
  size_t max_nodes = 200000;
};

// The one document of `text`. Errors read "line:column: message".
Result<YamlNode> parse_yaml(std::string_view text, const YamlLimits& limits = {});

}  // namespace dbwarden::policy
