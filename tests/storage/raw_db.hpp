// A plain sqlite3 connection of the test's own, for looking at (and meddling with) a database file where the
// driver's API cannot show it.
#pragma once

#include <sqlite3.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace cg::storage::test {

// A plain connection of the test's own, as another program (the sqlite3 shell) would open the file.
class RawDb {
public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      std::string message = sqlite3_errmsg(db_);
      sqlite3_close(db_);
      throw std::runtime_error("raw open " + path + ": " + message);
    }
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      std::string message = error ? error : "?";
      sqlite3_free(error);
      throw std::runtime_error("raw exec " + sql + ": " + message);
    }
  }

  // The first column of the first row, as text.
  std::string query(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK)
      throw std::runtime_error("raw prepare " + sql + ": " + sqlite3_errmsg(db_));
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW)
      if (auto* p = sqlite3_column_text(stmt, 0))
        out = reinterpret_cast<const char*>(p);
    sqlite3_finalize(stmt);
    return out;
  }

private:
  sqlite3* db_ = nullptr;
};

} // namespace cg::storage::test
