# SPDX-License-Identifier: Apache-2.0
# Writes OUT, a C++ source that defines dbwarden::agent::find_web_asset() over the files of
# the approvals inbox (run at build time: -DWEB_DIR=... -DOUT=...). Bytes go in as numbers,
# so any file content compiles.
# file|path|type (all UTF-8; no ';' in an entry: it separates CMake list items)
set(assets "index.html|/|text/html" "inbox.js|/inbox.js|text/javascript"
           "inbox.css|/inbox.css|text/css")
set(body "// Generated from agent/web by agent/web/embed.cmake: do not edit.\n")
string(APPEND body "#include \"agent/web_assets.h\"\n\nnamespace dbwarden::agent {\nnamespace {\n")
set(lookup "")
set(i 0)
foreach(a ${assets})
  string(REPLACE "|" ";" parts "${a}")
  list(GET parts 0 file)
  list(GET parts 1 path)
  list(GET parts 2 type)
  file(READ ${WEB_DIR}/${file} hex HEX)
  string(LENGTH "${hex}" hexlen)
  math(EXPR size "${hexlen} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND body "const unsigned char kAsset${i}[] = {${bytes}0};\n")
  string(APPEND lookup "  if (path == \"${path}\") return WebAsset{\"${type}; charset=utf-8\", std::string_view(reinterpret_cast<const char*>(kAsset${i}), ${size})};\n")
  math(EXPR i "${i} + 1")
endforeach()
string(APPEND body "\n}  // namespace\n\nstd::optional<WebAsset> find_web_asset(std::string_view path) {\n")
string(APPEND body "${lookup}  return std::nullopt;\n}\n\n}  // namespace dbwarden::agent\n")
file(WRITE ${OUT}.tmp "${body}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
