// PLAIN (RFC 4616): message = [authzid] NUL authcid NUL passwd. The session offers it only inside TLS
// (DESIGN.md §6); this file only checks the syntax and the password.
#include "server/sasl/internal.hpp"

namespace cg::sasl::detail {
namespace {

// RFC 4616 allows 255 octets per field; real clients sometimes send longer passwords, so be lenient up to 1 KiB.
constexpr std::size_t max_field = 1024;

class Plain final : public ServerMechanism {
public:
  Plain() = default;
  ~Plain() override { wipe(password_); }
  Plain(const Plain&) = delete;
  Plain& operator=(const Plain&) = delete;

  std::string_view name() const override { return "PLAIN"; }

  Step step(std::string_view message) override {
    if (state_ != State::Start) {
      return fail("malformed-request", state_ == State::Done ? "the authentication exchange is already finished"
                                                             : "unexpected message: PLAIN has a single message");
    }
    if (message.empty() && !sent_empty_challenge_) {
      // <auth/> without an initial response: ask for it with an empty challenge (RFC 6120 §6.4.2).
      sent_empty_challenge_ = true;
      Step s;
      s.status = Step::Status::Challenge;
      return s;
    }
    if (message.size() > max_client_message) {
      return fail("malformed-request", "PLAIN message too long");
    }
    const std::size_t n1 = message.find('\0');
    const std::size_t n2 = n1 == std::string_view::npos ? n1 : message.find('\0', n1 + 1);
    if (n2 == std::string_view::npos || message.find('\0', n2 + 1) != std::string_view::npos) {
      return fail("malformed-request", "PLAIN message must be authzid NUL authcid NUL password");
    }
    const std::string_view authzid = message.substr(0, n1);
    const std::string_view authcid = message.substr(n1 + 1, n2 - n1 - 1);
    const std::string_view password = message.substr(n2 + 1);
    if (authcid.empty() || password.empty()) {
      return fail("malformed-request", "PLAIN: empty username or password");
    }
    if (authzid.size() > max_field || authcid.size() > max_field || password.size() > max_field) {
      return fail("malformed-request", "PLAIN: field too long");
    }
    if (!valid_utf8(authzid) || !valid_utf8(authcid) || !valid_utf8(password)) {
      return fail("malformed-request", "PLAIN: not valid UTF-8");
    }
    auto user = saslprep(authcid);
    if (!user || user->empty()) {
      return fail("malformed-request", "PLAIN: username fails SASLprep");
    }
    auto prepared = saslprep(password);
    const bool password_ok = prepared && !prepared->empty();
    if (prepared) {
      wipe(*prepared);
    }
    if (!password_ok) {
      return fail("malformed-request", "PLAIN: password fails SASLprep");
    }
    // Kept as sent: verify_password() applies SASLprep itself.
    password_ = std::string(password);
    username_ = std::move(*user);
    authzid_ = std::string(authzid);
    state_ = State::WaitCredentials;
    Step s;
    s.status = Step::Status::NeedCredentials;
    s.username = username_;
    s.authzid = authzid_;
    return s;
  }

  Step credentials(const std::optional<Credentials>& creds) override {
    if (state_ != State::WaitCredentials) {
      return fail("temporary-auth-failure", "internal error: credentials supplied out of sequence");
    }
    bool ok = false;
    if (creds) {
      ok = verify_password(*creds, password_);
    } else {
      // Spend about the same time as for an existing account, so that timing does not reveal which accounts
      // exist.
      (void)derive(Hash::Sha512, password_, "chatgroup-no-such-account", 4096);
    }
    if (!ok) {
      return fail("not-authorized", "invalid username or password");
    }
    wipe(password_);
    state_ = State::Done;
    Step s;
    s.status = Step::Status::Success;
    s.username = username_;
    s.authzid = authzid_;
    return s;
  }

private:
  enum class State { Start, WaitCredentials, Done };

  Step fail(std::string condition, std::string text) {
    state_ = State::Done;
    wipe(password_);
    return failure(std::move(condition), std::move(text));
  }

  State state_ = State::Start;
  bool sent_empty_challenge_ = false;
  std::string password_;
  std::string username_;
  std::string authzid_;
};

} // namespace

// PLAIN needs nothing from the context.
std::unique_ptr<ServerMechanism> make_plain(MechanismContext /*ctx*/) {
  return std::make_unique<Plain>();
}

} // namespace cg::sasl::detail
