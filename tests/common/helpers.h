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

}  // namespace tokcom::test
