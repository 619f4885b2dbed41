// SCRAM channel binding (RFC 5802 §6, RFC 9266 tls-exporter, RFC 5929 tls-server-end-point) and the "y" flag's
// downgrade protection.
#include "server/sasl/sasl.hpp"

#include "scram_client.hpp"

#include <catch2/catch.hpp>

using namespace cg::sasl;
using Status = Step::Status;
using sasl_test::Client;

namespace {

const std::string exporter = std::string("\x01\x02\x03\x00\xFF exporter data 32 bytes....", 32);
const std::string end_point = "server certificate hash";

MechanismContext tls_ctx(bool plus_advertised = true) {
  MechanismContext ctx;
  ctx.channel_bindings = {{"tls-exporter", exporter}, {"tls-server-end-point", end_point}};
  ctx.plus_advertised = plus_advertised;
  ctx.fake_salt_secret = "secret";
  ctx.nonce = [] { return std::string("ServerNonce"); };
  return ctx;
}

Credentials creds() {
  auto c = derive(Hash::Sha256, "pencil", "salt", 4096);
  REQUIRE(c);
  return Credentials{{*c}};
}

// Runs the whole exchange; returns the last step (the failure if one happens earlier).
Step run(const std::string& mech, const MechanismContext& ctx, Client& client) {
  auto m = make_mechanism(mech, ctx);
  REQUIRE(m);
  Step s = m->step(client.first());
  if (s.status != Status::NeedCredentials) {
    return s;
  }
  s = m->credentials(creds());
  REQUIRE(s.status == Status::Challenge);
  return m->step(client.final_message(s.data));
}

} // namespace

TEST_CASE("SCRAM-SHA-256-PLUS with tls-exporter and matching data succeeds", "[scram][cb]") {
  Client client;
  client.gs2_header = "p=tls-exporter,,";
  client.cb_data = exporter;
  const Step s = run("SCRAM-SHA-256-PLUS", tls_ctx(), client);
  REQUIRE(s.status == Status::Success);
  CHECK(s.data == client.expected_server_final);
}

TEST_CASE("SCRAM-SHA-256-PLUS with tls-server-end-point and matching data succeeds", "[scram][cb]") {
  Client client;
  client.gs2_header = "p=tls-server-end-point,a=user@example.com,";
  client.cb_data = end_point;
  const Step s = run("SCRAM-SHA-256-PLUS", tls_ctx(), client);
  REQUIRE(s.status == Status::Success);
  CHECK(s.authzid == "user@example.com");
}

TEST_CASE("SCRAM-PLUS with mismatched channel binding data fails", "[scram][cb]") {
  SECTION("other bytes") {
    Client client;
    client.gs2_header = "p=tls-exporter,,";
    client.cb_data = std::string(exporter.size(), 'x');
    const Step s = run("SCRAM-SHA-256-PLUS", tls_ctx(), client);
    CHECK(s.status == Status::Failure);
    CHECK(s.condition == "not-authorized");
  }
  SECTION("data of the other binding type") {
    Client client;
    client.gs2_header = "p=tls-exporter,,";
    client.cb_data = end_point;
    const Step s = run("SCRAM-SHA-256-PLUS", tls_ctx(), client);
    CHECK(s.status == Status::Failure);
    CHECK(s.condition == "not-authorized");
  }
  SECTION("no data at all (c= is only the GS2 header)") {
    Client client;
    client.gs2_header = "p=tls-exporter,,";
    const Step s = run("SCRAM-SHA-256-PLUS", tls_ctx(), client);
    CHECK(s.status == Status::Failure);
    CHECK(s.condition == "not-authorized");
  }
  SECTION("truncated data") {
    Client client;
    client.gs2_header = "p=tls-exporter,,";
    client.cb_data = exporter.substr(0, exporter.size() - 1);
    const Step s = run("SCRAM-SHA-256-PLUS", tls_ctx(), client);
    CHECK(s.status == Status::Failure);
    CHECK(s.condition == "not-authorized");
  }
}

TEST_CASE("SCRAM-PLUS with a binding type the connection does not offer fails at once", "[scram][cb]") {
  Client client;
  client.gs2_header = "p=tls-unique,,";
  client.cb_data = "whatever";
  auto m = make_mechanism("SCRAM-SHA-256-PLUS", tls_ctx());
  const Step s = m->step(client.first());
  CHECK(s.status == Status::Failure);
  CHECK(s.condition == "not-authorized");
  CHECK(s.text.find("tls-unique") != std::string::npos);
}

TEST_CASE("SCRAM-PLUS without any channel binding on the connection fails", "[scram][cb]") {
  Client client;
  client.gs2_header = "p=tls-exporter,,";
  MechanismContext ctx;
  auto m = make_mechanism("SCRAM-SHA-1-PLUS", ctx);
  const Step s = m->step(client.first());
  CHECK(s.status == Status::Failure);
  CHECK(s.condition == "not-authorized");
}

TEST_CASE("SCRAM-PLUS with GS2 flag n or y fails with not-authorized", "[scram][cb]") {
  for (const char* flag : {"n,,", "y,,"}) {
    Client client;
    client.gs2_header = flag;
    auto m = make_mechanism("SCRAM-SHA-512-PLUS", tls_ctx());
    const Step s = m->step(client.first());
    CHECK(s.status == Status::Failure);
    CHECK(s.condition == "not-authorized");
    CHECK_FALSE(s.text.empty());
  }
}

TEST_CASE("GS2 flag y: refused when -PLUS was advertised, accepted otherwise", "[scram][cb]") {
  SECTION("advertised: downgrade detected") {
    Client client;
    client.gs2_header = "y,,";
    auto m = make_mechanism("SCRAM-SHA-256", tls_ctx(true));
    const Step s = m->step(client.first());
    CHECK(s.status == Status::Failure);
    CHECK(s.condition == "not-authorized");
  }
  SECTION("not advertised") {
    Client client;
    client.gs2_header = "y,,";
    const Step s = run("SCRAM-SHA-256", tls_ctx(false), client);
    REQUIRE(s.status == Status::Success);
    CHECK(s.data == client.expected_server_final);
  }
  SECTION("not advertised, but c= claims n while the header said y") {
    Client client;
    client.gs2_header = "y,,";
    auto m = make_mechanism("SCRAM-SHA-256", tls_ctx(false));
    REQUIRE(m->step(client.first()).status == Status::NeedCredentials);
    const Step c = m->credentials(creds());
    REQUIRE(c.status == Status::Challenge);
    client.gs2_header = "n,,"; // the final message now carries c=biws
    const Step s = m->step(client.final_message(c.data));
    CHECK(s.status == Status::Failure);
    CHECK(s.condition == "not-authorized");
  }
}

TEST_CASE("GS2 flag n on a non-PLUS mechanism is fine even when -PLUS was advertised", "[scram][cb]") {
  Client client;
  const Step s = run("SCRAM-SHA-256", tls_ctx(true), client);
  REQUIRE(s.status == Status::Success);
}

TEST_CASE("GS2 flag p on a non-PLUS mechanism fails", "[scram][cb]") {
  Client client;
  client.gs2_header = "p=tls-exporter,,";
  client.cb_data = exporter;
  auto m = make_mechanism("SCRAM-SHA-256", tls_ctx());
  const Step s = m->step(client.first());
  CHECK(s.status == Status::Failure);
  CHECK(s.condition == "malformed-request");
}
