// The archive store conformance suite (store.hpp ArchiveStore): every case runs against every driver.
#include "archive_support.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace cg::storage;
using namespace cg::storage::test;
using namespace std::string_literals;

// Queries are written with designated initializers naming only the fields that matter; g++ 12's -Wextra warns about
// the members left to their defaults, which is the point here.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace {

using Strings = std::vector<std::string>;

bool url_safe(const std::string& id) {
  return std::all_of(id.begin(), id.end(), [](char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
  });
}

StorageError::Kind error_kind(const std::function<void()>& f) {
  try {
    f();
  } catch (const StorageError& e) {
    return e.kind();
  }
  FAIL("no StorageError");
  return StorageError::Kind::Failure;
}

// 60 items: with cycles bob, carol, dave; when = 1000 + 10 i; kind alternates chat, groupchat (every fifth "").
std::vector<ArchiveItem> sample_items(int n = 60) {
  static const char* withs[] = {"bob@example.net", "carol@example.net", "dave@example.com"};
  std::vector<ArchiveItem> items;
  for (int i = 0; i < n; ++i)
    items.push_back(make_item(1000 + 10 * i, withs[i % 3], i % 5 == 4 ? "" : (i % 2 ? "groupchat" : "chat"),
                              "<message id='m" + std::to_string(i) + "'/>"));
  return items;
}

// The items of `all` that a query's filters (not the range) select, by brute force.
std::vector<ArchiveItem> expected(const std::vector<ArchiveItem>& all, const ArchiveQuery& q) {
  std::vector<ArchiveItem> out;
  for (const auto& item : all) {
    if (q.with && item.with != *q.with)
      continue;
    if (q.start && item.when < *q.start)
      continue;
    if (q.end && item.when > *q.end)
      continue;
    if (q.kind && item.kind != *q.kind)
      continue;
    if (!q.ids.empty() && std::find(q.ids.begin(), q.ids.end(), item.id) == q.ids.end())
      continue;
    out.push_back(item);
  }
  return out;
}

} // namespace

TEMPLATE_TEST_CASE("archive: append keeps the order and assigns unique ids", "[conformance][archive]", CG_ALL_DRIVERS) {
  TestType env;
  auto mam = env.driver->archive("mam");

  auto empty = mam->query("example.org", "alice", {});
  CHECK(empty.items.empty());
  CHECK(empty.complete);
  CHECK(empty.total == 0);
  CHECK(mam->count("example.org", "alice") == 0);

  std::vector<ArchiveItem> appended;
  std::set<std::string> ids;
  for (int i = 0; i < 50; ++i) {
    // Deliberately not in time order: the archive order is the append order.
    auto item = make_item(5000 - i * 7 + (i % 3) * 100, "bob@example.net", "chat", "payload " + std::to_string(i));
    const std::string id = mam->append("example.org", "alice", item);
    CHECK(id.size() >= 16);
    CHECK(url_safe(id));
    CHECK(ids.insert(id).second);
    item.id = id;
    appended.push_back(item);
  }
  CHECK(mam->count("example.org", "alice") == 50);
  auto page = mam->query("example.org", "alice", ArchiveQuery{.limit = 1000});
  CHECK(page.items == appended);
  CHECK(page.complete);
  CHECK(page.total == 50);
  CHECK(page.first_index == 0);

  // A given id is kept as it is; a given id that the user already has is refused, and nothing is added.
  CHECK(mam->append("example.org", "alice", make_item(1, "x@example.com", "", "given", "my-id:1")) == "my-id:1");
  CHECK(error_kind([&] { mam->append("example.org", "alice", make_item(2, "y@example.com", "", "dup", "my-id:1")); }) ==
        StorageError::Kind::Failure);
  CHECK(error_kind([&] {
          mam->append("example.org", "alice", make_item(2, "", "", "dup of assigned", appended[7].id));
        }) == StorageError::Kind::Failure);
  CHECK(mam->count("example.org", "alice") == 51);
  auto last = mam->query("example.org", "alice", ArchiveQuery{.limit = 1, .from_end = true});
  REQUIRE(last.items.size() == 1);
  CHECK(last.items[0].payload == "given");
  CHECK(last.items[0].id == "my-id:1");

  // The same id elsewhere (another user, host or store) is another item.
  CHECK(mam->append("example.org", "bob", make_item(1, "", "", "bob's", "my-id:1")) == "my-id:1");
  CHECK(mam->append("example.net", "alice", make_item(1, "", "", "other host", "my-id:1")) == "my-id:1");
  CHECK(env.driver->archive("offline")->append("example.org", "alice", make_item(1, "", "", "offline", "my-id:1")) ==
        "my-id:1");
  CHECK(mam->count("example.org", "alice") == 51);
}

TEMPLATE_TEST_CASE("archive: each filter alone and combined", "[conformance][archive]", CG_ALL_DRIVERS) {
  TestType env;
  auto mam = env.driver->archive("mam");
  auto items = sample_items();
  auto ids = append_all(*mam, "example.org", "alice", items);
  for (std::size_t i = 0; i < items.size(); ++i)
    items[i].id = ids[i];
  // Noise that no query of alice's may return.
  append_all(*mam, "example.org", "bob", sample_items(10));
  append_all(*env.driver->archive("other"), "example.org", "alice", sample_items(10));

  const std::vector<std::pair<std::string, ArchiveQuery>> cases = {
      {"no filter", {}},
      {"with", {.with = "carol@example.net"}},
      {"with nobody", {.with = "nobody@example.net"}},
      {"with is exact (no prefix match)", {.with = "carol"}},
      {"start", {.start = 1300}},
      {"start between items", {.start = 1305}},
      {"end", {.end = 1200}},
      {"start and end, inclusive", {.start = 1100, .end = 1250}},
      {"start = end", {.start = 1250, .end = 1250}},
      {"start after end", {.start = 1300, .end = 1200}},
      {"kind", {.kind = "groupchat"}},
      {"kind empty", {.kind = ""}},
      {"with and kind", {.with = "bob@example.net", .kind = "chat"}},
      {"with, start, end, kind", {.with = "dave@example.com", .start = 1050, .end = 1500, .kind = "groupchat"}},
      {"ids", {.ids = {ids[40], ids[3], "unknown", ids[17], ids[3]}}},
      {"ids and with", {.with = "bob@example.net", .ids = {ids[0], ids[1], ids[2], ids[3]}}},
      {"ids and start", {.start = 1100, .ids = {ids[0], ids[10], ids[20]}}},
  };
  for (const auto& [name, q] : cases) {
    INFO(name);
    auto want = expected(items, q);
    auto page = mam->query("example.org", "alice", q);
    CHECK(page.items == want);
    CHECK(page.total == want.size());
    CHECK(page.complete);
    CHECK(page.first_index == 0);
  }
}

TEMPLATE_TEST_CASE("archive: paging forward through 1000 items in pages of 37", "[conformance][archive]",
                   CG_ALL_DRIVERS) {
  TestType env;
  auto mam = env.driver->archive("mam");
  std::vector<ArchiveItem> items;
  for (int i = 0; i < 1000; ++i)
    items.push_back(make_item(i, i % 3 ? "bob@example.net" : "carol@example.net", "chat", "item " + std::to_string(i)));
  const auto ids = append_all(*mam, "example.org", "alice", items);

  for (const bool filtered : {false, true}) {
    INFO((filtered ? "with carol" : "no filter"));
    Strings want;
    for (std::size_t i = 0; i < ids.size(); ++i)
      if (!filtered || i % 3 == 0)
        want.push_back(ids[i]);

    Strings seen;
    ArchiveQuery q{.limit = 37};
    if (filtered)
      q.with = "carol@example.net";
    int pages = 0;
    for (;;) {
      auto page = mam->query("example.org", "alice", q);
      ++pages;
      REQUIRE(pages <= 100);
      CHECK(page.total == want.size());
      CHECK(page.first_index == seen.size());
      CHECK(page.items.size() == std::min<std::size_t>(37, want.size() - seen.size()));
      for (const auto& item : page.items)
        seen.push_back(item.id);
      CHECK(page.complete == (seen.size() == want.size()));
      if (page.complete || page.items.empty())
        break;
      q.after_id = page.items.back().id;
    }
    CHECK(seen == want); // every item exactly once, in order
    CHECK(pages == static_cast<int>((want.size() + 36) / 37));
  }
}

TEMPLATE_TEST_CASE("archive: paging backward with from_end and before_id", "[conformance][archive]", CG_ALL_DRIVERS) {
  TestType env;
  auto mam = env.driver->archive("mam");
  std::vector<ArchiveItem> items;
  for (int i = 0; i < 1000; ++i)
    items.push_back(make_item(i, "bob@example.net", i % 2 ? "chat" : "groupchat", "item " + std::to_string(i)));
  const auto ids = append_all(*mam, "example.org", "alice", items);

  // The last page (RSM <before/>): the newest items, still oldest first.
  ArchiveQuery q{.limit = 37, .from_end = true};
  Strings seen; // newest first, page by page
  int pages = 0;
  for (;;) {
    auto page = mam->query("example.org", "alice", q);
    ++pages;
    REQUIRE(pages <= 100);
    const std::size_t remaining = ids.size() - seen.size();
    const std::size_t n = std::min<std::size_t>(37, remaining);
    CHECK(page.total == 1000);
    REQUIRE(page.items.size() == n);
    CHECK(page.first_index == remaining - n);
    CHECK(ids_of(page.items) ==
          Strings(ids.begin() + static_cast<long>(remaining - n), ids.begin() + static_cast<long>(remaining)));
    for (auto it = page.items.rbegin(); it != page.items.rend(); ++it)
      seen.push_back(it->id);
    CHECK(page.complete == (seen.size() == ids.size()));
    if (page.complete)
      break;
    q.before_id = page.items.front().id;
  }
  CHECK(pages == 28);
  std::reverse(seen.begin(), seen.end());
  CHECK(seen == ids);

  // from_end within a range: the last items before before_id and after after_id.
  auto page = mam->query("example.org", "alice",
                         ArchiveQuery{.after_id = ids[100], .before_id = ids[200], .limit = 10, .from_end = true});
  CHECK(ids_of(page.items) == Strings(ids.begin() + 190, ids.begin() + 200));
  CHECK(page.first_index == 190);
  CHECK_FALSE(page.complete);
  page = mam->query("example.org", "alice",
                    ArchiveQuery{.after_id = ids[100], .before_id = ids[112], .limit = 11, .from_end = true});
  CHECK(ids_of(page.items) == Strings(ids.begin() + 101, ids.begin() + 112));
  CHECK(page.complete); // exactly the range: nothing before it
  // Forward within the same range.
  page = mam->query("example.org", "alice", ArchiveQuery{.after_id = ids[100], .before_id = ids[112], .limit = 11});
  CHECK(ids_of(page.items) == Strings(ids.begin() + 101, ids.begin() + 112));
  CHECK(page.complete);
  page = mam->query("example.org", "alice", ArchiveQuery{.after_id = ids[100], .before_id = ids[112], .limit = 10});
  CHECK_FALSE(page.complete);
  // An empty range: after_id at or beyond before_id.
  page = mam->query("example.org", "alice", ArchiveQuery{.after_id = ids[500], .before_id = ids[500]});
  CHECK(page.items.empty());
  CHECK(page.complete);
  CHECK(page.total == 1000);
  page = mam->query("example.org", "alice", ArchiveQuery{.after_id = ids[600], .before_id = ids[500]});
  CHECK(page.items.empty());
  CHECK(page.complete);
  // Backward with a filter: the bound item need not match it.
  page = mam->query("example.org", "alice",
                    ArchiveQuery{.before_id = ids[501], .kind = "chat", .limit = 3, .from_end = true});
  CHECK(ids_of(page.items) == Strings{ids[495], ids[497], ids[499]});
  CHECK(page.total == 500);
  CHECK(page.first_index == 247);
  CHECK_FALSE(page.complete);
  // The first page from the end past the start: all, complete.
  page = mam->query("example.org", "alice", ArchiveQuery{.before_id = ids[3], .limit = 37, .from_end = true});
  CHECK(ids_of(page.items) == Strings{ids[0], ids[1], ids[2]});
  CHECK(page.first_index == 0);
  CHECK(page.complete);
}

TEMPLATE_TEST_CASE("archive: an unknown after_id or before_id is NotFound", "[conformance][archive]", CG_ALL_DRIVERS) {
  TestType env;
  auto mam = env.driver->archive("mam");
  auto ids = append_all(*mam, "example.org", "alice", sample_items(5));
  auto bobs = append_all(*mam, "example.org", "bob", sample_items(2));
  auto other = append_all(*env.driver->archive("other"), "example.org", "alice", sample_items(2));

  for (const auto& bad : {"unknown"s, ""s, bobs[0], other[0], ids[0] + "x", ids[0].substr(1)}) {
    INFO(bad);
    CHECK(error_kind([&] { mam->query("example.org", "alice", ArchiveQuery{.after_id = bad}); }) ==
          StorageError::Kind::NotFound);
    CHECK(error_kind([&] { mam->query("example.org", "alice", ArchiveQuery{.before_id = bad}); }) ==
          StorageError::Kind::NotFound);
    CHECK(error_kind([&] { mam->query("example.org", "alice", ArchiveQuery{.before_id = bad, .limit = 0}); }) ==
          StorageError::Kind::NotFound);
    CHECK(error_kind([&] { mam->remove("example.org", "alice", ArchiveQuery{.after_id = bad}); }) ==
          StorageError::Kind::NotFound);
  }
  // Also for a user or a host without an archive.
  CHECK(error_kind([&] { mam->query("example.org", "nobody", ArchiveQuery{.after_id = ids[0]}); }) ==
        StorageError::Kind::NotFound);
  CHECK(error_kind([&] { mam->query("example.net", "alice", ArchiveQuery{.before_id = ids[0]}); }) ==
        StorageError::Kind::NotFound);
  // Nothing was removed, and a known id still works.
  CHECK(mam->count("example.org", "alice") == 5);
  CHECK(mam->query("example.org", "alice", ArchiveQuery{.after_id = ids[3]}).items.size() == 1);
}

TEMPLATE_TEST_CASE("archive: the ids filter", "[conformance][archive]", CG_ALL_DRIVERS) {
  TestType env;
  auto mam = env.driver->archive("mam");
  auto ids = append_all(*mam, "example.org", "alice", sample_items(20));
  auto bobs = append_all(*mam, "example.org", "bob", sample_items(3));

  // Archive order whatever the order asked; unknown ids, other users' ids and repeats are no items.
  auto page =
      mam->query("example.org", "alice", ArchiveQuery{.ids = {ids[9], ids[2], bobs[0], "nope", ids[15], ids[2]}});
  CHECK(ids_of(page.items) == Strings{ids[2], ids[9], ids[15]});
  CHECK(page.total == 3);
  CHECK(page.complete);
  // With paging: the range and the limit apply to the selected items.
  page = mam->query("example.org", "alice",
                    ArchiveQuery{.after_id = ids[2], .ids = {ids[1], ids[2], ids[5], ids[7], ids[11]}, .limit = 2});
  CHECK(ids_of(page.items) == Strings{ids[5], ids[7]});
  CHECK(page.total == 5);
  CHECK(page.first_index == 2);
  CHECK_FALSE(page.complete);
  page = mam->query("example.org", "alice",
                    ArchiveQuery{.ids = {ids[1], ids[2], ids[5], ids[7], ids[11]}, .limit = 2, .from_end = true});
  CHECK(ids_of(page.items) == Strings{ids[7], ids[11]});
  CHECK(page.first_index == 3);
  CHECK_FALSE(page.complete);
  page = mam->query("example.org", "alice", ArchiveQuery{.ids = {"nope"}});
  CHECK(page.items.empty());
  CHECK(page.total == 0);
  CHECK(page.complete);
}

TEMPLATE_TEST_CASE("archive: limit 0 gives only the count", "[conformance][archive]", CG_ALL_DRIVERS) {
  TestType env;
  auto mam = env.driver->archive("mam");
  auto ids = append_all(*mam, "example.org", "alice", sample_items(30));

  auto page = mam->query("example.org", "alice", ArchiveQuery{.limit = 0});
  CHECK(page.items.empty());
  CHECK(page.total == 30);
  CHECK_FALSE(page.complete); // items lie beyond the (empty) page
  page = mam->query("example.org", "alice", ArchiveQuery{.with = "bob@example.net", .limit = 0, .from_end = true});
  CHECK(page.items.empty());
  CHECK(page.total == 10);
  page = mam->query("example.org", "alice", ArchiveQuery{.after_id = ids[29], .limit = 0});
  CHECK(page.items.empty());
  CHECK(page.total == 30);
  CHECK(page.complete); // nothing after the last item
  page = mam->query("example.org", "nobody", ArchiveQuery{.limit = 0});
  CHECK(page.total == 0);
  CHECK(page.complete);
}

TEMPLATE_TEST_CASE("archive: remove by filter and range", "[conformance][archive]", CG_ALL_DRIVERS) {
  TestType env;
  auto mam = env.driver->archive("mam");
  auto items = sample_items(30);
  auto ids = append_all(*mam, "example.org", "alice", items);
  for (std::size_t i = 0; i < items.size(); ++i)
    items[i].id = ids[i];
  append_all(*mam, "example.org", "bob", sample_items(6));

  auto remaining = [&] { return ids_of(all_items(*mam, "example.org", "alice")); };
  auto without = [&](const std::function<bool(std::size_t)>& gone) {
    Strings out;
    for (std::size_t i = 0; i < items.size(); ++i)
      if (!gone(i) && !items[i].id.empty())
        out.push_back(items[i].id);
    return out;
  };

  // A filter; limit and from_end do not limit a removal.
  CHECK(mam->remove("example.org", "alice", ArchiveQuery{.with = "carol@example.net", .limit = 1, .from_end = true}) ==
        10);
  CHECK(remaining() == without([](std::size_t i) { return i % 3 == 1; }));
  for (std::size_t i = 1; i < items.size(); i += 3)
    items[i].id.clear();
  // Nothing matches any more: none removed.
  CHECK(mam->remove("example.org", "alice", ArchiveQuery{.with = "carol@example.net"}) == 0);

  // A range (exclusive bounds) with a filter.
  CHECK(mam->remove("example.org", "alice",
                    ArchiveQuery{.after_id = ids[3], .before_id = ids[15], .kind = "chat", .limit = 0}) == 3);
  for (std::size_t i : {6, 8, 12}) // 4 and 10 went with carol, 14 has kind ""
    items[i].id.clear();
  CHECK(remaining() == without([](std::size_t) { return false; }));

  // ids (and time)
  CHECK(mam->remove("example.org", "alice",
                    ArchiveQuery{.start = 1100, .ids = {ids[0], ids[19], ids[20], ids[21], "x"}}) == 2);
  items[20].id.clear(); // 0 is too old; 19 went with carol
  items[21].id.clear();
  CHECK(remaining() == without([](std::size_t) { return false; }));
  CHECK(mam->count("example.org", "alice") == remaining().size());

  // Everything; the other user keeps theirs.
  CHECK(mam->remove("example.org", "alice", {}) == remaining().size());
  CHECK(mam->count("example.org", "alice") == 0);
  CHECK(mam->count("example.org", "bob") == 6);
  // The user can append again; old ids are gone (a removed id is NotFound).
  mam->append("example.org", "alice", make_item(1, "", "", "again"));
  CHECK(mam->count("example.org", "alice") == 1);
  CHECK(error_kind([&] { mam->query("example.org", "alice", ArchiveQuery{.after_id = ids[0]}); }) ==
        StorageError::Kind::NotFound);
}

TEMPLATE_TEST_CASE("archive: remove_older_than applies to every user of the host", "[conformance][archive]",
                   CG_ALL_DRIVERS) {
  TestType env;
  auto mam = env.driver->archive("mam");
  auto offline = env.driver->archive("offline");
  for (auto user : {"alice", "bob"})
    append_all(*mam, "example.org", user, sample_items(20)); // when 1000 … 1190
  append_all(*mam, "example.net", "carol", sample_items(20));
  append_all(*offline, "example.org", "alice", sample_items(20));

  CHECK(mam->remove_older_than("example.org", 1050) == 10); // 1000 … 1040: strictly older
  CHECK(mam->count("example.org", "alice") == 15);
  CHECK(mam->count("example.org", "bob") == 15);
  CHECK(all_items(*mam, "example.org", "alice").front().when == 1050);
  CHECK(mam->count("example.net", "carol") == 20);
  CHECK(offline->count("example.org", "alice") == 20);
  CHECK(mam->remove_older_than("example.org", 1050) == 0);
  CHECK(mam->remove_older_than("example.com", 1 << 30) == 0);
  CHECK(mam->remove_older_than("example.org", 1 << 30) == 30);
  CHECK(mam->count("example.org", "alice") == 0);
  CHECK(mam->count("example.org", "bob") == 0);
  CHECK(mam->count("example.net", "carol") == 20);
}

TEMPLATE_TEST_CASE("archive: stores are isolated by name, host and user", "[conformance][archive]", CG_ALL_DRIVERS) {
  TestType env;
  auto& d = *env.driver;
  auto mam = d.archive("mam");
  auto mam2 = d.archive("mam2");
  auto offline = d.archive("offline");

  mam->append("example.org", "alice", make_item(1, "bob@example.net", "chat", "mam alice org", "id1"));
  mam->append("example.net", "alice", make_item(2, "bob@example.net", "chat", "mam alice net", "id1"));
  mam->append("example.org", "alicex", make_item(3, "bob@example.net", "chat", "mam alicex org", "id1"));
  mam2->append("example.org", "alice", make_item(4, "bob@example.net", "chat", "mam2 alice org", "id1"));
  offline->append("example.org", "alice", make_item(5, "bob@example.net", "chat", "offline alice org", "id1"));

  auto only = [](const ArchivePage& page) { return page.items.size() == 1 ? page.items[0].payload : "?"s; };
  CHECK(only(mam->query("example.org", "alice", {})) == "mam alice org");
  CHECK(only(mam->query("example.net", "alice", {})) == "mam alice net");
  CHECK(only(mam->query("example.org", "alicex", {})) == "mam alicex org");
  CHECK(only(mam2->query("example.org", "alice", {})) == "mam2 alice org");
  CHECK(only(offline->query("example.org", "alice", {})) == "offline alice org");
  CHECK(only(d.archive("mam")->query("example.org", "alice", {})) == "mam alice org"); // the same name, the same data
  CHECK(mam->query("example.org", "alic", {}).items.empty());

  // A second handle changes the same data.
  d.archive("mam")->append("example.org", "alice", make_item(6, "", "", "through another handle"));
  CHECK(mam->count("example.org", "alice") == 2);

  CHECK(mam->remove("example.org", "alice", {}) == 2);
  CHECK(mam->count("example.net", "alice") == 1);
  CHECK(mam->count("example.org", "alicex") == 1);
  CHECK(mam2->count("example.org", "alice") == 1);

  // remove_user: every archive store of that user on that host, nothing else.
  mam->append("example.org", "alice", make_item(7, "", "", "again"));
  d.remove_user("example.org", "alice");
  CHECK(mam->count("example.org", "alice") == 0);
  CHECK(mam2->count("example.org", "alice") == 0);
  CHECK(offline->count("example.org", "alice") == 0);
  CHECK(mam->count("example.net", "alice") == 1);
  CHECK(mam->count("example.org", "alicex") == 1);
  d.remove_user("example.org", "alice"); // nothing left: not an error
}

TEMPLATE_TEST_CASE("archive: payloads are binary-safe, and with and kind may be any UTF-8", "[conformance][archive]",
                   CG_ALL_DRIVERS) {
  TestType env;
  auto mam = env.driver->archive("mam");
  std::string every_byte;
  for (int i = 0; i < 256; ++i)
    every_byte.push_back(static_cast<char>(i));
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>((i * 7919 + (i >> 8)) & 0xff);

  const std::vector<ArchiveItem> items = {
      make_item(1, "bob@example.net", "chat", every_byte + every_byte),
      make_item(2, "bob@example.net", "chat", "a\0b\0\0c\0"s),
      make_item(3, "", "", ""),
      make_item(4, "jürgen@bücher.example", "gruppenchat-🙂", "ü"),
      make_item(-5, "小明@example.cn", "chat", big), // before the epoch
  };
  Strings ids;
  for (const auto& item : items)
    ids.push_back(mam->append("example.org", "alice", item));
  auto got = all_items(*mam, "example.org", "alice");
  REQUIRE(got.size() == items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    auto want = items[i];
    want.id = ids[i];
    CHECK(got[i] == want);
  }
  CHECK(got[4].payload.size() == big.size());
  CHECK(ids_of(mam->query("example.org", "alice", ArchiveQuery{.with = "jürgen@bücher.example"}).items) ==
        Strings{ids[3]});
  CHECK(ids_of(mam->query("example.org", "alice", ArchiveQuery{.kind = "gruppenchat-🙂"}).items) == Strings{ids[3]});
  CHECK(ids_of(mam->query("example.org", "alice", ArchiveQuery{.end = 0}).items) == Strings{ids[4]});

  // Given ids are taken by length, with any bytes of UTF-8.
  CHECK(mam->append("example.org", "alice", make_item(9, "", "", "x", "id with spaces & <xml> 'quotes' ü")) ==
        "id with spaces & <xml> 'quotes' ü");
  CHECK(mam->query("example.org", "alice", ArchiveQuery{.ids = {"id with spaces & <xml> 'quotes' ü"}}).items.size() ==
        1);
}

TEMPLATE_TEST_CASE("archive: concurrent appends from 8 threads", "[conformance][archive]", CG_ALL_DRIVERS) {
  TestType env;
  auto& d = *env.driver;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100;
  auto shared = d.archive("mam");
  std::latch start(kThreads);
  std::mutex mutex;
  Strings errors;
  std::map<std::string, std::string> id_to_payload;

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      try {
        auto own = d.archive("mam"); // half the threads use a handle of their own
        auto& store = t % 2 ? *own : *shared;
        for (int i = 0; i < kPerThread; ++i) {
          const std::string payload = "t" + std::to_string(t) + " " + std::to_string(i);
          std::string id;
          if (i % 4 == 3) { // some async, waited for at once: the order within the thread still holds
            Completions c;
            store.append_async("example.org", "alice", make_item(i, "t" + std::to_string(t), "", payload), c.at(0));
            if (!c.wait(1))
              throw std::runtime_error("append_async did not complete");
            auto r = c.results()[0];
            if (r.error)
              std::rethrow_exception(r.error);
            id = r.id;
          } else {
            id = store.append("example.org", "alice", make_item(i, "t" + std::to_string(t), "", payload));
          }
          std::lock_guard lock(mutex);
          id_to_payload[id] = payload;
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(mutex);
        errors.push_back(e.what());
      }
    });
  }
  for (auto& th : threads)
    th.join();
  CHECK(errors == Strings{});
  CHECK(id_to_payload.size() == kThreads * kPerThread); // ids unique

  auto items = all_items(*shared, "example.org", "alice");
  REQUIRE(items.size() == kThreads * kPerThread);
  std::map<std::string, int> next; // per thread, the next expected index
  for (const auto& item : items) {
    CHECK(id_to_payload[item.id] == item.payload);
    auto space = item.payload.find(' ');
    const std::string thread = item.payload.substr(0, space);
    CHECK(std::stoi(item.payload.substr(space + 1)) == next[thread]++);
  }
  for (int t = 0; t < kThreads; ++t)
    CHECK(next["t" + std::to_string(t)] == kPerThread);
}

TEMPLATE_TEST_CASE("archive: append_async completes with the id once the item is stored", "[conformance][archive]",
                   CG_ALL_DRIVERS) {
  TestType env;
  auto mam = env.driver->archive("mam");

  // From inside the callback, a query already sees the item; so does one after it.
  std::mutex mutex;
  std::condition_variable cv;
  bool called = false;
  std::string got_id;
  std::exception_ptr got_error;
  std::size_t seen_inside = 0;
  mam->append_async("example.org", "alice", make_item(42, "bob@example.net", "chat", "async"),
                    [&](std::string id, std::exception_ptr error) {
                      std::size_t n = mam->query("example.org", "alice", ArchiveQuery{.ids = {id}}).items.size();
                      std::lock_guard lock(mutex);
                      got_id = std::move(id);
                      got_error = std::move(error);
                      seen_inside = n;
                      called = true;
                      cv.notify_all();
                    });
  {
    std::unique_lock lock(mutex);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return called; }));
  }
  CHECK_FALSE(got_error);
  CHECK(got_id.size() >= 16);
  CHECK(seen_inside == 1);
  auto items = all_items(*mam, "example.org", "alice");
  REQUIRE(items.size() == 1);
  CHECK(items[0] == make_item(42, "bob@example.net", "chat", "async", got_id));

  // A given id comes back as is; a duplicate completes with the error and no id.
  Completions c;
  mam->append_async("example.org", "alice", make_item(1, "", "", "given", "given-id"), c.at(0));
  mam->append_async("example.org", "alice", make_item(1, "", "", "duplicate", "given-id"), c.at(1));
  mam->append_async("example.org", "alice", make_item(1, "", "", "after the duplicate"), c.at(2));
  REQUIRE(c.wait(3));
  auto results = c.results();
  CHECK(results[0].id == "given-id");
  CHECK_FALSE(results[0].error);
  CHECK(results[1].id == "");
  REQUIRE(results[1].error);
  CHECK_THROWS_AS(std::rethrow_exception(results[1].error), StorageError);
  CHECK_FALSE(results[2].error);
  CHECK(ids_of(all_items(*mam, "example.org", "alice")) == Strings{got_id, "given-id", results[2].id});

  // A callback may append again (sync and async) without deadlocking.
  Completions nested;
  mam->append_async("example.org", "bob", make_item(1, "", "", "outer"), [&](std::string, std::exception_ptr) {
    mam->append("example.org", "bob", make_item(2, "", "", "inner sync"));
    mam->append_async("example.org", "bob", make_item(3, "", "", "inner async"), nested.at(0));
  });
  REQUIRE(nested.wait(1));
  CHECK(mam->count("example.org", "bob") == 3);
}
