// TLS contexts (OpenSSL 3): TLS 1.2+ only, certificate and key from the config or a self-signed certificate made
// on first start, reloadable (SIGHUP) without touching established sessions.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace cg::net {

class TlsError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct TlsSettings {
  std::string certificate; // PEM chain; empty = self-signed in data_dir
  std::string key;
  std::string data_dir;
  std::vector<std::string> hosts; // names for the self-signed certificate
  bool tls13_only = false;
};

using SslCtxPtr = std::shared_ptr<SSL_CTX>;

class TlsManager {
public:
  explicit TlsManager(TlsSettings settings);
  // Builds the context (generating the self-signed certificate when needed). Throws TlsError with a message that
  // names the file at fault.
  void load();
  // Rebuilds from the same settings; on failure keeps the old context and returns the error message.
  std::string reload();
  SslCtxPtr context() const;
  // Where the certificate in use came from (for the start-up banner).
  const std::string& certificate_path() const { return cert_path_; }
  bool self_signed() const { return self_signed_; }

private:
  SslCtxPtr build() const;
  TlsSettings settings_;
  mutable std::mutex mutex_;
  SslCtxPtr ctx_;
  std::string cert_path_;
  std::string key_path_;
  bool self_signed_ = false;
};

// Makes a self-signed certificate (EC P-256, SAN = every host) and writes cert and key (0600) as PEM.
void make_self_signed(const std::vector<std::string>& hosts, const std::string& cert_path, const std::string& key_path);

// The last OpenSSL error as text (and clears the error queue).
std::string openssl_error();

} // namespace cg::net
