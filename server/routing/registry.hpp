// The session registry: bare JID → bound resources. The only shared routing structure (DESIGN.md §3): sharded by
// bare JID, short critical sections, and no lock is held while calling into a session.
#pragma once

#include "server/api/jid.hpp"
#include "server/api/module.hpp"
#include "server/xml/element.hpp"

#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace cg::routing {

// What the router needs from a client session. All methods are thread-safe.
class ClientSink {
public:
  virtual ~ClientSink() = default;
  // Queues a stanza for the client (serialised on the session's strand).
  virtual void deliver(xml::Element stanza) = 0;
  // Ends the session with a stream error.
  virtual void close(std::string condition, std::string text) = 0;
};

struct ResourceEntry {
  std::string resource;
  std::shared_ptr<ClientSink> sink;
  api::SessionInfo info;
};

enum class ConflictPolicy { KickOld, Refuse };

struct BindResult {
  enum class Status { Ok, Conflict, TooManyResources } status = Status::Ok;
  std::shared_ptr<ClientSink> replaced; // KickOld: the session that held the resource (to be closed with conflict)
};

class SessionRegistry {
public:
  BindResult bind(const api::Jid& full, std::shared_ptr<ClientSink> sink, api::SessionInfo info, ConflictPolicy policy,
                  std::size_t max_resources);
  // Removes the entry only if it still belongs to `sink` (a kicked session must not unbind its replacement).
  void unbind(const api::Jid& full, const ClientSink* sink);
  // Gives a bound resource to another session (XEP-0198 resumption) if `old` still holds it.
  bool replace(const api::Jid& full, const ClientSink* old, std::shared_ptr<ClientSink> now);
  std::shared_ptr<ClientSink> find(const api::Jid& full) const;
  bool has_resource(const api::Jid& full) const;
  // A snapshot of an account's resources.
  std::vector<ResourceEntry> resources(const api::Jid& bare) const;
  // Updates the presence state of a resource (RFC 6121 §4.2: availability and priority drive delivery).
  void set_presence(const api::Jid& full, bool available, int priority);
  std::size_t size() const;
  // Every bound session (for shutdown and administration).
  std::vector<std::shared_ptr<ClientSink>> all() const;

private:
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, std::vector<ResourceEntry>> accounts;
  };
  static constexpr std::size_t kShards = 64;
  Shard& shard_for(const std::string& bare) const;
  mutable std::array<Shard, kShards> shards_;
};

} // namespace cg::routing
