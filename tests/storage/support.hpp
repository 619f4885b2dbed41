// Shared by the storage tests: temporary directories and the list of drivers the conformance suite runs against.
#pragma once

#include "storage/sqlite/sqlite_driver.hpp"
#include "storage/store.hpp"

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

namespace cg::storage::test {

// A fresh directory under /tmp with a unique name, removed with everything in it at the end of the scope.
class TempDir {
public:
  TempDir() {
    std::string tmpl = "/tmp/cg-storage-test-XXXXXX";
    if (!::mkdtemp(tmpl.data()))
      throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
  std::filesystem::path path_;
};

// One environment per driver: owns whatever the driver needs (a temporary file) and the driver itself.
struct MemoryEnv {
  std::unique_ptr<Driver> driver = make_memory_driver();
};

struct SqliteEnv {
  TempDir dir; // declared first: outlives the driver
  std::unique_ptr<Driver> driver = open_sqlite(SqliteOptions{.path = dir.file("chatgroup.db")});
};

} // namespace cg::storage::test

// Every driver the conformance suite covers (TEMPLATE_TEST_CASE names each case after the type); a new driver
// adds its environment here. Used where cg::storage::test is in scope.
#define CG_ALL_DRIVERS MemoryEnv, SqliteEnv

namespace cg::storage::test {} // namespace cg::storage::test
