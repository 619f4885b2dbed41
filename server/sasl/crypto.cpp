// Hash, HMAC, PBKDF2, randomness and constant-time comparison for SCRAM, on OpenSSL 3's libcrypto.
#include "server/sasl/internal.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <climits>
#include <stdexcept>

namespace cg::sasl::detail {
namespace {

const EVP_MD* md(Hash h) {
  switch (h) {
  case Hash::Sha1:
    return EVP_sha1();
  case Hash::Sha256:
    return EVP_sha256();
  case Hash::Sha512:
    return EVP_sha512();
  }
  return EVP_sha256();
}

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

} // namespace

std::size_t digest_size(Hash h) {
  switch (h) {
  case Hash::Sha1:
    return 20;
  case Hash::Sha256:
    return 32;
  case Hash::Sha512:
    return 64;
  }
  return 32;
}

std::string digest(Hash h, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, md(h), nullptr) != 1) {
    throw std::runtime_error("sasl: EVP_Digest failed");
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string hmac(Hash h, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (key.size() > INT_MAX ||
      HMAC(md(h), key.data(), static_cast<int>(key.size()), bytes(data), data.size(), out, &len) == nullptr) {
    throw std::runtime_error("sasl: HMAC failed");
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string pbkdf2(Hash h, std::string_view password, std::string_view salt, std::uint32_t iterations) {
  if (iterations == 0 || iterations > INT_MAX || password.size() > INT_MAX || salt.size() > INT_MAX) {
    return {};
  }
  std::string out(digest_size(h), '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), bytes(salt), static_cast<int>(salt.size()),
                        static_cast<int>(iterations), md(h), static_cast<int>(out.size()),
                        reinterpret_cast<unsigned char*>(out.data())) != 1) {
    return {};
  }
  return out;
}

std::optional<std::string> random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (n > INT_MAX || RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return std::nullopt;
  }
  return out;
}

bool equal_ct(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void wipe(std::string& s) {
  if (!s.empty()) {
    OPENSSL_cleanse(s.data(), s.size());
  }
  s.clear();
}

Step failure(std::string condition, std::string text) {
  Step s;
  s.status = Step::Status::Failure;
  s.condition = std::move(condition);
  s.text = std::move(text);
  return s;
}

} // namespace cg::sasl::detail
