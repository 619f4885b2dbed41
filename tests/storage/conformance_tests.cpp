// The storage conformance suite (DESIGN.md §5): every case runs against every driver in AllDrivers, each on a
// fresh instance (the SQLite one on a new file in a temporary directory).
#include "support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <exception>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace cg::storage;
using namespace cg::storage::test;
using namespace std::string_literals;

namespace {
using Strings = std::vector<std::string>;
using Pairs = std::vector<std::pair<std::string, std::string>>;
} // namespace

TEMPLATE_TEST_CASE("get of a missing value is empty", "[conformance]", CG_ALL_DRIVERS) {
  TestType env;
  auto kv = env.driver->keyval("vcard");
  auto map = env.driver->map("roster");

  CHECK_FALSE(kv->get("example.org", "alice"));
  CHECK_FALSE(map->get("example.org", "alice", "bob@example.net"));
  CHECK(map->all("example.org", "alice").empty());
  CHECK(kv->users("example.org").empty());

  // Values of someone else do not answer for alice.
  kv->set("example.org", "bob", "x");
  map->set("example.org", "alice", "carol@example.net", "x");
  CHECK_FALSE(kv->get("example.org", "alice"));
  CHECK_FALSE(kv->get("example.org", "bo"));
  CHECK_FALSE(map->get("example.org", "alice", "bob@example.net"));
  CHECK_FALSE(map->get("example.org", "bob", "carol@example.net"));
}

TEMPLATE_TEST_CASE("set, get and overwrite", "[conformance]", CG_ALL_DRIVERS) {
  TestType env;
  auto kv = env.driver->keyval("vcard");
  auto map = env.driver->map("roster");

  kv->set("example.org", "alice", "first");
  CHECK(kv->get("example.org", "alice") == "first");
  kv->set("example.org", "alice", "second, longer than the first");
  CHECK(kv->get("example.org", "alice") == "second, longer than the first");
  kv->set("example.org", "alice", "3");
  CHECK(kv->get("example.org", "alice") == "3");
  CHECK(kv->users("example.org") == Strings{"alice"});

  map->set("example.org", "alice", "bob@example.net", "friend");
  CHECK(map->get("example.org", "alice", "bob@example.net") == "friend");
  map->set("example.org", "alice", "bob@example.net", "colleague");
  CHECK(map->get("example.org", "alice", "bob@example.net") == "colleague");
  CHECK(map->all("example.org", "alice") == Pairs{{"bob@example.net", "colleague"}});

  // An empty value is a value, not an absence.
  kv->set("example.org", "bob", "");
  REQUIRE(kv->get("example.org", "bob").has_value());
  CHECK(kv->get("example.org", "bob") == "");
  kv->set("example.org", "carol", std::string_view{}); // a null data() pointer too
  CHECK(kv->get("example.org", "carol") == "");
  map->set("example.org", "alice", "empty", "");
  CHECK(map->get("example.org", "alice", "empty") == "");
  CHECK(kv->users("example.org") == Strings{"alice", "bob", "carol"});
}

TEMPLATE_TEST_CASE("remove returns whether the value existed", "[conformance]", CG_ALL_DRIVERS) {
  TestType env;
  auto kv = env.driver->keyval("vcard");
  auto map = env.driver->map("roster");

  CHECK_FALSE(kv->remove("example.org", "alice"));
  kv->set("example.org", "alice", "v");
  kv->set("example.org", "bob", "w");
  CHECK(kv->remove("example.org", "alice"));
  CHECK_FALSE(kv->get("example.org", "alice"));
  CHECK_FALSE(kv->remove("example.org", "alice"));
  CHECK(kv->get("example.org", "bob") == "w");
  CHECK(kv->users("example.org") == Strings{"bob"});

  CHECK_FALSE(map->remove("example.org", "alice", "bob@example.net"));
  map->set("example.org", "alice", "bob@example.net", "v");
  map->set("example.org", "alice", "carol@example.net", "w");
  CHECK_FALSE(map->remove("example.org", "alice", "dave@example.net"));
  CHECK_FALSE(map->remove("example.org", "bob", "bob@example.net"));
  CHECK(map->remove("example.org", "alice", "bob@example.net"));
  CHECK_FALSE(map->get("example.org", "alice", "bob@example.net"));
  CHECK_FALSE(map->remove("example.org", "alice", "bob@example.net"));
  CHECK(map->all("example.org", "alice") == Pairs{{"carol@example.net", "w"}});

  // A removed value can be set again.
  kv->set("example.org", "alice", "again");
  CHECK(kv->get("example.org", "alice") == "again");
}

TEMPLATE_TEST_CASE("users() is sorted and per host", "[conformance]", CG_ALL_DRIVERS) {
  TestType env;
  auto kv = env.driver->keyval("accounts");

  // Byte order: upper case before lower case, multi-byte UTF-8 after ASCII.
  for (auto user : {"carol", "émile", "alice", "Zed", "bob", "al"})
    kv->set("example.org", user, "x");
  kv->set("example.net", "dave", "x");
  kv->set("example.net", "alice", "x");

  CHECK(kv->users("example.org") == Strings{"Zed", "al", "alice", "bob", "carol", "émile"});
  CHECK(kv->users("example.net") == Strings{"alice", "dave"});
  CHECK(kv->users("example.com").empty());
  CHECK(kv->users("example").empty());

  kv->remove("example.org", "bob");
  kv->set("example.org", "alice", "overwritten: still listed once");
  CHECK(kv->users("example.org") == Strings{"Zed", "al", "alice", "carol", "émile"});
}

TEMPLATE_TEST_CASE("stores are isolated by name and by host and the same name gives the same data", "[conformance]",
                   CG_ALL_DRIVERS) {
  TestType env;
  auto& d = *env.driver;
  auto vcard = d.keyval("vcard");
  auto priv = d.keyval("private");
  auto roster = d.map("roster");
  auto blocklist = d.map("blocklist");

  vcard->set("example.org", "alice", "vcard of alice@example.org");
  vcard->set("example.net", "alice", "vcard of alice@example.net");
  priv->set("example.org", "alice", "private of alice");
  roster->set("example.org", "alice", "bob@example.net", "roster item");
  roster->set("example.net", "alice", "bob@example.net", "roster item on .net");
  blocklist->set("example.org", "alice", "spam@example.com", "blocked");

  CHECK(vcard->get("example.org", "alice") == "vcard of alice@example.org");
  CHECK(vcard->get("example.net", "alice") == "vcard of alice@example.net");
  CHECK(priv->get("example.org", "alice") == "private of alice");
  CHECK_FALSE(priv->get("example.net", "alice"));
  CHECK(roster->all("example.org", "alice") == Pairs{{"bob@example.net", "roster item"}});
  CHECK(roster->all("example.net", "alice") == Pairs{{"bob@example.net", "roster item on .net"}});
  CHECK(blocklist->all("example.org", "alice") == Pairs{{"spam@example.com", "blocked"}});
  CHECK_FALSE(blocklist->get("example.org", "alice", "bob@example.net"));

  // A second handle on the same name sees, and changes, the same data.
  auto vcard2 = d.keyval("vcard");
  CHECK(vcard2->get("example.org", "alice") == "vcard of alice@example.org");
  vcard2->set("example.org", "bob", "vcard of bob");
  CHECK(vcard->get("example.org", "bob") == "vcard of bob");
  CHECK(vcard->users("example.org") == Strings{"alice", "bob"});
  CHECK(priv->users("example.org") == Strings{"alice"});
  auto roster2 = d.map("roster");
  roster2->set("example.org", "alice", "carol@example.net", "second");
  CHECK(roster->all("example.org", "alice") ==
        Pairs{{"bob@example.net", "roster item"}, {"carol@example.net", "second"}});

  // Removing in one store or host leaves the others alone.
  CHECK(vcard->remove("example.org", "alice"));
  CHECK(vcard->get("example.net", "alice") == "vcard of alice@example.net");
  CHECK(priv->get("example.org", "alice") == "private of alice");
  CHECK(roster->remove_all("example.org", "alice") == 2);
  CHECK(roster->all("example.net", "alice").size() == 1);
  CHECK(blocklist->all("example.org", "alice").size() == 1);

  // Store names that share a prefix are different stores.
  auto a = d.keyval("store");
  auto b = d.keyval("store2");
  a->set("example.org", "alice", "a");
  CHECK_FALSE(b->get("example.org", "alice"));
}

TEMPLATE_TEST_CASE("map all() is sorted by key", "[conformance]", CG_ALL_DRIVERS) {
  TestType env;
  auto map = env.driver->map("roster");

  for (auto key :
       {"mallory@example.com", "bob@example.net", "Alice@example.org", "ärger@example.de", "bob", "carol@example.net"})
    map->set("example.org", "alice", key, "item "s + key);
  map->set("example.org", "bob", "zed@example.com", "not alice's");
  map->set("example.net", "alice", "aaa@example.com", "not on this host");

  CHECK(map->all("example.org", "alice") == Pairs{
                                                {"Alice@example.org", "item Alice@example.org"},
                                                {"bob", "item bob"},
                                                {"bob@example.net", "item bob@example.net"},
                                                {"carol@example.net", "item carol@example.net"},
                                                {"mallory@example.com", "item mallory@example.com"},
                                                {"ärger@example.de", "item ärger@example.de"},
                                            });
  CHECK(map->all("example.org", "bob") == Pairs{{"zed@example.com", "not alice's"}});
}

TEMPLATE_TEST_CASE("map remove_all returns how many keys it removed", "[conformance]", CG_ALL_DRIVERS) {
  TestType env;
  auto map = env.driver->map("roster");
  auto other = env.driver->map("blocklist");

  CHECK(map->remove_all("example.org", "alice") == 0);
  for (int i = 0; i < 7; ++i)
    map->set("example.org", "alice", "contact" + std::to_string(i), "v");
  map->set("example.org", "bob", "contact0", "v");
  map->set("example.net", "alice", "contact0", "v");
  other->set("example.org", "alice", "contact0", "v");

  CHECK(map->remove_all("example.org", "alice") == 7);
  CHECK(map->all("example.org", "alice").empty());
  CHECK(map->remove_all("example.org", "alice") == 0);
  CHECK(map->all("example.org", "bob").size() == 1);
  CHECK(map->all("example.net", "alice").size() == 1);
  CHECK(other->all("example.org", "alice").size() == 1);
}

TEMPLATE_TEST_CASE("remove_user removes the user from every store", "[conformance]", CG_ALL_DRIVERS) {
  TestType env;
  auto& d = *env.driver;
  auto accounts = d.keyval("accounts");
  auto vcard = d.keyval("vcard");
  auto roster = d.map("roster");
  auto blocklist = d.map("blocklist");

  for (auto user : {"alice", "bob"}) {
    for (auto host : {"example.org", "example.net"}) {
      accounts->set(host, user, "credentials");
      vcard->set(host, user, "vcard");
      roster->set(host, user, "carol@example.com", "item");
      roster->set(host, user, "dave@example.com", "item");
      blocklist->set(host, user, "spam@example.com", "blocked");
    }
  }

  d.remove_user("example.org", "alice");

  CHECK_FALSE(accounts->get("example.org", "alice"));
  CHECK_FALSE(vcard->get("example.org", "alice"));
  CHECK(roster->all("example.org", "alice").empty());
  CHECK(blocklist->all("example.org", "alice").empty());
  CHECK(accounts->users("example.org") == Strings{"bob"});
  // Other users, and the same user on another host, keep everything.
  CHECK(accounts->users("example.net") == Strings{"alice", "bob"});
  CHECK(vcard->users("example.net") == Strings{"alice", "bob"});
  CHECK(vcard->get("example.org", "bob") == "vcard");
  CHECK(roster->all("example.org", "bob").size() == 2);
  CHECK(roster->all("example.net", "alice").size() == 2);
  CHECK(blocklist->all("example.net", "alice").size() == 1);

  // Removing a user who has nothing is not an error; the user can come back.
  d.remove_user("example.org", "alice");
  d.remove_user("example.org", "nobody");
  accounts->set("example.org", "alice", "new credentials");
  CHECK(accounts->get("example.org", "alice") == "new credentials");
  CHECK(roster->all("example.org", "alice").empty());
}

TEMPLATE_TEST_CASE("values are binary-safe and keys may be any UTF-8", "[conformance]", CG_ALL_DRIVERS) {
  TestType env;
  auto kv = env.driver->keyval("binary");
  auto map = env.driver->map("binary");

  std::string every_byte;
  for (int i = 0; i < 256; ++i)
    every_byte.push_back(static_cast<char>(i));
  every_byte += every_byte; // starts with NUL, has NULs inside
  const std::string nuls("a\0b\0\0c\0"s);
  REQUIRE(nuls.size() == 7);

  kv->set("example.org", "alice", every_byte);
  CHECK(kv->get("example.org", "alice") == every_byte);
  kv->set("example.org", "alice", nuls);
  CHECK(kv->get("example.org", "alice") == nuls);
  map->set("example.org", "alice", "k", every_byte);
  CHECK(map->get("example.org", "alice", "k") == every_byte);
  CHECK(map->all("example.org", "alice") == Pairs{{"k", every_byte}});

  // 1 MiB, not a repeated byte, so truncation or corruption anywhere shows.
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>((i * 7919 + (i >> 8)) & 0xff);
  kv->set("example.org", "big", big);
  auto got = kv->get("example.org", "big");
  REQUIRE(got.has_value());
  CHECK(got->size() == big.size());
  CHECK(*got == big);
  map->set("example.org", "big", "big", big);
  CHECK(map->get("example.org", "big", "big") == big);

  // UTF-8 in the store name, the host, the user and the key.
  auto kv_utf8 = env.driver->keyval("störe-日本語");
  auto map_utf8 = env.driver->map("störe-日本語");
  kv_utf8->set("bücher.example", "jürgen", "ü");
  kv_utf8->set("bücher.example", "小明", "🙂");
  CHECK(kv_utf8->get("bücher.example", "jürgen") == "ü");
  CHECK(kv_utf8->get("bücher.example", "小明") == "🙂");
  CHECK(kv_utf8->users("bücher.example") == Strings{"jürgen", "小明"});
  CHECK_FALSE(kv->get("bücher.example", "jürgen"));
  CHECK_FALSE(kv_utf8->get("bucher.example", "jurgen"));
  map_utf8->set("bücher.example", "jürgen", "🙂@bücher.example", "emoji");
  map_utf8->set("bücher.example", "jürgen", "ß@example.de", "eszett");
  CHECK(map_utf8->get("bücher.example", "jürgen", "🙂@bücher.example") == "emoji");
  CHECK(map_utf8->all("bücher.example", "jürgen") ==
        Pairs{{"ß@example.de", "eszett"}, {"🙂@bücher.example", "emoji"}});

  // Keys and values are taken by length, not up to a NUL: a view into a larger buffer stores only its part.
  const std::string buffer = "alice-and-more";
  kv->set("example.org", std::string_view(buffer).substr(0, 5), std::string_view(buffer).substr(6, 3));
  CHECK(kv->get("example.org", "alice") == "and");
}

TEMPLATE_TEST_CASE("concurrent writes from 8 threads lose nothing", "[conformance]", CG_ALL_DRIVERS) {
  TestType env;
  auto& d = *env.driver;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 40;

  auto shared_map = d.map("roster"); // one handle shared by all threads
  std::mutex errors_mutex;
  std::vector<std::string> errors;
  std::latch start(kThreads);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait(); // all threads write at once
      try {
        auto kv = d.keyval("accounts"); // a handle per thread, same store
        for (int i = 0; i < kPerThread; ++i) {
          const std::string user = "t" + std::to_string(t) + "-u" + std::to_string(i);
          kv->set("example.org", user, "value of " + user);
          shared_map->set("example.org", "alice", user, "item " + user);
          // Everyone overwrites the same entries too: the last write wins, whatever the order.
          kv->set("example.org", "contended", "from thread " + std::to_string(t));
          shared_map->set("example.org", "contended", "key", "from thread " + std::to_string(t));
          if (kv->get("example.org", user) != "value of " + user)
            throw std::runtime_error("read back a wrong value for " + user);
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(errors_mutex);
        errors.push_back(e.what());
      }
    });
  }
  for (auto& th : threads)
    th.join();

  CHECK(errors == Strings{});
  auto kv = d.keyval("accounts");
  auto users = kv->users("example.org");
  CHECK(users.size() == kThreads * kPerThread + 1);
  auto items = shared_map->all("example.org", "alice");
  CHECK(items.size() == kThreads * kPerThread);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const std::string user = "t" + std::to_string(t) + "-u" + std::to_string(i);
      CHECK(kv->get("example.org", user) == "value of " + user);
      CHECK(shared_map->get("example.org", "alice", user) == "item " + user);
    }
  }
  auto contended = kv->get("example.org", "contended");
  REQUIRE(contended.has_value());
  CHECK(contended->rfind("from thread ", 0) == 0);
  CHECK(shared_map->all("example.org", "contended").size() == 1);
}
