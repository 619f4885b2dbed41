// Malformed SCRAM messages: each gets the right RFC 6120 §6.5 condition, never a crash, and ends the exchange.
#include "server/sasl/sasl.hpp"

#include "scram_client.hpp"

#include <catch2/catch.hpp>

#include <random>

using namespace cg::sasl;
using Status = Step::Status;
using sasl_test::Client;

namespace {

MechanismContext ctx() {
  MechanismContext c;
  c.nonce = [] { return std::string("SN"); };
  c.fake_salt_secret = "secret";
  return c;
}

Credentials creds() {
  auto c = derive(Hash::Sha256, "pencil", "salt", 4096);
  REQUIRE(c);
  return Credentials{{*c}};
}

void check_first_fails(const std::string& message, const std::string& condition) {
  INFO("client-first: " << message);
  auto m = make_mechanism("SCRAM-SHA-256", ctx());
  const Step s = m->step(message);
  CHECK(s.status == Status::Failure);
  CHECK(s.condition == condition);
  CHECK_FALSE(s.text.empty());
  // The exchange is over.
  CHECK(m->step("n,,n=user,r=abc").status == Status::Failure);
}

// Drives a valid client-first and credentials; returns the mechanism waiting for the client-final message, and the
// valid final message for it.
std::pair<std::unique_ptr<ServerMechanism>, std::string> at_final(Client& client) {
  auto m = make_mechanism("SCRAM-SHA-256", ctx());
  REQUIRE(m->step(client.first()).status == Status::NeedCredentials);
  const Step c = m->credentials(creds());
  REQUIRE(c.status == Status::Challenge);
  return {std::move(m), client.final_message(c.data)};
}

void check_final_fails(const std::string& message, const std::string& condition) {
  INFO("client-final: " << message);
  Client client;
  auto [m, valid] = at_final(client);
  const Step s = m->step(message);
  CHECK(s.status == Status::Failure);
  CHECK(s.condition == condition);
  CHECK_FALSE(s.text.empty());
  // Even the valid message is refused afterwards.
  CHECK(m->step(valid).status == Status::Failure);
}

std::string proof_of(const std::string& final_message) {
  return final_message.substr(final_message.rfind(",p="));
}

} // namespace

TEST_CASE("malformed client-first messages", "[scram][malformed]") {
  const std::string mr = "malformed-request";
  // Missing or broken GS2 header.
  check_first_fails("n", mr);
  check_first_fails("n,", mr);
  check_first_fails("n=user,r=abc", mr);
  check_first_fails(",,n=user,r=abc", mr);
  check_first_fails("x,,n=user,r=abc", mr);
  check_first_fails("nn,,n=user,r=abc", mr);
  check_first_fails("p=,,n=user,r=abc", mr);
  check_first_fails("p=tls exporter,,n=user,r=abc", mr);
  check_first_fails("n,b=user,n=user,r=abc", mr);
  check_first_fails("n,a=,n=user,r=abc", mr);
  // Missing fields, wrong order.
  check_first_fails("n,,", mr);
  check_first_fails("n,,n=user", mr);
  check_first_fails("n,,r=abc", mr);
  check_first_fails("n,,r=abc,n=user", mr);
  check_first_fails("n,,n=,r=abc", mr);
  check_first_fails("n,,n=user,r=", mr);
  check_first_fails("n,,user,r=abc", mr);
  // Mandatory extension.
  check_first_fails("n,,m=ext,n=user,r=abc", mr);
  {
    auto m = make_mechanism("SCRAM-SHA-256", ctx());
    CHECK_THAT(m->step("n,,m=ext,n=user,r=abc").text, Catch::Contains("extension"));
  }
  // Bad saslname escapes in the username and the authzid.
  check_first_fails("n,,n=us=2Xer,r=abc", mr);
  check_first_fails("n,,n=us=er,r=abc", mr);
  check_first_fails("n,,n=user=,r=abc", mr);
  check_first_fails("n,,n=user=2,r=abc", mr);
  check_first_fails("n,,n=us=41er,r=abc", mr);
  check_first_fails("n,a=us=41,n=user,r=abc", mr);
  // Nonce not printable.
  check_first_fails("n,,n=user,r=ab c", mr);
  check_first_fails("n,,n=user,r=ab\x7F", mr);
  check_first_fails("n,,n=user,r=ab\xC3\xA4", mr);
  // Bad extensions.
  check_first_fails("n,,n=user,r=abc,", mr);
  check_first_fails("n,,n=user,r=abc,,x=1", mr);
  check_first_fails("n,,n=user,r=abc,1=x", mr);
  check_first_fails("n,,n=user,r=abc,x=", mr);
  check_first_fails("n,,n=user,r=abc,x", mr);
  // Bad text: SASLprep failure, invalid UTF-8, NUL.
  check_first_fails("n,,n=us\ber,r=abc", mr);
  check_first_fails("n,,n=\xC2\xAD,r=abc", mr); // maps to nothing
  check_first_fails("n,,n=us\xFF"
                    "er,r=abc",
                    mr);
  check_first_fails("n,,n=us\xC0\xAF"
                    "er,r=abc",
                    mr); // overlong '/'
  check_first_fails(std::string("n,,n=us\0er,r=abc", 16), mr);
}

TEST_CASE("client-first messages are bounded to 4 KiB", "[scram][malformed]") {
  const std::string head = "n,,n=user,r=";
  const std::string at_limit = head + std::string(4096 - head.size(), 'a');
  REQUIRE(at_limit.size() == 4096);
  auto m = make_mechanism("SCRAM-SHA-256", ctx());
  CHECK(m->step(at_limit).status == Status::NeedCredentials);

  check_first_fails(at_limit + "a", "malformed-request");
  check_first_fails(head + std::string(1 << 20, 'a'), "malformed-request");
}

TEST_CASE("valid client-first variants are accepted", "[scram][malformed]") {
  for (const char* ok :
       {"n,,n=user,r=abc", "n,,n=user,r=abc,x=1", "n,,n=user,r=abc,x==", "y,,n=user,r=a",
        "n,a=x,n=user,r=!\"#$%&'()*+-./:;<=>?@[\\]^_`{|}~", "n,,n=us=2cer,r=abc", "n,,n=\xE2\x85\xA8,r=abc"}) {
    INFO(ok);
    auto m = make_mechanism("SCRAM-SHA-256", ctx());
    CHECK(m->step(ok).status == Status::NeedCredentials);
  }
}

TEST_CASE("malformed client-final messages", "[scram][malformed]") {
  Client client;
  auto [unused, valid] = at_final(client);
  const std::string nonce = client.cnonce + "SN";
  const std::string p = proof_of(valid);
  const std::string mr = "malformed-request";

  check_final_fails("", mr);
  check_final_fails("garbage", mr);
  // Missing fields, wrong order.
  check_final_fails("c=biws,r=" + nonce, mr);
  check_final_fails("c=biws" + p, mr);
  check_final_fails("r=" + nonce + p, mr);
  check_final_fails("r=" + nonce + ",c=biws" + p, mr);
  check_final_fails(p.substr(1) + ",c=biws,r=" + nonce, mr);
  check_final_fails("c=biws,r=" + nonce + p + ",x=1", mr);
  check_final_fails("c=biws,r=" + nonce + ",p=", mr);
  // Bad base64 in c= and p=.
  check_final_fails("c=bi!s,r=" + nonce + p, mr);
  check_final_fails("c=biw,r=" + nonce + p, mr);
  check_final_fails("c=biws=,r=" + nonce + p, mr);
  check_final_fails("c=biws,r=" + nonce + ",p=AAA", mr);
  check_final_fails("c=biws,r=" + nonce + ",p=" + p.substr(3) + "====", mr);
  check_final_fails("c=biws,r=" + nonce + p.substr(0, p.size() - 1) + "*", mr);
  // A proof of the wrong length (SHA-1 size on SHA-256).
  check_final_fails("c=biws,r=" + nonce + ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", mr);
  // Nonce mismatch.
  check_final_fails("c=biws,r=" + client.cnonce + p, mr);
  check_final_fails("c=biws,r=" + nonce + "X" + p, mr);
  check_final_fails("c=biws,r=X" + nonce + p, mr);
  check_final_fails("c=biws,r=" + p, mr);
  // Bad extension.
  check_final_fails("c=biws,r=" + nonce + ",1=x" + p, mr);
  check_final_fails("c=biws,r=" + nonce + ",," + p, mr);
  // Oversized.
  check_final_fails("c=biws,r=" + nonce + ",x=" + std::string(5000, 'a') + p, mr);
  // Not text.
  check_final_fails(std::string("c=biws,r=") + nonce + std::string(",x=\0", 4) + p, mr);
  check_final_fails("c=biws,r=" + nonce + ",x=\xFF" + p, mr);
  // c= decodes to another GS2 header than the client-first message's: a channel binding failure.
  check_final_fails("c=eSws,r=" + nonce + p, "not-authorized");     // "y,,"
  check_final_fails("c=bix4LA==,r=" + nonce + p, "not-authorized"); // "n,x,"
  check_final_fails("c=,r=" + nonce + p, "not-authorized");
}

TEST_CASE("the valid client-final message used above does succeed", "[scram][malformed]") {
  // Guards the malformed cases: they are mutations of a message that works.
  Client client;
  auto [m, valid] = at_final(client);
  const Step s = m->step(valid);
  REQUIRE(s.status == Status::Success);
  CHECK(s.data == client.expected_server_final);
}

TEST_CASE("random mutations of valid SCRAM messages never crash and never succeed", "[scram][malformed]") {
  std::mt19937 rng(12345); // fixed seed: reproducible
  const std::string alphabet = std::string("=,abcnrpvmy019+/\x7F\xC3\xFF", 20) + std::string(1, '\0');
  const auto mutate = [&](std::string s) {
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t pos = s.empty() ? 0 : rng() % s.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
      case 0:
        if (!s.empty()) {
          s[pos] = c;
        }
        break;
      case 1:
        s.insert(s.begin() + static_cast<std::ptrdiff_t>(pos), c);
        break;
      default:
        if (!s.empty()) {
          s.erase(pos, 1);
        }
      }
    }
    return s;
  };
  for (int i = 0; i < 400; ++i) {
    Client client;
    auto m = make_mechanism("SCRAM-SHA-256", ctx());
    if (i % 2 == 0) {
      // A mutated client-first message: refused, or accepted as a syntactically valid one.
      const std::string mutated = mutate(client.first());
      INFO(mutated);
      const Step s = m->step(mutated);
      if (s.status == Status::NeedCredentials) {
        CHECK(m->credentials(creds()).status == Status::Challenge);
      } else {
        CHECK(s.status == Status::Failure);
        CHECK_FALSE(s.condition.empty());
      }
      continue;
    }
    // A mutated client-final message: always refused.
    REQUIRE(m->step(client.first()).status == Status::NeedCredentials);
    const Step c = m->credentials(creds());
    REQUIRE(c.status == Status::Challenge);
    const std::string final_message = client.final_message(c.data);
    const std::string mutated = mutate(final_message);
    if (mutated == final_message) {
      continue;
    }
    INFO(mutated);
    const Step s = m->step(mutated);
    CHECK(s.status == Status::Failure);
    CHECK_FALSE(s.condition.empty());
  }
}
