// The SQLite driver: one file, WAL mode, versioned schema migrations applied at open, prepared statements.
// Several processes may use the same file at once (chatgroupctl beside a running chatgroupd).
//
// Writes go through one writer thread that commits them in groups (one fsync for many); reads use a small pool of
// read connections beside it. See storage/sqlite/backend.hpp.
#pragma once

#include "storage/store.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cg::storage {

struct SqliteOptions {
  std::string path;             // the database file; created if missing
  bool synchronous_full = true; // PRAGMA synchronous=FULL (fsync at each commit) rather than NORMAL
  int busy_timeout_ms = 5000;
  // Group commit: a batch (one transaction, one fsync) holds at most this many writes, and stops taking more once
  // their data reaches max_batch_bytes (a single bigger write still goes alone).
  std::size_t max_batch_jobs = 1024;
  std::size_t max_batch_bytes = 8u << 20;
  // Writes waiting for the writer; a write submitted beyond it waits for room (backpressure).
  std::size_t max_pending_writes = 65536;
  // Read connections, opened on demand; a read beyond waits for one to be free.
  std::size_t max_readers = 4;
};

// Opens (creating and migrating as needed). Throws StorageError naming the file on failure.
std::unique_ptr<Driver> open_sqlite(const SqliteOptions& options);

// The schema version this build writes; a database with a newer version is refused with a clear error.
int sqlite_schema_version();

// What the writer has done so far (tests, benchmarks, diagnostics).
struct SqliteStats {
  std::uint64_t commits = 0; // transactions committed by the writer (one fsync each with synchronous=FULL)
  std::uint64_t jobs = 0;    // writes it ran (committed or failed)
  std::size_t pending = 0;   // writes waiting in its queue
  std::size_t readers = 0;   // read connections open
};
// Throws std::invalid_argument when `driver` is not a SQLite driver.
SqliteStats sqlite_stats(Driver& driver);

// Tests: while the returned handle lives, the writer starts no new batch, so the writes submitted meanwhile queue up
// and are committed together once it is released (synchronous writes block until then). Throws like sqlite_stats.
[[nodiscard]] std::shared_ptr<void> sqlite_pause_writer(Driver& driver);

// The query plans (EXPLAIN QUERY PLAN, one line per step, prefixed by the statement) of the statements an archive
// query of this shape runs, and of remove() with the same filters, remove_older_than and remove_user. Tests use it
// to check that every one searches an index. Throws like sqlite_stats.
std::vector<std::string> sqlite_archive_query_plans(Driver& driver, const ArchiveQuery& q);

} // namespace cg::storage
