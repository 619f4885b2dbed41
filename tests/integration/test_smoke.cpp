// The shortest path a new user takes: two accounts, a real client library, TLS, a message.
#include "tests/integration/harness.hpp"

#include <catch2/catch.hpp>

using namespace it;

TEST_CASE("two libstrophe clients log in over STARTTLS and exchange a message") {
  ServerOptions opts;
  opts.users = {{"alice", "alice-pw"}, {"bob", "bob-pw"}};
  TestServer server(opts);
  server.start();

  StropheClient alice("alice@localhost/phone", "alice-pw");
  StropheClient bob("bob@localhost/laptop", "bob-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));
  REQUIRE(bob.connect(server.port(), server.cert_path()));
  CHECK(alice.bound_jid() == "alice@localhost/phone");

  bob.send("<presence/>");
  // The ping's answer proves the server processed the presence before it (one stream is handled in order).
  REQUIRE(bob.iq("<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>", "sync"));
  // A message to the bare JID reaches bob's available resource, with 'from' stamped by the server.
  alice.send("<message to='bob@localhost' type='chat' id='m1'><body>hi bob</body></message>");
  auto got = bob.wait_for(is_stanza("message", "id", "m1"));
  REQUIRE(got);
  CHECK(got->attr("from") == "alice@localhost/phone");
  CHECK(got->child_text("body") == "hi bob");
}
