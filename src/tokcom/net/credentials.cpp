#include "tokcom/net/credentials.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "tokcom/core/errors.h"

#ifdef TOKCOM_HAVE_OPENSSL
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#endif

namespace tokcom::net {

std::string read_pem(const std::string& path, const std::string& flag) {
  if (std::filesystem::is_directory(path))
    throw UsageError(fmt::format("{} '{}': is a folder, expected a PEM file", flag, path));
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("{} '{}': cannot read the file", flag, path));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void check_tls_pair(const std::string& cert_pem, const std::string& cert_path, const std::string& key_pem,
                    const std::string& key_path) {
  const bool has_cert = cert_pem.find("-----BEGIN CERTIFICATE-----") != std::string::npos;
  const bool has_key = key_pem.find("-----BEGIN") != std::string::npos && key_pem.find("PRIVATE KEY-----") != std::string::npos;
  if (!has_cert) throw UsageError(fmt::format("--tls-cert '{}': expected a PEM certificate (-----BEGIN CERTIFICATE-----)", cert_path));
  if (!has_key) throw UsageError(fmt::format("--tls-key '{}': expected a PEM private key (-----BEGIN ... PRIVATE KEY-----)", key_path));
#ifdef TOKCOM_HAVE_OPENSSL
  BIO* cb = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* cert = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
  BIO_free(cb);
  BIO* kb = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
  BIO_free(kb);
  const bool matches = cert && key && X509_check_private_key(cert, key) == 1;
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!cert) throw UsageError(fmt::format("--tls-cert '{}': the PEM certificate does not parse", cert_path));
  if (!key) throw UsageError(fmt::format("--tls-key '{}': the PEM private key does not parse (encrypted keys are not supported)", key_path));
  if (!matches)
    throw UsageError(fmt::format("--tls-key '{}' is not the private key of --tls-cert '{}'", key_path, cert_path));
#endif
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
