// SASL (RFC 6120 §6) against the real chatgroupd: every mechanism through a real client library (libstrophe) over
// STARTTLS and direct TLS, the -PLUS mechanisms with each channel binding through the raw client's own SCRAM, the
// failure conditions of §6.5, retries and their limits, the per-address delay and ban, authzid, and how the
// credentials are stored.
#include "tests/integration/harness.hpp"

#include <catch2/catch.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

using namespace it;
namespace ns = cg::xml::ns;
namespace fs = std::filesystem;

namespace {

ServerOptions with_users(ServerOptions o) {
  o.users.emplace("alice", "alice-pw");
  o.users.emplace("bob", "bob-pw");
  return o;
}

std::string ping_xml(const std::string& id) {
  return "<iq type='get' id='" + id + "' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>";
}

bool answers_ping(RawClient& c, const std::string& id) {
  auto r = c.iq(ping_xml(id), id);
  return r && r->attr("type") == "result";
}

bool answers_ping(StropheClient& c, const std::string& id) {
  auto r = c.iq(ping_xml(id), id);
  return r && r->attr("type") == "result";
}

std::string base64(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string unbase64(std::string_view text) {
  std::string out(text.size() / 4 * 3 + 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  REQUIRE(n >= 0);
  auto len = static_cast<std::size_t>(n);
  len -= static_cast<std::size_t>(std::count(text.end() - std::min<std::size_t>(2, text.size()), text.end(), '='));
  out.resize(len);
  return out;
}

std::vector<std::string> mechanisms_of(const Element& features) {
  std::vector<std::string> out;
  if (const auto* m = features.child("mechanisms", ns::sasl)) {
    for (const auto* c : m->children("mechanism", ns::sasl)) {
      out.push_back(c->text());
    }
  }
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// The defined condition of a SASL <failure/> (RFC 6120 §6.5), "" when it is something else.
std::string sasl_condition(const Element& el) {
  if (!el.is("failure", ns::sasl)) {
    return {};
  }
  for (const auto* c : el.children()) {
    if (c->ns() == ns::sasl && c->name() != "text") {
      return c->name();
    }
  }
  return {};
}

// A PLAIN <auth/> with its initial response (RFC 4616: authzid NUL authcid NUL password).
std::string plain_auth(const std::string& authzid, const std::string& user, const std::string& password) {
  return "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
         base64(authzid + std::string(1, '\0') + user + std::string(1, '\0') + password) + "</auth>";
}

// The next SASL outcome (<success/> or <failure/>) on the stream.
Element outcome(RawClient& c) {
  auto el = c.wait_for([](const Element& e) { return e.name() == "success" || e.name() == "failure"; });
  INFO("received: " << c.raw_received());
  REQUIRE(el);
  return *el;
}

// A connection past STARTTLS; returns the features.
Element secured(RawClient& c, int port, int max_version = 0) {
  c.connect(port);
  return c.starttls_and_reopen("localhost", max_version);
}

// After <success/>: restart, bind, and ping through the new session.
void bind_and_ping(RawClient& c, const std::string& expected_bare) {
  const std::string jid = c.bind();
  CHECK(jid.rfind(expected_bare + "/", 0) == 0);
  CHECK(answers_ping(c, "after-auth"));
}

// RFC 6120 §4.9.1.1: the stream error, then </stream>, then the TCP connection closes.
void check_stream_error(RawClient& c, const std::string& condition) {
  INFO("received: " << c.raw_received());
  REQUIRE(c.wait_closed(10s));
  CHECK(c.stream_error() == condition);
  const std::string& raw = c.raw_received();
  static constexpr std::string_view kEnd = "</stream:error>";
  auto end = raw.find(kEnd);
  REQUIRE(end != std::string::npos);
  CHECK(raw.substr(end + kEnd.size()) == "</stream:stream>");
}

// The attributes of a SCRAM server-first message.
std::map<char, std::string> scram_attrs(const std::string& msg) {
  std::map<char, std::string> out;
  std::stringstream ss(msg);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (part.size() >= 2 && part[1] == '=') {
      out[part[0]] = part.substr(2);
    }
  }
  return out;
}

// Starts a SCRAM exchange and returns the server-first message's attributes, then aborts the exchange.
std::map<char, std::string> scram_server_first(RawClient& c, const std::string& mechanism, const std::string& user) {
  c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + mechanism + "'>" +
         base64("n,,n=" + user + ",r=abcdefghijklmnop") + "</auth>");
  auto challenge = c.next_element();
  INFO("received: " << c.raw_received());
  REQUIRE(challenge);
  REQUIRE(challenge->is("challenge", ns::sasl));
  c.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
  auto aborted = outcome(c);
  CHECK(sasl_condition(aborted) == "aborted");
  return scram_attrs(unbase64(challenge->text()));
}

std::string sha(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string hmac(const EVP_MD* md, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string unhex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------
// Every mechanism works with real clients

TEST_CASE("auth: libstrophe logs in with each mechanism, over STARTTLS and over direct TLS", "[auth]") {
  const std::string mechanism = GENERATE(as<std::string>{}, "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN");
  const bool direct_tls = GENERATE(false, true);
  CAPTURE(mechanism, direct_tls);
  TestServer server(with_users(ServerOptions().set("auth", "mechanisms", "[\"" + mechanism + "\"]")));
  server.start();
  const int port = direct_tls ? server.tls_port() : server.port();

  // auth.mechanisms is honoured: the server offers that one mechanism and nothing else.
  RawClient probe;
  CHECK(mechanisms_of(secured(probe, server.port())) == std::vector<std::string>{mechanism});

  StropheClient alice("alice@localhost/strophe", "alice-pw");
  REQUIRE(alice.connect(port, server.cert_path(), direct_tls));
  CHECK(alice.bound_jid() == "alice@localhost/strophe");
  CHECK(answers_ping(alice, "p1"));
  // The mechanism checks the password: the same client library with a wrong one is refused.
  StropheClient mallory("alice@localhost/mallory", "not-alice-pw");
  CHECK_FALSE(mallory.connect(port, server.cert_path(), direct_tls));
}

TEST_CASE("auth: SCRAM -PLUS with each channel binding (RFC 5802, RFC 9266, RFC 5929)", "[auth]") {
  const std::string mechanism =
      GENERATE(as<std::string>{}, "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-512-PLUS");
  CAPTURE(mechanism);
  TestServer server(with_users({}));
  server.start();
  struct Case {
    const char* cb_type;
    int max_version;
    int expected_version;
    bool direct_tls;
  };
  const Case cases[] = {
      {"tls-exporter", 0, TLS1_3_VERSION, false},
      {"tls-server-end-point", 0, TLS1_3_VERSION, false},
      {"tls-exporter", 0, TLS1_3_VERSION, true},
      {"tls-unique", TLS1_2_VERSION, TLS1_2_VERSION, false},
      {"tls-exporter", TLS1_2_VERSION, TLS1_2_VERSION, false},
      {"tls-server-end-point", TLS1_2_VERSION, TLS1_2_VERSION, false},
  };
  for (const auto& tc : cases) {
    INFO(tc.cb_type << " on " << (tc.expected_version == TLS1_3_VERSION ? "TLS 1.3" : "TLS 1.2")
                    << (tc.direct_tls ? " (direct TLS)" : " (STARTTLS)"));
    RawClient c;
    Element features;
    if (tc.direct_tls) {
      c.connect(server.tls_port());
      c.start_tls(tc.max_version);
      c.open_stream();
      auto f = c.next_element();
      REQUIRE(f);
      features = *f;
    } else {
      features = secured(c, server.port(), tc.max_version);
    }
    REQUIRE(SSL_version(c.ssl()) == tc.expected_version);
    CHECK(contains(mechanisms_of(features), mechanism));
    // The raw client computes the binding from its own side of the TLS connection and checks the server's
    // signature (v=) itself.
    auto result = c.authenticate(mechanism, "alice", "alice-pw", tc.cb_type);
    INFO("received: " << c.raw_received());
    REQUIRE(result.is("success", ns::sasl));
    bind_and_ping(c, "alice@localhost");
  }
}

TEST_CASE("auth: channel binding that does not match the connection is refused", "[auth]") {
  TestServer server(with_users({}));
  server.start();
  RawClient c;
  secured(c, server.port());
  std::string gs2 = "p=tls-exporter,,";
  std::string cb_data;
  RawClient other; // a second connection, as a man in the middle would have
  SECTION("garbage tls-exporter data") {
    cb_data = std::string(32, 'x');
  }
  SECTION("the tls-exporter data of another TLS connection (a man in the middle)") {
    secured(other, server.port());
    cb_data = client_tls_exporter(other.ssl());
    REQUIRE(cb_data.size() == 32);
  }
  SECTION("tls-server-end-point claimed, tls-exporter data sent") {
    gs2 = "p=tls-server-end-point,,";
    cb_data = client_tls_exporter(c.ssl());
  }
  SECTION("a channel-binding type that does not exist") {
    gs2 = "p=tls-nonsense,,";
    cb_data = client_tls_exporter(c.ssl());
  }
  SECTION("no channel binding at all with a -PLUS mechanism") {
    gs2 = "n,,";
  }
  auto refused = c.authenticate_scram("SCRAM-SHA-256-PLUS", "alice", "alice-pw", gs2, cb_data);
  INFO("received: " << c.raw_received());
  CHECK(sasl_condition(refused) == "not-authorized");
  // Everything else was right: the same stream with the right binding succeeds.
  auto ok =
      c.authenticate_scram("SCRAM-SHA-256-PLUS", "alice", "alice-pw", "p=tls-exporter,,", client_tls_exporter(c.ssl()));
  CHECK(ok.is("success", ns::sasl));
}

TEST_CASE("auth: GS2 flag 'y' is refused when -PLUS was offered (RFC 5802 §6 downgrade protection)", "[auth]") {
  SECTION("-PLUS offered: 'y' means someone stripped it, refused") {
    TestServer server(with_users({}));
    server.start();
    RawClient c;
    REQUIRE(contains(mechanisms_of(secured(c, server.port())), "SCRAM-SHA-256-PLUS"));
    auto refused = c.authenticate_scram("SCRAM-SHA-256", "alice", "alice-pw", "y,,", "");
    INFO("received: " << c.raw_received());
    CHECK(sasl_condition(refused) == "not-authorized");
    CHECK(c.authenticate_scram("SCRAM-SHA-256", "alice", "alice-pw", "n,,", "").is("success", ns::sasl));
  }
  SECTION("-PLUS not offered: 'y' is accepted") {
    TestServer server(with_users(ServerOptions().set("auth", "mechanisms", "[\"SCRAM-SHA-256\"]")));
    server.start();
    RawClient c;
    REQUIRE_FALSE(contains(mechanisms_of(secured(c, server.port())), "SCRAM-SHA-256-PLUS"));
    auto ok = c.authenticate_scram("SCRAM-SHA-256", "alice", "alice-pw", "y,,", "");
    INFO("received: " << c.raw_received());
    CHECK(ok.is("success", ns::sasl));
    bind_and_ping(c, "alice@localhost");
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Failures, retries, delays, bans

TEST_CASE("auth: a wrong password and an unknown user get the same <not-authorized/>", "[auth]") {
  const std::string mechanism = GENERATE(as<std::string>{}, "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN");
  CAPTURE(mechanism);
  TestServer server(with_users({}));
  server.start();
  auto attempt = [&](const std::string& user, const std::string& password) {
    RawClient c;
    secured(c, server.port());
    auto f = c.authenticate(mechanism, user, password);
    INFO("received: " << c.raw_received());
    CHECK(c.stream_error().empty());
    return f;
  };
  auto wrong_password = attempt("alice", "wrong-pw");
  auto unknown_user = attempt("nobody", "alice-pw");
  CHECK(sasl_condition(wrong_password) == "not-authorized");
  // RFC 6120 §6.5.10 / DESIGN.md: nothing tells an attacker which accounts exist.
  CHECK(unknown_user == wrong_password);
  // The right password still works (the failures above are about the password, not the mechanism).
  RawClient good;
  secured(good, server.port());
  CHECK(good.authenticate(mechanism, "alice", "alice-pw").is("success", ns::sasl));
}

TEST_CASE("auth: SCRAM's first challenge does not reveal whether an account exists", "[auth]") {
  TestServer server(with_users({}));
  server.start();
  RawClient c;
  secured(c, server.port());
  auto real = scram_server_first(c, "SCRAM-SHA-256", "alice");
  auto fake1 = scram_server_first(c, "SCRAM-SHA-256", "nobody");
  auto fake2 = scram_server_first(c, "SCRAM-SHA-256", "nobody");
  // An unknown user gets a salt like a real one, the same one every time, and the same iteration count.
  CHECK(fake1['i'] == real['i']);
  CHECK(unbase64(fake1['s']).size() == unbase64(real['s']).size());
  CHECK(fake1['s'] == fake2['s']);
  CHECK(fake1['s'] != real['s']);
  // Aborting is not a failed attempt: three exchanges were aborted on this stream and it is still open.
  CHECK(c.authenticate("SCRAM-SHA-256", "alice", "alice-pw").is("success", ns::sasl));
}

TEST_CASE("auth: after auth.max_attempts failures the stream is closed with <not-authorized/>", "[auth]") {
  TestServer server(with_users(ServerOptions().set("auth", "max_attempts", "4")));
  server.start();
  RawClient c;
  secured(c, server.port());
  // RFC 6120 §6.4.5: "If the initiating entity exceeds the number of retries, the receiving entity MUST close the
  // stream with a <not-authorized/> stream error".
  for (int i = 1; i <= 3; ++i) {
    INFO("attempt " << i);
    auto f = c.authenticate(i == 2 ? "SCRAM-SHA-256" : "PLAIN", "alice", "wrong-pw");
    CHECK(sasl_condition(f) == "not-authorized");
    CHECK(c.stream_error().empty());
  }
  auto last = c.authenticate("PLAIN", "alice", "wrong-pw");
  CHECK(sasl_condition(last) == "not-authorized");
  check_stream_error(c, "not-authorized");
}

TEST_CASE("auth: auth.failure_delay delays each failure, doubling with recent failures from the address",
          "[auth][slow]") {
  TestServer server(with_users(ServerOptions().set("auth", "failure_delay", "1").set("auth", "max_attempts", "5")));
  server.start();
  RawClient c;
  secured(c, server.port());

  auto t0 = Clock::now();
  auto first = c.authenticate("PLAIN", "alice", "wrong-pw");
  const auto d1 = Clock::now() - t0;
  CHECK(sasl_condition(first) == "not-authorized");
  CHECK(d1 >= 900ms);

  t0 = Clock::now();
  c.send(plain_auth("", "alice", "wrong-pw"));
  // While this failure is held back, the server serves others: a client logs in and the failure has still not
  // arrived when it is done (the delay is a timer on the session, not a blocked thread).
  RawClient other;
  other.login(server.port(), "bob", "bob-pw");
  CHECK(answers_ping(other, "during-delay"));
  CHECK_FALSE(c.next_element(0ms));
  auto second = outcome(c);
  const auto d2 = Clock::now() - t0;
  CHECK(sasl_condition(second) == "not-authorized");
  CHECK(d2 >= 1800ms);
  // A success is never delayed and still possible on this stream.
  CHECK(c.authenticate("SCRAM-SHA-256", "alice", "alice-pw").is("success", ns::sasl));
}

TEST_CASE("auth: after auth.ban_after failures the address is refused, even with the right password", "[auth]") {
  TestServer server(with_users(ServerOptions().set("auth", "ban_after", "3").set("auth", "max_attempts", "5")));
  server.start();
  RawClient bystander;
  bystander.login(server.port(), "bob", "bob-pw");

  RawClient a;
  secured(a, server.port());
  CHECK(sasl_condition(a.authenticate("PLAIN", "alice", "wrong-1")) == "not-authorized");
  CHECK(sasl_condition(a.authenticate("SCRAM-SHA-256", "alice", "wrong-2")) == "not-authorized");
  RawClient b;
  secured(b, server.port());
  CHECK(sasl_condition(b.authenticate("PLAIN", "alice", "wrong-3")) == "not-authorized");
  // The third failure from 127.0.0.1: from now on the address is refused, whatever the stream and the mechanism.
  auto refused = b.authenticate("PLAIN", "alice", "alice-pw");
  CHECK(sasl_condition(refused) == "temporary-auth-failure");
  RawClient c;
  secured(c, server.port());
  auto refused_too = c.authenticate("SCRAM-SHA-256", "bob", "bob-pw");
  CHECK(sasl_condition(refused_too) == "temporary-auth-failure");
  // Sessions that are already authenticated are not affected.
  CHECK(answers_ping(bystander, "banned-neighbour"));
}

// ---------------------------------------------------------------------------------------------------------------
// What is offered without TLS

TEST_CASE("auth: PLAIN is not offered without TLS, even when TLS is optional", "[auth]") {
  SECTION("c2s.require_encryption = false") {
    TestServer server(with_users(ServerOptions().set("c2s", "require_encryption", "false")));
    server.start();
    RawClient c;
    c.connect(server.port());
    c.open_stream();
    auto features = c.next_element();
    REQUIRE(features);
    const Element* starttls = features->child("starttls", ns::tls);
    REQUIRE(starttls);
    CHECK_FALSE(starttls->child("required", ns::tls));
    auto mechs = mechanisms_of(*features);
    CHECK(contains(mechs, "SCRAM-SHA-256"));
    CHECK_FALSE(contains(mechs, "PLAIN"));
    CHECK_FALSE(contains(mechs, "SCRAM-SHA-256-PLUS")); // no TLS, no channel binding
    // PLAIN anyway: RFC 6120 §6.5.3 encryption-required: "The mechanism requested by the initiating entity cannot
    // be used unless the confidentiality and integrity of the underlying stream are protected (typically via TLS)."
    c.send(plain_auth("", "alice", "alice-pw"));
    CHECK(sasl_condition(outcome(c)) == "encryption-required");
    // Likewise a -PLUS mechanism: there is no TLS channel to bind to.
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256-PLUS'>" +
           base64("p=tls-exporter,,n=alice,r=0123456789abcdef") + "</auth>");
    CHECK(sasl_condition(outcome(c)) == "encryption-required");
    // SCRAM never sends the password: it may run without TLS.
    CHECK(c.authenticate("SCRAM-SHA-256", "alice", "alice-pw").is("success", ns::sasl));
    bind_and_ping(c, "alice@localhost");
    CHECK_FALSE(c.secure());
  }
  SECTION("auth.allow_insecure_plain = true (loopback benchmarks)") {
    TestServer server(with_users(
        ServerOptions().set("c2s", "require_encryption", "false").set("auth", "allow_insecure_plain", "true")));
    server.start();
    RawClient c;
    c.connect(server.port());
    c.open_stream();
    auto features = c.next_element();
    REQUIRE(features);
    CHECK(contains(mechanisms_of(*features), "PLAIN"));
    CHECK(c.authenticate("PLAIN", "alice", "alice-pw").is("success", ns::sasl));
    bind_and_ping(c, "alice@localhost");
  }
}

// ---------------------------------------------------------------------------------------------------------------
// SASL failure conditions (RFC 6120 §6.5)

TEST_CASE("auth: <abort/> gives <failure><aborted/> and the stream goes on", "[auth]") {
  TestServer server(with_users({}));
  server.start();
  RawClient c;
  secured(c, server.port());
  // RFC 6120 §6.4.4.
  c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>" +
         base64("n,,n=alice,r=0123456789abcdef") + "</auth>");
  auto challenge = c.next_element();
  REQUIRE(challenge);
  REQUIRE(challenge->is("challenge", ns::sasl));
  c.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
  CHECK(sasl_condition(outcome(c)) == "aborted");
  // The aborted exchange is gone: a <response/> now has nothing to continue.
  c.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64("c=biws,r=x,p=AAAA") + "</response>");
  CHECK(sasl_condition(outcome(c)) != "");
  CHECK(c.authenticate("SCRAM-SHA-256", "alice", "alice-pw").is("success", ns::sasl));
  bind_and_ping(c, "alice@localhost");
}

TEST_CASE("auth: an unknown mechanism gives <invalid-mechanism/>", "[auth]") {
  TestServer server(with_users({}));
  server.start();
  RawClient c;
  secured(c, server.port());
  SECTION("a name the server does not implement") {
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-UNKNOWN'>" + base64("x") + "</auth>");
  }
  SECTION("no mechanism attribute") {
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64("x") + "</auth>");
  }
  SECTION("a well-known mechanism this server does not implement") {
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='DIGEST-MD5'/>");
  }
  // RFC 6120 §6.5.5.
  CHECK(sasl_condition(outcome(c)) == "invalid-mechanism");
  CHECK(c.authenticate("SCRAM-SHA-256", "alice", "alice-pw").is("success", ns::sasl));
}

TEST_CASE("auth: a mechanism left out of auth.mechanisms gives <invalid-mechanism/>", "[auth]") {
  TestServer server(with_users(ServerOptions().set("auth", "mechanisms", "[\"SCRAM-SHA-256\"]")));
  server.start();
  RawClient c;
  secured(c, server.port());
  c.send(plain_auth("", "alice", "alice-pw"));
  CHECK(sasl_condition(outcome(c)) == "invalid-mechanism");
  CHECK(c.authenticate("SCRAM-SHA-256", "alice", "alice-pw").is("success", ns::sasl));
}

TEST_CASE("auth: data that is not base64 gives <incorrect-encoding/>", "[auth]") {
  TestServer server(with_users({}));
  server.start();
  RawClient c;
  secured(c, server.port());
  SECTION("in <auth/>") {
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!not*base64!!</auth>");
  }
  SECTION("in <response/>") {
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>" +
           base64("n,,n=alice,r=0123456789abcdef") + "</auth>");
    auto challenge = c.next_element();
    REQUIRE(challenge);
    REQUIRE(challenge->is("challenge", ns::sasl));
    c.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>AB=C*</response>");
  }
  // RFC 6120 §6.5.2.
  CHECK(sasl_condition(outcome(c)) == "incorrect-encoding");
  CHECK(c.authenticate("SCRAM-SHA-256", "alice", "alice-pw").is("success", ns::sasl));
}

TEST_CASE("auth: a zero-length initial response ('=') is refused with <malformed-request/>", "[auth]") {
  TestServer server(with_users({}));
  server.start();
  RawClient c;
  secured(c, server.port());
  // RFC 6120 §6.4.2: "=" transmits a zero-length initial response, which PLAIN cannot use (unlike an <auth/> with
  // no text, which asks for an empty challenge: see the test below).
  c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>=</auth>");
  CHECK(sasl_condition(outcome(c)) == "malformed-request");
  CHECK(c.authenticate("SCRAM-SHA-256", "alice", "alice-pw").is("success", ns::sasl));
}

TEST_CASE("auth: <auth/> before STARTTLS when TLS is required gives <encryption-required/>", "[auth]") {
  TestServer server(with_users({}));
  server.start();
  RawClient c;
  c.connect(server.port());
  c.open_stream();
  REQUIRE(c.next_element());
  SECTION("SCRAM") {
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>" +
           base64("n,,n=alice,r=0123456789abcdef") + "</auth>");
  }
  SECTION("PLAIN") {
    c.send(plain_auth("", "alice", "alice-pw"));
  }
  // RFC 6120 §6.5.3.
  CHECK(sasl_condition(outcome(c)) == "encryption-required");
  // Nothing was authenticated, the stream is still usable: STARTTLS and then SASL.
  c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  auto proceed = c.next_element();
  REQUIRE(proceed);
  REQUIRE(proceed->is("proceed", ns::tls));
  c.start_tls();
  c.open_stream();
  REQUIRE(c.next_element());
  CHECK(c.authenticate("SCRAM-SHA-256", "alice", "alice-pw").is("success", ns::sasl));
}

TEST_CASE("auth: an <auth/> without initial response gets an empty challenge (RFC 6120 §6.4.2)", "[auth]") {
  TestServer server(with_users({}));
  server.start();
  RawClient c;
  secured(c, server.port());
  c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/>");
  auto challenge = c.next_element();
  REQUIRE(challenge);
  CHECK(challenge->is("challenge", ns::sasl));
  CHECK(challenge->text().empty());
  c.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64(std::string("\0alice\0alice-pw", 15)) +
         "</response>");
  CHECK(outcome(c).is("success", ns::sasl));
  bind_and_ping(c, "alice@localhost");
}

// ---------------------------------------------------------------------------------------------------------------
// Authorization identity

TEST_CASE("auth: an authzid other than the user's own bare JID gives <invalid-authzid/>", "[auth]") {
  TestServer server(with_users({}));
  server.start();
  RawClient c;
  secured(c, server.port());
  SECTION("PLAIN, own bare JID: allowed") {
    c.send(plain_auth("alice@localhost", "alice", "alice-pw"));
    CHECK(outcome(c).is("success", ns::sasl));
    bind_and_ping(c, "alice@localhost");
  }
  SECTION("PLAIN, another user's JID: refused") {
    c.send(plain_auth("bob@localhost", "alice", "alice-pw"));
    CHECK(sasl_condition(outcome(c)) == "invalid-authzid");
  }
  SECTION("SCRAM, own bare JID: allowed") {
    auto ok = c.authenticate_scram("SCRAM-SHA-256", "alice", "alice-pw", "n,a=alice@localhost,", "");
    CHECK(ok.is("success", ns::sasl));
    bind_and_ping(c, "alice@localhost");
  }
  SECTION("SCRAM, another user's JID: refused") {
    auto refused = c.authenticate_scram("SCRAM-SHA-256", "alice", "alice-pw", "n,a=bob@localhost,", "");
    CHECK(sasl_condition(refused) == "invalid-authzid");
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Storage of credentials

TEST_CASE("auth: passwords are stored only as SCRAM data", "[auth]") {
  TestServer server;
  const std::string password = "Tr0ub4dor&3-horse-staple";
  server.add_user("carol", password);
  server.add_user("dave", password);
  const std::string db = server.dir() + "/data/chatgroup.sqlite";
  auto stored = [&](const std::string& user) {
    auto [status, out] = run_program(
        {"/usr/bin/sqlite3", db, "SELECT hex(value) FROM keyval WHERE store='accounts' AND user='" + user + "'"});
    INFO(out);
    REQUIRE(status == 0);
    return unhex(out.substr(0, out.find('\n')));
  };
  const std::string carol = stored("carol");
  const std::string dave = stored("dave");
  INFO("carol: " << carol);
  REQUIRE(!carol.empty());
  // No trace of the password, in clear or in base64, in the value or anywhere in the data directory.
  CHECK(carol.find(password) == std::string::npos);
  CHECK(carol.find(base64(password)) == std::string::npos);
  for (const auto& entry : fs::directory_iterator(server.dir() + "/data")) {
    INFO(entry.path());
    CHECK(read_all(entry.path()).find(password) == std::string::npos);
  }
  // One line per hash: "scram-sha-256 <iterations> <b64 salt> <b64 StoredKey> <b64 ServerKey>", and the keys are
  // the ones RFC 5802 derives from the password.
  std::map<std::string, const EVP_MD*> hashes{
      {"scram-sha-1", EVP_sha1()}, {"scram-sha-256", EVP_sha256()}, {"scram-sha-512", EVP_sha512()}};
  std::set<std::string> seen;
  std::stringstream lines(carol);
  std::string line;
  while (std::getline(lines, line)) {
    std::stringstream fields(line);
    std::string name, salt_b64, stored_b64, server_b64;
    int iterations = 0;
    fields >> name >> iterations >> salt_b64 >> stored_b64 >> server_b64;
    INFO(line);
    REQUIRE(hashes.count(name) == 1);
    seen.insert(name);
    CHECK(iterations >= 4096);
    const EVP_MD* md = hashes[name];
    const std::string salt = unbase64(salt_b64);
    CHECK(salt.size() >= 16);
    std::string salted(static_cast<std::size_t>(EVP_MD_get_size(md)), '\0');
    PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                      reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()), iterations,
                      md, static_cast<int>(salted.size()), reinterpret_cast<unsigned char*>(salted.data()));
    CHECK(unbase64(stored_b64) == sha(md, hmac(md, salted, "Client Key")));
    CHECK(unbase64(server_b64) == hmac(md, salted, "Server Key"));
    // A fresh salt per account: the same password gives different data.
    CHECK(dave.find(salt_b64) == std::string::npos);
  }
  CHECK(seen.size() == 3);
  // And the stored data is what the server logs in with.
  server.start();
  RawClient c;
  secured(c, server.port());
  CHECK(c.authenticate("SCRAM-SHA-512", "carol", password).is("success", ns::sasl));
}

TEST_CASE("auth: auth.scram_iterations applies to new passwords", "[auth]") {
  TestServer server(ServerOptions().set("auth", "scram_iterations", "5000"));
  server.add_user("erin", "erin-pw");
  auto [status, out] = run_program({"/usr/bin/sqlite3", server.dir() + "/data/chatgroup.sqlite",
                                    "SELECT hex(value) FROM keyval WHERE store='accounts' AND user='erin'"});
  REQUIRE(status == 0);
  const std::string value = unhex(out.substr(0, out.find('\n')));
  INFO(value);
  CHECK(value.find("scram-sha-256 5000 ") != std::string::npos);
  server.start();
  RawClient c;
  secured(c, server.port());
  CHECK(c.authenticate("SCRAM-SHA-256", "erin", "erin-pw").is("success", ns::sasl));
}

TEST_CASE("auth: the username is prepared like a localpart, the password with SASLprep", "[auth]") {
  ServerOptions opts;
  opts.users.emplace("alice", "alice-pw");
  // "pässword" with U+00E4 precomposed, and a no-break space (SASLprep maps it to a space).
  opts.users.emplace("carol", "p\xC3\xA4ss word");
  TestServer server(opts);
  server.start();
  SECTION("an upper-case username (nodeprep case-folds it)") {
    RawClient c;
    secured(c, server.port());
    c.send(plain_auth("", "ALICE", "alice-pw"));
    CHECK(outcome(c).is("success", ns::sasl));
    bind_and_ping(c, "alice@localhost");
  }
  SECTION("a password in another Unicode normal form (decomposed ä, no-break space)") {
    RawClient c;
    secured(c, server.port());
    c.send(plain_auth("", "carol", "pa\xCC\x88ss\xC2\xA0word"));
    CHECK(outcome(c).is("success", ns::sasl));
    bind_and_ping(c, "carol@localhost");
  }
  SECTION("SCRAM with an upper-case username") {
    RawClient c;
    secured(c, server.port());
    CHECK(c.authenticate("SCRAM-SHA-256", "Alice", "alice-pw").is("success", ns::sasl));
    bind_and_ping(c, "alice@localhost");
  }
}

TEST_CASE("auth: no tls-exporter on TLS 1.2 without the extended master secret (RFC 9266 §3)", "[auth]") {
  TestServer server(with_users({}));
  server.start();
  RawClient c;
  c.connect(server.port());
  c.open_stream();
  REQUIRE(c.next_element());
  c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  REQUIRE(c.next_element());
  c.start_tls_with([](SSL_CTX* ctx) {
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_EXTENDED_MASTER_SECRET);
  });
  REQUIRE(SSL_version(c.ssl()) == TLS1_2_VERSION);
  REQUIRE(SSL_get_extms_support(c.ssl()) == 0);
  c.open_stream();
  auto features = c.next_element();
  REQUIRE(features);
  std::vector<std::string> cbs;
  if (const auto* cb = features->child("sasl-channel-binding", ns::sasl_cb)) {
    for (const auto* b : cb->children("channel-binding", ns::sasl_cb)) {
      cbs.emplace_back(b->attr("type"));
    }
  }
  // RFC 9266 §3: on TLS 1.2, tls-exporter is only a channel binding with the extended master secret (RFC 7627);
  // without it a man in the middle can give both of its connections the same exporter value (triple handshake).
  CHECK_FALSE(contains(cbs, "tls-exporter"));
  CHECK(contains(cbs, "tls-server-end-point"));
  auto refused =
      c.authenticate_scram("SCRAM-SHA-256-PLUS", "alice", "alice-pw", "p=tls-exporter,,", client_tls_exporter(c.ssl()));
  CHECK(sasl_condition(refused) == "not-authorized");
  CHECK(c.authenticate("SCRAM-SHA-256-PLUS", "alice", "alice-pw", "tls-server-end-point").is("success", ns::sasl));
}
