// SQLite-only behaviour: persistence, several connections and processes on one file, schema versions, WAL, errors.
// The test looks at the file through its own raw sqlite3 connection where the driver's API cannot show it.
#include "raw_db.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>
#include <sqlite3.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <fstream>
#include <latch>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace cg::storage;
using namespace cg::storage::test;
using Catch::Matchers::Contains;

namespace {

using Strings = std::vector<std::string>;

std::string error_of(const SqliteOptions& options) {
  try {
    open_sqlite(options);
  } catch (const StorageError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

} // namespace

TEST_CASE("sqlite: name and capabilities", "[sqlite]") {
  TempDir dir;
  auto full = open_sqlite({.path = dir.file("full.db")});
  CHECK(full->name() == "sqlite");
  CHECK(full->capabilities().persistent);
  CHECK(full->capabilities().durable);
  auto normal = open_sqlite({.path = dir.file("normal.db"), .synchronous_full = false});
  CHECK(normal->capabilities().persistent);
  CHECK_FALSE(normal->capabilities().durable);

  auto memory = make_memory_driver();
  CHECK(memory->name() == "memory");
  CHECK_FALSE(memory->capabilities().persistent);
  CHECK_FALSE(memory->capabilities().durable);
}

TEST_CASE("sqlite: data persists after closing and reopening", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.file("chatgroup.db");
  const std::string binary("v\0\xff", 3);
  {
    auto d = open_sqlite({.path = path});
    d->keyval("accounts")->set("example.org", "alice", binary);
    d->keyval("accounts")->set("example.org", "bob", "b");
    d->map("roster")->set("example.org", "alice", "bob@example.net", "item");
    d->map("roster")->set("example.org", "alice", "carol@example.net", "item2");
    d->keyval("accounts")->remove("example.org", "bob");
  }
  {
    auto d = open_sqlite({.path = path, .synchronous_full = false});
    CHECK(d->keyval("accounts")->get("example.org", "alice") == binary);
    CHECK(d->keyval("accounts")->users("example.org") == Strings{"alice"});
    CHECK(
        d->map("roster")->all("example.org", "alice") ==
        std::vector<std::pair<std::string, std::string>>{{"bob@example.net", "item"}, {"carol@example.net", "item2"}});
    d->map("roster")->remove("example.org", "alice", "bob@example.net");
  }
  auto d = open_sqlite({.path = path});
  CHECK(d->map("roster")->all("example.org", "alice").size() == 1);
  CHECK(d->keyval("accounts")->get("example.org", "alice") == binary);
}

TEST_CASE("sqlite: store handles stay valid after the driver is gone", "[sqlite]") {
  TempDir dir;
  std::shared_ptr<KeyValStore> kv;
  {
    auto d = open_sqlite({.path = dir.file("chatgroup.db")});
    kv = d->keyval("accounts");
  }
  kv->set("example.org", "alice", "still works");
  CHECK(kv->get("example.org", "alice") == "still works");
}

TEST_CASE("sqlite: two drivers on one file see each other's writes and write concurrently", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.file("chatgroup.db");
  auto server = open_sqlite({.path = path}); // as chatgroupd
  auto ctl = open_sqlite({.path = path});    // as chatgroupctl beside it

  ctl->keyval("accounts")->set("example.org", "alice", "added by ctl");
  CHECK(server->keyval("accounts")->get("example.org", "alice") == "added by ctl");
  server->map("roster")->set("example.org", "alice", "bob@example.net", "added by server");
  CHECK(ctl->map("roster")->get("example.org", "alice", "bob@example.net") == "added by server");
  ctl->remove_user("example.org", "alice");
  CHECK_FALSE(server->keyval("accounts")->get("example.org", "alice"));
  CHECK(server->map("roster")->all("example.org", "alice").empty());

  constexpr int kPerDriver = 150;
  std::mutex errors_mutex;
  std::vector<std::string> errors;
  std::latch start(2);
  auto writer = [&](Driver& d, const std::string& prefix) {
    start.arrive_and_wait();
    try {
      auto kv = d.keyval("accounts");
      auto map = d.map("roster");
      for (int i = 0; i < kPerDriver; ++i) {
        kv->set("example.org", prefix + std::to_string(i), "v");
        map->set("example.org", "shared", prefix + std::to_string(i), "v");
        (void)kv->users("example.org"); // reads interleaved with the other connection's writes
      }
    } catch (const std::exception& e) {
      std::lock_guard lock(errors_mutex);
      errors.push_back(e.what());
    }
  };
  std::thread a(writer, std::ref(*server), "server-");
  std::thread b(writer, std::ref(*ctl), "ctl-");
  a.join();
  b.join();

  CHECK(errors == Strings{});
  CHECK(server->keyval("accounts")->users("example.org").size() == 2 * kPerDriver);
  CHECK(ctl->keyval("accounts")->users("example.org").size() == 2 * kPerDriver);
  CHECK(server->map("roster")->all("example.org", "shared").size() == 2 * kPerDriver);
}

TEST_CASE("sqlite: two processes write to one file at once", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.file("chatgroup.db"); // neither process has opened it yet: both create and migrate
  constexpr int kPerProcess = 500;

  int ready[2];
  int go[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(go) == 0);
  std::fflush(nullptr); // the child must not write out the parent's buffered output again
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child: no Catch2 here; report through the exit status (and stderr).
    ::close(ready[0]);
    ::close(go[1]);
    int status = 1;
    try {
      auto d = open_sqlite({.path = path});
      auto kv = d->keyval("accounts");
      char c = 'r';
      if (::write(ready[1], &c, 1) == 1 && ::read(go[0], &c, 1) == 1) {
        for (int i = 0; i < kPerProcess; ++i)
          kv->set("example.org", "child-" + std::to_string(i), "from the child " + std::to_string(i));
        status = 0;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
    }
    ::_exit(status);
  }

  // Only the other side keeps the write ends: a process that dies closes them, and a read() returns 0, not hangs.
  ::close(ready[1]);
  ::close(go[0]);
  std::string parent_error;
  try {
    auto d = open_sqlite({.path = path});
    auto kv = d->keyval("accounts");
    char c = 0;
    if (::read(ready[0], &c, 1) != 1 || ::write(go[1], "g", 1) != 1)
      throw std::runtime_error("the child did not start");
    for (int i = 0; i < kPerProcess; ++i)
      kv->set("example.org", "parent-" + std::to_string(i), "from the parent " + std::to_string(i));
  } catch (const std::exception& e) {
    parent_error = e.what();
  }
  ::close(go[1]); // unblocks a child still waiting, whatever happened
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  ::close(ready[0]);

  CHECK(parent_error == "");
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  auto d = open_sqlite({.path = path});
  auto kv = d->keyval("accounts");
  CHECK(kv->users("example.org").size() == 2 * kPerProcess);
  for (int i = 0; i < kPerProcess; ++i) {
    CHECK(kv->get("example.org", "child-" + std::to_string(i)) == "from the child " + std::to_string(i));
    CHECK(kv->get("example.org", "parent-" + std::to_string(i)) == "from the parent " + std::to_string(i));
  }
}

TEST_CASE("sqlite: concurrent first opens migrate once", "[sqlite]") {
  TempDir dir;
  for (int round = 0; round < 40; ++round) {
    const std::string path = dir.file("race" + std::to_string(round) + ".db");
    constexpr int kOpeners = 8;
    std::latch start(kOpeners);
    std::mutex errors_mutex;
    std::vector<std::string> errors;
    std::vector<std::thread> threads;
    for (int t = 0; t < kOpeners; ++t) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        try {
          auto d = open_sqlite({.path = path});
          d->keyval("accounts")->set("example.org", "alice", "x");
        } catch (const std::exception& e) {
          std::lock_guard lock(errors_mutex);
          errors.push_back(e.what());
        }
      });
    }
    for (auto& th : threads)
      th.join();
    CHECK(errors == Strings{});
    RawDb raw(path);
    CHECK(raw.query("SELECT count(*) FROM schema_version") == std::to_string(sqlite_schema_version()));
    CHECK(raw.query("SELECT max(version) FROM schema_version") == std::to_string(sqlite_schema_version()));
  }
}

TEST_CASE("sqlite: the schema is versioned and reopening does not migrate again", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.file("chatgroup.db");
  REQUIRE(sqlite_schema_version() >= 1);
  open_sqlite({.path = path});
  open_sqlite({.path = path});
  RawDb raw(path);
  CHECK(raw.query("SELECT max(version) FROM schema_version") == std::to_string(sqlite_schema_version()));
  CHECK(raw.query("SELECT count(*) FROM schema_version") == std::to_string(sqlite_schema_version()));
  CHECK(raw.query("SELECT count(*) FROM sqlite_schema WHERE name IN ('keyval', 'map', 'archive')") == "3");
}

TEST_CASE("sqlite: a database from a newer build is refused, naming the file", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.file("chatgroup.db");
  {
    auto d = open_sqlite({.path = path});
    d->keyval("accounts")->set("example.org", "alice", "kept");
  }
  const int newer = sqlite_schema_version() + 1;
  RawDb(path).exec("INSERT INTO schema_version(version) VALUES(" + std::to_string(newer) + ")");

  const std::string error = error_of({.path = path});
  CHECK_THAT(error, Contains("database " + path + " has schema version " + std::to_string(newer) +
                             ", newer than this build supports (" + std::to_string(sqlite_schema_version()) +
                             "); upgrade ChatGroup"));
  // Refusing changed nothing.
  RawDb raw(path);
  CHECK(raw.query("SELECT max(version) FROM schema_version") == std::to_string(newer));
  CHECK(raw.query("SELECT value FROM keyval WHERE user = 'alice'") == "kept");
}

TEST_CASE("sqlite: a file that is not a database is an error naming the path, and is left alone", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.file("notes.txt");
  std::string content;
  for (int i = 0; i < 200; ++i)
    content += "This is a text file, not a database. Line " + std::to_string(i) + "\n";
  std::ofstream(path, std::ios::binary) << content;

  const std::string error = error_of({.path = path});
  CHECK_THAT(error, Contains(path));
  CHECK_THAT(error, Contains("not a database"));
  CHECK(read_file(path) == content);
}

TEST_CASE("sqlite: a missing directory is an error naming the path", "[sqlite]") {
  TempDir dir;
  const std::string missing = dir.file("no-such-dir");
  const std::string path = missing + "/chatgroup.db";
  const std::string error = error_of({.path = path});
  CHECK_THAT(error, Contains(path));
  CHECK_THAT(error, Contains("directory " + missing + " does not exist"));
  CHECK_FALSE(std::filesystem::exists(missing));

  CHECK_THAT(error_of({.path = ""}), Contains("no path"));
}

TEST_CASE("sqlite: the database is in WAL mode", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.file("chatgroup.db");
  auto d = open_sqlite({.path = path});
  d->keyval("accounts")->set("example.org", "alice", "x");
  CHECK(std::filesystem::exists(path + "-wal"));
  RawDb raw(path);
  CHECK(raw.query("PRAGMA journal_mode") == "wal");
  // The other connection reads what the driver committed (from the WAL, not yet checkpointed).
  CHECK(raw.query("SELECT value FROM keyval WHERE store = 'accounts' AND user = 'alice'") == "x");
}

TEST_CASE("sqlite: a write that cannot get the lock is an error naming the file and the operation", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.file("chatgroup.db");
  auto d = open_sqlite({.path = path, .busy_timeout_ms = 0}); // do not wait for the lock: fail at once
  auto kv = d->keyval("accounts");
  auto map = d->map("roster");
  kv->set("example.org", "alice", "before");

  RawDb other(path);
  other.exec("BEGIN IMMEDIATE"); // another process holds the write lock
  try {
    kv->set("example.org", "alice", "during");
    FAIL("the write succeeded while another connection held the write lock");
  } catch (const StorageError& e) {
    CHECK_THAT(std::string(e.what()), Contains(path));
    CHECK_THAT(std::string(e.what()), Contains("keyval 'accounts' set"));
    CHECK_THAT(std::string(e.what()), Contains("locked"));
  }
  CHECK_THROWS_AS(map->set("example.org", "alice", "k", "v"), StorageError);
  CHECK_THROWS_AS(d->remove_user("example.org", "alice"), StorageError);
  // Reads still work in WAL mode while another connection writes.
  CHECK(kv->get("example.org", "alice") == "before");
  other.exec("ROLLBACK");

  // The driver is usable again: no transaction was left open on its connection.
  kv->set("example.org", "alice", "after");
  CHECK(kv->get("example.org", "alice") == "after");
  CHECK(other.query("SELECT value FROM keyval WHERE user = 'alice'") == "after");
}

TEST_CASE("sqlite: a write that fails inside its transaction is rolled back, and the driver goes on", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.file("chatgroup.db");
  auto d = open_sqlite({.path = path});
  auto kv = d->keyval("accounts");
  auto map = d->map("roster");
  kv->set("example.org", "poison", "before");
  map->set("example.org", "poison", "k", "before");

  // Another program's triggers make statements fail after BEGIN IMMEDIATE succeeded.
  RawDb other(path);
  other.exec("CREATE TRIGGER no_update BEFORE UPDATE ON keyval WHEN NEW.user = 'poison'"
             " BEGIN SELECT RAISE(ABORT, 'rejected by the test'); END");
  other.exec("CREATE TRIGGER no_delete BEFORE DELETE ON map WHEN OLD.user = 'poison'"
             " BEGIN SELECT RAISE(ABORT, 'rejected by the test'); END");

  try {
    kv->set("example.org", "poison", "during");
    FAIL("the trigger did not fire");
  } catch (const StorageError& e) {
    CHECK_THAT(std::string(e.what()), Contains(path));
    CHECK_THAT(std::string(e.what()), Contains("keyval 'accounts' set"));
    CHECK_THAT(std::string(e.what()), Contains("rejected by the test"));
  }
  // remove_user deletes from keyval, then fails on map: all or nothing.
  CHECK_THROWS_WITH(d->remove_user("example.org", "poison"), Contains("remove_user") && Contains(path));
  CHECK(kv->get("example.org", "poison") == "before");
  CHECK(map->get("example.org", "poison", "k") == "before");

  // No transaction was left open: the next writes commit, and another connection sees them.
  kv->set("example.org", "alice", "after");
  map->set("example.org", "alice", "k", "after");
  CHECK(other.query("SELECT value FROM keyval WHERE user = 'alice'") == "after");
  CHECK(other.query("SELECT value FROM map WHERE user = 'alice'") == "after");
  CHECK(other.query("SELECT value FROM keyval WHERE user = 'poison'") == "before");
}
