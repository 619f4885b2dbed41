// Internal to the SQLite driver: one connection to the database file and its prepared statements. Nothing outside
// storage/sqlite/ includes this (it is the only place that sees sqlite3.h).
#pragma once

#include "storage/sqlite/sqlite_driver.hpp"

#include <sqlite3.h>

#include <array>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace cg::storage::sqlite {

// Every statement the driver runs after open, prepared once per connection (SQLITE_PREPARE_PERSISTENT). The archive
// queries whose shape depends on the filters are built by archive_sql.hpp and cached per connection (cached()).
enum class Sql {
  Begin,
  Commit,
  Rollback,
  BeginRead,
  Savepoint,
  Release,
  RollbackTo,
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
  ArcInsert,
  ArcRowid,
  ArcFind,
  ArcDeleteRow,
  ArcCount,
  ArcSpan,
  ArcRemoveOlder,
  ArcStores,
  ArcRemoveUser,
  Count_
};

// Applies the schema migrations (migrations.cpp); called by Connection at open.
class Connection;
void apply_migrations(Connection& connection);

// One sqlite3 handle opened with SQLITE_OPEN_NOMUTEX: SQLite does no locking of its own on it, so it is used by one
// thread at a time — the writer thread (or whoever holds the writer's connection lock), or the reader that leased it
// from the pool (writer.hpp). The statements, their bindings and sqlite3_errmsg are all per-connection state.
class Connection {
public:
  // Writer: creates the file, switches it to WAL, sets synchronous and applies the migrations. Reader: opens an
  // existing, migrated file, with query_only set.
  enum class Role { Writer, Reader };
  Connection(const SqliteOptions& options, Role role);
  ~Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& path() const { return path_; }
  sqlite3* db() const { return db_.get(); }

  // Throws StorageError: "SQLite database <path>: <operation>: <sqlite3_errmsg>".
  [[noreturn]] void fail(std::string_view operation) const;
  [[noreturn]] void fail(std::string_view operation, std::string_view message) const;
  // The same errors, as exception_ptrs (for the writer to hand to a job).
  std::exception_ptr error(std::string_view operation) const;
  std::exception_ptr error(std::string_view operation, std::string_view message) const;

  // Runs SQL text (possibly several statements) that returns no rows; used at open, not on hot paths.
  void exec(const char* sql, std::string_view operation);

  sqlite3_stmt* statement(Sql which) const { return statements_[static_cast<std::size_t>(which)].get(); }
  // The SQL text of a statement.
  static const char* sql(Sql which);
  // A statement prepared from `sql` on first use and kept (the archive's query shapes).
  sqlite3_stmt* cached(const std::string& sql, std::string_view operation);

  // Runs a statement of `which` that returns no rows (BEGIN, COMMIT, SAVEPOINT …).
  void step_simple(Sql which, std::string_view operation);
  // The same without throwing: returns SQLite's result code; on failure, `message` receives sqlite3_errmsg.
  int try_step(Sql which, std::string& message);

  // Rolls back the open transaction, if any (SQLite rolls back by itself after some errors).
  void rollback() noexcept;
  // Whether a transaction is open (false also after SQLite rolled one back by itself).
  bool in_transaction() const { return !sqlite3_get_autocommit(db_.get()); }

private:
  struct CloseDb {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  struct Finalize {
    void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
  };

  std::string path_;
  // Declared before the statements so it is closed after they are finalized, also when the constructor throws.
  std::unique_ptr<sqlite3, CloseDb> db_;
  std::array<std::unique_ptr<sqlite3_stmt, Finalize>, static_cast<std::size_t>(Sql::Count_)> statements_;
  std::unordered_map<std::string, std::unique_ptr<sqlite3_stmt, Finalize>> cache_;
};

// One use of a prepared statement: binds parameters, steps, reads columns; resets the statement and clears its
// bindings when it goes out of scope. Parameters are bound SQLITE_STATIC (no copy): they must outlive the Query,
// which they do since a Query lives within one driver call. The caller has the connection to itself.
class Query {
public:
  Query(Connection& connection, Sql which, std::string_view operation)
      : Query(connection, connection.statement(which), operation) {}
  Query(Connection& connection, sqlite3_stmt* stmt, std::string_view operation)
      : connection_(connection), stmt_(stmt), operation_(operation) {}
  ~Query() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  // Text with an explicit length: a string_view is not NUL-terminated and may contain NULs.
  Query& text(int index, std::string_view value);
  Query& blob(int index, std::string_view value);
  Query& integer(int index, std::int64_t value);

  // true: a row is available; false: done. Throws StorageError on any error.
  bool step();
  // step() of a statement that returns no rows.
  void run() {
    while (step()) {
    }
  }

  std::string column_text(int index) const;
  std::string column_blob(int index) const;
  std::int64_t column_int(int index) const { return sqlite3_column_int64(stmt_, index); }
  bool column_is_null(int index) const { return sqlite3_column_type(stmt_, index) == SQLITE_NULL; }
  // Rows changed by the last INSERT/UPDATE/DELETE on this connection.
  std::int64_t changes() const { return sqlite3_changes64(connection_.db()); }
  // The extended result code of the last failure (e.g. SQLITE_CONSTRAINT_UNIQUE).
  int extended_error() const { return sqlite3_extended_errcode(connection_.db()); }

private:
  Connection& connection_;
  sqlite3_stmt* stmt_;
  std::string_view operation_;
};

} // namespace cg::storage::sqlite
