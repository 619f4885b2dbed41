// Helpers of the archive tests: building items, waiting for append_async completions, reading a whole archive.
#pragma once

#include "storage/store.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace cg::storage::test {

inline ArchiveItem make_item(std::int64_t when, std::string with, std::string kind, std::string payload,
                             std::string id = "") {
  return ArchiveItem{.id = std::move(id),
                     .when = when,
                     .with = std::move(with),
                     .kind = std::move(kind),
                     .payload = std::move(payload)};
}

inline std::vector<std::string> ids_of(const std::vector<ArchiveItem>& items) {
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const auto& item : items)
    out.push_back(item.id);
  return out;
}

// Collects append_async completions (called on any thread) and lets a test wait for them, with a bound.
class Completions {
public:
  struct Result {
    std::string id;
    std::exception_ptr error;
  };

  // A `done` callback storing its result at `index` (results grow as needed).
  ArchiveStore::AppendDone at(std::size_t index) {
    return [this, index](std::string id, std::exception_ptr error) {
      std::lock_guard lock(mutex_);
      if (results_.size() <= index)
        results_.resize(index + 1);
      results_[index] = Result{std::move(id), std::move(error)}; // the storage thread keeps no copy
      ++done_;
      cv_.notify_all();
    };
  }

  // Waits until n completions arrived; false on timeout.
  bool wait(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return done_ >= n; });
  }

  std::size_t done() {
    std::lock_guard lock(mutex_);
    return done_;
  }

  std::vector<Result> results() {
    std::lock_guard lock(mutex_);
    return results_;
  }

private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Result> results_;
  std::size_t done_ = 0;
};

// Appends the items with append_async (one batch per commit in the SQLite driver, rather than a commit each) and
// returns their ids in order; throws the first error.
inline std::vector<std::string> append_all(ArchiveStore& store, std::string_view host, std::string_view user,
                                           std::vector<ArchiveItem> items) {
  Completions c;
  const std::size_t n = items.size();
  for (std::size_t i = 0; i < n; ++i)
    store.append_async(host, user, std::move(items[i]), c.at(i));
  if (!c.wait(n))
    throw std::runtime_error("append_all: timed out");
  std::vector<std::string> ids;
  for (auto& r : c.results()) {
    if (r.error)
      std::rethrow_exception(r.error);
    ids.push_back(r.id);
  }
  return ids;
}

// Every item of the user, oldest first.
inline std::vector<ArchiveItem> all_items(ArchiveStore& store, std::string_view host, std::string_view user) {
  ArchiveQuery q;
  q.limit = static_cast<std::size_t>(-1);
  return store.query(host, user, q).items;
}

} // namespace cg::storage::test
