// The in-memory driver (store.hpp): everything lives in std::maps behind one mutex. Nothing survives the process.
//
// Keys are compared as std::string does (byte-wise, unsigned), which is the order SQLite's BINARY collation gives,
// so users() and all() sort the same way in every driver.
//
// Archives: each user's items sit in a std::map keyed by an increasing sequence number (the append order), with an
// id → sequence index. Queries walk the user's items (this driver is for tests and small servers). append_async
// runs the append on the caller's thread and calls `done` there, after the mutex is released.
#include "storage/archive_util.hpp"
#include "storage/store.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <unordered_map>

namespace cg::storage {
namespace {

template <typename V>
using StrMap = std::map<std::string, V, std::less<>>;

// host → user → value
using KeyValData = StrMap<StrMap<std::string>>;
// host → user → key → value
using MapData = StrMap<StrMap<StrMap<std::string>>>;

// One user's archive: items by append sequence, and the sequence of each id.
struct UserArchive {
  std::map<std::int64_t, ArchiveItem> items;
  std::unordered_map<std::string, std::int64_t> seq_of;
  std::int64_t next = 0;
};
// host → user → archive
using ArchiveData = StrMap<StrMap<UserArchive>>;

// Shared by the driver and every store handle, so a handle kept after the driver is gone stays valid.
struct State {
  std::mutex mutex;
  // std::map nodes never move, and store entries are never erased: handles keep plain pointers to their data.
  StrMap<KeyValData> keyval;
  StrMap<MapData> map;
  StrMap<ArchiveData> archive;
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

class MemoryArchive final : public ArchiveStore {
public:
  MemoryArchive(std::shared_ptr<State> state, ArchiveData* data, std::string_view name)
      : state_(std::move(state)), data_(data), name_(name) {}

  std::string append(std::string_view host, std::string_view user, ArchiveItem item) override {
    if (item.id.empty())
      item.id = archive::new_id();
    std::lock_guard lock(state_->mutex);
    auto& a = get_or_add(get_or_add(*data_, host), user);
    if (a.seq_of.contains(item.id))
      throw StorageError("archive '" + name_ + "' append: an item with id '" + item.id + "' already exists");
    const std::int64_t seq = a.next++;
    a.seq_of.emplace(item.id, seq);
    std::string id = item.id;
    a.items.emplace(seq, std::move(item));
    return id;
  }

  void append_async(std::string_view host, std::string_view user, ArchiveItem item, AppendDone done) override {
    std::string id;
    std::exception_ptr error;
    try {
      id = append(host, user, std::move(item));
    } catch (...) {
      error = std::current_exception();
    }
    if (done) {
      try {
        done(std::move(id), std::move(error));
      } catch (...) {
        // `done` must not throw; the item is stored whatever it does.
      }
    }
  }

  ArchivePage query(std::string_view host, std::string_view user, const ArchiveQuery& q) override {
    std::lock_guard lock(state_->mutex);
    ArchivePage page;
    UserArchive* a = find_user(host, user);
    const auto [after, before] = bounds(a, q);
    if (!a) {
      page.complete = true;
      return page;
    }
    std::vector<std::int64_t> positions;
    std::vector<const ArchiveItem*> matching;
    for_each_match(*a, q, [&](std::int64_t seq, const ArchiveItem& item) {
      positions.push_back(seq);
      matching.push_back(&item);
    });
    const auto s = archive::slice(positions, after, before, q.limit, q.from_end);
    for (std::size_t i = s.begin; i < s.end; ++i)
      page.items.push_back(*matching[i]);
    page.complete = s.complete;
    page.total = positions.size();
    page.first_index = s.begin;
    return page;
  }

  std::size_t remove(std::string_view host, std::string_view user, const ArchiveQuery& q) override {
    std::lock_guard lock(state_->mutex);
    UserArchive* a = find_user(host, user);
    const auto [after, before] = bounds(a, q);
    if (!a)
      return 0;
    std::vector<std::int64_t> doomed;
    for_each_match(*a, q, [&](std::int64_t seq, const ArchiveItem&) {
      if ((!after || seq > *after) && (!before || seq < *before))
        doomed.push_back(seq);
    });
    for (auto seq : doomed)
      erase(*a, a->items.find(seq));
    prune(host, user);
    return doomed.size();
  }

  std::size_t remove_older_than(std::string_view host, std::int64_t when) override {
    std::lock_guard lock(state_->mutex);
    auto* users = find_in(*data_, host);
    if (!users)
      return 0;
    std::size_t n = 0;
    for (auto it = users->begin(); it != users->end();) {
      auto& a = it->second;
      for (auto item = a.items.begin(); item != a.items.end();) {
        if (item->second.when < when) {
          item = erase(a, item);
          ++n;
        } else {
          ++item;
        }
      }
      it = a.items.empty() ? users->erase(it) : std::next(it);
    }
    erase_if_empty(*data_, host);
    return n;
  }

  std::size_t count(std::string_view host, std::string_view user) override {
    std::lock_guard lock(state_->mutex);
    UserArchive* a = find_user(host, user);
    return a ? a->items.size() : 0;
  }

private:
  UserArchive* find_user(std::string_view host, std::string_view user) {
    auto* users = find_in(*data_, host);
    return users ? find_in(*users, user) : nullptr;
  }

  // The sequence numbers of after_id and before_id; an id the user does not have is NotFound (also when the user
  // has no archive at all).
  std::pair<std::optional<std::int64_t>, std::optional<std::int64_t>> bounds(UserArchive* a, const ArchiveQuery& q) {
    auto seq_of = [&](const std::optional<std::string>& id) -> std::optional<std::int64_t> {
      if (!id)
        return std::nullopt;
      if (a) {
        if (auto it = a->seq_of.find(*id); it != a->seq_of.end())
          return it->second;
      }
      throw StorageError("archive '" + name_ + "': no item with id '" + *id + "'", StorageError::Kind::NotFound);
    };
    return {seq_of(q.after_id), seq_of(q.before_id)};
  }

  // Calls f(seq, item) for every item passing the filters and the ids list, in archive order.
  template <typename F>
  void for_each_match(UserArchive& a, const ArchiveQuery& q, F&& f) {
    if (q.ids.empty()) {
      for (auto& [seq, item] : a.items)
        if (archive::matches(item, q))
          f(seq, item);
      return;
    }
    std::vector<std::int64_t> seqs;
    for (auto& id : q.ids)
      if (auto it = a.seq_of.find(id); it != a.seq_of.end())
        seqs.push_back(it->second);
    std::sort(seqs.begin(), seqs.end());
    seqs.erase(std::unique(seqs.begin(), seqs.end()), seqs.end());
    for (auto seq : seqs) {
      auto& item = a.items.at(seq);
      if (archive::matches(item, q))
        f(seq, item);
    }
  }

  static std::map<std::int64_t, ArchiveItem>::iterator erase(UserArchive& a,
                                                             std::map<std::int64_t, ArchiveItem>::iterator it) {
    a.seq_of.erase(it->second.id);
    return a.items.erase(it);
  }

  void prune(std::string_view host, std::string_view user) {
    if (auto* users = find_in(*data_, host)) {
      if (auto it = users->find(user); it != users->end() && it->second.items.empty())
        users->erase(it);
      erase_if_empty(*data_, host);
    }
  }

  std::shared_ptr<State> state_;
  ArchiveData* data_;
  std::string name_;
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

  std::shared_ptr<ArchiveStore> archive(std::string_view store) override {
    std::lock_guard lock(state_->mutex);
    return std::make_shared<MemoryArchive>(state_, &get_or_add(state_->archive, store), store);
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
    for (auto& [name, data] : state_->archive) {
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
