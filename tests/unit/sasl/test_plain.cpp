// PLAIN (RFC 4616).
#include "server/sasl/sasl.hpp"

#include <catch2/catch.hpp>

using namespace cg::sasl;
using Status = Step::Status;

namespace {

std::string msg(std::string_view authzid, std::string_view authcid, std::string_view password) {
  std::string m(authzid);
  m += '\0';
  m += authcid;
  m += '\0';
  m += password;
  return m;
}

const Credentials& pencil() {
  static const Credentials c = [] {
    auto made = make_credentials("pencil");
    REQUIRE(made);
    return *made;
  }();
  return c;
}

void check_malformed(const std::string& message) {
  INFO("message of " << message.size() << " bytes");
  auto m = make_mechanism("PLAIN", MechanismContext{});
  const Step s = m->step(message);
  CHECK(s.status == Status::Failure);
  CHECK(s.condition == "malformed-request");
  CHECK_FALSE(s.text.empty());
  CHECK(m->step(msg("", "user", "pencil")).status == Status::Failure);
}

} // namespace

TEST_CASE("PLAIN with the right password succeeds", "[plain]") {
  auto m = make_mechanism("PLAIN", MechanismContext{});
  REQUIRE(m);
  CHECK(m->name() == "PLAIN");
  Step s = m->step(msg("", "user", "pencil"));
  REQUIRE(s.status == Status::NeedCredentials);
  CHECK(s.username == "user");
  CHECK(s.authzid.empty());
  s = m->credentials(pencil());
  REQUIRE(s.status == Status::Success);
  CHECK(s.data.empty());
  CHECK(s.username == "user");
  CHECK(s.authzid.empty());
  // Nothing may follow success.
  CHECK(m->step(msg("", "user", "pencil")).status == Status::Failure);
}

TEST_CASE("PLAIN with a wrong password or an unknown user fails with not-authorized", "[plain]") {
  auto m = make_mechanism("PLAIN", MechanismContext{});
  REQUIRE(m->step(msg("", "user", "pencil2")).status == Status::NeedCredentials);
  const Step wrong = m->credentials(pencil());
  CHECK(wrong.status == Status::Failure);
  CHECK(wrong.condition == "not-authorized");

  auto m2 = make_mechanism("PLAIN", MechanismContext{});
  REQUIRE(m2->step(msg("", "nobody", "pencil")).status == Status::NeedCredentials);
  const Step unknown = m2->credentials(std::nullopt);
  CHECK(unknown.status == Status::Failure);
  CHECK(unknown.condition == "not-authorized");
  CHECK(unknown.text == wrong.text); // does not reveal whether the account exists

  // Empty stored credentials never match.
  auto m3 = make_mechanism("PLAIN", MechanismContext{});
  REQUIRE(m3->step(msg("", "user", "pencil")).status == Status::NeedCredentials);
  CHECK(m3->credentials(Credentials{}).status == Status::Failure);
}

TEST_CASE("PLAIN passes the authzid through", "[plain]") {
  auto m = make_mechanism("PLAIN", MechanismContext{});
  Step s = m->step(msg("juliet@example.com", "juliet", "pencil"));
  REQUIRE(s.status == Status::NeedCredentials);
  CHECK(s.username == "juliet");
  CHECK(s.authzid == "juliet@example.com");
  s = m->credentials(pencil());
  REQUIRE(s.status == Status::Success);
  CHECK(s.authzid == "juliet@example.com");
  CHECK(s.username == "juliet");
}

TEST_CASE("PLAIN applies SASLprep to the username and the password", "[plain]") {
  const auto creds = make_credentials("IX");
  REQUIRE(creds);
  auto m = make_mechanism("PLAIN", MechanismContext{});
  Step s = m->step(msg("", "I\xC2\xADX", "\xE2\x85\xA8")); // I<SOFT HYPHEN>X, ROMAN NUMERAL NINE
  REQUIRE(s.status == Status::NeedCredentials);
  CHECK(s.username == "IX");
  s = m->credentials(creds);
  CHECK(s.status == Status::Success);
}

TEST_CASE("malformed PLAIN messages", "[plain]") {
  check_malformed("userpencil");
  check_malformed(std::string("user\0pencil", 11));
  check_malformed(std::string("\0userpencil", 11));
  check_malformed(msg("a", "user", "pencil") + std::string(1, '\0'));
  check_malformed(msg("a", "user", std::string("pen\0cil", 7)));
  check_malformed(std::string("\0\0", 2));
  check_malformed(msg("", "user", ""));   // empty password
  check_malformed(msg("", "", "pencil")); // empty username
  check_malformed(msg("", "us\ber", "pencil"));
  check_malformed(msg("", "user", "pen\bcil"));
  check_malformed(msg("", "\xC2\xAD", "pencil")); // username maps to nothing
  check_malformed(msg("", "user", "\xC2\xAD"));   // password maps to nothing
  check_malformed(msg("",
                      "us\xFF"
                      "er",
                      "pencil"));                 // invalid UTF-8
  check_malformed(msg("\xC3", "user", "pencil")); // invalid UTF-8 in the authzid
  check_malformed(msg("", std::string(1025, 'u'), "pencil"));
  check_malformed(msg("", "user", std::string(1025, 'p')));
  check_malformed(msg(std::string(1025, 'a'), "user", "pencil"));
  check_malformed(msg(std::string(4000, 'a'), "user", "pencil"));
}

TEST_CASE("PLAIN accepts fields up to 1 KiB", "[plain]") {
  const std::string password(1024, 'p');
  const auto creds = make_credentials(password);
  REQUIRE(creds);
  auto m = make_mechanism("PLAIN", MechanismContext{});
  Step s = m->step(msg(std::string(1024, 'a'), std::string(1024, 'u'), password));
  REQUIRE(s.status == Status::NeedCredentials);
  CHECK(s.username == std::string(1024, 'u'));
  CHECK(m->credentials(creds).status == Status::Success);
}

TEST_CASE("PLAIN: an empty initial response gets one empty challenge", "[plain]") {
  auto m = make_mechanism("PLAIN", MechanismContext{});
  Step s = m->step("");
  REQUIRE(s.status == Status::Challenge);
  CHECK(s.data.empty());
  s = m->step(msg("", "user", "pencil"));
  REQUIRE(s.status == Status::NeedCredentials);
  CHECK(m->credentials(pencil()).status == Status::Success);

  auto m2 = make_mechanism("PLAIN", MechanismContext{});
  REQUIRE(m2->step("").status == Status::Challenge);
  const Step again = m2->step("");
  CHECK(again.status == Status::Failure);
  CHECK(again.condition == "malformed-request");
}

TEST_CASE("PLAIN refuses out-of-sequence calls", "[plain]") {
  auto m = make_mechanism("PLAIN", MechanismContext{});
  CHECK(m->credentials(pencil()).status == Status::Failure);

  auto m2 = make_mechanism("PLAIN", MechanismContext{});
  REQUIRE(m2->step(msg("", "user", "pencil")).status == Status::NeedCredentials);
  CHECK(m2->step(msg("", "user", "pencil")).status == Status::Failure);
  CHECK(m2->credentials(pencil()).status == Status::Failure); // the failure ended the exchange

  auto m3 = make_mechanism("PLAIN", MechanismContext{});
  REQUIRE(m3->step(msg("", "user", "wrong")).status == Status::NeedCredentials);
  REQUIRE(m3->credentials(pencil()).status == Status::Failure);
  CHECK(m3->credentials(pencil()).status == Status::Failure);
}
