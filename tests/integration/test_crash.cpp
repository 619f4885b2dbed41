// The durability promise, tested the hard way: a client streams messages to an offline account with XEP-0198
// acknowledgements while the server is killed with SIGKILL at a random moment. After a restart, every message the
// server had acknowledged is delivered to the recipient, and no message is delivered twice.
#include "tests/integration/harness.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <iterator>
#include <cstdio>
#include <map>
#include <random>
#include <set>

using namespace it;

namespace {

constexpr const char* kSm = "urn:xmpp:sm:3";

struct Round {
  int sent = 0;
  std::uint32_t acked = 0;
  int delivered = 0;
};

Round crash_round(TestServer& server, int messages, std::uint32_t kill_at_acked, int batch) {
  Round r;
  {
    RawClient alice;
    alice.login(server.port(), "alice", "alice-pw", "sender");
    alice.send("<enable xmlns='urn:xmpp:sm:3'/>");
    REQUIRE(alice.wait_for([](const Element& e) { return e.is("enabled", kSm); }));
    auto take_ack = [&](const Element& e) {
      if (e.is("a", kSm)) {
        r.acked = static_cast<std::uint32_t>(std::stoul(std::string(e.attr("h"))));
      }
    };
    // Stream the messages in batches, each followed by a request for an acknowledgement, keeping up to `window`
    // messages unacknowledged; once the server has acknowledged `kill_at_acked`, kill it with batches in flight.
    const int window = 5 * batch;
    while (r.sent < messages && r.acked < kill_at_acked) {
      std::string burst;
      for (int i = 0; i < batch && r.sent < messages; ++i, ++r.sent) {
        burst += "<message to='bob@localhost' type='chat' id='m" + std::to_string(r.sent) + "'><body>message " +
                 std::to_string(r.sent) + "</body></message>";
      }
      burst += "<r xmlns='urn:xmpp:sm:3'/>";
      alice.send(burst);
      while (r.sent - static_cast<int>(r.acked) > window) {
        auto e = alice.next_element(10s);
        REQUIRE(e);
        take_ack(*e);
      }
    }
    server.signal(SIGKILL);
    // Every acknowledgement that left the server before it died: the last one tells how many were accepted.
    while (auto e = alice.next_element(5s)) {
      take_ack(*e);
    }
  }
  REQUIRE(server.wait_exit() == 128 + SIGKILL);
  server.start();

  RawClient bob;
  bob.login(server.port(), "bob", "bob-pw", "reader");
  bob.send("<presence/>");
  // Offline messages are sent in one burst at the first available presence; once the last acknowledged one is
  // here, a ping's answer comes after the rest of the burst.
  std::vector<Element> received;
  if (r.acked > 0) {
    auto last = bob.wait_for(is_stanza("message", "id", "m" + std::to_string(r.acked - 1)), 30s);
    REQUIRE(last);
    received = std::move(bob.skipped);
    bob.skipped.clear();
    received.push_back(std::move(*last));
  }
  REQUIRE(sync_ping(bob));
  std::move(bob.skipped.begin(), bob.skipped.end(), std::back_inserter(received));
  std::set<std::string> seen;
  int previous = -1;
  for (const auto& e : received) {
    if (e.name() != "message") {
      continue;
    }
    const std::string id(e.attr("id"));
    INFO(id);
    CHECK(seen.insert(id).second); // exactly once
    const int n = std::stoi(id.substr(1));
    CHECK(n > previous); // in order
    previous = n;
    CHECK(e.child("delay", "urn:xmpp:delay") != nullptr);
  }
  r.delivered = static_cast<int>(seen.size());
  for (std::uint32_t i = 0; i < r.acked; ++i) {
    INFO("acknowledged message m" << i << " was lost");
    CHECK(seen.contains("m" + std::to_string(i)));
  }
  return r;
}

} // namespace

TEST_CASE("crash: every acknowledged message to an offline user survives kill -9, delivered exactly once",
          "[crash][slow]") {
  ServerOptions opts;
  opts.users = {{"alice", "alice-pw"}, {"bob", "bob-pw"}};
  opts.set("modules.offline", "max_messages", "100000");
  TestServer server(opts);
  server.start();
  std::random_device seed;
  std::mt19937 rng(seed());
  const int rounds = 5;
  const int messages = 2000;
  const int batch = 20;
  int total_sent = 0;
  int total_acked = 0;
  int total_delivered = 0;
  for (int i = 0; i < rounds; ++i) {
    const auto kill_at = std::uniform_int_distribution<std::uint32_t>(50, messages / 2)(rng);
    INFO("round " << i << ": kill once " << kill_at << " are acknowledged");
    Round r = crash_round(server, messages, kill_at, batch);
    CHECK(r.acked > 0);
    CHECK(r.delivered >= static_cast<int>(r.acked));
    CHECK(r.delivered <= r.sent);
    total_sent += r.sent;
    total_acked += static_cast<int>(r.acked);
    total_delivered += r.delivered;
    std::printf("crash round %d: killed once %u were acknowledged: sent %d, acknowledged %u, delivered after "
                "restart %d\n",
                i, kill_at, r.sent, r.acked, r.delivered);
  }
  std::printf("crash test: %d rounds, sent %d, acknowledged %d, delivered %d, lost 0, duplicated 0\n", rounds,
              total_sent, total_acked, total_delivered);
  std::fflush(stdout);
}
