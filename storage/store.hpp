// Store interfaces (DESIGN.md §5): keyval (one value per user), map (keyed values per user); archive comes with
// the message archive. Drivers are thread-safe and blocking: callers in the server run them on the storage worker,
// never on an I/O thread.
#pragma once

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
  using std::runtime_error::runtime_error;
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

struct Capabilities {
  bool persistent = false; // survives a restart
  bool durable = false;    // a returned write survives a crash of the process (kill -9)
};

class Driver {
public:
  virtual ~Driver() = default;
  virtual std::string_view name() const = 0;
  virtual Capabilities capabilities() const = 0;
  // Store handles are cheap and may be kept; the same name gives the same data.
  virtual std::shared_ptr<KeyValStore> keyval(std::string_view store) = 0;
  virtual std::shared_ptr<MapStore> map(std::string_view store) = 0;
  // Removes everything of a user in every store (account deletion).
  virtual void remove_user(std::string_view host, std::string_view user) = 0;
};

// The in-memory driver (tests, and a server that keeps nothing).
std::unique_ptr<Driver> make_memory_driver();

} // namespace cg::storage
