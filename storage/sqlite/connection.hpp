// Internal to the SQLite driver: one connection to the database file, its prepared statements and the lock that
// serialises their use. Nothing outside storage/sqlite/ includes this (it is the only place that sees sqlite3.h).
#pragma once

#include "storage/sqlite/sqlite_driver.hpp"

#include <sqlite3.h>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>

namespace cg::storage::sqlite {

// Every statement the driver runs after open, prepared once per connection (SQLITE_PREPARE_PERSISTENT).
enum class Sql {
  Begin,
  Commit,
  Rollback,
  KvGet,
  KvSet,
  KvRemove,
  KvUsers,
  MapGet,
  MapSet,
  MapRemove,
  MapAll,
  MapRemoveAll,
  UserRemoveKv,
  UserRemoveMap,
  Count_
};

// Applies the schema migrations (migrations.cpp); called by Connection at open.
class Connection;
void apply_migrations(Connection& connection);

// One sqlite3 handle opened with SQLITE_OPEN_NOMUTEX: SQLite does no locking of its own on it, so every use goes
// through mutex() — the statements, their bindings and sqlite3_errmsg are all per-connection state.
class Connection {
public:
  explicit Connection(const SqliteOptions& options);
  ~Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& path() const { return path_; }
  sqlite3* db() const { return db_.get(); }
  std::mutex& mutex() { return mutex_; }

  // Throws StorageError: "SQLite database <path>: <operation>: <sqlite3_errmsg>".
  [[noreturn]] void fail(std::string_view operation) const;
  [[noreturn]] void fail(std::string_view operation, std::string_view message) const;

  // Runs SQL text (possibly several statements) that returns no rows; used at open, not on hot paths.
  void exec(const char* sql, std::string_view operation);

  sqlite3_stmt* statement(Sql which) const { return statements_[static_cast<std::size_t>(which)].get(); }

  // Runs f inside BEGIN IMMEDIATE … COMMIT, rolling back if it throws. The caller holds mutex(). BEGIN IMMEDIATE
  // takes the database's write lock up front, waiting in the busy handler while another connection (or process)
  // writes, instead of starting as a reader and failing with SQLITE_BUSY when upgrading to a writer.
  template <typename F>
  auto write_transaction(std::string_view operation, F&& f) -> std::invoke_result_t<F&> {
    step_simple(Sql::Begin, operation);
    try {
      if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
        f();
        step_simple(Sql::Commit, operation);
      } else {
        auto result = f();
        step_simple(Sql::Commit, operation);
        return result;
      }
    } catch (...) {
      rollback();
      throw;
    }
  }

  // Rolls back the open transaction, if any (SQLite rolls back by itself after some errors).
  void rollback() noexcept;

private:
  void step_simple(Sql which, std::string_view operation);

  struct CloseDb {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  struct Finalize {
    void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
  };

  std::string path_;
  std::mutex mutex_;
  // Declared before the statements so it is closed after they are finalized, also when the constructor throws.
  std::unique_ptr<sqlite3, CloseDb> db_;
  std::array<std::unique_ptr<sqlite3_stmt, Finalize>, static_cast<std::size_t>(Sql::Count_)> statements_;
};

// One use of a cached statement: binds parameters, steps, reads columns; resets the statement and clears its
// bindings when it goes out of scope. Parameters are bound SQLITE_STATIC (no copy): they must outlive the Query,
// which they do since a Query lives within one driver call. The caller holds the connection's mutex.
class Query {
public:
  Query(Connection& connection, Sql which, std::string_view operation)
      : connection_(connection), stmt_(connection.statement(which)), operation_(operation) {}
  ~Query() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  // Text with an explicit length: a string_view is not NUL-terminated and may contain NULs.
  Query& text(int index, std::string_view value);
  Query& blob(int index, std::string_view value);

  // true: a row is available; false: done. Throws StorageError on any error.
  bool step();
  // step() of a statement that returns no rows.
  void run() {
    while (step()) {
    }
  }

  std::string column_text(int index) const;
  std::string column_blob(int index) const;
  // Rows changed by the last INSERT/UPDATE/DELETE on this connection.
  std::int64_t changes() const { return sqlite3_changes64(connection_.db()); }

private:
  Connection& connection_;
  sqlite3_stmt* stmt_;
  std::string_view operation_;
};

} // namespace cg::storage::sqlite
