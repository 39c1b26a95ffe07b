// Test helpers shared by every area.
#pragma once
#include <functional>
#include <string>

namespace tokcom::test {

// The message of the tokcom::Error that `f` throws, or "<no error>" (for message checks).
std::string error_of(const std::function<void()>& f);
// A fresh empty folder under the build tree's temp dir, removed at process exit.
std::string temp_dir(const std::string& tag);
// ../shared beside the repository ($TOKCOM_SHARED when set).
std::string shared_dir();
// Runs `tokcom <args>` (the CLI built beside the tests); returns the exit code and fills `output`
// with stdout+stderr.
int run_cli(const std::string& args, std::string* output);
// Runs `command` with /bin/sh; returns the exit code (128 + the signal that killed it, as a shell
// reports it) and fills `output` with stdout+stderr.
int run_shell(const std::string& command, std::string* output);

// True where TOKCOM_REQUIRE_DEPS=1 (scripts/test.sh, hence CI): everything setup.sh installs and
// ../shared must be there, so a test that would skip for want of it fails instead.
bool require_deps();

}  // namespace tokcom::test

// Skips the test for want of `reason` (a package setup.sh installs, a file of ../shared), or fails
// it where test::require_deps(): a skip must not hide a broken setup.
#define TOKCOM_SKIP_MISSING(reason)                                                                      \
  do {                                                                                                   \
    if (::tokcom::test::require_deps()) {                                                                \
      FAIL() << reason << " (TOKCOM_REQUIRE_DEPS=1: scripts/setup.sh should have provided it)";          \
    } else {                                                                                             \
      GTEST_SKIP() << reason;                                                                            \
    }                                                                                                    \
  } while (0)
