// Server-to-server against the real chatgroupd: two ChatGroup servers federating on loopback (SASL EXTERNAL with
// certificates from a test CA, dialback with untrusted self-signed ones), bounces for unreachable domains, and
// hostile peers speaking raw XML to the s2s port. Interop with Prosody and ejabberd is in tests/interop/.
#include "tests/integration/harness.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <stdlib.h>

using namespace it;
namespace fs = std::filesystem;

namespace {

// A scratch directory for the test CA, removed at the end (unless CG_KEEP_TEST_DIRS is set).
struct CaDir {
  fs::path path;
  CaDir() {
    char tmpl[] = "/tmp/cg-it-s2s-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~CaDir() {
    if (std::getenv("CG_KEEP_TEST_DIRS") == nullptr) {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  }
};

// A CA and a certificate signed by it for each domain (openssl CLI, made at test time).
struct TestCa {
  fs::path dir;
  explicit TestCa(const fs::path& where, const std::vector<std::string>& domains) : dir(where) {
    fs::create_directories(dir);
    run({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days",
         "2", "-subj", "/CN=ChatGroup test CA", "-keyout", (dir / "ca.key").string(), "-out",
         (dir / "ca.crt").string()});
    for (const auto& d : domains) {
      const auto key = (dir / (d + ".key")).string();
      const auto csr = (dir / (d + ".csr")).string();
      const auto ext = dir / (d + ".ext");
      {
        std::ofstream f(ext);
        f << "subjectAltName=DNS:" << d << ",DNS:*." << d << "\n";
      }
      run({"/usr/bin/openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
           "/CN=" + d, "-keyout", key, "-out", csr});
      run({"/usr/bin/openssl", "x509", "-req", "-in", csr, "-CA", (dir / "ca.crt").string(), "-CAkey",
           (dir / "ca.key").string(), "-CAcreateserial", "-days", "2", "-extfile", ext.string(), "-out",
           (dir / (d + ".crt")).string()});
    }
  }
  std::string ca() const { return (dir / "ca.crt").string(); }
  std::string cert(const std::string& d) const { return (dir / (d + ".crt")).string(); }
  std::string key(const std::string& d) const { return (dir / (d + ".key")).string(); }
  static void run(const std::vector<std::string>& argv) {
    auto [status, out] = run_program(argv);
    INFO(out);
    REQUIRE(status == 0);
  }
};

std::string quoted(const std::string& s) {
  return "\"" + s + "\"";
}

// A server for `domain` with an s2s listener on 127.0.0.1:`s2s_port` and a static route to `peer_domain`.
ServerOptions federated(const std::string& domain, int s2s_port, const std::string& peer_domain, int peer_port,
                        const TestCa* ca, std::map<std::string, std::string> users) {
  ServerOptions o;
  o.users = std::move(users);
  o.domain = domain;
  o.set("server", "hosts", "[" + quoted(domain) + "]");
  o.set("s2s", "enabled", "true");
  o.set("s2s", "port", std::to_string(s2s_port));
  o.set("s2s", "routes", "[" + quoted(peer_domain + "=127.0.0.1:" + std::to_string(peer_port)) + "]");
  o.set("s2s", "system_trust", "false");
  if (ca != nullptr) {
    o.set("tls", "certificate", quoted(ca->cert(domain)));
    o.set("tls", "key", quoted(ca->key(domain)));
    o.set("s2s", "ca_file", quoted(ca->ca()));
  }
  return o;
}

// A line of `chatgroupctl s2s` whose first columns are `cells`.
bool contains_row(const std::string& listing, const std::vector<std::string>& cells) {
  std::istringstream lines(listing);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> row;
    for (std::string w; words >> w;) {
      row.push_back(w);
    }
    if (row.size() >= cells.size() && std::equal(cells.begin(), cells.end(), row.begin())) {
      return true;
    }
  }
  return false;
}

auto message_with_body(const std::string& body) {
  return [body](const Element& e) { return e.name() == "message" && e.child_text("body") == body; };
}

// Messages both ways, an IQ to the remote server, and the remote server's error for a user it does not have.
void exchange(TestServer& a, TestServer& b, const std::string& ca_a, const std::string& ca_b) {
  StropheClient alice("alice@a.test/phone", "alice-pw");
  REQUIRE(alice.connect(a.port(), ca_a));
  StropheClient bob("bob@b.test/laptop", "bob-pw");
  REQUIRE(bob.connect(b.port(), ca_b));
  // Available, so that messages to the bare JID are delivered (not stored offline); the ping's answer shows the
  // presence has been handled.
  for (auto* c : {&alice, &bob}) {
    c->send("<presence/>");
    REQUIRE(c->iq("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>", "sync"));
  }

  alice.send("<message to='bob@b.test/laptop' type='chat' id='m1'><body>hello across servers</body></message>");
  auto m1 = bob.wait_for(message_with_body("hello across servers"), 20s);
  REQUIRE(m1);
  CHECK(m1->attr("from") == "alice@a.test/phone");

  bob.send("<message to='alice@a.test' type='chat' id='m2'><body>hello back</body></message>");
  auto m2 = alice.wait_for(message_with_body("hello back"), 20s);
  REQUIRE(m2);
  CHECK(m2->attr("from") == "bob@b.test/laptop");

  // RFC 6120 §10.3: an IQ to the remote domain is answered by the remote server (XEP-0092 here).
  auto version = alice.iq("<iq type='get' to='b.test' id='v1'><query xmlns='jabber:iq:version'/></iq>", "v1", 20s);
  REQUIRE(version);
  CHECK(version->attr("type") == "result");
  CHECK(version->attr("from") == "b.test");

  // A user the remote server does not have: its error comes back over the federation (RFC 6121 §8.5.1).
  alice.send("<message to='nobody@b.test' type='chat' id='m3'><body>anyone?</body></message>");
  auto err = alice.wait_for(is_stanza("message", "id", "m3"), 20s);
  REQUIRE(err);
  CHECK(err->attr("type") == "error");
  CHECK(error_condition(*err) == "service-unavailable");
  CHECK(err->attr("from") == "nobody@b.test");
}

} // namespace

TEST_CASE("s2s: certificates from a trusted CA — SASL EXTERNAL both ways, messages, IQs and remote errors", "[s2s]") {
  CaDir tmp;
  TestCa ca(tmp.path / "ca", {"a.test", "b.test"});
  const int pa = free_port();
  const int pb = free_port();
  TestServer a(federated("a.test", pa, "b.test", pb, &ca, {{"alice", "alice-pw"}}));
  TestServer b(federated("b.test", pb, "a.test", pa, &ca, {{"bob", "bob-pw"}}));
  a.start();
  b.start();
  exchange(a, b, ca.ca(), ca.ca());
  // Each direction authenticated with the certificate (XEP-0178), not with dialback.
  CHECK(wait_for_log(a, "s2s-out a.test -> b.test (127.0.0.1:" + std::to_string(pb) +
                            "): authenticated with sasl-external"));
  CHECK(wait_for_log(b, "s2s-out b.test -> a.test (127.0.0.1:" + std::to_string(pa) +
                            "): authenticated with sasl-external"));
  CHECK(wait_for_log(a, "b.test authenticated with SASL EXTERNAL"));
  CHECK(a.log().find("authenticated with dialback") == std::string::npos);
  // chatgroupctl s2s lists the live connections with how they authenticated.
  auto [status, listing] = a.ctl({"s2s"});
  INFO(listing);
  CHECK(status == 0);
  CHECK(contains_row(listing, {"out", "a.test", "b.test", "sasl-external", "TLSv1.3", "ready"}));
  CHECK(contains_row(listing, {"in", "a.test", "b.test", "sasl-external", "TLSv1.3", "ready"}));
}

TEST_CASE("s2s: untrusted self-signed certificates — dialback (XEP-0220) authenticates both ways over TLS", "[s2s]") {
  const int pa = free_port();
  const int pb = free_port();
  TestServer a(federated("a.test", pa, "b.test", pb, nullptr, {{"alice", "alice-pw"}}));
  TestServer b(federated("b.test", pb, "a.test", pa, nullptr, {{"bob", "bob-pw"}}));
  a.start();
  b.start();
  exchange(a, b, a.cert_path(), b.cert_path());
  CHECK(
      wait_for_log(a, "s2s-out a.test -> b.test (127.0.0.1:" + std::to_string(pb) + "): authenticated with dialback"));
  CHECK(
      wait_for_log(b, "s2s-out b.test -> a.test (127.0.0.1:" + std::to_string(pa) + "): authenticated with dialback"));
  CHECK(wait_for_log(a, "b.test authenticated with dialback"));
  auto [status, listing] = a.ctl({"s2s"});
  INFO(listing);
  CHECK(status == 0);
  CHECK(contains_row(listing, {"out", "a.test", "b.test", "dialback", "TLSv1.3", "ready"}));
  CHECK(contains_row(listing, {"in", "a.test", "b.test", "dialback", "TLSv1.3", "ready"}));
}

TEST_CASE("s2s: with dialback off, a peer whose certificate cannot be verified is refused and the sender gets "
          "remote-server-not-found",
          "[s2s]") {
  const int pa = free_port();
  const int pb = free_port();
  auto oa = federated("a.test", pa, "b.test", pb, nullptr, {{"alice", "alice-pw"}});
  oa.set("s2s", "allow_dialback", "false");
  TestServer a(oa);
  TestServer b(federated("b.test", pb, "a.test", pa, nullptr, {{"bob", "bob-pw"}}));
  a.start();
  b.start();
  StropheClient alice("alice@a.test/phone", "alice-pw");
  REQUIRE(alice.connect(a.port(), a.cert_path()));
  alice.send("<message to='bob@b.test' type='chat' id='x1'><body>will not arrive</body></message>");
  auto err = alice.wait_for(is_stanza("message", "id", "x1"), 20s);
  REQUIRE(err);
  CHECK(err->attr("type") == "error");
  CHECK(error_condition(*err) == "remote-server-not-found");
}

TEST_CASE("s2s: an unreachable domain bounces with remote-server-not-found, at once while it is backing off", "[s2s]") {
  const int pa = free_port();
  const int nobody = free_port(); // nothing listens there
  TestServer a(federated("a.test", pa, "down.test", nobody, nullptr, {{"alice", "alice-pw"}}));
  a.start();
  StropheClient alice("alice@a.test/phone", "alice-pw");
  REQUIRE(alice.connect(a.port(), a.cert_path()));
  alice.send("<message to='someone@down.test' type='chat' id='d1'><body>hello?</body></message>");
  auto e1 = alice.wait_for(is_stanza("message", "id", "d1"), 20s);
  REQUIRE(e1);
  CHECK(error_condition(*e1) == "remote-server-not-found");
  CHECK(e1->attr("from") == "someone@down.test");
  // An IQ too (RFC 6120 §8.3.3.16), answered from the back-off without a new attempt.
  auto e2 = alice.iq("<iq type='get' to='down.test' id='d2'><ping xmlns='urn:xmpp:ping'/></iq>", "d2", 20s);
  REQUIRE(e2);
  CHECK(e2->attr("type") == "error");
  CHECK(error_condition(*e2) == "remote-server-not-found");
  CHECK(a.log().find("cannot connect to down.test") != std::string::npos);
}

TEST_CASE("s2s: s2s.deny refuses a domain without trying to connect", "[s2s]") {
  const int pa = free_port();
  auto o = federated("a.test", pa, "evil.test", free_port(), nullptr, {{"alice", "alice-pw"}});
  o.set("s2s", "deny", "[\"evil.test\"]");
  TestServer a(o);
  a.start();
  StropheClient alice("alice@a.test/phone", "alice-pw");
  REQUIRE(alice.connect(a.port(), a.cert_path()));
  alice.send("<message to='mallory@evil.test' type='chat' id='e1'><body>hi</body></message>");
  auto e = alice.wait_for(is_stanza("message", "id", "e1"), 10s);
  REQUIRE(e);
  CHECK(error_condition(*e) == "remote-server-not-found");
  CHECK(a.log().find("s2s-out a.test -> evil.test") == std::string::npos);
}

namespace {

// A raw peer on the s2s port: stream, STARTTLS, stream again; returns the features after TLS.
Element raw_peer_secure(RawClient& c, int port, const std::string& from, const std::string& to) {
  c.connect(port);
  c.open_server_stream(from, to);
  auto f1 = c.wait_for([](const Element& e) { return e.name() == "features"; });
  REQUIRE(f1);
  REQUIRE(f1->child("starttls", "urn:ietf:params:xml:ns:xmpp-tls") != nullptr);
  c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  auto proceed = c.next_element();
  REQUIRE(proceed);
  REQUIRE(proceed->name() == "proceed");
  c.start_tls();
  c.open_server_stream(from, to);
  auto f2 = c.wait_for([](const Element& e) { return e.name() == "features"; });
  REQUIRE(f2);
  return *f2;
}

// The local user still gets answers while hostile peers are thrown out.
void local_users_unaffected(TestServer& a) {
  StropheClient alice("alice@a.test/phone", "alice-pw");
  REQUIRE(alice.connect(a.port(), a.cert_path()));
  auto pong = alice.iq("<iq type='get' to='a.test' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>", "p1");
  REQUIRE(pong);
  CHECK(pong->attr("type") == "result");
}

} // namespace

TEST_CASE("s2s hostile: a stanza from a domain the peer never proved ends the stream with invalid-from",
          "[s2s][hostile]") {
  const int pa = free_port();
  TestServer a(federated("a.test", pa, "b.test", free_port(), nullptr, {{"alice", "alice-pw"}}));
  a.start();
  RawClient evil;
  auto features = raw_peer_secure(evil, pa, "evil.test", "a.test");
  // Dialback is offered (TLS is up) but not EXTERNAL: the self-signed client certificate proves nothing.
  CHECK(features.child("dialback", "urn:xmpp:features:dialback") != nullptr);
  CHECK(features.child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl") == nullptr);
  evil.send("<message from='mallory@evil.test' to='alice@a.test' type='chat'><body>spoof</body></message>");
  REQUIRE(evil.wait_closed());
  CHECK(evil.stream_error() == "invalid-from");
  CHECK(a.log().find("spoof") == std::string::npos);
  local_users_unaffected(a);
}

TEST_CASE("s2s hostile: a dialback result that was never requested is refused (not-authorized), nothing is "
          "authenticated",
          "[s2s][hostile]") {
  const int pa = free_port();
  TestServer a(federated("a.test", pa, "b.test", free_port(), nullptr, {{"alice", "alice-pw"}}));
  a.start();
  RawClient evil;
  raw_peer_secure(evil, pa, "b.test", "a.test");
  evil.send("<db:result from='b.test' to='a.test' type='valid'/>");
  evil.send("<message from='bob@b.test' to='alice@a.test' type='chat'><body>forged</body></message>");
  REQUIRE(evil.wait_closed());
  CHECK(evil.stream_error() == "not-authorized");
  CHECK(a.log().find("forged") == std::string::npos);
  local_users_unaffected(a);
}

TEST_CASE("s2s hostile: a dialback key that the claimed domain's server does not confirm is invalid",
          "[s2s][hostile]") {
  const int pa = free_port();
  const int pb = free_port();
  TestServer a(federated("a.test", pa, "b.test", pb, nullptr, {{"alice", "alice-pw"}}));
  TestServer b(federated("b.test", pb, "a.test", pa, nullptr, {{"bob", "bob-pw"}}));
  a.start();
  b.start();
  RawClient evil;
  raw_peer_secure(evil, pa, "b.test", "a.test");
  // a.test asks b.test's real server (XEP-0220 §2.2), which never issued this key.
  evil.send("<db:result from='b.test' to='a.test'>00112233445566778899aabbccddeeff</db:result>");
  auto verdict = evil.wait_for([](const Element& e) { return e.name() == "result"; }, 20s);
  REQUIRE(verdict);
  CHECK(verdict->attr("type") == "invalid");
  evil.send("<message from='bob@b.test' to='alice@a.test' type='chat'><body>forged</body></message>");
  REQUIRE(evil.wait_closed());
  CHECK(evil.stream_error() == "invalid-from");
  local_users_unaffected(a);
}

TEST_CASE("s2s hostile: dialback before TLS is refused, and a peer that stalls is closed with connection-timeout",
          "[s2s][hostile]") {
  const int pa = free_port();
  auto o = federated("a.test", pa, "b.test", free_port(), nullptr, {{"alice", "alice-pw"}});
  o.set("s2s", "auth_timeout", "5");
  TestServer a(o);
  a.start();
  {
    RawClient plain;
    plain.connect(pa);
    plain.open_server_stream("b.test", "a.test");
    auto f = plain.wait_for([](const Element& e) { return e.name() == "features"; });
    REQUIRE(f);
    // RFC 6120 §5.3.1: with TLS required, only STARTTLS is offered.
    CHECK(f->child("dialback", "urn:xmpp:features:dialback") == nullptr);
    plain.send("<db:result from='b.test' to='a.test'>abcdef</db:result>");
    REQUIRE(plain.wait_closed());
    CHECK(plain.stream_error() == "policy-violation");
  }
  {
    RawClient staller;
    staller.connect(pa);
    staller.send(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        "to='a.test' version='1.0'><message from='x"); // and then nothing
    REQUIRE(staller.wait_closed(20s));
    CHECK(staller.stream_error() == "connection-timeout");
  }
  {
    RawClient wrong_host;
    wrong_host.connect(pa);
    wrong_host.open_server_stream("b.test", "not-served.test");
    REQUIRE(wrong_host.wait_closed());
    CHECK(wrong_host.stream_error() == "host-unknown");
  }
  local_users_unaffected(a);
}

TEST_CASE("s2s: s2s.max_streams_per_domain refuses one stream too many from the same domain", "[s2s]") {
  CaDir tmp;
  TestCa ca(tmp.path / "ca", {"a.test", "b.test"});
  const int pa = free_port();
  auto oa = federated("a.test", pa, "b.test", free_port(), &ca, {{"alice", "alice-pw"}});
  oa.set("s2s", "max_streams_per_domain", "1");
  TestServer a(oa);
  // Two servers for b.test (the same certificate): each opens its own stream to a.test.
  TestServer b1(federated("b.test", free_port(), "a.test", pa, &ca, {{"bob", "bob-pw"}}));
  TestServer b2(federated("b.test", free_port(), "a.test", pa, &ca, {{"carol", "carol-pw"}}));
  a.start();
  b1.start();
  b2.start();
  StropheClient alice("alice@a.test/phone", "alice-pw");
  REQUIRE(alice.connect(a.port(), ca.ca()));
  StropheClient bob("bob@b.test/one", "bob-pw");
  REQUIRE(bob.connect(b1.port(), ca.ca()));
  StropheClient carol("carol@b.test/two", "carol-pw");
  REQUIRE(carol.connect(b2.port(), ca.ca()));

  bob.send("<message to='alice@a.test/phone' type='chat' id='b1'><body>first stream</body></message>");
  REQUIRE(alice.wait_for(message_with_body("first stream"), 20s));
  carol.send("<message to='alice@a.test/phone' type='chat' id='c1'><body>second stream</body></message>");
  auto bounce = carol.wait_for(is_stanza("message", "id", "c1"), 20s);
  REQUIRE(bounce);
  CHECK(bounce->attr("type") == "error");
  CHECK(error_condition(*bounce) == "remote-server-not-found");
  CHECK(wait_for_log(a, "too many streams from b.test"));
  // The first stream is unaffected.
  bob.send("<message to='alice@a.test/phone' type='chat' id='b2'><body>still here</body></message>");
  CHECK(alice.wait_for(message_with_body("still here"), 20s));
}

TEST_CASE("s2s: a second domain of the same server piggybacks on the dialback stream (XEP-0220 §2.5)", "[s2s]") {
  const int pa = free_port();
  const int pb = free_port();
  auto oa = federated("a.test", pa, "b.test", pb, nullptr, {{"alice", "alice-pw"}});
  oa.set("s2s", "routes",
         "[\"b.test=127.0.0.1:" + std::to_string(pb) + "\", \"c.test=127.0.0.1:" + std::to_string(pb) + "\"]");
  TestServer a(oa);
  auto ob = federated("b.test", pb, "a.test", pa, nullptr, {{"bob@b.test", "bob-pw"}, {"carol@c.test", "carol-pw"}});
  ob.set("server", "hosts", "[\"b.test\", \"c.test\"]");
  TestServer b(ob);
  a.start();
  b.start();
  StropheClient alice("alice@a.test/phone", "alice-pw");
  REQUIRE(alice.connect(a.port(), a.cert_path()));
  StropheClient bob("bob@b.test/one", "bob-pw");
  REQUIRE(bob.connect(b.port(), b.cert_path()));
  StropheClient carol("carol@c.test/two", "carol-pw");
  REQUIRE(carol.connect(b.port(), b.cert_path()));

  bob.send("<message to='alice@a.test/phone' type='chat' id='b1'><body>from b</body></message>");
  REQUIRE(alice.wait_for(message_with_body("from b"), 20s));
  carol.send("<message to='alice@a.test/phone' type='chat' id='c1'><body>from c</body></message>");
  auto m = alice.wait_for(message_with_body("from c"), 20s);
  REQUIRE(m);
  CHECK(m->attr("from") == "carol@c.test/two");
  CHECK(wait_for_log(b, "c.test piggybacks on this stream"));
  CHECK(wait_for_log(b, "c.test authenticated with dialback (piggybacked)"));
  // One outgoing stream from b's server to a.test carries both domains; a.test sees one incoming stream with both.
  auto [status, listing] = b.ctl({"s2s"});
  INFO(listing);
  CHECK(status == 0);
  CHECK(contains_row(listing, {"out", "b.test", "c.test", "a.test", "dialback", "TLSv1.3", "ready"}));
  auto [status_a, listing_a] = a.ctl({"s2s"});
  INFO(listing_a);
  CHECK(status_a == 0);
  CHECK(contains_row(listing_a, {"in", "a.test", "b.test", "c.test", "dialback", "TLSv1.3", "ready"}));
}

TEST_CASE("s2s: the direct TLS port (XEP-0368) takes TLS at once with ALPN xmpp-server, then offers no STARTTLS",
          "[s2s]") {
  const int pa = free_port();
  const int pa_tls = free_port();
  auto o = federated("a.test", pa, "b.test", free_port(), nullptr, {{"alice", "alice-pw"}});
  o.set("s2s", "direct_tls_port", std::to_string(pa_tls));
  TestServer a(o);
  a.start();
  RawClient peer;
  peer.connect(pa_tls);
  peer.start_tls(0, "xmpp-server");
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(peer.ssl(), &alpn, &alpn_len);
  CHECK(std::string(reinterpret_cast<const char*>(alpn), alpn_len) == "xmpp-server");
  peer.open_server_stream("b.test", "a.test");
  auto features = peer.wait_for([](const Element& e) { return e.name() == "features"; });
  REQUIRE(features);
  CHECK(features->child("starttls", "urn:ietf:params:xml:ns:xmpp-tls") == nullptr);
  CHECK(features->child("dialback", "urn:xmpp:features:dialback") != nullptr);
}
