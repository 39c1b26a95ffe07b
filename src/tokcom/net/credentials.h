// net/credentials.h — the files `tokcom serve` and `tokcom device` read secrets from.
#pragma once
#include <string>

namespace tokcom::net {

// Whole PEM file (TLS certificate, key or root). UsageError naming `flag` and the path otherwise.
std::string read_pem(const std::string& path, const std::string& flag);
// First line of a shared-token file. UsageError naming `flag` if unreadable or the line is empty.
std::string read_token(const std::string& path, const std::string& flag);

}  // namespace tokcom::net
