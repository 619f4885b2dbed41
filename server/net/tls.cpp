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

// XEP-0368: clients on the direct TLS port may offer ALPN "xmpp-client"; accept it, and accept clients that send
// no ALPN at all.
int alpn_select(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void*) {
  static const unsigned char kXmppClient[] = "\x0bxmpp-client";
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kXmppClient, sizeof kXmppClient - 1, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
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

SslCtxPtr TlsManager::build() const {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
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
  SSL_CTX_set_alpn_select_cb(ctx.get(), alpn_select, nullptr);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_SERVER);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_path_.c_str()) != 1) {
    throw TlsError("cannot load the certificate " + cert_path_ + ": " + openssl_error());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_path_.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw TlsError("cannot load the private key " + key_path_ + ": " + openssl_error());
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    throw TlsError("the private key " + key_path_ + " does not match the certificate " + cert_path_);
  }
  return ctx;
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
  return ctx_;
}

} // namespace cg::net
