// The SQLite schema: a list of migrations, applied in order at open. To change the schema, append a migration —
// never edit one that has shipped. schema_version holds one row per applied migration; the database's version is
// the highest. A database with a version newer than this build is refused: the build cannot know what changed.
#include "storage/sqlite/connection.hpp"

#include <span>

namespace cg::storage {
namespace {

struct Migration {
  int version;
  const char* sql;
};

// Keys (store, host, user, key) are TEXT compared with the BINARY collation (memcmp), the order users() and all()
// promise; values are BLOBs so they hold any bytes.
constexpr Migration kMigrations[] = {
    {1, "CREATE TABLE keyval("
        "  store TEXT NOT NULL, host TEXT NOT NULL, user TEXT NOT NULL, value BLOB NOT NULL,"
        "  PRIMARY KEY(store, host, user)) WITHOUT ROWID;"
        "CREATE TABLE map("
        "  store TEXT NOT NULL, host TEXT NOT NULL, user TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
        "  PRIMARY KEY(store, host, user, key)) WITHOUT ROWID;"},
    // The archive (store.hpp ArchiveStore). rowid is the append order: a new row gets a rowid above every existing
    // one, so ordering by rowid is ordering by append, and after_id/before_id become rowid bounds. at is microseconds
    // since the epoch. The indexes serve, in order: paging in append order; the 'with' filter in append order;
    // time ranges and retention (remove_older_than). UNIQUE(store, host, user, id) finds an item by its id.
    {2, "CREATE TABLE archive("
        "  rowid INTEGER PRIMARY KEY, store TEXT NOT NULL, host TEXT NOT NULL, user TEXT NOT NULL, id TEXT NOT NULL,"
        "  at INTEGER NOT NULL, with_jid TEXT NOT NULL, kind TEXT NOT NULL, payload BLOB NOT NULL,"
        "  UNIQUE(store, host, user, id));"
        "CREATE INDEX archive_order ON archive(store, host, user, rowid);"
        "CREATE INDEX archive_with ON archive(store, host, user, with_jid, rowid);"
        "CREATE INDEX archive_at ON archive(store, host, user, at);"},
};

constexpr bool versions_are_consecutive() {
  int expected = 1;
  for (const auto& m : kMigrations)
    if (m.version != expected++)
      return false;
  return true;
}
static_assert(versions_are_consecutive(), "migrations are numbered 1, 2, 3 … in order");

} // namespace

int sqlite_schema_version() {
  return std::span(kMigrations).back().version;
}

namespace sqlite {

void apply_migrations(Connection& c) {
  // BEGIN IMMEDIATE before reading the version: two processes opening a new file at once are serialised here, and
  // the second one finds the migrations done. Anything failing rolls the whole upgrade back.
  c.exec("BEGIN IMMEDIATE", "open: begin schema migration");
  try {
    c.exec("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)", "open: create schema_version");

    int current = 0;
    {
      sqlite3_stmt* raw = nullptr;
      if (sqlite3_prepare_v2(c.db(), "SELECT coalesce(max(version), 0) FROM schema_version", -1, &raw, nullptr) !=
          SQLITE_OK)
        c.fail("open: read schema version");
      std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> stmt(raw, &sqlite3_finalize);
      if (sqlite3_step(stmt.get()) != SQLITE_ROW)
        c.fail("open: read schema version");
      current = sqlite3_column_int(stmt.get(), 0);
    }

    const int supported = sqlite_schema_version();
    if (current > supported)
      throw StorageError("database " + c.path() + " has schema version " + std::to_string(current) +
                         ", newer than this build supports (" + std::to_string(supported) + "); upgrade ChatGroup");

    for (const auto& m : kMigrations) {
      if (m.version <= current)
        continue;
      const std::string op = "open: migrate schema to version " + std::to_string(m.version);
      c.exec(m.sql, op);
      c.exec(("INSERT INTO schema_version(version) VALUES(" + std::to_string(m.version) + ")").c_str(), op);
    }
    c.exec("COMMIT", "open: commit schema migration");
  } catch (...) {
    c.rollback();
    throw;
  }
}

} // namespace sqlite
} // namespace cg::storage
