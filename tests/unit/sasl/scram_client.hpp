// An independent SCRAM client for the tests: computes everything with OpenSSL directly (never through the
// library's internals), so that a round trip checks the server against RFC 5802's formulas, not against itself.
#pragma once

#include "server/sasl/sasl.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <catch2/catch.hpp>

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sasl_test {

inline const EVP_MD* md(cg::sasl::Hash h) {
  switch (h) {
  case cg::sasl::Hash::Sha1:
    return EVP_sha1();
  case cg::sasl::Hash::Sha256:
    return EVP_sha256();
  case cg::sasl::Hash::Sha512:
    return EVP_sha512();
  }
  return nullptr;
}

inline std::string ossl_hmac(cg::sasl::Hash h, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md(h), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

inline std::string ossl_digest(cg::sasl::Hash h, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md(h), nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

inline std::string ossl_pbkdf2(cg::sasl::Hash h, std::string_view password, std::string_view salt, int iterations) {
  std::string out(static_cast<std::size_t>(EVP_MD_get_size(md(h))), '\0');
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()), iterations,
                    md(h), static_cast<int>(out.size()), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

// Base64 through OpenSSL's EVP_EncodeBlock / EVP_DecodeBlock (independent of the library's codec).
inline std::string ossl_b64(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

inline std::string ossl_unb64(std::string_view text) {
  std::string out(text.size() / 4 * 3 + 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) {
    throw std::runtime_error("bad base64 in test");
  }
  std::size_t len = static_cast<std::size_t>(n);
  if (!text.empty() && text.back() == '=') {
    --len;
  }
  if (text.size() >= 2 && text[text.size() - 2] == '=') {
    --len;
  }
  out.resize(len);
  return out;
}

inline std::string xor_bytes(std::string a, std::string_view b) {
  for (std::size_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<char>(a[i] ^ b[i]);
  }
  return a;
}

// "k=v,k=v" → map (values may contain '=').
inline std::map<char, std::string> attributes(std::string_view msg) {
  std::map<char, std::string> out;
  std::size_t start = 0;
  while (start <= msg.size()) {
    std::size_t comma = msg.find(',', start);
    if (comma == std::string_view::npos) {
      comma = msg.size();
    }
    const std::string_view a = msg.substr(start, comma - start);
    if (a.size() >= 2 && a[1] == '=') {
      out[a[0]] = std::string(a.substr(2));
    }
    start = comma + 1;
  }
  return out;
}

// RFC 5802 §3 client side.
struct Client {
  cg::sasl::Hash hash = cg::sasl::Hash::Sha256;
  std::string username = "user"; // already escaped
  std::string password = "pencil";
  std::string gs2_header = "n,,";
  std::string cb_data;
  std::string cnonce = "clientnonce0123456789";

  std::string bare;
  std::string expected_server_final;

  std::string first() {
    bare = "n=" + username + ",r=" + cnonce;
    return gs2_header + bare;
  }

  // Builds the client-final message for `server_first` (with optional extensions ",x=.." before the proof) and
  // remembers the server-final message the server must answer with.
  std::string final_message(std::string_view server_first, std::string extensions = "") {
    auto a = attributes(server_first);
    REQUIRE(a.count('r') == 1);
    REQUIRE(a.count('s') == 1);
    REQUIRE(a.count('i') == 1);
    REQUIRE(a['r'].substr(0, cnonce.size()) == cnonce);
    const std::string salt = ossl_unb64(a['s']);
    const int iterations = std::stoi(a['i']);
    const std::string salted = ossl_pbkdf2(hash, password, salt, iterations);
    const std::string client_key = ossl_hmac(hash, salted, "Client Key");
    const std::string stored_key = ossl_digest(hash, client_key);
    const std::string server_key = ossl_hmac(hash, salted, "Server Key");
    std::string without_proof = "c=" + ossl_b64(gs2_header + cb_data) + ",r=" + a['r'] + extensions;
    const std::string auth_message = bare + "," + std::string(server_first) + "," + without_proof;
    const std::string client_signature = ossl_hmac(hash, stored_key, auth_message);
    const std::string proof = xor_bytes(client_key, client_signature);
    expected_server_final = "v=" + ossl_b64(ossl_hmac(hash, server_key, auth_message));
    return without_proof + ",p=" + ossl_b64(proof);
  }
};

} // namespace sasl_test
