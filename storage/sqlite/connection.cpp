#include "storage/sqlite/connection.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <system_error>

namespace cg::storage::sqlite {
namespace {

// Indexed by Sql. Parameters: ?1 store, ?2 host, ?3 user, ?4 key or value, ?5 value.
constexpr std::array<const char*, static_cast<std::size_t>(Sql::Count_)> kSql = {
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "BEGIN", // a read transaction: one snapshot for the several statements of an archive query
    "SAVEPOINT job",
    "RELEASE job",
    "ROLLBACK TO job",
    // keyval
    "SELECT value FROM keyval WHERE store = ?1 AND host = ?2 AND user = ?3",
    "INSERT INTO keyval(store, host, user, value) VALUES(?1, ?2, ?3, ?4)"
    " ON CONFLICT(store, host, user) DO UPDATE SET value = excluded.value",
    "DELETE FROM keyval WHERE store = ?1 AND host = ?2 AND user = ?3",
    "SELECT user FROM keyval WHERE store = ?1 AND host = ?2 ORDER BY user",
    // map
    "SELECT value FROM map WHERE store = ?1 AND host = ?2 AND user = ?3 AND key = ?4",
    "INSERT INTO map(store, host, user, key, value) VALUES(?1, ?2, ?3, ?4, ?5)"
    " ON CONFLICT(store, host, user, key) DO UPDATE SET value = excluded.value",
    "DELETE FROM map WHERE store = ?1 AND host = ?2 AND user = ?3 AND key = ?4",
    "SELECT key, value FROM map WHERE store = ?1 AND host = ?2 AND user = ?3 ORDER BY key",
    "DELETE FROM map WHERE store = ?1 AND host = ?2 AND user = ?3",
    // remove_user: ?1 host, ?2 user, across every store
    "DELETE FROM keyval WHERE host = ?1 AND user = ?2",
    "DELETE FROM map WHERE host = ?1 AND user = ?2",
    // archive: ?1 store, ?2 host, ?3 user; the item ?4 id, ?5 at, ?6 with_jid, ?7 kind, ?8 payload
    "INSERT INTO archive(store, host, user, id, at, with_jid, kind, payload) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    "SELECT rowid FROM archive WHERE store = ?1 AND host = ?2 AND user = ?3 AND id = ?4",
    "SELECT rowid, id, at, with_jid, kind, payload FROM archive WHERE store = ?1 AND host = ?2 AND user = ?3"
    " AND id = ?4",
    "DELETE FROM archive WHERE rowid = ?1",
    "SELECT count(*) FROM archive WHERE store = ?1 AND host = ?2 AND user = ?3",
    // The user's first and last rowid: two O(log n) lookups (SQLite's min/max optimisation needs one aggregate per
    // SELECT).
    "SELECT (SELECT min(rowid) FROM archive WHERE store = ?1 AND host = ?2 AND user = ?3),"
    " (SELECT max(rowid) FROM archive WHERE store = ?1 AND host = ?2 AND user = ?3)",
    // remove_older_than: ?1 store, ?2 host, ?3 time (the index on (store, host, user, at) gives the host's rows)
    "DELETE FROM archive WHERE store = ?1 AND host = ?2 AND at < ?3",
    // The stores that have archived items: a skip scan over the index, one O(log n) step per store, where SELECT
    // DISTINCT would read every row. remove_user then deletes per store through the index.
    "WITH RECURSIVE s(store) AS (SELECT min(store) FROM archive"
    " UNION ALL SELECT (SELECT min(store) FROM archive WHERE store > s.store) FROM s WHERE s.store IS NOT NULL)"
    " SELECT store FROM s WHERE store IS NOT NULL",
    "DELETE FROM archive WHERE store = ?1 AND host = ?2 AND user = ?3",
};

// A pointer SQLite accepts for an empty value: binding a null pointer would store NULL, not "".
const char* data_or_empty(std::string_view value) {
  return value.data() ? value.data() : "";
}

// Extra context for a failed open: SQLite says only "unable to open database file".
std::string open_hint(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty())
    parent = ".";
  if (!fs::exists(parent, ec))
    return " (directory " + parent.string() + " does not exist)";
  if (!fs::is_directory(parent, ec))
    return " (" + parent.string() + " is not a directory)";
  if (fs::is_directory(path, ec))
    return " (it is a directory)";
  return {};
}

} // namespace

Connection::Connection(const SqliteOptions& options, Role role) : path_(options.path) {
  if (path_.empty())
    throw StorageError("SQLite database: no path given");

  sqlite3* raw = nullptr;
  // NOMUTEX: one thread at a time uses this connection (connection.hpp), so SQLite's own mutex would be redundant.
  // A reader opens a file the writer has created and migrated.
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (role == Role::Writer ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path_.c_str(), &raw, flags, nullptr);
  db_.reset(raw); // closed by db_ even on failure: sqlite3_open_v2 may return a handle along with an error
  if (rc != SQLITE_OK)
    fail("open", std::string(raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)) + open_hint(path_));

  // Wait for other connections' locks (this process or another) instead of failing with SQLITE_BUSY. Set first:
  // switching to WAL and the migrations below may have to wait for another process opening the same file.
  sqlite3_busy_timeout(db_.get(), options.busy_timeout_ms);

  if (role == Role::Writer) {
    // WAL: readers and the writer do not block each other, and several processes can share the file. The mode is
    // persistent in the file; the pragma returns the mode actually in effect, which is not "wal" when it could not
    // be changed (e.g. a filesystem without shared memory), and that is an error rather than a silent downgrade.
    // This is also the first statement that reads the file, so a file that is not a database fails here.
    //
    // Switching a new file to WAL needs an exclusive lock. When several connections open the same new file at once,
    // SQLite can report SQLITE_BUSY here without waiting in the busy handler (seen in the "concurrent first opens"
    // test; it does not wait where waiting could deadlock). So this one step is retried here, with a short
    // back-off, until busy_timeout_ms has passed.
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(options.busy_timeout_ms, 0));
    for (int attempt = 0;; ++attempt) {
      sqlite3_stmt* raw_stmt = nullptr;
      int step_rc = sqlite3_prepare_v2(db_.get(), "PRAGMA journal_mode=WAL", -1, &raw_stmt, nullptr);
      std::unique_ptr<sqlite3_stmt, Finalize> stmt(raw_stmt);
      if (step_rc == SQLITE_OK)
        step_rc = sqlite3_step(stmt.get());
      if (step_rc == SQLITE_ROW) {
        auto* mode = reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0));
        std::string got = mode ? mode : "";
        if (got != "wal")
          fail("open: set journal_mode=WAL", "the journal mode is '" + got + "', not 'wal'");
        break;
      }
      if ((step_rc & 0xff) != SQLITE_BUSY || Clock::now() >= deadline)
        fail("open: set journal_mode=WAL");
      sqlite3_sleep(std::min(1 << std::min(attempt, 5), 25)); // 1, 2, 4 … 25 ms
    }

    // Durability (see Capabilities in sqlite_driver.cpp): FULL syncs the WAL at every commit, so a committed write
    // survives a power failure; NORMAL in WAL mode syncs only at checkpoints, so it survives a crash of the process
    // but the last commits may be lost with the machine.
    exec(options.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", "open: set synchronous");
    exec("PRAGMA foreign_keys=ON", "open: set foreign_keys");

    apply_migrations(*this);
  } else {
    // A reader never writes: a bug that sent a write here fails instead of bypassing the writer.
    exec("PRAGMA query_only=ON", "open: set query_only");
  }

  for (std::size_t i = 0; i < kSql.size(); ++i) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db_.get(), kSql[i], -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK)
      fail(std::string("open: prepare \"") + kSql[i] + "\"");
    statements_[i].reset(stmt);
  }
}

const char* Connection::sql(Sql which) {
  return kSql[static_cast<std::size_t>(which)];
}

sqlite3_stmt* Connection::cached(const std::string& sql, std::string_view operation) {
  auto it = cache_.find(sql);
  if (it != cache_.end())
    return it->second.get();
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_.get(), sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt,
                         nullptr) != SQLITE_OK)
    fail(operation);
  return cache_.emplace(sql, stmt).first->second.get();
}

std::exception_ptr Connection::error(std::string_view operation) const {
  return error(operation, db_ ? sqlite3_errmsg(db_.get()) : "out of memory");
}

std::exception_ptr Connection::error(std::string_view operation, std::string_view message) const {
  try {
    fail(operation, message);
  } catch (...) {
    return std::current_exception();
  }
}

int Connection::try_step(Sql which, std::string& message) {
  sqlite3_stmt* stmt = statement(which);
  int rc = sqlite3_step(stmt);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    message = sqlite3_errmsg(db_.get());
  sqlite3_reset(stmt);
  return rc;
}

void Connection::fail(std::string_view operation) const {
  fail(operation, db_ ? sqlite3_errmsg(db_.get()) : "out of memory");
}

void Connection::fail(std::string_view operation, std::string_view message) const {
  std::string what = "SQLite database ";
  what += path_;
  what += ": ";
  what += operation;
  what += ": ";
  what += message;
  throw StorageError(what);
}

void Connection::exec(const char* sql, std::string_view operation) {
  char* error = nullptr;
  if (sqlite3_exec(db_.get(), sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : sqlite3_errmsg(db_.get());
    sqlite3_free(error);
    fail(operation, message);
  }
}

void Connection::rollback() noexcept {
  if (sqlite3_get_autocommit(db_.get()))
    return; // no transaction open (never begun, or SQLite already rolled it back after an error)
  if (auto* stmt = statement(Sql::Rollback)) {
    sqlite3_step(stmt);
    sqlite3_reset(stmt);
  } else {
    sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr); // during open, before the statements exist
  }
}

void Connection::step_simple(Sql which, std::string_view operation) {
  Query(*this, which, operation).run();
}

Query& Query::text(int index, std::string_view value) {
  if (sqlite3_bind_text64(stmt_, index, data_or_empty(value), value.size(), SQLITE_STATIC, SQLITE_UTF8) != SQLITE_OK)
    connection_.fail(operation_);
  return *this;
}

Query& Query::integer(int index, std::int64_t value) {
  if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK)
    connection_.fail(operation_);
  return *this;
}

Query& Query::blob(int index, std::string_view value) {
  if (sqlite3_bind_blob64(stmt_, index, data_or_empty(value), value.size(), SQLITE_STATIC) != SQLITE_OK)
    connection_.fail(operation_);
  return *this;
}

bool Query::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW)
    return true;
  if (rc == SQLITE_DONE)
    return false;
  connection_.fail(operation_);
}

std::string Query::column_text(int index) const {
  auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, index));
  int n = sqlite3_column_bytes(stmt_, index); // after the pointer: its conversion may change the size
  return p ? std::string(p, static_cast<std::size_t>(n)) : std::string();
}

std::string Query::column_blob(int index) const {
  auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, index));
  int n = sqlite3_column_bytes(stmt_, index);
  return p ? std::string(p, static_cast<std::size_t>(n)) : std::string(); // a zero-length blob gives a null pointer
}

} // namespace cg::storage::sqlite
