#include "server/core/server.hpp"
#include "server/net/dialback.hpp"
#include "server/net/s2s.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace cg::net {

using xml::Element;

S2SManager::S2SManager(core::Server& server, S2SSettings settings, ResolverOptions resolver)
    : server_(server), settings_(std::move(settings)),
      resolver_(std::make_unique<Resolver>(server.executor(), std::move(resolver))),
      secret_(dialback::random_secret()) {}

S2SManager::~S2SManager() = default;

bool S2SManager::allowed(const std::string& domain) const {
  auto covers = [&](const std::vector<std::string>& list) {
    return std::any_of(list.begin(), list.end(), [&](const std::string& d) {
      // A listed domain covers its subdomains too (conference.example.org for example.org).
      return domain == d ||
             (domain.size() > d.size() && domain.ends_with(d) && domain[domain.size() - d.size() - 1] == '.');
    });
  };
  if (covers(settings_.deny)) {
    return false;
  }
  return settings_.allow.empty() || covers(settings_.allow);
}

void S2SManager::bounce(const Element& stanza, const std::string& condition, const std::string& text) {
  server_.router().bounce(stanza, condition, text);
}

std::shared_ptr<S2SOut> S2SManager::outgoing(const std::string& local, const std::string& remote, bool create) {
  std::shared_ptr<S2SOut> out;
  bool fresh = false;
  {
    std::lock_guard lock(mutex_);
    auto it = out_.find({local, remote});
    if (it != out_.end()) {
      return it->second;
    }
    if (!create) {
      return nullptr;
    }
    // XEP-0220 §2.5 piggybacking: a stream to `remote` that one of our other domains authenticated with dialback
    // carries this domain too, after its own <db:result/>.
    for (auto& [pair, existing] : out_) {
      if (pair.second == remote && existing->can_piggyback()) {
        out = existing;
        break;
      }
    }
    if (out) {
      out_[{local, remote}] = out;
    } else {
      out = std::make_shared<S2SOut>(server_, *this, local, remote);
      out_[{local, remote}] = out;
      fresh = true;
    }
  }
  if (fresh) {
    out->start();
  } else {
    out->add_local(local);
  }
  return out;
}

void S2SManager::route(Element stanza, const api::Jid& from, const api::Jid& to) {
  const std::string& local = from.domain();
  const std::string& remote = to.domain();
  if (server_.host(local) == nullptr) {
    server_.logger().debug("s2s: dropping a stanza from {} to {}: neither domain is ours", local, remote);
    return;
  }
  if (!allowed(remote)) {
    // s2s.allow / s2s.deny.
    bounce(stanza, "remote-server-not-found", "this server does not federate with " + remote);
    return;
  }
  std::string condition;
  std::string text;
  {
    std::lock_guard lock(mutex_);
    auto it = backoff_.find(remote);
    if (it != backoff_.end() && std::chrono::steady_clock::now() < it->second.until &&
        !out_.contains({local, remote})) {
      // A recent attempt failed: answer at once rather than hammering the domain (the wait doubles per failure).
      condition = it->second.condition;
      text = it->second.text;
    }
  }
  if (!condition.empty()) {
    bounce(stanza, condition, text);
    return;
  }
  outgoing(local, remote, true)->enqueue(std::move(stanza));
}

void S2SManager::verify(const std::string& local, const std::string& remote, std::string id, std::string key,
                        std::function<void(std::optional<bool>)> done) {
  outgoing(local, remote, true)->verify(local, std::move(id), std::move(key), std::move(done));
}

void S2SManager::forget(const std::string& local, const std::string& remote, const S2SOut* out) {
  std::lock_guard lock(mutex_);
  auto it = out_.find({local, remote});
  if (it != out_.end() && it->second.get() == out) {
    out_.erase(it);
  }
}

void S2SManager::add(const std::shared_ptr<S2SStream>& stream) {
  std::lock_guard lock(mutex_);
  streams_[stream.get()] = stream;
}

void S2SManager::remove(const S2SStream* stream) {
  std::lock_guard lock(mutex_);
  streams_.erase(stream);
}

void S2SManager::out_ready(const S2SOut* out) {
  std::lock_guard lock(mutex_);
  backoff_.erase(out->remote());
}

void S2SManager::out_ended(const S2SOut* out, bool failed, const std::string& condition, const std::string& text,
                           std::deque<Element> leftover) {
  {
    std::lock_guard lock(mutex_);
    // Every pair this stream carried (its own and the piggybacking domains').
    std::erase_if(out_, [out](const auto& entry) { return entry.second.get() == out; });
    if (failed) {
      auto& b = backoff_[out->remote()];
      b.wait = std::min<std::chrono::seconds>(b.wait.count() == 0 ? std::chrono::seconds(1) : b.wait * 2,
                                              settings_.max_backoff);
      b.until = std::chrono::steady_clock::now() + b.wait;
      b.condition = condition;
      b.text = text;
    }
  }
  for (auto& stanza : leftover) {
    if (failed) {
      // RFC 6120 §8.3.3.16 remote-server-not-found / §8.3.3.17 remote-server-timeout.
      bounce(stanza, condition, text);
    } else {
      auto from = api::Jid::parse(stanza.attr("from"));
      auto to = api::Jid::parse(stanza.attr("to"));
      if (from && to) {
        route(std::move(stanza), *from, *to);
      }
    }
  }
}

bool S2SManager::add_incoming_address(const std::string& address) {
  std::lock_guard lock(mutex_);
  auto& n = per_address_[address];
  ++n;
  return settings_.max_connections_per_ip == 0 || n <= settings_.max_connections_per_ip;
}

void S2SManager::remove_incoming_address(const std::string& address) {
  std::lock_guard lock(mutex_);
  auto it = per_address_.find(address);
  if (it != per_address_.end() && --it->second == 0) {
    per_address_.erase(it);
  }
}

bool S2SManager::claim_incoming_domain(const std::string& domain) {
  std::lock_guard lock(mutex_);
  auto& n = per_domain_[domain];
  if (settings_.max_streams_per_domain != 0 && n >= settings_.max_streams_per_domain) {
    if (n == 0) {
      per_domain_.erase(domain);
    }
    return false;
  }
  ++n;
  return true;
}

void S2SManager::release_incoming_domain(const std::string& domain) {
  std::lock_guard lock(mutex_);
  auto it = per_domain_.find(domain);
  if (it != per_domain_.end() && --it->second == 0) {
    per_domain_.erase(it);
  }
}

std::vector<S2SInfo> S2SManager::list() const {
  std::vector<std::shared_ptr<S2SStream>> live;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [ptr, weak] : streams_) {
      if (auto s = weak.lock()) {
        live.push_back(std::move(s));
      }
    }
  }
  std::vector<S2SInfo> out;
  for (const auto& s : live) {
    out.push_back(s->info());
  }
  return out;
}

std::size_t S2SManager::count() const {
  std::lock_guard lock(mutex_);
  return streams_.size();
}

void S2SManager::close_all(const std::string& condition, const std::string& text) {
  std::vector<std::shared_ptr<S2SStream>> live;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [ptr, weak] : streams_) {
      if (auto s = weak.lock()) {
        live.push_back(std::move(s));
      }
    }
  }
  for (const auto& s : live) {
    s->close(condition, text);
  }
}

} // namespace cg::net
