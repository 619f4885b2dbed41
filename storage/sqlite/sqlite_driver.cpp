// The SQLite driver (sqlite_driver.hpp). A driver and every store handle it gives out share one Backend
// (backend.hpp): the writer thread with its connection, and the pool of read connections. A handle kept after the
// driver is destroyed stays valid: the driver's destructor commits every queued write and ends the writer thread,
// and the handle's later writes run on its caller's thread.
//
// Several processes on one file: WAL lets readers run beside the single writer; a writer that finds the write lock
// held by another process waits in SQLite's busy handler for up to busy_timeout_ms, then fails with StorageError.
#include "storage/sqlite/archive.hpp"
#include "storage/sqlite/backend.hpp"

#include <stdexcept>
#include <string>

namespace cg::storage {
namespace {

using sqlite::Backend;
using sqlite::Connection;
using sqlite::Query;
using sqlite::Sql;

std::string describe(std::string_view kind, std::string_view store, std::string_view operation) {
  std::string s(kind);
  s += " '";
  s += store;
  s += "' ";
  s += operation;
  return s;
}

class SqliteKeyVal final : public KeyValStore {
public:
  SqliteKeyVal(std::shared_ptr<Backend> b, std::string_view store) : b_(std::move(b)), store_(store) {}

  std::optional<std::string> get(std::string_view host, std::string_view user) override {
    const std::string op = describe("keyval", store_, "get");
    auto c = b_->read();
    Query q(*c, Sql::KvGet, op);
    q.text(1, store_).text(2, host).text(3, user);
    if (!q.step())
      return std::nullopt;
    return q.column_blob(0);
  }

  void set(std::string_view host, std::string_view user, std::string_view value) override {
    const std::string op = describe("keyval", store_, "set");
    b_->write(op, value.size(), [&](Connection& c) {
      Query q(c, Sql::KvSet, op);
      q.text(1, store_).text(2, host).text(3, user).blob(4, value).run();
    });
  }

  bool remove(std::string_view host, std::string_view user) override {
    const std::string op = describe("keyval", store_, "remove");
    return b_->write(op, 0, [&](Connection& c) {
      Query q(c, Sql::KvRemove, op);
      q.text(1, store_).text(2, host).text(3, user).run();
      return q.changes() > 0;
    });
  }

  std::vector<std::string> users(std::string_view host) override {
    const std::string op = describe("keyval", store_, "users");
    auto c = b_->read();
    Query q(*c, Sql::KvUsers, op);
    q.text(1, store_).text(2, host);
    std::vector<std::string> out;
    while (q.step())
      out.push_back(q.column_text(0));
    return out;
  }

private:
  std::shared_ptr<Backend> b_;
  std::string store_;
};

class SqliteMap final : public MapStore {
public:
  SqliteMap(std::shared_ptr<Backend> b, std::string_view store) : b_(std::move(b)), store_(store) {}

  std::optional<std::string> get(std::string_view host, std::string_view user, std::string_view key) override {
    const std::string op = describe("map", store_, "get");
    auto c = b_->read();
    Query q(*c, Sql::MapGet, op);
    q.text(1, store_).text(2, host).text(3, user).text(4, key);
    if (!q.step())
      return std::nullopt;
    return q.column_blob(0);
  }

  void set(std::string_view host, std::string_view user, std::string_view key, std::string_view value) override {
    const std::string op = describe("map", store_, "set");
    b_->write(op, key.size() + value.size(), [&](Connection& c) {
      Query q(c, Sql::MapSet, op);
      q.text(1, store_).text(2, host).text(3, user).text(4, key).blob(5, value).run();
    });
  }

  bool remove(std::string_view host, std::string_view user, std::string_view key) override {
    const std::string op = describe("map", store_, "remove");
    return b_->write(op, 0, [&](Connection& c) {
      Query q(c, Sql::MapRemove, op);
      q.text(1, store_).text(2, host).text(3, user).text(4, key).run();
      return q.changes() > 0;
    });
  }

  std::vector<std::pair<std::string, std::string>> all(std::string_view host, std::string_view user) override {
    const std::string op = describe("map", store_, "all");
    auto c = b_->read();
    Query q(*c, Sql::MapAll, op);
    q.text(1, store_).text(2, host).text(3, user);
    std::vector<std::pair<std::string, std::string>> out;
    while (q.step())
      out.emplace_back(q.column_text(0), q.column_blob(1));
    return out;
  }

  std::size_t remove_all(std::string_view host, std::string_view user) override {
    const std::string op = describe("map", store_, "remove_all");
    return b_->write(op, 0, [&](Connection& c) {
      Query q(c, Sql::MapRemoveAll, op);
      q.text(1, store_).text(2, host).text(3, user).run();
      return static_cast<std::size_t>(q.changes());
    });
  }

private:
  std::shared_ptr<Backend> b_;
  std::string store_;
};

class SqliteDriver final : public Driver {
public:
  explicit SqliteDriver(const SqliteOptions& options) : b_(Backend::open(options)) {}
  ~SqliteDriver() override { b_->stop(); }
  SqliteDriver(const SqliteDriver&) = delete;
  SqliteDriver& operator=(const SqliteDriver&) = delete;

  std::string_view name() const override { return "sqlite"; }

  // persistent: it is a file. durable: only with synchronous=FULL, where every COMMIT syncs the WAL before it
  // returns — and a write is reported complete only after its COMMIT returned — so a completed write survives a
  // crash of the process and of the machine. With synchronous=NORMAL in WAL mode a completed write is in the OS (it
  // survives kill -9 of the process) but is synced only at the next checkpoint, so a power failure can lose the
  // last commits; we promise nothing then and report durable=false.
  Capabilities capabilities() const override {
    return Capabilities{.persistent = true, .durable = b_->options().synchronous_full};
  }

  std::shared_ptr<KeyValStore> keyval(std::string_view store) override {
    return std::make_shared<SqliteKeyVal>(b_, store);
  }

  std::shared_ptr<MapStore> map(std::string_view store) override { return std::make_shared<SqliteMap>(b_, store); }

  std::shared_ptr<ArchiveStore> archive(std::string_view store) override { return sqlite::make_archive(b_, store); }

  void remove_user(std::string_view host, std::string_view user) override {
    const std::string op = "remove_user";
    b_->write(op, 0, [&](Connection& c) {
      Query(c, Sql::UserRemoveKv, op).text(1, host).text(2, user).run();
      Query(c, Sql::UserRemoveMap, op).text(1, host).text(2, user).run();
      sqlite::remove_user_archives(c, host, user, op);
    });
  }

  Backend& backend() { return *b_; }

private:
  std::shared_ptr<Backend> b_;
};

SqliteDriver& sqlite_driver(Driver& driver) {
  auto* d = dynamic_cast<SqliteDriver*>(&driver);
  if (!d)
    throw std::invalid_argument("not a SQLite driver: " + std::string(driver.name()));
  return *d;
}

} // namespace

std::unique_ptr<Driver> open_sqlite(const SqliteOptions& options) {
  return std::make_unique<SqliteDriver>(options);
}

SqliteStats sqlite_stats(Driver& driver) {
  return sqlite_driver(driver).backend().stats();
}

std::shared_ptr<void> sqlite_pause_writer(Driver& driver) {
  // The pause holds the backend, so releasing it after the driver is gone is harmless.
  auto& backend = sqlite_driver(driver).backend();
  backend.pause();
  auto b = backend.shared_from_this();
  return std::shared_ptr<void>(nullptr, [b](void*) { b->resume(); });
}

std::vector<std::string> sqlite_archive_query_plans(Driver& driver, const ArchiveQuery& q) {
  auto& backend = sqlite_driver(driver).backend();
  auto lease = backend.read();
  std::vector<std::string> out;
  for (const auto& sql : sqlite::archive_statements(q)) {
    const std::string explain = "EXPLAIN QUERY PLAN " + sql;
    const std::string op = "explain";
    Query plan(*lease, lease->cached(explain, op), op);
    while (plan.step())
      out.push_back(sql + " :: " + plan.column_text(3));
  }
  return out;
}

} // namespace cg::storage
