#include "tokcom/core/config.h"

#include <filesystem>
#include <regex>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>

#include <fmt/format.h>

#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/text.h"

namespace tokcom {
namespace fs = std::filesystem;
namespace {

enum class Kind { kNull, kBool, kInt, kFloat, kString, kSequence, kMap };

bool parses_as_int(const std::string& s) {
  if (s.empty()) return false;
  size_t pos = 0;
  try {
    std::stoll(s, &pos);
  } catch (...) {
    return false;
  }
  return pos == s.size();
}
bool parses_as_float(const std::string& s) {
  if (s.empty()) return false;
  size_t pos = 0;
  try {
    std::stod(s, &pos);
  } catch (...) {
    return false;
  }
  return pos == s.size() || s == ".inf" || s == "-.inf" || s == ".nan";
}
bool parses_as_bool(const std::string& s) { return s == "true" || s == "false"; }

Kind kind_of(const YAML::Node& n) {
  if (!n || n.IsNull()) return Kind::kNull;
  if (n.IsSequence()) return Kind::kSequence;
  if (n.IsMap()) return Kind::kMap;
  const std::string s = n.Scalar();
  if (n.Tag() == "!") return Kind::kString;  // quoted
  if (parses_as_bool(s)) return Kind::kBool;
  if (parses_as_int(s)) return Kind::kInt;
  if (parses_as_float(s)) return Kind::kFloat;
  return Kind::kString;
}
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kNull: return "null";
    case Kind::kBool: return "a bool";
    case Kind::kInt: return "an int";
    case Kind::kFloat: return "a float";
    case Kind::kString: return "a string";
    case Kind::kSequence: return "a list";
    case Kind::kMap: return "a mapping";
  }
  return "?";
}
bool compatible(Kind expected, Kind actual) {
  if (expected == Kind::kNull || actual == Kind::kNull) return true;
  if (expected == actual) return true;
  if (expected == Kind::kFloat && actual == Kind::kInt) return true;
  if (expected == Kind::kString && actual != Kind::kSequence && actual != Kind::kMap) return true;
  return false;
}

std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  std::stringstream ss(key);
  std::string p;
  while (std::getline(ss, p, '.')) parts.push_back(p);
  return parts;
}

YAML::Node load_yaml_file(const std::string& path) {
  if (std::filesystem::is_directory(path)) {
    throw ConfigError(fmt::format("config file '{}' is a folder, expected a YAML file", path));
  }
  try {
    return YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw ConfigError(fmt::format("cannot read config file '{}'", path));
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}: invalid YAML at line {}: {}", path, e.mark.line + 1, e.msg));
  }
}

YAML::Node read_schema(const fs::path& dir) {
  if (!fs::is_directory(dir)) {
    throw ConfigError(fmt::format("schema folder '{}' is missing (expected configs/defaults/*.yaml)", dir.string()));
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  YAML::Node schema(YAML::NodeType::Map);
  for (const auto& f : files) {
    YAML::Node n = load_yaml_file(f.string());
    if (!n.IsMap()) throw ConfigError(fmt::format("{}: expected a mapping at top level", f.string()));
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string key = it->first.as<std::string>();
      if (schema[key]) throw ConfigError(fmt::format("{}: section '{}' is defined in two schema files", f.string(), key));
      schema[key] = YAML::Clone(it->second);
    }
  }
  return schema;
}

// The schema folder is read once per process (per folder): a sweep builds many configs. Each
// Config gets its own clone, so nothing a config does reaches the cache.
YAML::Node load_schema() {
  static std::mutex mutex;
  static std::map<std::string, YAML::Node> cache;
  const fs::path dir = fs::path(Config::config_dir()) / "defaults";
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(dir.string());
  if (it == cache.end()) it = cache.emplace(dir.string(), read_schema(dir)).first;
  return YAML::Clone(it->second);
}

}  // namespace

std::string Config::config_dir() {
  if (const char* env = std::getenv("TOKCOM_CONFIG_DIR")) return env;
  if (fs::is_directory("configs/defaults")) return "configs";
  return std::string(TOKCOM_SOURCE_DIR) + "/configs";
}

void Config::merge(const YAML::Node& src, const std::string& origin) {
  std::function<void(const YAML::Node&, YAML::Node, const YAML::Node&, const std::string&)> rec =
      [&](const YAML::Node& s, YAML::Node dst, const YAML::Node& sch, const std::string& prefix) {
        for (auto it = s.begin(); it != s.end(); ++it) {
          // A copy: `it->second` is a member of a temporary proxy, so a range-for over it dangles
          // (found by fuzz/fuzz_config.cpp under ASan).
          const YAML::Node value = it->second;
          if (!it->first.IsScalar()) {
            throw ConfigError(fmt::format("{}: a key under '{}' is {}, expected a plain name", origin,
                                          prefix.empty() ? "<top>" : prefix, kind_name(kind_of(it->first))));
          }
          const std::string k = it->first.as<std::string>();
          const std::string full = prefix.empty() ? k : prefix + "." + k;
          if (!sch[k]) {
            std::vector<std::string> known;
            for (auto jt = sch.begin(); jt != sch.end(); ++jt) known.push_back(jt->first.as<std::string>());
            throw ConfigError(fmt::format("{}: unknown key '{}' (known keys{}: {})", origin, full,
                                          prefix.empty() ? "" : " under '" + prefix + "'",
                                          fmt::join(known, ", ")));
          }
          const YAML::Node expected = sch[k];
          const Kind ek = kind_of(expected), ak = kind_of(value);
          if (ek == Kind::kMap) {
            if (ak != Kind::kMap) {
              throw ConfigError(fmt::format("{}: key '{}' is a section, expected a mapping, got {}", origin, full, kind_name(ak)));
            }
            rec(value, dst[k], expected, full);
            continue;
          }
          if (!compatible(ek, ak)) {
            throw ConfigError(fmt::format("{}: key '{}' expects {} (default {}), got {} '{}'", origin, full,
                                          kind_name(ek), YAML::Dump(expected), kind_name(ak), YAML::Dump(value)));
          }
          if (ek == Kind::kSequence && ak == Kind::kSequence && expected.size() > 0) {
            const Kind elem = kind_of(expected[0]);
            for (const auto& v : value)
              if (!compatible(elem, kind_of(v)))
                throw ConfigError(fmt::format("{}: key '{}' expects a list of {}, got element '{}'", origin, full,
                                              kind_name(elem), YAML::Dump(v)));
          }
          dst[k] = YAML::Clone(value);
        }
      };
  if (!src || src.IsNull()) return;
  if (!src.IsMap()) throw ConfigError(fmt::format("{}: expected a mapping at top level", origin));
  try {
    rec(src, root_, schema_, "");
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}: {}", origin, e.what()));
  }
  // Values whose set is known here (a torch::Device string), checked where the key is named, not
  // where LibTorch would later refuse it without saying which key.
  const std::string device = get_string("train.device");
  static const std::regex kDevice(R"(cpu|cuda(:[0-9]{1,2})?)");
  if (!std::regex_match(device, kDevice)) {
    throw ConfigError(fmt::format("{}: train.device is '{}', expected cpu, cuda or cuda:N", origin, device));
  }
}

Config Config::from_yaml(const std::string& yaml_text, const std::vector<std::string>& overrides,
                         const std::string& origin) {
  Config c;
  c.schema_ = load_schema();
  c.root_ = YAML::Clone(c.schema_);
  YAML::Node n;
  try {
    n = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}: invalid YAML at line {}: {}", origin, e.mark.line + 1, e.msg));
  }
  c.merge(n, origin);
  for (const auto& o : overrides) c.set(o);
  return c;
}

Config Config::load(const std::string& name_or_path, const std::vector<std::string>& overrides) {
  Config c;
  c.schema_ = load_schema();
  c.root_ = YAML::Clone(c.schema_);
  if (!name_or_path.empty()) {
    std::string path = name_or_path;
    if (!fs::exists(path)) {
      path = (fs::path(config_dir()) / (name_or_path + ".yaml")).string();
      if (!fs::exists(path)) {
        std::vector<std::string> known;
        for (const auto& e : fs::directory_iterator(config_dir()))
          if (e.path().extension() == ".yaml") known.push_back(e.path().stem().string());
        std::sort(known.begin(), known.end());
        throw ConfigError(fmt::format("no config named '{}' (looked for '{}' and '{}'; known: {})", name_or_path,
                                      name_or_path, path, fmt::join(known, ", ")));
      }
    }
    c.merge(load_yaml_file(path), path);
    c.name_ = fs::path(path).stem().string();
  }
  for (const auto& o : overrides) c.set(o);
  return c;
}

void Config::set(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError(fmt::format("override '{}': expected key.sub=value", assignment));
  }
  const std::string key = assignment.substr(0, eq);
  const std::string value = assignment.substr(eq + 1);
  YAML::Node v;
  try {
    v = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("override '{}': value is not valid YAML: {}", assignment, e.msg));
  }
  // Build the nested mapping {a: {b: value}} and merge it with full checks.
  const auto parts = split_key(key);
  YAML::Node nested = v;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    YAML::Node m(YAML::NodeType::Map);
    m[*it] = nested;
    nested = m;
  }
  merge(nested, "override '" + assignment + "'");
}

YAML::Node Config::lookup(const std::string& key) const {
  YAML::Node n = YAML::Clone(root_);
  for (const auto& p : split_key(key)) {
    if (!n.IsMap() || !n[p]) throw ConfigError(fmt::format("config '{}' has no key '{}'", name_, key));
    n = n[p];
  }
  return n;
}

bool Config::has(const std::string& key) const {
  YAML::Node n = YAML::Clone(root_);
  for (const auto& p : split_key(key)) {
    if (!n.IsMap() || !n[p]) return false;
    n = n[p];
  }
  return true;
}

YAML::Node Config::node(const std::string& key) const { return lookup(key); }

namespace {
template <typename T>
T convert(const YAML::Node& n, const std::string& key, const char* expected) {
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    throw ConfigError(fmt::format("key '{}': expected {}, got '{}'", key, expected, YAML::Dump(n)));
  }
}
}  // namespace

int64_t Config::get_int(const std::string& key) const { return convert<int64_t>(lookup(key), key, "an int"); }
double Config::get_double(const std::string& key) const { return convert<double>(lookup(key), key, "a float"); }
bool Config::get_bool(const std::string& key) const { return convert<bool>(lookup(key), key, "a bool"); }
std::string Config::get_string(const std::string& key) const {
  const YAML::Node n = lookup(key);
  if (n.IsNull()) return "";
  return convert<std::string>(n, key, "a string");
}
std::vector<double> Config::get_doubles(const std::string& key) const {
  return convert<std::vector<double>>(lookup(key), key, "a list of floats");
}
std::vector<int64_t> Config::get_ints(const std::string& key) const {
  return convert<std::vector<int64_t>>(lookup(key), key, "a list of ints");
}
std::vector<std::string> Config::get_strings(const std::string& key) const {
  return convert<std::vector<std::string>>(lookup(key), key, "a list of strings");
}

std::string Config::to_yaml() const {
  YAML::Emitter out;
  out << root_;
  return std::string(out.c_str()) + "\n";
}

void Config::save(const std::string& path) const { write_file_atomic(path, to_yaml()); }

std::string Config::digest() const {
  // FNV-1a 64 over the canonical dump: stable across runs and machines.
  return fnv1a_hex(to_yaml());
}

}  // namespace tokcom
