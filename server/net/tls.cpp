#include "server/net/tls.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace cg::net {

namespace fs = std::filesystem;

std::string openssl_error() {
  std::string out;
  unsigned long e = 0;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

namespace {

struct FileCloser {
  void operator()(FILE* f) const {
    if (f != nullptr) {
      std::fclose(f);
    }
  }
};

// XEP-0368: clients on the direct TLS port may offer ALPN "xmpp-client", servers "xmpp-server" (`arg` is non-null
// for the s2s context); accept it, and accept peers that send no ALPN at all.
int alpn_select(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void* arg) {
  static const unsigned char kXmppClient[] = "\x0bxmpp-client";
  static const unsigned char kXmppServer[] = "\x0bxmpp-server";
  const unsigned char* ours = arg != nullptr ? kXmppServer : kXmppClient;
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, ours, sizeof kXmppClient - 1, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

} // namespace

void make_self_signed(const std::vector<std::string>& hosts, const std::string& cert_path,
                      const std::string& key_path) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(EVP_EC_gen("P-256"), EVP_PKEY_free);
  if (!pkey) {
    throw TlsError("cannot generate a key: " + openssl_error());
  }
  std::unique_ptr<X509, decltype(&X509_free)> x509(X509_new(), X509_free);
  X509_set_version(x509.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7F;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x509.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(x509.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x509.get()), 60L * 60 * 24 * 3650);
  X509_set_pubkey(x509.get(), pkey.get());
  X509_NAME* name = X509_get_subject_name(x509.get());
  const std::string cn = hosts.empty() ? "localhost" : hosts.front();
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("ChatGroup"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x509.get(), name);
  std::string san;
  for (const auto& h : hosts) {
    if (!san.empty()) {
      san += ",";
    }
    san += "DNS:" + h;
  }
  if (san.empty()) {
    san = "DNS:localhost";
  }
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x509.get(), x509.get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair<int, std::string>{NID_subject_alt_name, san},
                            {NID_basic_constraints, "critical,CA:FALSE"},
                            {NID_key_usage, "critical,digitalSignature,keyAgreement"},
                            {NID_ext_key_usage, "serverAuth,clientAuth"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
    if (ext == nullptr) {
      throw TlsError("cannot build the certificate extension " + value + ": " + openssl_error());
    }
    X509_add_ext(x509.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(x509.get(), pkey.get(), EVP_sha256()) == 0) {
    throw TlsError("cannot sign the certificate: " + openssl_error());
  }
  // The key is written first with mode 0600, then the certificate, so a half-made pair is never used.
  {
    mode_t old = umask(077);
    std::unique_ptr<FILE, FileCloser> f(std::fopen(key_path.c_str(), "w"));
    umask(old);
    if (!f) {
      throw TlsError("cannot write " + key_path + ": " + std::strerror(errno));
    }
    if (PEM_write_PrivateKey(f.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) == 0) {
      throw TlsError("cannot write " + key_path + ": " + openssl_error());
    }
  }
  std::unique_ptr<FILE, FileCloser> f(std::fopen(cert_path.c_str(), "w"));
  if (!f) {
    throw TlsError("cannot write " + cert_path + ": " + std::strerror(errno));
  }
  if (PEM_write_X509(f.get(), x509.get()) == 0) {
    throw TlsError("cannot write " + cert_path + ": " + openssl_error());
  }
}

TlsManager::TlsManager(TlsSettings settings) : settings_(std::move(settings)) {}

SslCtxPtr TlsManager::build_one(bool server, bool s2s) const {
  SslCtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()), SSL_CTX_free);
  if (!ctx) {
    throw TlsError("cannot create a TLS context: " + openssl_error());
  }
  // DESIGN.md §6: TLS 1.2+ only.
  SSL_CTX_set_min_proto_version(ctx.get(), settings_.tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Idle sessions give their TLS buffers back (a large share of per-session memory otherwise).
  SSL_CTX_set_mode(ctx.get(),
                   SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_cipher_list(ctx.get(), "HIGH:!aNULL:!eNULL:!MD5:!RC4:!3DES:!SHA1:!kRSA");
  if (server) {
    SSL_CTX_set_alpn_select_cb(ctx.get(), alpn_select, s2s ? ctx.get() : nullptr);
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_SERVER);
  }
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_path_.c_str()) != 1) {
    throw TlsError("cannot load the certificate " + cert_path_ + ": " + openssl_error());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_path_.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw TlsError("cannot load the private key " + key_path_ + ": " + openssl_error());
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    throw TlsError("the private key " + key_path_ + " does not match the certificate " + cert_path_);
  }
  if (s2s) {
    if (settings_.system_trust && SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
      throw TlsError("cannot load the system's trusted certificates: " + openssl_error());
    }
    if (!settings_.ca_file.empty() &&
        SSL_CTX_load_verify_locations(ctx.get(), settings_.ca_file.c_str(), nullptr) != 1) {
      throw TlsError("cannot load the CA file " + settings_.ca_file + " (s2s.ca_file): " + openssl_error());
    }
    // The handshake goes on whatever the peer's certificate: its verification result is read afterwards
    // (verify_peer), because an unverified peer may still authenticate with dialback (XEP-0220).
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
  }
  return ctx;
}

TlsManager::Contexts TlsManager::build() const {
  return {build_one(true, false), build_one(true, true), build_one(false, true)};
}

void TlsManager::load() {
  if (settings_.certificate.empty() != settings_.key.empty()) {
    throw TlsError("tls.certificate and tls.key must be set together");
  }
  if (settings_.certificate.empty()) {
    fs::path dir(settings_.data_dir);
    cert_path_ = (dir / "selfsigned.crt").string();
    key_path_ = (dir / "selfsigned.key").string();
    self_signed_ = true;
    if (!fs::exists(cert_path_) || !fs::exists(key_path_)) {
      make_self_signed(settings_.hosts, cert_path_, key_path_);
    }
  } else {
    cert_path_ = settings_.certificate;
    key_path_ = settings_.key;
    self_signed_ = false;
  }
  auto ctx = build();
  std::lock_guard lock(mutex_);
  ctx_ = std::move(ctx);
}

std::string TlsManager::reload() {
  try {
    auto ctx = build();
    std::lock_guard lock(mutex_);
    ctx_ = std::move(ctx);
    return {};
  } catch (const std::exception& e) {
    return e.what();
  }
}

SslCtxPtr TlsManager::context() const {
  std::lock_guard lock(mutex_);
  return ctx_.c2s;
}

SslCtxPtr TlsManager::s2s_server_context() const {
  std::lock_guard lock(mutex_);
  return ctx_.s2s_server;
}

SslCtxPtr TlsManager::s2s_client_context() const {
  std::lock_guard lock(mutex_);
  return ctx_.s2s_client;
}

namespace {

// RFC 6125 §6.4: DNS names compare case-insensitively; a wildcard matches exactly one whole left-most label.
bool dns_id_matches(std::string_view pattern, std::string_view domain) {
  auto lower = [](std::string_view v) {
    std::string out(v);
    for (auto& c : out) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (!out.empty() && out.back() == '.') {
      out.pop_back();
    }
    return out;
  };
  const std::string p = lower(pattern);
  const std::string d = lower(domain);
  if (p.rfind("*.", 0) == 0) {
    const auto dot = d.find('.');
    return dot != std::string::npos && dot > 0 && d.substr(dot + 1) == p.substr(2);
  }
  return p == d;
}

std::string asn1_string(const ASN1_STRING* s) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<std::size_t>(ASN1_STRING_length(s)));
}

} // namespace

PeerCertificate verify_peer(SSL* ssl, std::string_view domain) {
  PeerCertificate out;
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) {
    out.error = "no certificate";
    return out;
  }
  out.present = true;
  const long result = SSL_get_verify_result(ssl);
  out.trusted = result == X509_V_OK;
  if (!out.trusted) {
    out.error = X509_verify_cert_error_string(result);
  }
  out.name_ok = certificate_names(cert, domain);
  if (!out.name_ok && out.error.empty()) {
    out.error = "the certificate does not name " + std::string(domain);
  }
  return out;
}

bool certificate_names(X509* cert, std::string_view domain) {
  struct {
    bool name_ok = false;
  } out;
  // Identifiers in the subjectAltName (RFC 6125 §6.4: the CN is consulted only when there are none of them).
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  bool any_san = false;
  if (names != nullptr) {
    static const std::string kSrvOid = "1.3.6.1.5.5.7.8.7";  // id-on-dnsSRV (RFC 4985)
    static const std::string kXmppOid = "1.3.6.1.5.5.7.8.5"; // id-on-xmppAddr (RFC 6120 §13.7.1.4)
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && !out.name_ok; ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
      if (n->type == GEN_DNS) {
        any_san = true;
        out.name_ok = dns_id_matches(asn1_string(n->d.dNSName), domain);
      } else if (n->type == GEN_OTHERNAME) {
        char oid[64];
        OBJ_obj2txt(oid, sizeof oid, n->d.otherName->type_id, 1);
        const ASN1_TYPE* v = n->d.otherName->value;
        if (kSrvOid == oid && v->type == V_ASN1_IA5STRING) {
          any_san = true;
          // RFC 6125 §6.5.1 / RFC 6120 §13.7.1.2.1: "_xmpp-server.example.net" (or _xmpps-server, XEP-0368).
          const std::string id = asn1_string(v->value.ia5string);
          for (std::string_view service : {"_xmpp-server.", "_xmpps-server."}) {
            if (id.size() > service.size() && std::string_view(id).substr(0, service.size()) == service &&
                dns_id_matches(std::string_view(id).substr(service.size()), domain)) {
              out.name_ok = true;
            }
          }
        } else if (kXmppOid == oid && v->type == V_ASN1_UTF8STRING) {
          any_san = true;
          out.name_ok = dns_id_matches(asn1_string(v->value.utf8string), domain);
        }
      }
    }
    GENERAL_NAMES_free(names);
  }
  if (!any_san && !out.name_ok) {
    char cn[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) {
      out.name_ok = dns_id_matches(cn, domain);
    }
  }
  return out.name_ok;
}

} // namespace cg::net
