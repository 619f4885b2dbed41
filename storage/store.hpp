// Store interfaces (DESIGN.md §5): keyval (one value per user), map (keyed values per user); archive comes with
// the message archive. Drivers are thread-safe and blocking: callers in the server run them on the storage worker,
// never on an I/O thread.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cg::storage {

class StorageError : public std::runtime_error {
public:
  enum class Kind { Failure, NotFound };
  explicit StorageError(const std::string& what, Kind kind = Kind::Failure) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

private:
  Kind kind_;
};

// One value per (host, user) in a named store, e.g. store "accounts" holds each user's credentials.
class KeyValStore {
public:
  virtual ~KeyValStore() = default;
  virtual std::optional<std::string> get(std::string_view host, std::string_view user) = 0;
  // Durable when it returns.
  virtual void set(std::string_view host, std::string_view user, std::string_view value) = 0;
  // Returns whether a value existed.
  virtual bool remove(std::string_view host, std::string_view user) = 0;
  // Users with a value in this store on this host, sorted.
  virtual std::vector<std::string> users(std::string_view host) = 0;
};

// Keyed values per (host, user) in a named store, e.g. roster items keyed by contact JID.
class MapStore {
public:
  virtual ~MapStore() = default;
  virtual std::optional<std::string> get(std::string_view host, std::string_view user, std::string_view key) = 0;
  virtual void set(std::string_view host, std::string_view user, std::string_view key, std::string_view value) = 0;
  virtual bool remove(std::string_view host, std::string_view user, std::string_view key) = 0;
  // All (key, value) pairs of the user, sorted by key.
  virtual std::vector<std::pair<std::string, std::string>> all(std::string_view host, std::string_view user) = 0;
  // Removes every key of the user; returns how many were removed.
  virtual std::size_t remove_all(std::string_view host, std::string_view user) = 0;
};

// One archived item: a stanza kept for a user, in the order it was appended (the message archive of XEP-0313,
// the offline queue, stored subscription requests).
struct ArchiveItem {
  std::string id;        // unique within the user's archive; assigned by the store when appended with ""
  std::int64_t when = 0; // microseconds since the Unix epoch (UTC)
  std::string with;      // the other party's bare JID (the 'with' filter)
  std::string kind;      // a short tag the caller chooses (e.g. "chat", "groupchat"); "" if none
  std::string payload;   // the serialised stanza (or any text)
  bool operator==(const ArchiveItem&) const = default;
};

// A query over one user's archive. Filters combine (AND); the range is in archive (append) order.
struct ArchiveQuery {
  std::optional<std::string> with;      // exactly this 'with'
  std::optional<std::int64_t> start;    // when >= start
  std::optional<std::int64_t> end;      // when <= end
  std::optional<std::string> after_id;  // strictly after this item (an unknown id: StorageError::NotFound)
  std::optional<std::string> before_id; // strictly before this item (unknown: NotFound)
  std::vector<std::string> ids;         // only these items (in archive order); empty = no id filter
  std::optional<std::string> kind;      // exactly this kind
  std::size_t limit = 100;              // at most this many items (0 = none: only the count)
  bool from_end = false;                // take the LAST `limit` matching items (RSM <before/>), still returned
                                        // oldest first
};

struct ArchivePage {
  std::vector<ArchiveItem> items; // oldest first
  bool complete = false;          // no further matching item exists beyond this page in the direction of travel
  std::size_t total = 0;          // matching items ignoring after_id/before_id/limit (for RSM <count/>)
  std::size_t first_index = 0;    // position of items[0] among those `total` items (for RSM <first index=''/>)
};

// Items per user in append order. The SQLite driver commits appends in groups (one fsync for many); append()
// returns, and append_async() completes, only once the item is durable.
class ArchiveStore {
public:
  virtual ~ArchiveStore() = default;
  // Appends and returns the item's id once it is on disk.
  virtual std::string append(std::string_view host, std::string_view user, ArchiveItem item) = 0;
  // Appends without blocking the caller; `done` runs (on a storage thread) with the id, or with the error.
  using AppendDone = std::function<void(std::string id, std::exception_ptr error)>;
  virtual void append_async(std::string_view host, std::string_view user, ArchiveItem item, AppendDone done) = 0;
  virtual ArchivePage query(std::string_view host, std::string_view user, const ArchiveQuery& q) = 0;
  // Removes the matching items (limit and from_end are ignored); returns how many were removed.
  virtual std::size_t remove(std::string_view host, std::string_view user, const ArchiveQuery& q) = 0;
  // Removes every item older than `when` for all users of the host (retention); returns how many.
  virtual std::size_t remove_older_than(std::string_view host, std::int64_t when) = 0;
  // Number of items the user has.
  virtual std::size_t count(std::string_view host, std::string_view user) = 0;
};

struct Capabilities {
  bool persistent = false; // survives a restart
  bool durable = false;    // a returned write survives a crash of the process (kill -9) and of the machine (power
                           // loss): fsync at each commit
};

class Driver {
public:
  virtual ~Driver() = default;
  virtual std::string_view name() const = 0;
  virtual Capabilities capabilities() const = 0;
  // Store handles are cheap and may be kept; the same name gives the same data.
  virtual std::shared_ptr<KeyValStore> keyval(std::string_view store) = 0;
  virtual std::shared_ptr<MapStore> map(std::string_view store) = 0;
  virtual std::shared_ptr<ArchiveStore> archive(std::string_view store) = 0;
  // Removes everything of a user in every store (account deletion).
  virtual void remove_user(std::string_view host, std::string_view user) = 0;
};

// The in-memory driver (tests, and a server that keeps nothing).
std::unique_ptr<Driver> make_memory_driver();

} // namespace cg::storage
