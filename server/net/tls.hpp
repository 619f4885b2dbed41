// TLS contexts (OpenSSL 3): TLS 1.2+ only, certificate and key from the config or a self-signed certificate made
// on first start, reloadable (SIGHUP) without touching established sessions.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
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
  // Server-to-server: certificates of peers are verified against the system trust store (when `system_trust`)
  // plus the CAs in `ca_file` (PEM; empty = none).
  std::string ca_file;
  bool system_trust = true;
};

// What a peer's certificate proves (server-to-server, RFC 6120 §13.7.2, RFC 6125).
struct PeerCertificate {
  bool present = false; // the peer sent a certificate
  bool trusted = false; // its chain verifies against our trust anchors
  bool name_ok = false; // it names the domain asked about
  std::string error;    // why not, for the log
  bool verified() const { return present && trusted && name_ok; }
};

// Checks the certificate `ssl`'s peer presented against `domain`: the chain verification result of the handshake
// and RFC 6125 name matching (DNS-ID with a wildcard only as the whole left-most label, SRV-ID for
// _xmpp-server/_xmpps-server, and the XmppAddr identifier of RFC 6120 §13.7.1.4).
PeerCertificate verify_peer(SSL* ssl, std::string_view domain);
// The name part of it: whether `cert` names `domain` (RFC 6125 §6; the CN only when there is no subjectAltName).
bool certificate_names(X509* cert, std::string_view domain);

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
  // Server-to-server: the listener's context asks peers for a certificate (without failing the handshake when they
  // send none or an untrusted one: dialback may still authenticate them); the client context presents ours.
  SslCtxPtr s2s_server_context() const;
  SslCtxPtr s2s_client_context() const;
  // Where the certificate in use came from (for the start-up banner).
  const std::string& certificate_path() const { return cert_path_; }
  bool self_signed() const { return self_signed_; }

private:
  struct Contexts {
    SslCtxPtr c2s, s2s_server, s2s_client;
  };
  Contexts build() const;
  SslCtxPtr build_one(bool server, bool s2s) const;
  TlsSettings settings_;
  mutable std::mutex mutex_;
  Contexts ctx_;
  std::string cert_path_;
  std::string key_path_;
  bool self_signed_ = false;
};

// Makes a self-signed certificate (EC P-256, SAN = every host) and writes cert and key (0600) as PEM.
void make_self_signed(const std::vector<std::string>& hosts, const std::string& cert_path, const std::string& key_path);

// The last OpenSSL error as text (and clears the error queue).
std::string openssl_error();

} // namespace cg::net
