// SPDX-License-Identifier: Apache-2.0
#include "policy/yaml_tree.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <exception>
#include <sstream>
#include <utility>

namespace dbwarden::policy {
namespace {

// Thrown from the handler to stop the parser at a refused construct; yaml-cpp
// unwinds cleanly through its own frames.
struct Refused {
  YAML::Mark mark;
  std::string message;
};

class TreeBuilder : public YAML::EventHandler {
 public:
  explicit TreeBuilder(const YamlLimits& limits) : limits_(limits) {}

  YamlNode root;
  bool have_root = false;

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override {
    YamlNode n = node(mark, YamlNode::Kind::kNull);
    // yaml-cpp marks an empty value (`key:`) at the next token, often the next
    // line; point at the end of its key instead, where the value is missing.
    if (!open_.empty() && open_.back().kind == YamlNode::Kind::kMap &&
        open_.back().items.size() % 2 == 1) {
      const YamlNode& key = open_.back().items.back();
      if (key.kind == YamlNode::Kind::kScalar && key.plain) {
        n.line = key.line;
        n.column = key.column + static_cast<int>(key.value.size()) + 1;
        n.offset = key.offset + key.value.size() + 1;
      }
    }
    add(std::move(n));
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    throw Refused{mark, "aliases (*name) are not supported in a policy file; repeat the value"};
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t,
                const std::string& value) override {
    YamlNode n = node(mark, YamlNode::Kind::kScalar);
    n.value = value;
    // yaml-cpp tags a plain scalar "?" and a quoted or block one "!".
    n.plain = tag == "?";
    if (n.plain && (value == "~" || value == "null" || value == "Null" || value == "NULL")) {
      n.kind = YamlNode::Kind::kNull;
      n.value.clear();
    }
    add(std::move(n));
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    open(node(mark, YamlNode::Kind::kSequence));
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    open(node(mark, YamlNode::Kind::kMap));
  }
  void OnMapEnd() override { close(); }

 private:
  YamlNode node(const YAML::Mark& mark, YamlNode::Kind kind) {
    if (++nodes_ > limits_.max_nodes) {
      throw Refused{mark, "more than " + std::to_string(limits_.max_nodes) + " YAML nodes"};
    }
    YamlNode n;
    n.kind = kind;
    n.line = mark.line + 1;
    n.column = mark.column + 1;
    n.offset = mark.pos < 0 ? 0 : static_cast<size_t>(mark.pos);
    return n;
  }

  void open(YamlNode n) {
    if (open_.size() >= limits_.max_depth) {
      YAML::Mark m;
      m.line = n.line - 1;
      m.column = n.column - 1;
      throw Refused{m, "nested deeper than " + std::to_string(limits_.max_depth) + " levels"};
    }
    open_.push_back(std::move(n));
  }

  void close() {
    YamlNode n = std::move(open_.back());
    open_.pop_back();
    add(std::move(n));
  }

  void add(YamlNode n) {
    if (!open_.empty()) {
      open_.back().items.push_back(std::move(n));
      return;
    }
    root = std::move(n);
    have_root = true;
  }

  const YamlLimits& limits_;
  std::vector<YamlNode> open_;
  size_t nodes_ = 0;
};

std::string at(const YAML::Mark& mark, const std::string& message) {
  if (mark.is_null()) return "1:1: " + message;
  return std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1) + ": " + message;
}

}  // namespace

Result<YamlNode> parse_yaml(std::string_view text, const YamlLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return Status::Error("1:1: the file is larger than " + std::to_string(limits.max_bytes) +
                         " bytes; a policy is a few kilobytes");
  }
  if (text.find('\0') != std::string_view::npos) {
    return Status::Error("1:1: the file contains a NUL byte: not a YAML text file");
  }
  std::istringstream in{std::string(text)};
  TreeBuilder builder(limits);
  try {
    YAML::Parser parser(in);
    if (!parser.HandleNextDocument(builder) || !builder.have_root) {
      return Status::Error("1:1: the file is empty; a policy needs at least `rules: []`");
    }
    TreeBuilder second(limits);
    if (parser.HandleNextDocument(second)) {
      const YamlNode& n = second.root;
      return Status::Error(std::to_string(n.line) + ":" + std::to_string(n.column) +
                           ": a second YAML document ('---'); a policy is one document");
    }
  } catch (const Refused& r) {
    return Status::Error(at(r.mark, r.message));
  } catch (const YAML::Exception& e) {
    return Status::Error(at(e.mark, "YAML syntax: " + e.msg));
  } catch (const std::exception& e) {
    return Status::Error(std::string("1:1: YAML: ") + e.what());
  }
  return std::move(builder.root);
}

}  // namespace dbwarden::policy
