// SPDX-License-Identifier: Apache-2.0
//
// A recording (`run --record`) holds statement text before redaction, so
// passwords too: it is created 0600 whatever the umask, and never over an
// existing file.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>

#include "../support/temp_dir.h"
#include "capture/records.h"

TEST_CASE("recording: created 0600 under a permissive umask, never over a file",
          "[capture][record][redact]") {
  dbw_test::TempDir dir;
  const std::string path = dir.path + "/session.rec";
  const mode_t old_umask = ::umask(0);
  auto writer = dbwarden::capture::RecordingWriter::Create(path);
  ::umask(old_umask);
  REQUIRE(writer.ok());
  CHECK((*writer)->close().ok());
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const auto again = dbwarden::capture::RecordingWriter::Create(path);
  CHECK_FALSE(again.ok());
}
