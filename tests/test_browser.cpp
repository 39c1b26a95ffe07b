// The live page of `tokcom serve --http`, as a person sees it: a real server, two real device
// processes, and the page rendered by headless Chromium (Debian's `chromium`, installed by
// scripts/setup.sh). The rendered DOM must show both devices, their ζ and their decisions, and
// they must change while the devices run. Skipped (and reported as skipped by ctest) only where
// Chromium is missing or cannot start.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/helpers.h"
#include "common/serve_fixture.h"

namespace tokcom {
namespace {
namespace fs = std::filesystem;

std::string chromium_path() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (fs::exists(p)) return p;
  return "";
}

// The DOM after the page has polled for a while (virtual time), and Chromium's exit code.
std::string dump_dom(const std::string& chromium, const std::string& url, const std::string& profile, int* rc) {
  // The flags this machine needs: no sandbox as root, no GPU, and no background connections
  // (the network is closed; Chromium would otherwise try Google's hosts at every start).
  const std::string cmd = chromium +
                          " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                          "--disable-background-networking --disable-component-update --disable-sync "
                          "--user-data-dir=" + profile + " --virtual-time-budget=3000 --dump-dom '" + url +
                          "' 2>" + profile + "/chromium.log";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  char buf[8192];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), pipe)) > 0;) out.append(buf, n);
  const int status = pclose(pipe);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

// The device rows of the rendered table: data-device → its data-* attributes.
std::map<std::string, std::map<std::string, std::string>> device_rows(const std::string& dom) {
  std::map<std::string, std::map<std::string, std::string>> rows;
  const std::regex row("<tr class=\"device\"([^>]*)>");
  const std::regex attribute(" data-([a-z-]+)=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), row); it != std::sregex_iterator(); ++it) {
    std::map<std::string, std::string> attrs;
    const std::string inside = (*it)[1];
    for (auto a = std::sregex_iterator(inside.begin(), inside.end(), attribute); a != std::sregex_iterator(); ++a)
      attrs[(*a)[1]] = (*a)[2];
    rows[attrs["device"]] = attrs;
  }
  return rows;
}

double number(const std::map<std::string, std::string>& row, const std::string& key) {
  const auto it = row.find(key);
  if (it == row.end() || it->second.empty()) return std::nan("");
  return std::stod(it->second);
}

TEST(LivePage, TwoDevicesAppearAndChangeInChromium) {
  const std::string chromium = chromium_path();
  if (chromium.empty()) TOKCOM_SKIP_MISSING("Chromium not installed (Debian package chromium; scripts/setup.sh installs it)");
  const std::string dir = test::temp_dir("browser");
  const test::TinyDeployment tiny = test::tiny_deployment(dir);
  const pid_t server = test::spawn_cli("--threads 1 serve --checkpoint-dir " + tiny.bank +
                                           " --listen 127.0.0.1:0 --metrics-interval 0 --port-file " + dir +
                                           "/port --http 0 --http-port-file " + dir + "/http-port",
                                       dir + "/serve.log");
  const int port = test::read_port_file(dir + "/http-port");
  ASSERT_GT(port, 0) << test::slurp(dir + "/serve.log");
  const std::string address = "127.0.0.1:" + std::to_string(test::read_port_file(dir + "/port"));
  // ζ_max between the cheapest and the dearest decision's real ζ (0.06 and 0.37 on this random
  // model), and a quick queue (μ = 1000): the decision changes every few slots.
  const std::string control = "--table " + tiny.table + " --scenario gauss:10,2.5 --zeta-max 0.1 --V 10 --mu 1000 "
                              "--repeats 1 --no-plots";
  std::vector<pid_t> devices;
  for (const std::string name : {"dev-a", "dev-b"}) {
    // Every test image (10,000): the devices are still sending when the page is looked at.
    devices.push_back(test::spawn_cli("--threads 1 --seed 5 device --server " + address + " --bank " + tiny.bank +
                                          " " + control + " --images 0 --name " + name +
                                          (name == "dev-a" ? " --send-labels" : "") + " -o " + dir + "/" + name,
                                      dir + "/" + name + ".log"));
  }
  auto stop_all = [&] {
    for (pid_t d : devices) kill(d, SIGKILL);
    for (pid_t d : devices) test::wait_exit(d);
    kill(server, SIGTERM);
    test::wait_exit(server);
  };
  // Both devices connected and sending.
  bool sending = false;
  for (int i = 0; i < 600 && !sending; ++i) {
    const test::HttpReply r = test::http_get(port, "/api/state");
    if (r.status == 200) {
      const nlohmann::json s = nlohmann::json::parse(r.body);
      sending = s["devices"].size() == 2 && s["devices"][0]["requests"].get<int64_t>() >= 5 &&
                s["devices"][1]["requests"].get<int64_t>() >= 5;
    }
    if (!sending) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!sending) {
    stop_all();
    FAIL() << "the devices never sent 5 requests each:\n" << test::slurp(dir + "/dev-a.log") << test::slurp(dir + "/serve.log");
  }

  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  int rc = 0;
  fs::create_directories(dir + "/profile1");
  const std::string first = dump_dom(chromium, url, dir + "/profile1", &rc);
  if (first.find("<html") == std::string::npos) {
    stop_all();
    TOKCOM_SKIP_MISSING("Chromium did not start (exit " << rc << "): " << test::slurp(dir + "/profile1/chromium.log"));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  fs::create_directories(dir + "/profile2");
  const std::string second = dump_dom(chromium, url, dir + "/profile2", &rc);
  stop_all();

  for (const std::string* dom : {&first, &second}) {
    EXPECT_NE(dom->find("id=\"status\" data-state=\"ok\""), std::string::npos) << *dom;
    const auto rows = device_rows(*dom);
    ASSERT_EQ(rows.size(), 2u) << *dom;
    for (const std::string name : {"dev-a", "dev-b"}) {
      ASSERT_TRUE(rows.count(name)) << name << " not on the page:\n" << *dom;
      const auto& row = rows.at(name);
      EXPECT_EQ(row.at("connected"), "true") << name;
      const double zeta = number(row, "zeta"), budget = number(row, "budget"), ratio = number(row, "ratio");
      EXPECT_GT(zeta, 0) << name;  // the ζ of the last payload, counted by the server
      EXPECT_LT(zeta, 1) << name;
      EXPECT_GT(budget, 0) << name;  // its decision (α, r)
      EXPECT_LE(budget, 1) << name;
      EXPECT_TRUE(ratio == 0.1 || ratio == 0.5) << name << " r = " << ratio;
      EXPECT_EQ(number(row, "zeta-max"), 0.1) << name;
      EXPECT_GE(number(row, "queue"), 0) << name;
      EXPECT_GE(number(row, "decisions"), 1) << name;
      // Accuracy only where labels come with the requests.
      if (name == "dev-a") EXPECT_GE(number(row, "accuracy"), 0) << row.at("accuracy");
      if (name == "dev-b") EXPECT_EQ(row.at("accuracy"), "");
      EXPECT_NE(dom->find("<section class=\"device-card\" data-device=\"" + name + "\""), std::string::npos) << name;
    }
  }
  // And they change while the devices run: more requests, and (over the controller's slots) more
  // than one decision.
  const auto before = device_rows(first), after = device_rows(second);
  int64_t varied = 0;
  for (const std::string name : {"dev-a", "dev-b"}) {
    EXPECT_GT(number(after.at(name), "requests"), number(before.at(name), "requests")) << name;
    varied += number(after.at(name), "decisions") >= 2;
  }
  EXPECT_GE(varied, 1) << second;
}

}  // namespace
}  // namespace tokcom
