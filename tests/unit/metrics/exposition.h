// SPDX-License-Identifier: Apache-2.0
//
// Test helpers over an Exporter and its text exposition.
#pragma once

#include <catch2/catch.hpp>
#include <cstddef>
#include <memory>
#include <sstream>
#include <string>

#include "metrics/exporter.h"

namespace dbw_metrics_test {

// An exporter that serves nothing (registry only).
inline std::unique_ptr<dbwarden::metrics::Exporter> make_exporter() {
  auto r = dbwarden::metrics::Exporter::Start("", "1.2.3-test");
  if (!r.ok()) FAIL(r.status().message());
  return std::move(r.value());
}

// The value of the series whose line starts with `series` followed by a space,
// or -1 when there is no such line.
inline double value_of(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

// How many series of metric `name` (with labels) the text holds.
inline size_t count_series(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.compare(0, name.size() + 1, name + "{") == 0) ++n;
  }
  return n;
}

}  // namespace dbw_metrics_test
