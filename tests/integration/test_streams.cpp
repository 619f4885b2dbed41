// RFC 6120 streams, STARTTLS and the direct TLS port (XEP-0368) against the real chatgroupd: stream headers and
// features at each stage, every stream error of §4.9.3 that a client can provoke (each case also checks that an
// innocent client already logged in keeps being served), keepalives, closing, pipelining, TLS versions, and the
// certificate reload on SIGHUP.
#include "tests/integration/harness.hpp"

#include <catch2/catch.hpp>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace it;
using cg::xml::StreamEvent;
namespace ns = cg::xml::ns;
namespace fs = std::filesystem;

namespace {

const std::string kStreamNs = "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'";

std::string ping_xml(const std::string& id) {
  return "<iq type='get' id='" + id + "' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>";
}

bool answers_ping(RawClient& c, const std::string& id) {
  auto r = c.iq(ping_xml(id), id);
  return r && r->attr("type") == "result";
}

ServerOptions with_users(ServerOptions o) {
  o.users.emplace("alice", "alice-pw");
  o.users.emplace("bob", "bob-pw");
  return o;
}

// A server with two accounts, and alice logged in as an innocent bystander: whatever a misbehaving client does to
// its own stream, the bystander's stream must go on (checked at the end of each stream error case).
struct Fixture {
  TestServer server;
  RawClient bystander;
  explicit Fixture(ServerOptions opts = {}) : server(with_users(std::move(opts))) {
    server.start();
    bystander.login(server.port(), "alice", "alice-pw", "bystander");
  }
  void check_bystander() {
    INFO("the logged-in bystander still gets answers after the other client was thrown out");
    CHECK(answers_ping(bystander, "still-there"));
  }
  // Whether a message reached the bystander. Call after check_bystander(): a message routed before the bad
  // client's stream error was queued to the bystander before the ping's answer, so it is among the elements the
  // ping's wait skipped.
  bool bystander_got_message() {
    auto is_message = is_stanza("message");
    return std::any_of(bystander.skipped.begin(), bystander.skipped.end(), is_message) ||
           bystander.wait_for(is_message, 0ms).has_value();
  }
};

// The response stream header (RFC 6120 §4.7): from the served domain, a fresh id, version 1.0, a language.
void check_header(const StreamEvent& ev) {
  REQUIRE(ev.kind == StreamEvent::Kind::Open);
  CHECK(ev.element.attr("from") == "localhost");
  CHECK(!ev.element.attr("id").empty());
  CHECK(ev.element.attr("version") == "1.0");
  CHECK(!ev.element.attr("xml:lang").empty());
  CHECK(ev.content_ns == ns::client);
}

// RFC 6120 §4.9.1.1: the stream error, then the closing </stream> tag, then the TCP connection is terminated.
void check_stream_error(RawClient& c, const std::string& condition) {
  INFO("received: " << c.raw_received());
  REQUIRE(c.wait_closed(10s));
  CHECK(c.stream_error() == condition);
  const std::string& raw = c.raw_received();
  auto error = raw.find("<stream:error>");
  REQUIRE(error != std::string::npos);
  static constexpr std::string_view kEnd = "</stream:error>";
  auto end = raw.find(kEnd, error);
  REQUIRE(end != std::string::npos);
  CHECK(raw.substr(end + kEnd.size()) == "</stream:stream>");
}

// RFC 6120 §4.9.1.2: an error in the client's stream header still gets the server's header first.
void check_header_then_error(RawClient& c, const std::string& condition) {
  auto ev = c.next();
  INFO("received: " << c.raw_received());
  REQUIRE(ev);
  check_header(*ev);
  check_stream_error(c, condition);
}

// A client that has opened a stream and read the features (no TLS yet).
void open_plain(RawClient& c, int port) {
  c.connect(port);
  c.open_stream();
  auto header = c.next();
  REQUIRE(header);
  check_header(*header);
  REQUIRE(c.next_element());
}

// The SHA-256 digest of the certificate the server presented.
std::string peer_cert_digest(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  REQUIRE(cert != nullptr);
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(cert, EVP_sha256(), buf, &len);
  X509_free(cert);
  return std::string(reinterpret_cast<char*>(buf), len);
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

std::vector<std::string> cb_types_of(const Element& features) {
  std::vector<std::string> out;
  if (const auto* cb = features.child("sasl-channel-binding", ns::sasl_cb)) {
    for (const auto* c : cb->children("channel-binding", ns::sasl_cb)) {
      out.emplace_back(c->attr("type"));
    }
  }
  return out;
}

std::string base64(const std::string& raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// A ping nested `depth` elements deep: <iq/> is level 1, <ping/> level 2, then <x/> elements.
std::string nested_iq(const std::string& id, std::size_t depth) {
  std::string open;
  std::string close;
  for (std::size_t i = 2; i < depth; ++i) {
    open += "<x>";
    close += "</x>";
  }
  return "<iq type='get' id='" + id + "' to='localhost'><ping xmlns='urn:xmpp:ping'>" + open + close + "</ping></iq>";
}

// A scratch directory removed at the end of the test (unless CG_KEEP_TEST_DIRS is set).
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/cg-it-certs-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    if (std::getenv("CG_KEEP_TEST_DIRS") == nullptr) {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  }
};

// A new self-signed EC P-256 certificate for localhost, written atomically (rename) over cert/key.
void make_cert(const std::string& dir, const std::string& cert, const std::string& key) {
  const std::string tmp_cert = dir + "/new.crt";
  const std::string tmp_key = dir + "/new.key";
  auto [status, out] = run_program({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", tmp_key, "-out", tmp_cert, "-days",
                                    "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"});
  INFO(out);
  REQUIRE(status == 0);
  fs::rename(tmp_key, key);
  fs::rename(tmp_cert, cert);
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------
// Headers and features

TEST_CASE("streams: header and features before TLS, after TLS and after SASL", "[streams]") {
  TestServer server(with_users({}));
  server.start();
  RawClient c;
  c.connect(server.port());
  c.open_stream();
  auto header = c.next();
  REQUIRE(header);
  check_header(*header);
  const std::string first_id(header->element.attr("id"));

  // RFC 6120 §5.3.1: TLS is mandatory-to-negotiate, so the features hold <starttls><required/></starttls> and
  // nothing else.
  auto features = c.next_element();
  REQUIRE(features);
  CHECK(features->is("features", ns::streams));
  CHECK(features->element_count() == 1);
  const Element* starttls = features->child("starttls", ns::tls);
  REQUIRE(starttls);
  CHECK(starttls->child("required", ns::tls));

  c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  auto proceed = c.next_element();
  REQUIRE(proceed);
  CHECK(proceed->is("proceed", ns::tls));
  c.start_tls();
  c.open_stream();
  header = c.next();
  REQUIRE(header);
  check_header(*header);
  // RFC 6120 §4.7.3: every response stream header carries a new stream id (also after a restart).
  CHECK(header->element.attr("id") != first_id);
  features = c.next_element();
  REQUIRE(features);
  // After TLS: SASL (PLAIN now allowed, -PLUS with channel binding) and XEP-0440's channel-binding types.
  CHECK_FALSE(features->child("starttls", ns::tls));
  auto mechs = mechanisms_of(*features);
  CHECK(contains(mechs, "SCRAM-SHA-256"));
  CHECK(contains(mechs, "SCRAM-SHA-256-PLUS"));
  CHECK(contains(mechs, "SCRAM-SHA-1"));
  CHECK(contains(mechs, "PLAIN"));
  auto cbs = cb_types_of(*features);
  CHECK(contains(cbs, "tls-exporter"));
  CHECK(contains(cbs, "tls-server-end-point"));
  // tls-unique is not defined for TLS 1.3 (RFC 9266 §3), which this client negotiated.
  CHECK(SSL_version(c.ssl()) == TLS1_3_VERSION);
  CHECK_FALSE(contains(cbs, "tls-unique"));
  CHECK_FALSE(features->child("bind", ns::bind));

  REQUIRE(c.authenticate("SCRAM-SHA-256", "alice", "alice-pw").name() == "success");
  c.open_stream();
  header = c.next();
  REQUIRE(header);
  check_header(*header);
  features = c.next_element();
  REQUIRE(features);
  // After SASL: resource binding (RFC 6120 §7) and the optional legacy session (RFC 6121 Appendix E), nothing of
  // the earlier stages.
  CHECK(features->child("bind", ns::bind));
  if (const auto* session = features->child("session", "urn:ietf:params:xml:ns:xmpp-session")) {
    CHECK(session->child("optional", "urn:ietf:params:xml:ns:xmpp-session"));
  }
  CHECK_FALSE(features->child("mechanisms", ns::sasl));
  CHECK_FALSE(features->child("starttls", ns::tls));
  auto reply = c.iq("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r1</resource>"
                    "</bind></iq>",
                    "b");
  REQUIRE(reply);
  CHECK(reply->attr("type") == "result");
  CHECK(reply->child("bind", ns::bind)->child_text("jid") == "alice@localhost/r1");
  CHECK(answers_ping(c, "p1"));
}

// ---------------------------------------------------------------------------------------------------------------
// Stream errors (RFC 6120 §4.9.3), one condition per case

TEST_CASE("streams: not-well-formed for mismatched tags", "[streams][stream-error]") {
  Fixture f;
  RawClient bad;
  open_plain(bad, f.server.port());
  bad.send("<message to='alice@localhost/bystander'><body>hi</message></body>");
  check_stream_error(bad, "not-well-formed");
  f.check_bystander();
  CHECK_FALSE(f.bystander_got_message());
}

TEST_CASE("streams: not-well-formed for something that is not XML at all", "[streams][stream-error]") {
  Fixture f;
  RawClient bad;
  bad.connect(f.server.port());
  bad.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
  // The error is in what stands for the client's stream header: our header comes first.
  check_header_then_error(bad, "not-well-formed");
  f.check_bystander();
}

TEST_CASE("streams: not-well-formed for bytes that are not UTF-8", "[streams][stream-error]") {
  Fixture f;
  RawClient bad;
  bad.login(f.server.port(), "bob", "bob-pw", "bad");
  SECTION("an invalid continuation byte") {
    bad.send("<message to='alice@localhost/bystander'><body>caf\xC3\x28</body></message>");
  }
  SECTION("a lone 0xFF byte") {
    bad.send("<message to='alice@localhost/bystander'><body>\xFF</body></message>");
  }
  check_stream_error(bad, "not-well-formed");
  f.check_bystander();
  // Nothing of the broken stanza reached alice.
  CHECK_FALSE(f.bystander_got_message());
}

TEST_CASE("streams: predefined entities and character references are fine, an undefined entity is not-well-formed",
          "[streams][stream-error]") {
  Fixture f;
  RawClient bad;
  bad.login(f.server.port(), "bob", "bob-pw", "bad");
  // RFC 6120 §11.1 forbids entity declarations, not the five predefined entities or character references.
  bad.send("<message to='alice@localhost/bystander' id='ents'><body>&amp;&lt;&gt;&quot;&apos;&#65;&#x42;</body>"
           "</message>");
  auto got = f.bystander.wait_for(is_stanza("message", "id", "ents"));
  REQUIRE(got);
  CHECK(got->child_text("body") == "&<>\"'AB");
  // An entity nobody declared (and nobody may declare) is an error in the XML.
  bad.send("<message to='alice@localhost/bystander'><body>&lol;</body></message>");
  check_stream_error(bad, "not-well-formed");
  f.check_bystander();
  CHECK_FALSE(f.bystander_got_message());
}

TEST_CASE("streams: restricted-xml for a DOCTYPE before the stream header", "[streams][stream-error]") {
  Fixture f;
  RawClient bad;
  bad.connect(f.server.port());
  SECTION("a bare DOCTYPE") {
    bad.send("<?xml version='1.0'?><!DOCTYPE stream:stream><stream:stream to='localhost' version='1.0' " + kStreamNs +
             ">");
  }
  SECTION("entity declarations (billion laughs)") {
    std::string dtd = "<!DOCTYPE lolz [<!ENTITY lol 'lol'>";
    for (int i = 1; i < 10; ++i) {
      dtd += "<!ENTITY lol" + std::to_string(i) + " '";
      for (int j = 0; j < 10; ++j) {
        dtd += "&lol" + (i == 1 ? std::string() : std::to_string(i - 1)) + ";";
      }
      dtd += "'>";
    }
    dtd += "]>";
    bad.send("<?xml version='1.0'?>" + dtd + "<stream:stream to='localhost' version='1.0' " + kStreamNs +
             "><message to='alice@localhost/bystander'><body>&lol9;</body></message>");
  }
  check_header_then_error(bad, "restricted-xml");
  f.check_bystander();
}

TEST_CASE("streams: restricted-xml for a comment or a processing instruction", "[streams][stream-error]") {
  Fixture f;
  RawClient bad;
  bad.login(f.server.port(), "bob", "bob-pw", "bad");
  SECTION("a comment between stanzas") {
    bad.send("<!-- hello -->");
  }
  SECTION("a comment inside a stanza") {
    bad.send("<message to='alice@localhost/bystander'><body>a<!-- b -->c</body></message>");
  }
  SECTION("a processing instruction") {
    bad.send("<?php echo 1; ?>");
  }
  check_stream_error(bad, "restricted-xml");
  f.check_bystander();
  CHECK_FALSE(f.bystander_got_message());
}

TEST_CASE("streams: bad-namespace-prefix", "[streams][stream-error]") {
  Fixture f;
  RawClient bad;
  bad.connect(f.server.port());
  SECTION("a stanza with an unbound prefix") {
    bad.open_stream();
    REQUIRE(bad.next_element()); // features
    bad.send("<foo:message to='alice@localhost/bystander'><body>x</body></foo:message>");
    check_stream_error(bad, "bad-namespace-prefix");
  }
  SECTION("a stream element without the stream prefix") {
    bad.send("<?xml version='1.0'?><stream to='localhost' version='1.0' xmlns='http://etherx.jabber.org/streams'>");
    check_header_then_error(bad, "bad-namespace-prefix");
  }
  f.check_bystander();
}

TEST_CASE("streams: invalid-namespace", "[streams][stream-error]") {
  Fixture f;
  RawClient bad;
  bad.connect(f.server.port());
  SECTION("a wrong stream namespace") {
    bad.send("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
             "xmlns:stream='http://example.com/streams'>");
  }
  SECTION("jabber:server as the content namespace of a client stream") {
    bad.send("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:server' "
             "xmlns:stream='http://etherx.jabber.org/streams'>");
  }
  SECTION("no content namespace") {
    bad.send("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
             "xmlns:stream='http://etherx.jabber.org/streams'>");
  }
  check_header_then_error(bad, "invalid-namespace");
  f.check_bystander();
}

TEST_CASE("streams: host-unknown", "[streams][stream-error]") {
  Fixture f;
  RawClient bad;
  bad.connect(f.server.port());
  SECTION("a domain this server does not serve") {
    bad.open_stream("example.net");
  }
  SECTION("no 'to' at all") {
    bad.send("<?xml version='1.0'?><stream:stream version='1.0' " + kStreamNs + ">");
  }
  check_header_then_error(bad, "host-unknown");
  f.check_bystander();
}

TEST_CASE("streams: unsupported-version", "[streams][stream-error]") {
  Fixture f;
  RawClient bad;
  bad.connect(f.server.port());
  SECTION("version 0.9") {
    bad.open_stream("localhost", "version='0.9'");
  }
  SECTION("no version (pre-RFC 3920 stream)") {
    bad.open_stream("localhost", "");
  }
  SECTION("version 10.0") {
    bad.open_stream("localhost", "version='10.0'");
  }
  SECTION("version 2.0") {
    bad.open_stream("localhost", "version='2.0'");
  }
  check_header_then_error(bad, "unsupported-version");
  f.check_bystander();
}

TEST_CASE("streams: an error in a restarted stream's header also gets a new header first", "[streams][stream-error]") {
  Fixture f;
  RawClient bad;
  bad.connect(f.server.port());
  SECTION("after STARTTLS") {
    bad.open_stream();
    REQUIRE(bad.next_element());
    bad.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    REQUIRE(bad.next_element());
    bad.start_tls();
  }
  SECTION("after SASL") {
    bad.starttls_and_reopen();
    REQUIRE(bad.authenticate("SCRAM-SHA-256", "bob", "bob-pw").name() == "success");
  }
  // The restarted stream is a new stream (RFC 6120 §4.3.3): RFC 6120 §4.9.1.2 applies to its header as well.
  bad.open_stream("localhost", "version='0.9'");
  check_header_then_error(bad, "unsupported-version");
  f.check_bystander();
}

TEST_CASE("streams: a higher minor version, or leading zeros, are answered with version 1.0", "[streams]") {
  TestServer server(with_users({}));
  server.start();
  RawClient c;
  c.connect(server.port());
  // RFC 6120 §4.7.5: the receiving entity answers with the highest version it supports, and numbers are integers
  // whose leading zeros are ignored.
  SECTION("1.5") {
    c.open_stream("localhost", "version='1.5'");
  }
  SECTION("01.0") {
    c.open_stream("localhost", "version='01.0'");
  }
  SECTION("1.10") {
    c.open_stream("localhost", "version='1.10'");
  }
  auto header = c.next();
  REQUIRE(header);
  check_header(*header);
  auto features = c.next_element();
  REQUIRE(features);
  CHECK(features->child("starttls", ns::tls));
}

TEST_CASE("streams: not-authorized for stanzas before authentication or before bind", "[streams][stream-error]") {
  Fixture f;
  RawClient bad;
  bad.connect(f.server.port());
  SECTION("a message before TLS") {
    bad.open_stream();
    REQUIRE(bad.next_element());
  }
  SECTION("a message after TLS, before SASL") {
    bad.starttls_and_reopen();
  }
  SECTION("a message after SASL, before bind (RFC 6120 §7.1)") {
    bad.starttls_and_reopen();
    REQUIRE(bad.authenticate("SCRAM-SHA-256", "bob", "bob-pw").name() == "success");
    bad.open_stream();
    auto features = bad.next_element();
    REQUIRE(features);
    REQUIRE(features->child("bind", ns::bind));
  }
  bad.send("<message to='alice@localhost/bystander' type='chat'><body>sneaky</body></message>");
  check_stream_error(bad, "not-authorized");
  f.check_bystander();
  CHECK_FALSE(f.bystander_got_message());
}

TEST_CASE("streams: policy-violation for a stanza over c2s.max_stanza_size", "[streams][stream-error]") {
  Fixture f(ServerOptions().set("c2s", "max_stanza_size", "1024"));
  RawClient bad;
  bad.login(f.server.port(), "bob", "bob-pw", "bad");
  // Just under the limit is fine …
  const std::string id(900, 'i');
  CHECK(answers_ping(bad, id));
  // … over it is not.
  bad.send("<message to='alice@localhost/bystander'><body>" + std::string(2000, 'x') + "</body></message>");
  check_stream_error(bad, "policy-violation");
  f.check_bystander();
  CHECK_FALSE(f.bystander_got_message());
}

TEST_CASE("streams: policy-violation for nesting deeper than c2s.max_depth", "[streams][stream-error]") {
  Fixture f(ServerOptions().set("c2s", "max_depth", "8"));
  RawClient bad;
  bad.login(f.server.port(), "bob", "bob-pw", "bad");
  // Eight levels (the stanza itself is level 1) are accepted …
  CHECK(bad.iq(nested_iq("deep8", 8), "deep8"));
  // … nine are not.
  bad.send(nested_iq("deep9", 9));
  check_stream_error(bad, "policy-violation");
  f.check_bystander();
}

TEST_CASE("streams: policy-violation for more than c2s.max_preauth_bytes before authentication",
          "[streams][stream-error]") {
  Fixture f(ServerOptions().set("c2s", "max_preauth_bytes", "4096"));
  RawClient bad;
  open_plain(bad, f.server.port());
  // An element that never ends, well under max_stanza_size: only the pre-authentication budget stops it.
  bad.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + std::string(5000, 'A'));
  check_stream_error(bad, "policy-violation");
  f.check_bystander();
}

TEST_CASE("streams: policy-violation for connections over c2s.max_connections_per_ip", "[streams][stream-error]") {
  Fixture f(ServerOptions().set("c2s", "max_connections_per_ip", "2"));
  // The bystander is connection 1; connection 2 is allowed, connection 3 is refused.
  RawClient second;
  open_plain(second, f.server.port());
  RawClient third;
  third.connect(f.server.port());
  third.open_stream();
  check_header_then_error(third, "policy-violation");
  f.check_bystander();
  // The second connection was not disturbed.
  second.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  auto proceed = second.next_element();
  REQUIRE(proceed);
  CHECK(proceed->name() == "proceed");
}

TEST_CASE("streams: unsupported-stanza-type for an unknown top-level element after bind", "[streams][stream-error]") {
  Fixture f;
  RawClient bad;
  bad.login(f.server.port(), "bob", "bob-pw", "bad");
  SECTION("in jabber:client") {
    bad.send("<foo xmlns='jabber:client'/>");
  }
  SECTION("in another namespace") {
    bad.send("<query xmlns='urn:example:unknown'/>");
  }
  check_stream_error(bad, "unsupported-stanza-type");
  f.check_bystander();
}

TEST_CASE("streams: connection-timeout for connections that never authenticate", "[streams][stream-error][slow]") {
  Fixture f(ServerOptions().set("c2s", "auth_timeout", "5"));
  const auto start = Clock::now();
  // All at once, so that the case waits for c2s.auth_timeout only once.
  RawClient plain; // a stream, no TLS
  open_plain(plain, f.server.port());
  RawClient tls; // a stream inside direct TLS
  tls.connect(f.server.tls_port());
  tls.start_tls();
  tls.open_stream();
  REQUIRE(tls.next_element());
  RawClient unbound; // authenticated, never binds (the timeout covers authentication and binding)
  unbound.connect(f.server.port());
  unbound.starttls_and_reopen();
  REQUIRE(unbound.authenticate("SCRAM-SHA-256", "bob", "bob-pw").name() == "success");
  unbound.open_stream();
  REQUIRE(unbound.next_element());
  RawClient no_client_hello; // the direct TLS port, and not a byte sent
  no_client_hello.connect(f.server.tls_port());
  RawClient stalled_starttls; // <proceed/> received, then no TLS handshake
  stalled_starttls.connect(f.server.port());
  stalled_starttls.open_stream();
  REQUIRE(stalled_starttls.next_element());
  stalled_starttls.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  REQUIRE(stalled_starttls.next_element());

  REQUIRE(plain.wait_closed(15s));
  CHECK(Clock::now() - start >= 4500ms);
  // RFC 6120 §4.9.3.4 connection-timeout, on each stream.
  check_stream_error(plain, "connection-timeout");
  check_stream_error(tls, "connection-timeout");
  check_stream_error(unbound, "connection-timeout");
  // Without TLS established there is no stream to put an error on, but the connection is dropped all the same:
  // a silent connection must not hold its slot (and its place in c2s.max_connections_per_ip) for ever.
  CHECK(no_client_hello.wait_closed(5s));
  CHECK(stalled_starttls.wait_closed(5s));
  CHECK(stalled_starttls.stream_error().empty());
  // The bystander logged in (and bound) before the timeout: it is not affected by auth_timeout.
  f.check_bystander();
}

TEST_CASE("streams: unsupported-encoding for a stream that is not UTF-8", "[streams][stream-error]") {
  Fixture f;
  RawClient bad;
  bad.connect(f.server.port());
  SECTION("ISO-8859-1 in the XML declaration") {
    bad.send("<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream to='localhost' version='1.0' " + kStreamNs +
             ">");
  }
  SECTION("UTF-16 (with a byte order mark)") {
    const std::string header = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' " + kStreamNs + ">";
    std::string utf16 = "\xFF\xFE";
    for (char ch : header) {
      utf16 += ch;
      utf16 += '\0';
    }
    bad.send(utf16);
  }
  check_header_then_error(bad, "unsupported-encoding");
  f.check_bystander();
}

TEST_CASE("streams: bad-format for text between stanzas", "[streams][stream-error]") {
  Fixture f;
  RawClient bad;
  bad.login(f.server.port(), "bob", "bob-pw", "bad");
  bad.send("hello<message to='alice@localhost/bystander'><body>x</body></message>");
  check_stream_error(bad, "bad-format");
  f.check_bystander();
}

// ---------------------------------------------------------------------------------------------------------------
// Keepalives, closing, pipelining

TEST_CASE("streams: whitespace keepalives between stanzas are accepted", "[streams]") {
  TestServer server(with_users(ServerOptions().set("c2s", "max_stanza_size", "1024")));
  server.start();
  RawClient c;
  c.login(server.port(), "alice", "alice-pw");
  // RFC 6120 §4.6.1: whitespace between stanzas is a keepalive. Together they are far more than the stanza size
  // limit; none of them is a stanza.
  for (int i = 0; i < 8; ++i) {
    c.send(std::string(700, ' ') + "\n\r\t\n");
    REQUIRE(answers_ping(c, "ka" + std::to_string(i)));
  }
  // One run of whitespace longer than the limit is still no stanza.
  c.send(std::string(3000, ' '));
  REQUIRE(answers_ping(c, "ka-long"));
  c.send(std::string(600, '\n') + ping_xml("ka-a") + std::string(600, ' ') + ping_xml("ka-b") + "\n");
  auto a = c.wait_for(is_stanza("iq", "id", "ka-a"));
  auto b = c.wait_for(is_stanza("iq", "id", "ka-b"));
  CHECK(a);
  CHECK(b);
  CHECK(c.stream_error().empty());
}

TEST_CASE("streams: the client closes the stream, the server closes its own and the connection", "[streams]") {
  TestServer server(with_users({}));
  server.start();
  RawClient c;
  SECTION("after bind") {
    c.login(server.port(), "alice", "alice-pw");
  }
  SECTION("before TLS") {
    open_plain(c, server.port());
  }
  c.send("</stream:stream>");
  // RFC 6120 §4.4: the other side answers with its closing tag and terminates the TCP connection.
  auto ev = c.next();
  REQUIRE(ev);
  CHECK(ev->kind == StreamEvent::Kind::Close);
  CHECK(c.wait_closed(10s));
  CHECK(c.stream_error().empty());
}

TEST_CASE("streams: a stream header pipelined after <auth/> in the same write is processed", "[streams]") {
  TestServer server(with_users({}));
  server.start();
  RawClient c;
  c.connect(server.port());
  c.starttls_and_reopen();
  const std::string b64 = base64(std::string("\0alice\0alice-pw", 15));
  // One send(): the server must restart its parser exactly after </auth> (RFC 6120 §6.4.6) and keep the rest.
  c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64 +
         "</auth><?xml version='1.0'?><stream:stream to='localhost' version='1.0' " + kStreamNs + ">");
  auto success = c.next_element_then_restart();
  INFO("received: " << c.raw_received());
  REQUIRE(success);
  REQUIRE(success->is("success", ns::sasl));
  auto header = c.next();
  REQUIRE(header);
  check_header(*header);
  auto features = c.next_element();
  REQUIRE(features);
  CHECK(features->child("bind", ns::bind));
  auto reply = c.iq("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>", "b");
  REQUIRE(reply);
  CHECK(reply->attr("type") == "result");
  CHECK(answers_ping(c, "p"));
}

// ---------------------------------------------------------------------------------------------------------------
// TLS

TEST_CASE("streams: direct TLS port (XEP-0368) with and without ALPN", "[streams][tls]") {
  TestServer server(with_users({}));
  server.start();
  RawClient c;
  c.connect(server.tls_port());
  std::string expected_alpn;
  SECTION("ALPN xmpp-client") {
    c.start_tls(0, "xmpp-client");
    expected_alpn = "xmpp-client";
  }
  SECTION("no ALPN") {
    c.start_tls();
  }
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(c.ssl(), &alpn, &alpn_len);
  CHECK((alpn == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(alpn), alpn_len)) ==
        expected_alpn);
  // TLS is already up: the first features offer SASL at once, and no STARTTLS.
  c.open_stream();
  auto header = c.next();
  REQUIRE(header);
  check_header(*header);
  auto features = c.next_element();
  REQUIRE(features);
  CHECK_FALSE(features->child("starttls", ns::tls));
  CHECK(contains(mechanisms_of(*features), "SCRAM-SHA-256"));
  CHECK(contains(mechanisms_of(*features), "PLAIN"));
  CHECK(contains(cb_types_of(*features), "tls-exporter"));
  REQUIRE(c.authenticate("SCRAM-SHA-256-PLUS", "alice", "alice-pw", "tls-exporter").name() == "success");
  CHECK(c.bind("direct").rfind("alice@localhost/direct", 0) == 0);
  CHECK(answers_ping(c, "p"));
}

TEST_CASE("streams: a TLS 1.2 client is served, a TLS 1.1 client is refused", "[streams][tls]") {
  TestServer server(with_users({}));
  server.start();
  SECTION("TLS 1.2 over STARTTLS") {
    RawClient c;
    c.connect(server.port());
    auto features = c.starttls_and_reopen("localhost", TLS1_2_VERSION);
    CHECK(SSL_version(c.ssl()) == TLS1_2_VERSION);
    // RFC 9266 §3: tls-unique is defined on TLS 1.2; tls-exporter needs the extended master secret, which
    // OpenSSL negotiates.
    CHECK(contains(cb_types_of(features), "tls-unique"));
    CHECK(contains(cb_types_of(features), "tls-exporter"));
    REQUIRE(c.authenticate("SCRAM-SHA-256", "alice", "alice-pw").name() == "success");
    c.bind();
    CHECK(answers_ping(c, "p"));
  }
  // A client that really offers TLS 1.1 (OpenSSL 3 refuses < 1.2 below security level 0, so lower it, or the
  // handshake would fail on the client side without asking the server).
  auto tls11_only = [](SSL_CTX* ctx) {
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION);
  };
  SECTION("TLS 1.1 over STARTTLS") {
    RawClient c;
    c.connect(server.port());
    c.open_stream();
    REQUIRE(c.next_element());
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    REQUIRE(c.next_element());
    try {
      c.start_tls_with(tls11_only);
      FAIL("the TLS 1.1 handshake succeeded");
    } catch (const std::runtime_error& e) {
      // The server's alert, not a local refusal.
      CHECK_THAT(e.what(), Catch::Contains("alert protocol version"));
    }
  }
  SECTION("TLS 1.1 on the direct TLS port") {
    RawClient c;
    c.connect(server.tls_port());
    try {
      c.start_tls_with(tls11_only);
      FAIL("the TLS 1.1 handshake succeeded");
    } catch (const std::runtime_error& e) {
      CHECK_THAT(e.what(), Catch::Contains("alert protocol version"));
    }
  }
  // The server is still fine.
  RawClient after;
  after.login(server.port(), "alice", "alice-pw");
  CHECK(answers_ping(after, "p"));
}

TEST_CASE("streams: tls.min_version = 1.3 refuses TLS 1.2 clients", "[streams][tls]") {
  TestServer server(with_users(ServerOptions().set("tls", "min_version", "\"1.3\"")));
  server.start();
  RawClient old_client;
  old_client.connect(server.tls_port());
  try {
    old_client.start_tls_with([](SSL_CTX* ctx) { SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION); });
    FAIL("the TLS 1.2 handshake succeeded");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("alert protocol version"));
  }
  RawClient c;
  c.connect(server.port());
  c.starttls_and_reopen();
  CHECK(SSL_version(c.ssl()) == TLS1_3_VERSION);
  REQUIRE(c.authenticate("SCRAM-SHA-256", "alice", "alice-pw").name() == "success");
}

TEST_CASE("streams: SIGHUP reloads the certificate without dropping sessions", "[streams][tls]") {
  TempDir certs;
  const std::string cert = certs.path + "/server.crt";
  const std::string key = certs.path + "/server.key";
  make_cert(certs.path, cert, key);
  TestServer server(
      with_users(ServerOptions().set("tls", "certificate", "\"" + cert + "\"").set("tls", "key", "\"" + key + "\"")));
  server.start();

  RawClient old_client;
  old_client.login(server.port(), "alice", "alice-pw");
  const std::string old_digest = peer_cert_digest(old_client.ssl());
  RawClient direct_before;
  direct_before.connect(server.tls_port());
  direct_before.start_tls();
  CHECK(peer_cert_digest(direct_before.ssl()) == old_digest);

  make_cert(certs.path, cert, key);
  server.signal(SIGHUP);
  REQUIRE(wait_for_log(server, "SIGHUP: reloaded the TLS certificate"));

  // The session made with the old certificate goes on.
  CHECK(answers_ping(old_client, "after-hup"));
  // New connections, STARTTLS and direct TLS, get the new certificate.
  RawClient fresh;
  fresh.login(server.port(), "bob", "bob-pw");
  const std::string new_digest = peer_cert_digest(fresh.ssl());
  CHECK(new_digest != old_digest);
  RawClient direct_after;
  direct_after.connect(server.tls_port());
  direct_after.start_tls();
  CHECK(peer_cert_digest(direct_after.ssl()) == new_digest);
  CHECK(answers_ping(fresh, "new"));

  // A broken certificate on the next SIGHUP: the current one stays in use.
  std::ofstream(cert) << "not a certificate\n";
  server.signal(SIGHUP);
  REQUIRE(wait_for_log(server, "SIGHUP: keeping the previous TLS certificate"));
  RawClient again;
  again.connect(server.tls_port());
  again.start_tls();
  CHECK(peer_cert_digest(again.ssl()) == new_digest);
  CHECK(answers_ping(old_client, "after-bad-hup"));
}
