// What the CLI-level serve tests share (test_net, test_browser): a tiny trained bank with a proxy
// table, `tokcom` processes in the background, and a plain HTTP GET for the --http endpoint.
#pragma once
#include <sys/types.h>

#include <map>
#include <string>

namespace tokcom::test {

struct TinyDeployment {
  std::string bank, table;
  // Flags every `tokcom device` / `optimize --bank` of the tests share (table, scenario, ζ_max, V, μ).
  std::string common;
};
// Trains a 2-ratio JSCC bank on a random tiny ViT (seconds) and writes a small proxy table over its
// decisions, under `dir`.
TinyDeployment tiny_deployment(const std::string& dir);

// `tokcom <args>` in the background, stdout and stderr into `log`.
pid_t spawn_cli(const std::string& args, const std::string& log);
// Its exit code (128 + signal when killed).
int wait_exit(pid_t pid);
std::string slurp(const std::string& path);
// Waits up to `seconds` for `path` to exist, then returns the integer it holds (-1: never came).
int read_port_file(const std::string& path, double seconds = 30);

struct HttpReply {
  int status = 0;  // 0: no connection
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};
// GET http://127.0.0.1:port/path (HTTP/1.0, one connection), optional extra header lines.
HttpReply http_get(int port, const std::string& path, const std::string& extra_headers = "");

}  // namespace tokcom::test
