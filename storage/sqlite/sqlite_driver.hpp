// The SQLite driver: one file, WAL mode, versioned schema migrations applied at open, prepared statements.
// Several processes may use the same file at once (chatgroupctl beside a running chatgroupd).
#pragma once

#include "storage/store.hpp"

#include <memory>
#include <string>

namespace cg::storage {

struct SqliteOptions {
  std::string path;             // the database file; created if missing
  bool synchronous_full = true; // PRAGMA synchronous=FULL (fsync at each commit) rather than NORMAL
  int busy_timeout_ms = 5000;
};

// Opens (creating and migrating as needed). Throws StorageError naming the file on failure.
std::unique_ptr<Driver> open_sqlite(const SqliteOptions& options);

// The schema version this build writes; a database with a newer version is refused with a clear error.
int sqlite_schema_version();

} // namespace cg::storage
