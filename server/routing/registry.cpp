#include "server/routing/registry.hpp"

#include <algorithm>

namespace cg::routing {

SessionRegistry::Shard& SessionRegistry::shard_for(const std::string& bare) const {
  return shards_[std::hash<std::string>{}(bare) % kShards];
}

BindResult SessionRegistry::bind(const api::Jid& full, std::shared_ptr<ClientSink> sink, api::SessionInfo info,
                                 ConflictPolicy policy, std::size_t max_resources) {
  const std::string bare = full.bare_str();
  auto& shard = shard_for(bare);
  std::lock_guard lock(shard.mutex);
  auto& list = shard.accounts[bare];
  auto it = std::find_if(list.begin(), list.end(), [&](const auto& e) { return e.resource == full.resource(); });
  BindResult result;
  if (it != list.end()) {
    if (policy == ConflictPolicy::Refuse) {
      result.status = BindResult::Status::Conflict;
      return result;
    }
    result.replaced = std::move(it->sink);
    it->sink = std::move(sink);
    it->info = std::move(info);
    return result;
  }
  if (list.size() >= max_resources) {
    result.status = BindResult::Status::TooManyResources;
    return result;
  }
  list.push_back(ResourceEntry{full.resource(), std::move(sink), std::move(info)});
  return result;
}

void SessionRegistry::unbind(const api::Jid& full, const ClientSink* sink) {
  const std::string bare = full.bare_str();
  auto& shard = shard_for(bare);
  std::lock_guard lock(shard.mutex);
  auto acc = shard.accounts.find(bare);
  if (acc == shard.accounts.end()) {
    return;
  }
  auto& list = acc->second;
  std::erase_if(list, [&](const auto& e) { return e.resource == full.resource() && e.sink.get() == sink; });
  if (list.empty()) {
    shard.accounts.erase(acc);
  }
}

bool SessionRegistry::replace(const api::Jid& full, const ClientSink* old, std::shared_ptr<ClientSink> now) {
  const std::string bare = full.bare_str();
  auto& shard = shard_for(bare);
  std::lock_guard lock(shard.mutex);
  auto acc = shard.accounts.find(bare);
  if (acc == shard.accounts.end()) {
    return false;
  }
  for (auto& e : acc->second) {
    if (e.resource == full.resource() && e.sink.get() == old) {
      e.sink = std::move(now);
      return true;
    }
  }
  return false;
}

std::shared_ptr<ClientSink> SessionRegistry::find(const api::Jid& full) const {
  const std::string bare = full.bare_str();
  auto& shard = shard_for(bare);
  std::lock_guard lock(shard.mutex);
  auto acc = shard.accounts.find(bare);
  if (acc == shard.accounts.end()) {
    return nullptr;
  }
  for (const auto& e : acc->second) {
    if (e.resource == full.resource()) {
      return e.sink;
    }
  }
  return nullptr;
}

bool SessionRegistry::has_resource(const api::Jid& full) const {
  return find(full) != nullptr;
}

std::vector<ResourceEntry> SessionRegistry::resources(const api::Jid& bare) const {
  const std::string key = bare.bare_str();
  auto& shard = shard_for(key);
  std::lock_guard lock(shard.mutex);
  auto acc = shard.accounts.find(key);
  if (acc == shard.accounts.end()) {
    return {};
  }
  return acc->second;
}

void SessionRegistry::set_presence(const api::Jid& full, bool available, int priority) {
  const std::string bare = full.bare_str();
  auto& shard = shard_for(bare);
  std::lock_guard lock(shard.mutex);
  auto acc = shard.accounts.find(bare);
  if (acc == shard.accounts.end()) {
    return;
  }
  for (auto& e : acc->second) {
    if (e.resource == full.resource()) {
      e.info.available = available;
      e.info.priority = priority;
      e.info.last_activity = std::chrono::steady_clock::now();
    }
  }
}

std::size_t SessionRegistry::size() const {
  std::size_t n = 0;
  for (auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    for (const auto& [bare, list] : shard.accounts) {
      n += list.size();
    }
  }
  return n;
}

std::vector<std::shared_ptr<ClientSink>> SessionRegistry::all() const {
  std::vector<std::shared_ptr<ClientSink>> out;
  for (auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    for (const auto& [bare, list] : shard.accounts) {
      for (const auto& e : list) {
        out.push_back(e.sink);
      }
    }
  }
  return out;
}

} // namespace cg::routing
