// SASL for XMPP (RFC 6120 §6): server-side SCRAM-SHA-1/-256/-512 and their -PLUS variants (RFC 5802, RFC 7677,
// channel bindings tls-exporter RFC 9266 and tls-server-end-point RFC 5929), PLAIN (RFC 4616), and the stored
// credentials (salt, iterations, StoredKey, ServerKey: passwords are never stored).
//
// This library knows nothing of sockets or XML: the c2s session feeds it the decoded SASL messages and sends what
// it returns.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cg::sasl {

enum class Hash { Sha1, Sha256, Sha512 };
std::string_view hash_name(Hash h); // "SHA-1", "SHA-256", "SHA-512"

// The SCRAM data for one hash function. All byte strings are raw bytes (not base64).
struct ScramCredential {
  Hash hash = Hash::Sha256;
  std::string salt;
  std::uint32_t iterations = 4096;
  std::string stored_key;
  std::string server_key;
  bool operator==(const ScramCredential&) const = default;
};

// What the server stores for an account: one ScramCredential per hash function.
struct Credentials {
  std::vector<ScramCredential> scram;
  const ScramCredential* find(Hash h) const;
  bool operator==(const Credentials&) const = default;
};

// SASLprep (RFC 4013) of a password or username; nullopt if prohibited characters make it invalid.
std::optional<std::string> saslprep(std::string_view s);

// Derives the SCRAM data for `password` (SASLprep applied) with the given salt and iteration count (RFC 5802 §3).
std::optional<ScramCredential> derive(Hash h, std::string_view password, std::string_view salt,
                                      std::uint32_t iterations);
// Makes credentials for all three hashes with fresh random salts. nullopt if the password fails SASLprep or is empty.
std::optional<Credentials> make_credentials(std::string_view password, std::uint32_t iterations = 4096);
// Checks a plaintext password (PLAIN) against stored credentials: derives with the stored salt and iterations
// (the strongest hash present) and compares StoredKey in constant time.
bool verify_password(const Credentials& creds, std::string_view password);

// A text form for storage (one line per hash, base64 fields); parse returns nullopt on anything malformed.
std::string serialize(const Credentials& creds);
std::optional<Credentials> parse_credentials(std::string_view text);

// A channel binding the TLS layer can provide for this connection.
struct ChannelBinding {
  std::string type; // "tls-exporter" or "tls-server-end-point"
  std::string data; // raw bytes
};

// What a mechanism needs to know about the connection.
struct MechanismContext {
  // Channel bindings available on this connection (empty without TLS).
  std::vector<ChannelBinding> channel_bindings;
  // True when the server advertised any -PLUS mechanism on this stream (a client sending gs2 flag "y" is then
  // refused: RFC 5802 §6 downgrade protection).
  bool plus_advertised = false;
  // Server nonce source; empty = random (tests inject fixed nonces to replay the RFC vectors).
  std::function<std::string()> nonce;
  // Secret used to make a deterministic fake salt for unknown users, so that SCRAM does not reveal which
  // accounts exist.
  std::string fake_salt_secret;
};

struct Step {
  enum class Status {
    Challenge,       // send <challenge> with `data`
    NeedCredentials, // look up `username`'s credentials and call ServerMechanism::credentials()
    Success,         // send <success> with `data` (SCRAM's server-final message; empty for PLAIN)
    Failure,         // send <failure> with `condition` and `text`
  };
  Status status = Status::Failure;
  std::string data;      // raw bytes (the session base64-encodes them)
  std::string username;  // NeedCredentials / Success: the authentication identity after SASLprep (and SCRAM
                         // unescaping); the session maps it to a JID localpart with nodeprep
  std::string authzid;   // the authorization identity the client asked for ("" if none)
  std::string condition; // Failure: RFC 6120 §6.5 condition: not-authorized, malformed-request, invalid-authzid,
                         // invalid-mechanism, encryption-required, ...
  std::string text;      // Failure: a human-readable reason (never reveals whether the account exists)
};

class ServerMechanism {
public:
  virtual ~ServerMechanism() = default;
  virtual std::string_view name() const = 0;
  // The client's initial response (from <auth>) or a later <response>, decoded from base64.
  virtual Step step(std::string_view client_message) = 0;
  // After Status::NeedCredentials: the stored credentials, or nullopt when the account does not exist.
  virtual Step credentials(const std::optional<Credentials>& creds) = 0;
};

// The mechanism names this library implements, strongest first.
const std::vector<std::string>& all_mechanisms();
bool is_plus(std::string_view mechanism);
// nullptr for an unknown name.
std::unique_ptr<ServerMechanism> make_mechanism(std::string_view name, MechanismContext ctx);

// Base64 (RFC 4648) used by SASL in XMPP; decode returns nullopt on invalid input.
std::string base64_encode(std::string_view raw);
std::optional<std::string> base64_decode(std::string_view text);

} // namespace cg::sasl
