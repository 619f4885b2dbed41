// SCRAM-SHA-1/-256/-512 and their -PLUS variants, server side (RFC 5802, RFC 7677; channel bindings RFC 5929,
// RFC 9266).
//
//   client-first   gs2-header client-first-message-bare     step()        -> NeedCredentials
//                                                            credentials() -> Challenge: server-first
//   client-final   c=..,r=..[,ext],p=..                      step()        -> Success "v=..." | Failure
//
// Unknown users (credentials() given nullopt, or credentials without this hash) get a challenge with a fake salt
// that is stable per username (HMAC of a server secret) and the usual iteration count, and fail only at the final
// step with the same condition and text as a wrong password: the exchange does not reveal which accounts exist.
#include "server/sasl/internal.hpp"

#include <climits>
#include <string>
#include <vector>

namespace cg::sasl::detail {
namespace {

constexpr std::size_t server_nonce_bytes = 18;
constexpr std::size_t fake_salt_bytes = 16;
constexpr std::uint32_t fake_iterations = 4096;
constexpr std::string_view bad_credentials = "invalid username or password";

// printable = %x21-2B / %x2D-7E (RFC 5802 §7): visible ASCII except ','.
bool printable(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x21 || c > 0x7E || c == ',') {
      return false;
    }
  }
  return !s.empty();
}

// cb-name = 1*(ALPHA / DIGIT / "." / "-")
bool valid_cb_name(std::string_view s) {
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) {
      return false;
    }
  }
  return !s.empty();
}

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// attr-val = ALPHA "=" value; value = 1*value-char (any UTF-8 but NUL and ','; those are checked by the caller).
bool valid_extension(std::string_view s) {
  return s.size() >= 3 && is_alpha(s[0]) && s[1] == '=';
}

// saslname = 1*(value-safe-char / "=2C" / "=3D"); any other '=' is an error (RFC 5802 §5.1: the server MUST fail).
// ABNF literals are case-insensitive (RFC 5234 §2.3), so "=2c" and "=3d" are accepted too.
std::optional<std::string> unescape_saslname(std::string_view s) {
  if (s.empty()) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '=') {
      out += s[i];
      continue;
    }
    if (s.size() - i < 3) {
      return std::nullopt;
    }
    const char a = s[i + 1];
    const char b = s[i + 2];
    if (a == '2' && (b == 'C' || b == 'c')) {
      out += ',';
    } else if (a == '3' && (b == 'D' || b == 'd')) {
      out += '=';
    } else {
      return std::nullopt;
    }
    i += 2;
  }
  return out;
}

std::vector<std::string_view> split_commas(std::string_view s) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = s.find(',', start);
    if (comma == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
}

bool has_prefix(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// The fake-salt secret when the context gives none: random per process, so still not computable from outside.
const std::string& process_secret() {
  static const std::string secret = [] {
    auto r = random_bytes(32);
    return r ? *r : std::string("chatgroup fake salt fallback");
  }();
  return secret;
}

class Scram final : public ServerMechanism {
public:
  Scram(Hash h, bool plus, MechanismContext ctx) : hash_(h), plus_(plus), ctx_(std::move(ctx)) {
    name_ = "SCRAM-";
    name_ += hash_name(h);
    if (plus_) {
      name_ += "-PLUS";
    }
  }
  ~Scram() override { clear_secrets(); }
  Scram(const Scram&) = delete;
  Scram& operator=(const Scram&) = delete;

  std::string_view name() const override { return name_; }

  Step step(std::string_view message) override {
    switch (state_) {
    case State::Start:
      return client_first(message);
    case State::WaitFinal:
      return client_final(message);
    case State::WaitCredentials:
      return fail("malformed-request", "unexpected message: the server is still looking up the credentials");
    case State::Done:
      break;
    }
    return fail("malformed-request", "the authentication exchange is already finished");
  }

  Step credentials(const std::optional<Credentials>& creds) override {
    if (state_ != State::WaitCredentials) {
      return fail("temporary-auth-failure", "internal error: credentials supplied out of sequence");
    }
    const ScramCredential* c = creds ? creds->find(hash_) : nullptr;
    std::string salt;
    std::uint32_t iterations = 0;
    if (c != nullptr && !c->salt.empty() && c->iterations >= 1 && c->stored_key.size() == digest_size(hash_) &&
        c->server_key.size() == digest_size(hash_)) {
      salt = c->salt;
      iterations = c->iterations;
      stored_key_ = c->stored_key;
      server_key_ = c->server_key;
    } else {
      // No such account (or no SCRAM data for this hash): continue with a plausible, stable fake salt and keys
      // nobody knows, and fail at the final step exactly like a wrong password.
      fake_ = true;
      const std::string& secret = ctx_.fake_salt_secret.empty() ? process_secret() : ctx_.fake_salt_secret;
      // Keyed by hash, not by mechanism name: a real account shows the same salt with and without -PLUS.
      std::string label(hash_name(hash_));
      label += '\0';
      label += username_;
      salt = hmac(Hash::Sha256, secret, label).substr(0, fake_salt_bytes);
      iterations = fake_iterations;
      stored_key_ = random_bytes(digest_size(hash_)).value_or(std::string(digest_size(hash_), '\0'));
      server_key_ = random_bytes(digest_size(hash_)).value_or(std::string(digest_size(hash_), '\0'));
    }

    std::string server_nonce;
    if (ctx_.nonce) {
      server_nonce = ctx_.nonce();
    } else if (auto r = random_bytes(server_nonce_bytes)) {
      server_nonce = base64_encode(*r);
    }
    if (!printable(server_nonce)) {
      return fail("temporary-auth-failure", "internal error: no usable server nonce");
    }
    nonce_ = client_nonce_ + server_nonce;
    server_first_ = "r=" + nonce_ + ",s=" + base64_encode(salt) + ",i=" + std::to_string(iterations);
    state_ = State::WaitFinal;
    Step s;
    s.status = Step::Status::Challenge;
    s.data = server_first_;
    return s;
  }

private:
  enum class State { Start, WaitCredentials, WaitFinal, Done };

  Step fail(std::string condition, std::string text) {
    state_ = State::Done;
    clear_secrets();
    return failure(std::move(condition), std::move(text));
  }

  void clear_secrets() {
    wipe(stored_key_);
    wipe(server_key_);
  }

  // Common checks of both client messages: bounded size, no NUL, valid UTF-8.
  std::optional<Step> check_message(std::string_view message) {
    if (message.size() > max_client_message) {
      return fail("malformed-request", "SCRAM message too long");
    }
    if (message.find('\0') != std::string_view::npos || !valid_utf8(message)) {
      return fail("malformed-request", "SCRAM message is not valid UTF-8 text");
    }
    return std::nullopt;
  }

  Step client_first(std::string_view message) {
    if (message.empty() && !sent_empty_challenge_) {
      // <auth/> without an initial response: ask for it with an empty challenge (RFC 6120 §6.4.2).
      sent_empty_challenge_ = true;
      Step s;
      s.status = Step::Status::Challenge;
      return s;
    }
    if (auto bad = check_message(message)) {
      return *bad;
    }

    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    const std::size_t c1 = message.find(',');
    const std::size_t c2 = c1 == std::string_view::npos ? c1 : message.find(',', c1 + 1);
    if (c2 == std::string_view::npos) {
      return fail("malformed-request", "SCRAM client-first message: missing GS2 header");
    }
    const std::string_view flag = message.substr(0, c1);
    const std::string_view authz = message.substr(c1 + 1, c2 - c1 - 1);
    enum class Cb { None, ClientSupports, Bound } cb = Cb::None;
    std::string_view cb_type;
    if (flag == "n") {
      cb = Cb::None;
    } else if (flag == "y") {
      cb = Cb::ClientSupports;
    } else if (has_prefix(flag, "p=") && valid_cb_name(flag.substr(2))) {
      cb = Cb::Bound;
      cb_type = flag.substr(2);
    } else {
      return fail("malformed-request", "SCRAM client-first message: invalid channel binding flag");
    }
    if (!authz.empty()) {
      auto a = has_prefix(authz, "a=") ? unescape_saslname(authz.substr(2)) : std::nullopt;
      if (!a) {
        return fail("malformed-request", "SCRAM client-first message: invalid authorization identity");
      }
      authzid_ = std::move(*a);
    }

    // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
    const std::string_view bare = message.substr(c2 + 1);
    const auto attrs = split_commas(bare);
    if (!attrs.empty() && has_prefix(attrs[0], "m=")) {
      return fail("malformed-request", "SCRAM mandatory extensions are not supported");
    }
    if (attrs.size() < 2 || !has_prefix(attrs[0], "n=") || !has_prefix(attrs[1], "r=")) {
      return fail("malformed-request", "SCRAM client-first message: expected n=<username>,r=<nonce>");
    }
    auto user = unescape_saslname(attrs[0].substr(2));
    if (!user) {
      return fail("malformed-request", "SCRAM client-first message: invalid username encoding");
    }
    auto prepared = saslprep(*user);
    if (!prepared || prepared->empty()) {
      return fail("malformed-request", "SCRAM client-first message: username fails SASLprep");
    }
    const std::string_view nonce = attrs[1].substr(2);
    if (!printable(nonce)) {
      return fail("malformed-request", "SCRAM client-first message: invalid nonce");
    }
    for (std::size_t i = 2; i < attrs.size(); ++i) {
      if (!valid_extension(attrs[i])) {
        return fail("malformed-request", "SCRAM client-first message: invalid attribute");
      }
    }

    // Channel binding policy (RFC 5802 §6).
    if (plus_) {
      if (cb != Cb::Bound) {
        return fail("not-authorized", name_ + " requires channel binding (GS2 flag p=<type>)");
      }
      const ChannelBinding* found = nullptr;
      for (const auto& b : ctx_.channel_bindings) {
        if (b.type == cb_type && !b.data.empty()) {
          found = &b;
          break;
        }
      }
      if (found == nullptr) {
        return fail("not-authorized",
                    "channel binding type '" + std::string(cb_type) + "' is not available on this connection");
      }
      cb_data_ = found->data;
    } else if (cb == Cb::Bound) {
      return fail("malformed-request", "channel binding requested with " + name_ + "; use " + name_ + "-PLUS");
    } else if (cb == Cb::ClientSupports && ctx_.plus_advertised) {
      return fail("not-authorized", "client claims the server lacks channel binding, but it was offered: "
                                    "possible downgrade attack");
    }

    gs2_header_ = std::string(message.substr(0, c2 + 1));
    client_first_bare_ = std::string(bare);
    client_nonce_ = std::string(nonce);
    username_ = std::move(*prepared);
    state_ = State::WaitCredentials;
    Step s;
    s.status = Step::Status::NeedCredentials;
    s.username = username_;
    s.authzid = authzid_;
    return s;
  }

  Step client_final(std::string_view message) {
    if (auto bad = check_message(message)) {
      return *bad;
    }
    // client-final-message = channel-binding "," nonce ["," extensions] "," proof
    const auto attrs = split_commas(message);
    if (attrs.size() < 3 || !has_prefix(attrs[0], "c=") || !has_prefix(attrs[1], "r=") ||
        !has_prefix(attrs.back(), "p=")) {
      return fail("malformed-request", "SCRAM client-final message: expected c=..,r=..,p=..");
    }
    for (std::size_t i = 2; i + 1 < attrs.size(); ++i) {
      if (!valid_extension(attrs[i])) {
        return fail("malformed-request", "SCRAM client-final message: invalid attribute");
      }
    }
    const auto cbind_input = base64_decode(attrs[0].substr(2));
    if (!cbind_input) {
      return fail("malformed-request", "SCRAM client-final message: invalid base64 in channel binding");
    }
    const auto proof = base64_decode(attrs.back().substr(2));
    if (!proof || proof->size() != digest_size(hash_)) {
      return fail("malformed-request", "SCRAM client-final message: invalid client proof");
    }
    if (attrs[1].substr(2) != nonce_) {
      return fail("malformed-request", "SCRAM client-final message: nonce mismatch");
    }
    // c= must carry exactly the GS2 header of the client-first message, followed by the channel binding data for
    // p=<type> (RFC 5802 §7, cbind-input).
    if (!equal_ct(*cbind_input, gs2_header_ + cb_data_)) {
      return fail("not-authorized", "channel binding mismatch");
    }

    const std::string_view without_proof = message.substr(0, message.size() - attrs.back().size() - 1);
    std::string auth_message = client_first_bare_;
    auth_message += ',';
    auth_message += server_first_;
    auth_message += ',';
    auth_message += without_proof;

    // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the proof is valid when H(ClientKey) == StoredKey.
    std::string client_key = hmac(hash_, stored_key_, auth_message);
    for (std::size_t i = 0; i < client_key.size(); ++i) {
      client_key[i] = static_cast<char>(client_key[i] ^ (*proof)[i]);
    }
    const bool match = equal_ct(digest(hash_, client_key), stored_key_);
    wipe(client_key);
    if (!match || fake_) {
      return fail("not-authorized", std::string(bad_credentials));
    }

    Step s;
    s.status = Step::Status::Success;
    s.data = "v=" + base64_encode(hmac(hash_, server_key_, auth_message));
    s.username = username_;
    s.authzid = authzid_;
    state_ = State::Done;
    clear_secrets();
    return s;
  }

  Hash hash_;
  bool plus_;
  MechanismContext ctx_;
  std::string name_;
  State state_ = State::Start;
  bool sent_empty_challenge_ = false;
  bool fake_ = false;
  std::string gs2_header_;        // as sent, including its final ','
  std::string cb_data_;           // channel binding data for p=<type>, else empty
  std::string client_first_bare_; // for AuthMessage
  std::string client_nonce_;
  std::string nonce_; // client nonce + server nonce
  std::string server_first_;
  std::string username_; // SASLprep'd
  std::string authzid_;  // unescaped, as sent
  std::string stored_key_;
  std::string server_key_;
};

} // namespace

std::unique_ptr<ServerMechanism> make_scram(Hash h, bool plus, MechanismContext ctx) {
  return std::make_unique<Scram>(h, plus, std::move(ctx));
}

} // namespace cg::sasl::detail
