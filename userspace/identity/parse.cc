// SPDX-License-Identifier: Apache-2.0
//
// Parsers for /proc/<pid>/{cgroup,status,loginuid} text and cgroup paths.
// Formats: https://man7.org/linux/man-pages/man7/cgroups.7.html ("/proc/pid/cgroup"),
// https://man7.org/linux/man-pages/man5/proc.5.html ("/proc/pid/status"),
// systemd unit naming: https://systemd.io/CGROUP_DELEGATION/
#include <charconv>
#include <string>
#include <string_view>
#include <vector>

#include "identity/identity.h"

namespace dbwarden::identity {
namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool is_hex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!hex) return false;
  }
  return true;
}

std::optional<uint32_t> parse_u32(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// One path component -> the container id it names, or "".
//   docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope
//   (systemd cgroup driver), <id> (cgroupfs driver: /docker/<id>, /kubepods/.../<id>),
//   "...slice:cri-containerd:<id>" (containerd's systemd-style cgroupsPath).
// Monitors that sit next to a container (crio-conmon-<id>, libpod-conmon-<id>)
// are not the container, so they give "".
std::string container_id_of_component(std::string_view c) {
  if (is_hex64(c)) return std::string(c);
  if (ends_with(c, ".scope")) c.remove_suffix(6);
  size_t cut = c.find_last_of("-:");
  if (cut == std::string_view::npos) return "";
  std::string_view id = c.substr(cut + 1);
  if (!is_hex64(id)) return "";
  std::string_view prefix = c.substr(0, cut);
  if (ends_with(prefix, "conmon")) return "";
  return std::string(id);
}

}  // namespace

std::string systemd_unit_from_cgroup(std::string_view cgroup_path) {
  auto parts = split(cgroup_path, '/');
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (ends_with(*it, ".service") || ends_with(*it, ".scope")) return std::string(*it);
  }
  return "";
}

std::string container_id_from_cgroup(std::string_view cgroup_path) {
  // Innermost first: podman puts the payload in "libpod-<id>.scope/container",
  // and nested runtimes name the inner container last.
  auto parts = split(cgroup_path, '/');
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    std::string id = container_id_of_component(*it);
    if (!id.empty()) return id;
  }
  return "";
}

std::string cgroup_path_from_proc_file(std::string_view content) {
  // Lines are "hierarchy-ID:controller-list:cgroup-path"; the path may itself
  // contain ':' so split only on the first two.
  std::string v1_systemd;
  for (std::string_view line : split(content, '\n')) {
    size_t a = line.find(':');
    if (a == std::string_view::npos) continue;
    size_t b = line.find(':', a + 1);
    if (b == std::string_view::npos) continue;
    std::string_view id = line.substr(0, a), controllers = line.substr(a + 1, b - a - 1);
    std::string_view path = line.substr(b + 1);
    if (id == "0" && controllers.empty()) return std::string(path);
    if (controllers == "name=systemd" && v1_systemd.empty()) v1_systemd = std::string(path);
  }
  return v1_systemd;
}

std::optional<uint32_t> effective_uid_from_status(std::string_view content) {
  // "Uid:\t<real>\t<effective>\t<saved>\t<fs>"
  for (std::string_view line : split(content, '\n')) {
    if (!starts_with(line, "Uid:")) continue;
    line.remove_prefix(4);
    std::vector<std::string_view> fields;
    for (auto f : split(line, '\t')) {
      for (auto g : split(f, ' ')) fields.push_back(g);
    }
    if (fields.size() < 2) return std::nullopt;
    return parse_u32(fields[1]);
  }
  return std::nullopt;
}

std::optional<uint32_t> login_uid_from_file(std::string_view content) {
  auto v = parse_u32(content);
  if (!v || *v == 4294967295u) return std::nullopt;  // (uid_t)-1: never set
  return v;
}

}  // namespace dbwarden::identity
