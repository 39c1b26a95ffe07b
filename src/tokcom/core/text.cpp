#include "tokcom/core/text.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "tokcom/core/errors.h"

namespace tokcom {

std::vector<std::string> split_list(const std::string& text, char sep) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  size_t start = 0;
  while (true) {
    const size_t at = text.find(sep, start);
    std::string item = text.substr(start, at == std::string::npos ? std::string::npos : at - start);
    const size_t b = item.find_first_not_of(" \t");
    const size_t e = item.find_last_not_of(" \t\r");
    out.push_back(b == std::string::npos ? std::string() : item.substr(b, e - b + 1));
    if (at == std::string::npos) break;
    start = at + 1;
  }
  return out;
}

std::optional<double> parse_double(const std::string& text) {
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(begin, &end);
  if (text.empty() || end != begin + text.size() || errno == ERANGE || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::string to_lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::vector<double> parse_number_list(const std::string& text, const std::string& what) {
  std::vector<double> out;
  for (const std::string& item : split_list(text)) {
    if (item.empty()) continue;  // "0.1,0.5," is the list 0.1, 0.5
    const std::optional<double> v = parse_double(item);
    if (!v) throw UsageError(fmt::format("{}: '{}' is not a number (expected a comma list like 0.1,0.5,1)", what, item));
    out.push_back(*v);
  }
  if (out.empty()) throw UsageError(what + ": empty list, expected a comma list like 0.1,0.5,1");
  return out;
}

uint64_t fnv1a(const std::string& bytes) {
  uint64_t h = 1469598103934665603ull;  // see text.h: not the published basis, kept for the digests on disk
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string fnv1a_hex(const std::string& bytes) { return fmt::format("{:016x}", fnv1a(bytes)); }

}  // namespace tokcom
