// Experiment configuration: YAML files under configs/ plus Hydra-like `key.sub=value` overrides.
//
// The schema is configs/defaults/*.yaml: every key that exists, with its default value and so its
// type. A named config (configs/<name>.yaml, or any path) and each override may only set keys
// that exist there, with a value of the same type (an int may stand where a float is expected;
// a null default accepts anything). Anything else is a ConfigError naming the key, the file and
// what was expected.
#pragma once
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tokcom {

class Config {
 public:
  Config() = default;

  // Loads the defaults, then the named config (name in configs/ or a path to a .yaml file;
  // empty = defaults only), then the overrides in order.
  static Config load(const std::string& name_or_path, const std::vector<std::string>& overrides = {});
  // Builds from an in-memory YAML text merged onto the defaults (tests, sidecars).
  static Config from_yaml(const std::string& yaml_text, const std::vector<std::string>& overrides = {},
                          const std::string& origin = "<string>");

  // Applies one `key.sub=value` override; the value is parsed as YAML (`[1, 2]`, `true`, `3e-4`).
  void set(const std::string& assignment);

  bool has(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_double(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::vector<double> get_doubles(const std::string& key) const;
  std::vector<int64_t> get_ints(const std::string& key) const;
  std::vector<std::string> get_strings(const std::string& key) const;
  YAML::Node node(const std::string& key) const;

  std::string name() const { return name_; }
  std::string to_yaml() const;
  // Writes the effective config next to an output (atomic).
  void save(const std::string& path) const;
  // Short stable hash of the effective config (content-addressed stage caching).
  std::string digest() const;

  // Folder holding configs/: $TOKCOM_CONFIG_DIR, else ./configs, else the source tree's.
  static std::string config_dir();

 private:
  YAML::Node lookup(const std::string& key) const;
  void merge(const YAML::Node& src, const std::string& origin);

  YAML::Node root_;
  YAML::Node schema_;
  std::string name_ = "defaults";
};

}  // namespace tokcom
