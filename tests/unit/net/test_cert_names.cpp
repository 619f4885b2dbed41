// RFC 6125 name checks of peer certificates (server-to-server): DNS-IDs with wildcards only as the whole left-most
// label, SRV-IDs for the xmpp-server services, the XmppAddr of RFC 6120 §13.7.1.4, and the CN only without SANs.
#include "server/net/tls.hpp"

#include <catch2/catch.hpp>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>

namespace {

using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;

// A certificate (never signed: only its names matter here) with subject CN `cn` and subjectAltName `san` in
// OpenSSL's config syntax ("" = none).
X509Ptr make_cert(const std::string& cn, const std::string& san) {
  X509Ptr cert(X509_new(), X509_free);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  if (!san.empty()) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, nullptr, cert.get(), nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
    REQUIRE(ext != nullptr);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  return cert;
}

} // namespace

using cg::net::certificate_names;

TEST_CASE("cert names: a DNS-ID matches its domain, case-insensitively, and nothing else", "[tls][rfc6125]") {
  auto c = make_cert("ignored.example", "DNS:Example.COM");
  CHECK(certificate_names(c.get(), "example.com"));
  CHECK_FALSE(certificate_names(c.get(), "www.example.com"));
  CHECK_FALSE(certificate_names(c.get(), "example.org"));
  // With a subjectAltName the CN is not consulted (RFC 6125 §6.4.4).
  CHECK_FALSE(certificate_names(c.get(), "ignored.example"));
}

TEST_CASE("cert names: a wildcard stands for exactly one whole left-most label", "[tls][rfc6125]") {
  auto c = make_cert("x", "DNS:*.example.com");
  CHECK(certificate_names(c.get(), "conference.example.com"));
  CHECK_FALSE(certificate_names(c.get(), "example.com"));
  CHECK_FALSE(certificate_names(c.get(), "a.b.example.com"));
  auto partial = make_cert("x", "DNS:f*.example.com");
  CHECK_FALSE(certificate_names(partial.get(), "foo.example.com"));
}

TEST_CASE("cert names: SRV-IDs for _xmpp-server and _xmpps-server, not for other services", "[tls][rfc6125]") {
  auto c = make_cert("x", "otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_xmpp-server.im.example");
  CHECK(certificate_names(c.get(), "im.example"));
  CHECK_FALSE(certificate_names(c.get(), "other.example"));
  auto direct = make_cert("x", "otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_xmpps-server.im.example");
  CHECK(certificate_names(direct.get(), "im.example"));
  auto client = make_cert("x", "otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_xmpp-client.im.example");
  CHECK_FALSE(certificate_names(client.get(), "im.example"));
}

TEST_CASE("cert names: the XmppAddr identifier (RFC 6120 §13.7.1.4)", "[tls][rfc6125]") {
  auto c = make_cert("x", "otherName:1.3.6.1.5.5.7.8.5;UTF8:im.example");
  CHECK(certificate_names(c.get(), "im.example"));
  CHECK_FALSE(certificate_names(c.get(), "example"));
}

TEST_CASE("cert names: without any subjectAltName the CN is the name", "[tls][rfc6125]") {
  auto c = make_cert("legacy.example", "");
  CHECK(certificate_names(c.get(), "legacy.example"));
  CHECK_FALSE(certificate_names(c.get(), "other.example"));
}
