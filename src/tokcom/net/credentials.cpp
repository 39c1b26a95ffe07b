#include "tokcom/net/credentials.h"

#include <filesystem>
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
  if (std::filesystem::is_directory(path))
    throw UsageError(fmt::format("{} '{}': is a folder, expected a file", flag, path));
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("{} '{}': cannot read the file", flag, path));
  std::string token;
  std::getline(in, token);
  // A file saved with CRLF line endings: the '\r' is the line ending, not part of the token (sent
  // as gRPC metadata it made the client abort, while the server took it as part of the token).
  if (!token.empty() && token.back() == '\r') token.pop_back();
  if (token.empty()) throw UsageError(fmt::format("{} '{}': the first line is empty", flag, path));
  for (size_t i = 0; i < token.size(); ++i) {
    const auto c = static_cast<unsigned char>(token[i]);
    if (c < 0x20 || c == 0x7F)
      throw UsageError(fmt::format("{} '{}': the token holds control character 0x{:02X} at byte {}; expected "
                                   "printable characters on the first line",
                                   flag, path, c, i));
  }
  return token;
}

bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

}  // namespace tokcom::net
