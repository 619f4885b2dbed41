// The in-memory driver (store.hpp): everything lives in std::maps behind one mutex. Nothing survives the process.
//
// Keys are compared as std::string does (byte-wise, unsigned), which is the order SQLite's BINARY collation gives,
// so users() and all() sort the same way in every driver.
#include "storage/store.hpp"

#include <functional>
#include <map>
#include <mutex>

namespace cg::storage {
namespace {

template <typename V>
using StrMap = std::map<std::string, V, std::less<>>;

// host → user → value
using KeyValData = StrMap<StrMap<std::string>>;
// host → user → key → value
using MapData = StrMap<StrMap<StrMap<std::string>>>;

// Shared by the driver and every store handle, so a handle kept after the driver is gone stays valid.
struct State {
  std::mutex mutex;
  // std::map nodes never move, and store entries are never erased: handles keep plain pointers to their data.
  StrMap<KeyValData> keyval;
  StrMap<MapData> map;
};

// Finds m[k] without inserting; nullptr when absent.
template <typename M>
auto* find_in(M& m, std::string_view k) {
  auto it = m.find(k);
  return it == m.end() ? nullptr : &it->second;
}

template <typename M>
auto& get_or_add(M& m, std::string_view k) {
  auto it = m.find(k);
  if (it == m.end())
    it = m.emplace(std::string(k), typename M::mapped_type{}).first;
  return it->second;
}

// Erases m[k] when it became empty, so users() never lists a user without values.
template <typename M>
void erase_if_empty(M& m, std::string_view k) {
  auto it = m.find(k);
  if (it != m.end() && it->second.empty())
    m.erase(it);
}

class MemoryKeyVal final : public KeyValStore {
public:
  MemoryKeyVal(std::shared_ptr<State> state, KeyValData* data) : state_(std::move(state)), data_(data) {}

  std::optional<std::string> get(std::string_view host, std::string_view user) override {
    std::lock_guard lock(state_->mutex);
    auto* users = find_in(*data_, host);
    if (!users)
      return std::nullopt;
    auto* value = find_in(*users, user);
    if (!value)
      return std::nullopt;
    return *value;
  }

  void set(std::string_view host, std::string_view user, std::string_view value) override {
    std::lock_guard lock(state_->mutex);
    get_or_add(get_or_add(*data_, host), user).assign(value);
  }

  bool remove(std::string_view host, std::string_view user) override {
    std::lock_guard lock(state_->mutex);
    auto* users = find_in(*data_, host);
    if (!users)
      return false;
    auto it = users->find(user);
    if (it == users->end())
      return false;
    users->erase(it);
    erase_if_empty(*data_, host);
    return true;
  }

  std::vector<std::string> users(std::string_view host) override {
    std::lock_guard lock(state_->mutex);
    std::vector<std::string> out;
    if (auto* users = find_in(*data_, host)) {
      out.reserve(users->size());
      for (auto& [user, value] : *users)
        out.push_back(user);
    }
    return out;
  }

private:
  std::shared_ptr<State> state_;
  KeyValData* data_;
};

class MemoryMap final : public MapStore {
public:
  MemoryMap(std::shared_ptr<State> state, MapData* data) : state_(std::move(state)), data_(data) {}

  std::optional<std::string> get(std::string_view host, std::string_view user, std::string_view key) override {
    std::lock_guard lock(state_->mutex);
    auto* keys = find_user(host, user);
    if (!keys)
      return std::nullopt;
    auto* value = find_in(*keys, key);
    if (!value)
      return std::nullopt;
    return *value;
  }

  void set(std::string_view host, std::string_view user, std::string_view key, std::string_view value) override {
    std::lock_guard lock(state_->mutex);
    get_or_add(get_or_add(get_or_add(*data_, host), user), key).assign(value);
  }

  bool remove(std::string_view host, std::string_view user, std::string_view key) override {
    std::lock_guard lock(state_->mutex);
    auto* keys = find_user(host, user);
    if (!keys)
      return false;
    auto it = keys->find(key);
    if (it == keys->end())
      return false;
    keys->erase(it);
    prune(host, user);
    return true;
  }

  std::vector<std::pair<std::string, std::string>> all(std::string_view host, std::string_view user) override {
    std::lock_guard lock(state_->mutex);
    std::vector<std::pair<std::string, std::string>> out;
    if (auto* keys = find_user(host, user))
      out.assign(keys->begin(), keys->end());
    return out;
  }

  std::size_t remove_all(std::string_view host, std::string_view user) override {
    std::lock_guard lock(state_->mutex);
    auto* keys = find_user(host, user);
    if (!keys)
      return 0;
    std::size_t n = keys->size();
    keys->clear();
    prune(host, user);
    return n;
  }

private:
  StrMap<std::string>* find_user(std::string_view host, std::string_view user) {
    auto* users = find_in(*data_, host);
    return users ? find_in(*users, user) : nullptr;
  }

  void prune(std::string_view host, std::string_view user) {
    if (auto* users = find_in(*data_, host)) {
      erase_if_empty(*users, user);
      erase_if_empty(*data_, host);
    }
  }

  std::shared_ptr<State> state_;
  MapData* data_;
};

class MemoryDriver final : public Driver {
public:
  std::string_view name() const override { return "memory"; }

  Capabilities capabilities() const override { return Capabilities{.persistent = false, .durable = false}; }

  std::shared_ptr<KeyValStore> keyval(std::string_view store) override {
    std::lock_guard lock(state_->mutex);
    return std::make_shared<MemoryKeyVal>(state_, &get_or_add(state_->keyval, store));
  }

  std::shared_ptr<MapStore> map(std::string_view store) override {
    std::lock_guard lock(state_->mutex);
    return std::make_shared<MemoryMap>(state_, &get_or_add(state_->map, store));
  }

  void remove_user(std::string_view host, std::string_view user) override {
    std::lock_guard lock(state_->mutex);
    for (auto& [name, data] : state_->keyval) {
      if (auto* users = find_in(data, host)) {
        if (auto it = users->find(user); it != users->end())
          users->erase(it);
        erase_if_empty(data, host);
      }
    }
    for (auto& [name, data] : state_->map) {
      if (auto* users = find_in(data, host)) {
        if (auto it = users->find(user); it != users->end())
          users->erase(it);
        erase_if_empty(data, host);
      }
    }
  }

private:
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

} // namespace

std::unique_ptr<Driver> make_memory_driver() {
  return std::make_unique<MemoryDriver>();
}

} // namespace cg::storage
