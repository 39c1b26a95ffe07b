#include "common/serve_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common/tiny_vit.h"
#include "tokcom/control/proxy_table.h"
#include "tokcom/core/config.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/train/jscc_stage.h"
#include "tokcom/train/trainer.h"

namespace tokcom::test {
namespace fs = std::filesystem;

TinyDeployment tiny_deployment(const std::string& dir) {
  TinyDeployment d;
  const std::string init = dir + "/adaptive.safetensors";
  d.bank = dir + "/bank";
  const Config config = Config::load("", tiny_vit_overrides(dir, "none"));
  save_module(init, *random_tiny_vit(config, 9));
  auto o = tiny_vit_overrides(d.bank, "none");
  o.insert(o.end(), {"train.stage=jscc", "train.init=" + init, "train.ratios=all", "comm.train_regime=robust",
                     "train.epochs=1", "train.max_batches=2", "train.optimizer=adam", "train.schedule=constant"});
  TrainRunOptions run;
  run.seed = 2;
  if (train_jscc(Config::load("", o), run).size() != 2u) throw std::runtime_error("tiny_deployment: bank not trained");
  // A small proxy table over the bank's decisions: accuracy rises with r, α and SNR.
  std::vector<ProxyRow> rows;
  for (double snr : {0.0, 10.0, 20.0})
    for (double r : {0.1, 0.5})
      for (double a : {0.25, 0.5, 1.0}) {
        const double width = r == 0.1 ? 3 : 16;
        rows.push_back(ProxyRow{"proposal", "awgn", "robust", snr, r, a, (a * 16 + 2) * width / 784.0,
                                0.3 + 0.2 * a + 0.2 * r + 0.01 * snr});
      }
  d.table = dir + "/proxy.csv";
  ProxyTable::from_rows(rows).write_csv(d.table);
  d.common = "--table " + d.table + " --scenario gauss:10,2.5 --zeta-max 0.03 --V 10 --mu 10 --repeats 1 --no-plots";
  return d;
}

pid_t spawn_cli(const std::string& args, const std::string& log) {
  const char* cli = std::getenv("TOKCOM_CLI");
  const std::string command = "exec " + std::string(cli ? cli : "./tokcom") + " " + args;
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int read_port_file(const std::string& path, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(seconds * 1000));
  while (std::chrono::steady_clock::now() < end) {
    if (fs::exists(path)) {
      const std::string text = slurp(path);
      if (!text.empty()) return std::stoi(text);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

HttpReply http_get(int port, const std::string& path, const std::string& extra_headers) {
  HttpReply reply;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return reply;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return reply;
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n" + extra_headers + "\r\n";
  if (send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return reply;
  }
  std::string raw;
  char buf[8192];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) raw.append(buf, static_cast<size_t>(n));
  close(fd);
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return reply;
  std::istringstream head(raw.substr(0, end));
  std::string line, version;
  std::getline(head, line);
  std::istringstream(line) >> version >> reply.status;
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    reply.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
  }
  reply.body = raw.substr(end + 4);
  return reply;
}

}  // namespace tokcom::test
