#include "tokcom/net/credentials.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "tokcom/core/errors.h"

namespace tokcom::net {

std::string read_pem(const std::string& path, const std::string& flag) {
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("{} '{}': cannot read the file", flag, path));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string read_token(const std::string& path, const std::string& flag) {
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("{} '{}': cannot read the file", flag, path));
  std::string token;
  std::getline(in, token);
  if (token.empty()) throw UsageError(fmt::format("{} '{}': the first line is empty", flag, path));
  return token;
}

}  // namespace tokcom::net
