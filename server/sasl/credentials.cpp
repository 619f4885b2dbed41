// Stored SCRAM credentials (RFC 5802 §3): derivation, creation, PLAIN verification and the text form.
#include "server/sasl/internal.hpp"

#include <algorithm>
#include <charconv>
#include <climits>
#include <stdexcept>

namespace cg::sasl {

using detail::digest_size;

std::string_view hash_name(Hash h) {
  switch (h) {
  case Hash::Sha1:
    return "SHA-1";
  case Hash::Sha256:
    return "SHA-256";
  case Hash::Sha512:
    return "SHA-512";
  }
  return "SHA-256";
}

const ScramCredential* Credentials::find(Hash h) const {
  for (const auto& c : scram) {
    if (c.hash == h) {
      return &c;
    }
  }
  return nullptr;
}

namespace {

constexpr std::uint32_t min_iterations = 4096;
constexpr std::size_t salt_size = 16;

// Derives from an already SASLprep'd password.
std::optional<ScramCredential> derive_prepared(Hash h, std::string_view prepared, std::string_view salt,
                                               std::uint32_t iterations) {
  if (prepared.empty() || salt.empty()) {
    return std::nullopt;
  }
  std::string salted = detail::pbkdf2(h, prepared, salt, iterations);
  if (salted.empty()) {
    return std::nullopt;
  }
  std::string client_key = detail::hmac(h, salted, "Client Key");
  ScramCredential c;
  c.hash = h;
  c.salt = std::string(salt);
  c.iterations = iterations;
  c.stored_key = detail::digest(h, client_key);
  c.server_key = detail::hmac(h, salted, "Server Key");
  detail::wipe(salted);
  detail::wipe(client_key);
  return c;
}

// Lower-case names used in the text form.
std::string_view text_name(Hash h) {
  switch (h) {
  case Hash::Sha1:
    return "scram-sha-1";
  case Hash::Sha256:
    return "scram-sha-256";
  case Hash::Sha512:
    return "scram-sha-512";
  }
  return "scram-sha-256";
}

std::optional<Hash> hash_from_text(std::string_view s) {
  for (Hash h : {Hash::Sha1, Hash::Sha256, Hash::Sha512}) {
    if (s == text_name(h)) {
      return h;
    }
  }
  return std::nullopt;
}

std::optional<ScramCredential> parse_line(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (true) {
    const std::size_t sp = line.find(' ', start);
    fields.push_back(line.substr(start, sp == std::string_view::npos ? std::string_view::npos : sp - start));
    if (sp == std::string_view::npos) {
      break;
    }
    start = sp + 1;
  }
  if (fields.size() != 5) {
    return std::nullopt;
  }
  for (auto f : fields) {
    if (f.empty()) {
      return std::nullopt;
    }
  }
  const auto h = hash_from_text(fields[0]);
  if (!h) {
    return std::nullopt;
  }
  // Iterations: decimal digits only, canonical (no sign, no leading zero), 1 .. INT_MAX (PBKDF2's limit).
  const std::string_view it = fields[1];
  if (it.size() > 10 || it[0] == '0' ||
      !std::all_of(it.begin(), it.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::uint64_t iterations = 0;
  if (std::from_chars(it.data(), it.data() + it.size(), iterations).ec != std::errc{} || iterations < 1 ||
      iterations > INT_MAX) {
    return std::nullopt;
  }
  auto salt = base64_decode(fields[2]);
  auto stored = base64_decode(fields[3]);
  auto server = base64_decode(fields[4]);
  if (!salt || salt->empty() || !stored || !server || stored->size() != digest_size(*h) ||
      server->size() != digest_size(*h)) {
    return std::nullopt;
  }
  ScramCredential c;
  c.hash = *h;
  c.iterations = static_cast<std::uint32_t>(iterations);
  c.salt = std::move(*salt);
  c.stored_key = std::move(*stored);
  c.server_key = std::move(*server);
  return c;
}

} // namespace

std::optional<ScramCredential> derive(Hash h, std::string_view password, std::string_view salt,
                                      std::uint32_t iterations) {
  auto prepared = saslprep(password);
  if (!prepared) {
    return std::nullopt;
  }
  auto c = derive_prepared(h, *prepared, salt, iterations);
  detail::wipe(*prepared);
  return c;
}

std::optional<Credentials> make_credentials(std::string_view password, std::uint32_t iterations) {
  iterations = std::clamp<std::uint32_t>(iterations, min_iterations, INT_MAX);
  auto prepared = saslprep(password);
  if (!prepared || prepared->empty()) {
    return std::nullopt;
  }
  Credentials creds;
  for (Hash h : {Hash::Sha512, Hash::Sha256, Hash::Sha1}) {
    auto salt = detail::random_bytes(salt_size);
    if (!salt) {
      detail::wipe(*prepared);
      throw std::runtime_error("sasl: the random number generator failed");
    }
    auto c = derive_prepared(h, *prepared, *salt, iterations);
    if (!c) {
      detail::wipe(*prepared);
      return std::nullopt;
    }
    creds.scram.push_back(std::move(*c));
  }
  detail::wipe(*prepared);
  return creds;
}

bool verify_password(const Credentials& creds, std::string_view password) {
  const ScramCredential* c = nullptr;
  for (Hash h : {Hash::Sha512, Hash::Sha256, Hash::Sha1}) {
    if ((c = creds.find(h)) != nullptr) {
      break;
    }
  }
  if (c == nullptr || c->stored_key.size() != digest_size(c->hash)) {
    return false;
  }
  const auto derived = derive(c->hash, password, c->salt, c->iterations);
  return derived && detail::equal_ct(derived->stored_key, c->stored_key);
}

std::string serialize(const Credentials& creds) {
  std::string out;
  for (const auto& c : creds.scram) {
    out += text_name(c.hash);
    out += ' ';
    out += std::to_string(c.iterations);
    out += ' ';
    out += base64_encode(c.salt);
    out += ' ';
    out += base64_encode(c.stored_key);
    out += ' ';
    out += base64_encode(c.server_key);
    out += '\n';
  }
  return out;
}

std::optional<Credentials> parse_credentials(std::string_view text) {
  // One line per hash, separated by '\n' (serialize() ends every line with it; a missing final newline is
  // tolerated); at least one line; no empty lines; each hash at most once.
  if (!text.empty() && text.back() == '\n') {
    text.remove_suffix(1);
  }
  if (text.empty()) {
    return std::nullopt;
  }
  Credentials creds;
  std::size_t start = 0;
  while (true) {
    const std::size_t nl = text.find('\n', start);
    auto c = parse_line(text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
    if (!c || creds.find(c->hash) != nullptr) {
      return std::nullopt;
    }
    creds.scram.push_back(std::move(*c));
    if (nl == std::string_view::npos) {
      break;
    }
    start = nl + 1;
  }
  return creds;
}

} // namespace cg::sasl
