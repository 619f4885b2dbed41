// Internal helpers of server/sasl (not part of the public interface; only server/sasl/*.cpp include this).
#pragma once

#include "server/sasl/sasl.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace cg::sasl::detail {

// Largest client message any mechanism accepts (bytes, after base64 decoding).
inline constexpr std::size_t max_client_message = 4096;

// Digest output length of `h` in bytes (20, 32, 64).
std::size_t digest_size(Hash h);
// H(data).
std::string digest(Hash h, std::string_view data);
// HMAC(key, data) with hash `h`.
std::string hmac(Hash h, std::string_view key, std::string_view data);
// Hi() of RFC 5802 §2.2: PBKDF2-HMAC with an output of one digest length. Empty on failure (iterations 0 or
// above INT_MAX).
std::string pbkdf2(Hash h, std::string_view password, std::string_view salt, std::uint32_t iterations);
// `n` bytes from OpenSSL's CSPRNG; nullopt if the generator fails.
std::optional<std::string> random_bytes(std::size_t n);
// Constant-time equality (lengths are compared first; lengths are not secret here).
bool equal_ct(std::string_view a, std::string_view b);
// Overwrites the bytes of `s` (OPENSSL_cleanse) and clears it.
void wipe(std::string& s);

// True if `s` is well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool valid_utf8(std::string_view s);

// A Failure step.
Step failure(std::string condition, std::string text);

std::unique_ptr<ServerMechanism> make_scram(Hash h, bool plus, MechanismContext ctx);
std::unique_ptr<ServerMechanism> make_plain(MechanismContext ctx);

} // namespace cg::sasl::detail
