// The durability promise, tested the hard way: a client streams messages to an offline account with XEP-0198
// acknowledgements while the server is killed with SIGKILL at a random moment. After a restart, every message the
// server had acknowledged is delivered to the recipient, and no message is delivered twice.
#include "tests/integration/harness.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <iterator>
#include <map>
#include <random>
#include <set>

using namespace it;

namespace {

constexpr const char* kSm = "urn:xmpp:sm:3";

struct Round {
  int sent = 0;
  std::uint32_t acked = 0;
  int delivered = 0; // of this round's messages
  int late = 0;      // messages of earlier rounds delivered in this one
};

// Message ids are "r<round>m<n>": unique over the whole test, so a message of an earlier round that is delivered
// later (it was sent to a reader that had gone, and stored again) is told apart from this round's.
std::string message_id(int round, int n) {
  return "r" + std::to_string(round) + "m" + std::to_string(n);
}

Round crash_round(TestServer& server, int round, int messages, std::uint32_t kill_at_acked, int batch,
                  std::set<std::string>& ever_seen) {
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
        burst += "<message to='bob@localhost' type='chat' id='" + message_id(round, r.sent) + "'><body>message " +
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
  // Offline messages are delivered oldest first at the first available presence (in batches): once the last
  // acknowledged one is here, every acknowledged one has arrived before it.
  std::vector<Element> received;
  if (r.acked > 0) {
    auto last = bob.wait_for(is_stanza("message", "id", message_id(round, static_cast<int>(r.acked) - 1)), 30s);
    REQUIRE(last);
    received = std::move(bob.skipped);
    bob.skipped.clear();
    received.push_back(std::move(*last));
  }
  REQUIRE(sync_ping(bob));
  std::move(bob.skipped.begin(), bob.skipped.end(), std::back_inserter(received));
  std::string order; // for the failure message
  for (const auto& e : received) {
    if (e.name() == "message") {
      order += std::string(e.attr("id")) + (e.child("delay", "urn:xmpp:delay") ? "" : "(no delay)") + " ";
    }
  }
  INFO("delivered: " << order);
  std::set<std::string> seen;
  int previous = -1;
  const std::string prefix = "r" + std::to_string(round) + "m";
  for (const auto& e : received) {
    if (e.name() != "message") {
      continue;
    }
    const std::string id(e.attr("id"));
    INFO(id);
    CHECK(ever_seen.insert(id).second); // exactly once, over the whole test
    CHECK(e.child("delay", "urn:xmpp:delay") != nullptr);
    if (id.rfind(prefix, 0) != 0) {
      ++r.late;
      continue;
    }
    seen.insert(id);
    const int n = std::stoi(id.substr(prefix.size()));
    CHECK(n > previous); // this round's messages in the order they were sent
    previous = n;
  }
  r.delivered = static_cast<int>(seen.size());
  for (std::uint32_t i = 0; i < r.acked; ++i) {
    INFO("acknowledged message " << message_id(round, static_cast<int>(i)) << " was lost");
    CHECK(seen.contains(message_id(round, static_cast<int>(i))));
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
  int total_late = 0;
  std::set<std::string> ever_seen;
  for (int i = 0; i < rounds; ++i) {
    const auto kill_at = std::uniform_int_distribution<std::uint32_t>(50, messages / 2)(rng);
    INFO("round " << i << ": kill once " << kill_at << " are acknowledged");
    Round r = crash_round(server, i, messages, kill_at, batch, ever_seen);
    CHECK(r.acked > 0);
    CHECK(r.delivered >= static_cast<int>(r.acked));
    CHECK(r.delivered <= r.sent);
    total_sent += r.sent;
    total_acked += static_cast<int>(r.acked);
    total_delivered += r.delivered;
    total_late += r.late;
    std::printf("crash round %d: killed once %u were acknowledged: sent %d, acknowledged %u, delivered after "
                "restart %d (+%d of earlier rounds)\n",
                i, kill_at, r.sent, r.acked, r.delivered, r.late);
  }
  std::printf("crash test: %d rounds, sent %d, acknowledged %d, delivered %d (+%d late), lost 0, duplicated 0\n",
              rounds, total_sent, total_acked, total_delivered, total_late);
  std::fflush(stdout);
}
