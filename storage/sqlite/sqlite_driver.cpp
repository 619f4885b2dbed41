// The SQLite driver (sqlite_driver.hpp). One connection per driver, shared by the driver and every store handle
// it gives out (a handle kept after the driver is destroyed stays valid; the file closes with the last of them).
// Each call takes the connection's mutex for its whole duration; writes run in BEGIN IMMEDIATE transactions.
//
// Several processes on one file: WAL lets readers run beside the single writer; a writer that finds the write lock
// held by another process waits in SQLite's busy handler for up to busy_timeout_ms, then fails with StorageError.
#include "storage/sqlite/connection.hpp"

#include <string>

namespace cg::storage {
namespace {

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
  SqliteKeyVal(std::shared_ptr<Connection> c, std::string_view store) : c_(std::move(c)), store_(store) {}

  std::optional<std::string> get(std::string_view host, std::string_view user) override {
    const std::string op = describe("keyval", store_, "get");
    std::lock_guard lock(c_->mutex());
    Query q(*c_, Sql::KvGet, op);
    q.text(1, store_).text(2, host).text(3, user);
    if (!q.step())
      return std::nullopt;
    return q.column_blob(0);
  }

  void set(std::string_view host, std::string_view user, std::string_view value) override {
    const std::string op = describe("keyval", store_, "set");
    std::lock_guard lock(c_->mutex());
    c_->write_transaction(op, [&] {
      Query q(*c_, Sql::KvSet, op);
      q.text(1, store_).text(2, host).text(3, user).blob(4, value).run();
    });
  }

  bool remove(std::string_view host, std::string_view user) override {
    const std::string op = describe("keyval", store_, "remove");
    std::lock_guard lock(c_->mutex());
    return c_->write_transaction(op, [&] {
      Query q(*c_, Sql::KvRemove, op);
      q.text(1, store_).text(2, host).text(3, user).run();
      return q.changes() > 0;
    });
  }

  std::vector<std::string> users(std::string_view host) override {
    const std::string op = describe("keyval", store_, "users");
    std::lock_guard lock(c_->mutex());
    Query q(*c_, Sql::KvUsers, op);
    q.text(1, store_).text(2, host);
    std::vector<std::string> out;
    while (q.step())
      out.push_back(q.column_text(0));
    return out;
  }

private:
  std::shared_ptr<Connection> c_;
  std::string store_;
};

class SqliteMap final : public MapStore {
public:
  SqliteMap(std::shared_ptr<Connection> c, std::string_view store) : c_(std::move(c)), store_(store) {}

  std::optional<std::string> get(std::string_view host, std::string_view user, std::string_view key) override {
    const std::string op = describe("map", store_, "get");
    std::lock_guard lock(c_->mutex());
    Query q(*c_, Sql::MapGet, op);
    q.text(1, store_).text(2, host).text(3, user).text(4, key);
    if (!q.step())
      return std::nullopt;
    return q.column_blob(0);
  }

  void set(std::string_view host, std::string_view user, std::string_view key, std::string_view value) override {
    const std::string op = describe("map", store_, "set");
    std::lock_guard lock(c_->mutex());
    c_->write_transaction(op, [&] {
      Query q(*c_, Sql::MapSet, op);
      q.text(1, store_).text(2, host).text(3, user).text(4, key).blob(5, value).run();
    });
  }

  bool remove(std::string_view host, std::string_view user, std::string_view key) override {
    const std::string op = describe("map", store_, "remove");
    std::lock_guard lock(c_->mutex());
    return c_->write_transaction(op, [&] {
      Query q(*c_, Sql::MapRemove, op);
      q.text(1, store_).text(2, host).text(3, user).text(4, key).run();
      return q.changes() > 0;
    });
  }

  std::vector<std::pair<std::string, std::string>> all(std::string_view host, std::string_view user) override {
    const std::string op = describe("map", store_, "all");
    std::lock_guard lock(c_->mutex());
    Query q(*c_, Sql::MapAll, op);
    q.text(1, store_).text(2, host).text(3, user);
    std::vector<std::pair<std::string, std::string>> out;
    while (q.step())
      out.emplace_back(q.column_text(0), q.column_blob(1));
    return out;
  }

  std::size_t remove_all(std::string_view host, std::string_view user) override {
    const std::string op = describe("map", store_, "remove_all");
    std::lock_guard lock(c_->mutex());
    return c_->write_transaction(op, [&] {
      Query q(*c_, Sql::MapRemoveAll, op);
      q.text(1, store_).text(2, host).text(3, user).run();
      return static_cast<std::size_t>(q.changes());
    });
  }

private:
  std::shared_ptr<Connection> c_;
  std::string store_;
};

class SqliteDriver final : public Driver {
public:
  explicit SqliteDriver(const SqliteOptions& options)
      : c_(std::make_shared<Connection>(options)), synchronous_full_(options.synchronous_full) {}

  std::string_view name() const override { return "sqlite"; }

  // persistent: it is a file. durable: only with synchronous=FULL, where every COMMIT syncs the WAL before it
  // returns, so a returned write survives a crash of the process and of the machine. With synchronous=NORMAL in
  // WAL mode a returned write is in the OS (it survives kill -9 of the process) but is synced only at the next
  // checkpoint, so a power failure can lose the last commits; we promise nothing then and report durable=false.
  Capabilities capabilities() const override { return Capabilities{.persistent = true, .durable = synchronous_full_}; }

  std::shared_ptr<KeyValStore> keyval(std::string_view store) override {
    return std::make_shared<SqliteKeyVal>(c_, store);
  }

  std::shared_ptr<MapStore> map(std::string_view store) override { return std::make_shared<SqliteMap>(c_, store); }

  void remove_user(std::string_view host, std::string_view user) override {
    const std::string op = "remove_user";
    std::lock_guard lock(c_->mutex());
    c_->write_transaction(op, [&] {
      Query(*c_, Sql::UserRemoveKv, op).text(1, host).text(2, user).run();
      Query(*c_, Sql::UserRemoveMap, op).text(1, host).text(2, user).run();
    });
  }

private:
  std::shared_ptr<Connection> c_;
  bool synchronous_full_;
};

} // namespace

std::unique_ptr<Driver> open_sqlite(const SqliteOptions& options) {
  return std::make_unique<SqliteDriver>(options);
}

} // namespace cg::storage
