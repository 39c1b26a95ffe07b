// net/credentials.h — the files `tokcom serve` and `tokcom device` read secrets from, and how a
// presented secret is compared.
#pragma once
#include <string>

namespace tokcom::net {

// Whole PEM file (TLS certificate, key or root). UsageError naming `flag` and the path otherwise.
std::string read_pem(const std::string& path, const std::string& flag);
// A server's TLS pair, checked before the port is bound (gRPC itself only reports that it cannot
// listen): each file must hold a PEM certificate / private key, and the key must be the
// certificate's. UsageError naming the flag and the path otherwise.
void check_tls_pair(const std::string& cert_pem, const std::string& cert_path, const std::string& key_pem,
                    const std::string& key_path);
// First line of a shared-token file. UsageError naming `flag` if unreadable or the line is empty.
std::string read_token(const std::string& path, const std::string& flag);
// a == b in time that depends on a's length only (a presented token against the expected one).
bool same_secret(const std::string& a, const std::string& b);

}  // namespace tokcom::net
