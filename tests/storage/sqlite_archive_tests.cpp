// SQLite-only behaviour of the writer (group commit, failures inside a batch, draining at destruction, kill -9),
// the read pool, and the archive's query plans and speed on a large archive.
#include "archive_support.hpp"
#include "raw_db.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <latch>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace cg::storage;
using namespace cg::storage::test;
using Catch::Matchers::Contains;

// Designated initializers name only the fields that matter (g++ 12's -Wextra warns about the rest).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace {

using Strings = std::vector<std::string>;
using Clock = std::chrono::steady_clock;

std::string what(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  }
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

} // namespace

TEST_CASE("sqlite: group commit commits many appends together", "[sqlite][archive]") {
  SqliteEnv env;
  auto mam = env.driver->archive("mam");
  constexpr int kThreads = 8;
  constexpr int kPerThread = 250;
  const auto before = sqlite_stats(*env.driver);

  Completions c;
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kPerThread; ++i)
        mam->append_async("example.org", "alice", make_item(i, "t" + std::to_string(t), "chat", "payload"),
                          c.at(static_cast<std::size_t>(t * kPerThread + i)));
    });
  }
  for (auto& th : threads)
    th.join();
  REQUIRE(c.wait(kThreads * kPerThread));
  const auto after = sqlite_stats(*env.driver);

  std::set<std::string> ids;
  for (auto& r : c.results()) {
    CHECK_FALSE(r.error);
    ids.insert(r.id);
  }
  CHECK(ids.size() == kThreads * kPerThread);
  CHECK(mam->count("example.org", "alice") == kThreads * kPerThread);
  const auto commits = after.commits - before.commits;
  const auto jobs = after.jobs - before.jobs;
  std::printf("group commit: %llu appends from %d threads in %llu commits\n", static_cast<unsigned long long>(jobs),
              kThreads, static_cast<unsigned long long>(commits));
  CHECK(jobs == kThreads * kPerThread);
  CHECK(commits >= 1);
  CHECK(commits * 4 <= jobs); // on average at least 4 appends per fsync; in practice far more
  CHECK(after.pending == 0);
}

TEST_CASE("sqlite: a job that fails inside a batch fails alone", "[sqlite][archive]") {
  SqliteEnv env;
  auto mam = env.driver->archive("mam");
  auto kv = env.driver->keyval("accounts");
  kv->set("example.org", "alice", "x"); // the file and the read pool are ready

  const auto before = sqlite_stats(*env.driver);
  Completions c;
  {
    auto pause = sqlite_pause_writer(*env.driver); // the four appends go in one batch
    mam->append_async("example.org", "alice", make_item(1, "", "", "first", "dup"), c.at(0));
    mam->append_async("example.org", "alice", make_item(2, "", "", "second"), c.at(1));
    mam->append_async("example.org", "alice", make_item(3, "", "", "duplicate", "dup"), c.at(2));
    mam->append_async("example.org", "alice", make_item(4, "", "", "fourth"), c.at(3));
    CHECK(sqlite_stats(*env.driver).pending == 4);
    CHECK(c.done() == 0);
  }
  REQUIRE(c.wait(4));
  const auto after = sqlite_stats(*env.driver);
  CHECK(after.commits - before.commits == 1);
  CHECK(after.jobs - before.jobs == 4);

  auto results = c.results();
  CHECK_FALSE(results[0].error);
  CHECK_FALSE(results[1].error);
  REQUIRE(results[2].error);
  CHECK_THAT(what(results[2].error), Contains("archive 'mam' append") && Contains("'dup' already exists"));
  CHECK(results[2].id == "");
  CHECK_FALSE(results[3].error);
  Strings payloads;
  for (auto& item : all_items(*mam, "example.org", "alice"))
    payloads.push_back(item.payload);
  CHECK(payloads == Strings{"first", "second", "fourth"});
}

TEST_CASE("sqlite: a job whose error rolls back the whole transaction does not take the others with it",
          "[sqlite][archive]") {
  SqliteEnv env;
  const std::string path = env.dir.file("chatgroup.db");
  auto mam = env.driver->archive("mam");
  mam->append("example.org", "alice", make_item(0, "", "", "before"));

  // RAISE(ROLLBACK) ends the whole transaction, not only the job's savepoint: the writer must run the other jobs of
  // the batch again.
  RawDb raw(path);
  raw.exec("CREATE TRIGGER poison BEFORE INSERT ON archive WHEN NEW.kind = 'poison'"
           " BEGIN SELECT RAISE(ROLLBACK, 'rolled back by the test'); END");

  const auto before = sqlite_stats(*env.driver);
  Completions c;
  {
    auto pause = sqlite_pause_writer(*env.driver);
    mam->append_async("example.org", "alice", make_item(1, "", "", "good 1"), c.at(0));
    mam->append_async("example.org", "alice", make_item(2, "", "poison", "poison"), c.at(1));
    mam->append_async("example.org", "alice", make_item(3, "", "", "good 2"), c.at(2));
  }
  REQUIRE(c.wait(3));
  auto results = c.results();
  CHECK_FALSE(results[0].error);
  REQUIRE(results[1].error);
  CHECK_THAT(what(results[1].error), Contains("rolled back by the test"));
  CHECK_FALSE(results[2].error);
  Strings payloads;
  for (auto& item : all_items(*mam, "example.org", "alice"))
    payloads.push_back(item.payload);
  CHECK(payloads == Strings{"before", "good 1", "good 2"});
  const auto after = sqlite_stats(*env.driver);
  CHECK(after.commits - before.commits == 1);
  CHECK(after.jobs - before.jobs == 3);

  // The driver goes on; another connection sees the committed items.
  raw.exec("DROP TRIGGER poison");
  mam->append("example.org", "alice", make_item(4, "", "poison", "no longer poison"));
  CHECK(raw.query("SELECT count(*) FROM archive") == "4");
}

TEST_CASE("sqlite: a batch is bounded by jobs and by bytes", "[sqlite][archive]") {
  TempDir dir;
  auto d = open_sqlite(
      {.path = dir.file("chatgroup.db"), .max_batch_jobs = 3, .max_batch_bytes = 2000, .max_pending_writes = 1000});
  auto mam = d->archive("mam");
  mam->append("example.org", "alice", make_item(0, "", "", "first"));

  auto batches_for = [&](std::size_t n, std::size_t payload) {
    const auto before = sqlite_stats(*d);
    Completions c;
    {
      auto pause = sqlite_pause_writer(*d);
      for (std::size_t i = 0; i < n; ++i)
        mam->append_async("example.org", "alice", make_item(1, "", "", std::string(payload, 'x')), c.at(i));
    }
    REQUIRE(c.wait(n));
    for (auto& r : c.results())
      CHECK_FALSE(r.error);
    return sqlite_stats(*d).commits - before.commits;
  };
  CHECK(batches_for(10, 10) == 4);  // 3 + 3 + 3 + 1 jobs
  CHECK(batches_for(6, 1500) == 6); // each over half the byte bound: one per batch
  CHECK(batches_for(2, 5000) == 2); // a write bigger than the bound still goes, alone
  CHECK(mam->count("example.org", "alice") == 19);
}

TEST_CASE("sqlite: a full queue makes writers wait, and loses nothing", "[sqlite][archive]") {
  TempDir dir;
  auto d = open_sqlite({.path = dir.file("chatgroup.db"), .max_batch_jobs = 2, .max_pending_writes = 4});
  auto mam = d->archive("mam");
  constexpr int kThreads = 8;
  constexpr int kPerThread = 60;
  Completions c;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i)
        mam->append_async("example.org", "alice", make_item(i, "", "", "t" + std::to_string(t)),
                          c.at(static_cast<std::size_t>(t * kPerThread + i)));
    });
  for (auto& th : threads)
    th.join();
  REQUIRE(c.wait(kThreads * kPerThread));
  for (auto& r : c.results())
    CHECK_FALSE(r.error);
  CHECK(mam->count("example.org", "alice") == kThreads * kPerThread);
  const auto stats = sqlite_stats(*d);
  CHECK(stats.commits * 2 >= stats.jobs); // never more than 2 per batch
}

TEST_CASE("sqlite: reads do not wait for the writer", "[sqlite][archive]") {
  SqliteEnv env;
  const std::string path = env.dir.file("chatgroup.db");
  auto kv = env.driver->keyval("accounts");
  auto mam = env.driver->archive("mam");
  kv->set("example.org", "alice", "before");
  mam->append("example.org", "alice", make_item(1, "", "", "item"));

  // Another process holds the write lock: the writer waits in BEGIN IMMEDIATE (busy timeout 5 s) with a write.
  RawDb other(path);
  other.exec("BEGIN IMMEDIATE");
  std::string write_error;
  std::thread writer([&] {
    try {
      kv->set("example.org", "alice", "after");
    } catch (const std::exception& e) {
      write_error = e.what();
    }
  });
  // Meanwhile every read answers at once, from the last commit.
  CHECK(kv->get("example.org", "alice") == "before");
  CHECK(kv->users("example.org") == Strings{"alice"});
  CHECK(mam->count("example.org", "alice") == 1);
  CHECK(mam->query("example.org", "alice", {}).items.size() == 1);
  other.exec("ROLLBACK");
  writer.join();
  CHECK(write_error == "");
  CHECK(kv->get("example.org", "alice") == "after"); // a read after a completed write sees it
}

TEST_CASE("sqlite: the read pool is bounded", "[sqlite][archive]") {
  TempDir dir;
  auto d = open_sqlite({.path = dir.file("chatgroup.db"), .max_readers = 2});
  auto mam = d->archive("mam");
  append_all(*mam, "example.org", "alice", std::vector<ArchiveItem>(100, make_item(1, "", "", "x")));
  std::latch start(8);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < 50; ++i)
        if (mam->query("example.org", "alice", ArchiveQuery{.limit = 10}).total != 100)
          ++wrong;
    });
  for (auto& th : threads)
    th.join();
  CHECK(wrong == 0);
  CHECK(sqlite_stats(*d).readers <= 2);
  CHECK(sqlite_stats(*d).readers >= 1);
}

TEST_CASE("sqlite: destroying the driver commits every queued write first", "[sqlite][archive]") {
  TempDir dir;
  const std::string path = dir.file("chatgroup.db");
  constexpr std::size_t kItems = 3000;
  Completions c; // outlives the driver
  {
    auto d = open_sqlite({.path = path});
    auto mam = d->archive("mam");
    auto kv = d->keyval("accounts");
    std::thread other([&] { kv->set("example.org", "alice", "written meanwhile"); });
    for (std::size_t i = 0; i < kItems; ++i)
      mam->append_async("example.org", "alice", make_item(static_cast<std::int64_t>(i), "", "", "x"), c.at(i));
    other.join();
  }                          // the destructor drains the queue and joins the writer
  CHECK(c.done() == kItems); // every callback ran before the destructor returned
  Strings ids;
  for (auto& r : c.results()) {
    CHECK_FALSE(r.error);
    ids.push_back(r.id);
  }
  auto d = open_sqlite({.path = path});
  CHECK(ids_of(all_items(*d->archive("mam"), "example.org", "alice")) == ids);
  CHECK(d->keyval("accounts")->get("example.org", "alice") == "written meanwhile");
}

TEST_CASE("sqlite: archive handles stay valid after the driver is gone", "[sqlite][archive]") {
  TempDir dir;
  std::shared_ptr<ArchiveStore> mam;
  {
    auto d = open_sqlite({.path = dir.file("chatgroup.db")});
    mam = d->archive("mam");
    mam->append("example.org", "alice", make_item(1, "", "", "while open"));
  }
  mam->append("example.org", "alice", make_item(2, "", "", "after"));
  Completions c;
  mam->append_async("example.org", "alice", make_item(3, "", "", "async after"), c.at(0));
  REQUIRE(c.wait(1));
  CHECK_FALSE(c.results()[0].error);
  CHECK(mam->count("example.org", "alice") == 3);
  CHECK(mam->remove("example.org", "alice", ArchiveQuery{.ids = {c.results()[0].id}}) == 1);
  CHECK(mam->count("example.org", "alice") == 2);
}

TEST_CASE("sqlite: kill -9 loses no acknowledged append", "[sqlite][archive][crash]") {
  TempDir dir;
  const std::string path = dir.file("chatgroup.db");
  open_sqlite({.path = path}); // created and migrated before the first child
  std::set<std::string> acknowledged;
  // Round r kills the child once the parent has read this many acknowledgements (or after 2 s).
  const std::size_t kill_after[] = {1, 37, 400, 1500, 5000};
  std::size_t round = 0;
  for (std::size_t target : kill_after) {
    ++round;
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::fflush(nullptr); // the child must not write out the parent's buffered output again
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // The child: appends as fast as it can and reports each id once its append completed (is durable).
      ::close(fds[0]);
      try {
        auto d = open_sqlite({.path = path});
        auto mam = d->archive("mam");
        const int fd = fds[1];
        for (std::int64_t i = 0;; ++i)
          mam->append_async("example.org", "alice",
                            make_item(i, "bob@example.net", "chat", "round " + std::to_string(round)),
                            [fd](std::string id, std::exception_ptr error) {
                              if (error)
                                return;
                              id += '\n'; // under PIPE_BUF: one atomic write
                              if (::write(fd, id.data(), id.size()) < 0)
                                ::_exit(3);
                            });
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
      }
      ::_exit(1);
    }
    ::close(fds[1]);

    std::size_t received = 0;
    std::string buffer;
    auto take_lines = [&] {
      std::size_t nl;
      while ((nl = buffer.find('\n')) != std::string::npos) {
        acknowledged.insert(buffer.substr(0, nl));
        buffer.erase(0, nl + 1);
        ++received;
      }
    };
    const auto deadline = Clock::now() + std::chrono::seconds(2);
    while (received < target && Clock::now() < deadline) {
      pollfd p{fds[0], POLLIN, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (::poll(&p, 1, static_cast<int>(std::max<long long>(left, 0))) <= 0)
        break;
      char chunk[4096];
      const ssize_t n = ::read(fds[0], chunk, sizeof chunk);
      if (n <= 0)
        break;
      buffer.append(chunk, static_cast<std::size_t>(n));
      take_lines();
    }
    REQUIRE(::kill(child, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status));
    // What the child wrote before it died was acknowledged too.
    for (;;) {
      char chunk[4096];
      const ssize_t n = ::read(fds[0], chunk, sizeof chunk);
      if (n <= 0)
        break;
      buffer.append(chunk, static_cast<std::size_t>(n));
    }
    take_lines(); // a partial last line is no acknowledgement
    ::close(fds[0]);

    auto d = open_sqlite({.path = path});
    std::set<std::string> stored;
    for (auto& item : all_items(*d->archive("mam"), "example.org", "alice"))
      stored.insert(item.id);
    std::size_t lost = 0;
    for (const auto& id : acknowledged)
      lost += stored.count(id) ? 0 : 1;
    std::printf("kill -9 round %zu: %zu acknowledged in this round, %zu in all, %zu stored, %zu lost\n", round,
                received, acknowledged.size(), stored.size(), lost);
    INFO("round " << round);
    CHECK(received >= 1);
    CHECK(lost == 0);
  }
}

TEST_CASE("sqlite: a version 1 database gets the archive table", "[sqlite][archive]") {
  TempDir dir;
  const std::string path = dir.file("chatgroup.db");
  {
    auto d = open_sqlite({.path = path});
    d->keyval("accounts")->set("example.org", "alice", "kept");
  }
  {
    RawDb raw(path); // back to what a version 1 build left
    raw.exec("DROP TABLE archive; DELETE FROM schema_version WHERE version >= 2");
    REQUIRE(raw.query("SELECT max(version) FROM schema_version") == "1");
  }
  auto d = open_sqlite({.path = path});
  CHECK(d->keyval("accounts")->get("example.org", "alice") == "kept");
  auto mam = d->archive("mam");
  const auto id = mam->append("example.org", "alice", make_item(1, "", "", "x"));
  CHECK(ids_of(all_items(*mam, "example.org", "alice")) == Strings{id});
  RawDb raw(path);
  CHECK(raw.query("SELECT max(version) FROM schema_version") == "2");
  CHECK(raw.query("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name LIKE 'archive_%'") == "3");
}

TEST_CASE("sqlite: every archive statement searches an index", "[sqlite][archive]") {
  SqliteEnv env;
  append_all(*env.driver->archive("mam"), "example.org", "alice",
             std::vector<ArchiveItem>(10, make_item(1, "bob@example.net", "chat", "x")));
  const std::vector<ArchiveQuery> shapes = {
      {},
      {.with = "bob@example.net"},
      {.start = 1},
      {.end = 1},
      {.start = 1, .end = 2},
      {.kind = "chat"},
      {.with = "bob@example.net", .start = 1, .end = 2, .kind = "chat"},
      {.after_id = "a", .limit = 10},
      {.before_id = "b", .limit = 10, .from_end = true},
      {.with = "bob@example.net", .after_id = "a", .before_id = "b", .from_end = true},
      {.start = 1, .after_id = "a", .before_id = "b"},
  };
  std::size_t lines = 0;
  for (const auto& q : shapes) {
    for (const auto& line : sqlite_archive_query_plans(*env.driver, q)) {
      INFO(line);
      const auto detail = line.substr(line.find(" :: ") + 4);
      if (detail.find("archive") != std::string::npos) {
        ++lines;
        CHECK(detail.rfind("SEARCH archive USING ", 0) == 0); // never SCAN (the whole table or index)
      }
      CHECK(detail.find("TEMP B-TREE") == std::string::npos); // never a sort
    }
  }
  CHECK(lines >= shapes.size() * 5);
}

TEST_CASE("sqlite: paging from the middle of 100,000 items", "[sqlite][archive][large]") {
  SqliteEnv env;
  auto mam = env.driver->archive("mam");
  constexpr int kItems = 100000;
  std::vector<ArchiveItem> items;
  items.reserve(kItems);
  for (int i = 0; i < kItems; ++i)
    items.push_back(make_item(std::int64_t{1'700'000'000'000'000} + i * std::int64_t{1'000'000},
                              "contact" + std::to_string(i % 10) + "@example.net", "chat",
                              "<message><body>message number " + std::to_string(i) + "</body></message>"));
  auto start = Clock::now();
  const auto ids = append_all(*mam, "example.org", "alice", items);
  std::printf("100k: appended %d items with append_async in %.0f ms\n", kItems, ms_since(start));
  append_all(*mam, "example.org", "bob", std::vector<ArchiveItem>(1000, make_item(1, "", "", "noise")));

  auto timed = [&](const char* name, const ArchiveQuery& q) {
    ArchivePage page;
    constexpr int kRuns = 20;
    start = Clock::now();
    for (int i = 0; i < kRuns; ++i)
      page = mam->query("example.org", "alice", q);
    std::printf("100k: %-48s %7.3f ms per query (%zu items, total %zu, first_index %zu)\n", name,
                ms_since(start) / kRuns, page.items.size(), page.total, page.first_index);
    return page;
  };

  auto page = timed("page of 50 after the 50,000th", ArchiveQuery{.after_id = ids[49999], .limit = 50});
  CHECK(ids_of(page.items) == Strings(ids.begin() + 50000, ids.begin() + 50050));
  CHECK(page.first_index == 50000);
  CHECK(page.total == kItems);
  CHECK_FALSE(page.complete);

  page = timed("page of 50 before the 50,000th (from_end)",
               ArchiveQuery{.before_id = ids[50000], .limit = 50, .from_end = true});
  CHECK(ids_of(page.items) == Strings(ids.begin() + 49950, ids.begin() + 50000));
  CHECK(page.first_index == 49950);

  page = timed("first page", ArchiveQuery{.limit = 50});
  CHECK(page.first_index == 0);
  page = timed("last page (from_end)", ArchiveQuery{.limit = 50, .from_end = true});
  CHECK(page.first_index == kItems - 50);
  CHECK_FALSE(page.complete); // backward, items lie before it

  page = timed("with, page after the 50,000th",
               ArchiveQuery{.with = "contact3@example.net", .after_id = ids[49999], .limit = 50});
  REQUIRE(page.items.size() == 50);
  CHECK(page.items[0].id == ids[50003]);
  CHECK(page.total == kItems / 10);
  CHECK(page.first_index == 5000);

  page = timed("time range of 100 s in the middle",
               ArchiveQuery{.start = items[70000].when, .end = items[70099].when, .limit = 50});
  CHECK(ids_of(page.items) == Strings(ids.begin() + 70000, ids.begin() + 70050));
  CHECK(page.total == 100);

  page = timed("time range from the middle on, page after 80,000th",
               ArchiveQuery{.start = items[50000].when, .after_id = ids[79999], .limit = 50});
  CHECK(page.items.front().id == ids[80000]);
  CHECK(page.first_index == 30000);

  page = timed("count only", ArchiveQuery{.limit = 0});
  CHECK(page.total == kItems);

  page = timed("ids (3)", ArchiveQuery{.ids = {ids[10], ids[50000], ids[99999]}});
  CHECK(page.items.size() == 3);

  start = Clock::now();
  CHECK(mam->count("example.org", "alice") == kItems);
  std::printf("100k: count() %.3f ms\n", ms_since(start));
}
