#include "common/helpers.h"

#include "tokcom/core/errors.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace tokcom::test {
namespace fs = std::filesystem;

namespace {
std::vector<fs::path>& made_dirs() {
  static std::vector<fs::path> dirs;
  static bool registered = false;
  if (!registered) {
    registered = true;
    std::atexit([] {
      std::error_code ec;
      for (const auto& d : made_dirs()) fs::remove_all(d, ec);
    });
  }
  return dirs;
}
}  // namespace

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

std::string temp_dir(const std::string& tag) {
  static int counter = 0;
  fs::path p = fs::temp_directory_path() /
               ("tokcom_test_" + std::to_string(getpid()) + "_" + tag + "_" + std::to_string(counter++));
  fs::remove_all(p);
  fs::create_directories(p);
  made_dirs().push_back(p);
  return p.string();
}

bool require_deps() {
  const char* v = std::getenv("TOKCOM_REQUIRE_DEPS");
  return v && std::string(v) == "1";
}

std::string shared_dir() {
  if (const char* env = std::getenv("TOKCOM_SHARED")) return env;
  return std::string(TOKCOM_SOURCE_DIR) + "/../shared";
}

int run_cli(const std::string& args, std::string* output) {
  const char* cli = std::getenv("TOKCOM_CLI");
  return run_shell(std::string(cli ? cli : "./tokcom") + " " + args, output);
}

int run_shell(const std::string& command, std::string* output) {
  const std::string cmd = command + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return -1;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  const int status = pclose(pipe);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

}  // namespace tokcom::test
