#include "server/modules/host_state.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <stdexcept>

namespace cg::modules {

namespace asio = boost::asio;

namespace {

template <class V>
void insert_sorted(V& list, typename V::value_type entry) {
  // Higher priority first; equal priorities in registration order.
  auto pos = std::find_if(list.begin(), list.end(), [&](const auto& e) { return e.priority < entry.priority; });
  list.insert(pos, std::move(entry));
}

std::string iq_type_name(api::IqType t) {
  return t == api::IqType::Get ? "get" : "set";
}

} // namespace

void HostState::add_stanza_handler(api::StanzaKind kind, api::Route route, api::StanzaHandler fn, int priority,
                                   const void* owner) {
  insert_sorted(stanza_handlers_[{static_cast<int>(kind), static_cast<int>(route)}],
                Entry<api::StanzaHandler>{priority, seq_++, owner, std::move(fn)});
}

api::Flow HostState::run_stanza_handlers(api::StanzaEvent& event) const {
  auto it = stanza_handlers_.find({static_cast<int>(event.kind), static_cast<int>(event.route)});
  if (it == stanza_handlers_.end()) {
    return api::Flow::Continue;
  }
  for (const auto& e : it->second) {
    if (e.fn(event) == api::Flow::Stop) {
      return api::Flow::Stop;
    }
  }
  return api::Flow::Continue;
}

bool HostState::has_stanza_handlers(api::StanzaKind kind, api::Route route) const {
  auto it = stanza_handlers_.find({static_cast<int>(kind), static_cast<int>(route)});
  return it != stanza_handlers_.end() && !it->second.empty();
}

void HostState::add_iq_handler(api::IqScope scope, api::IqType type, std::string ns, std::string name,
                               api::IqHandler fn, const void* owner) {
  auto key = std::make_tuple(static_cast<int>(scope), static_cast<int>(type), ns, name);
  if (iq_handlers_.contains(key)) {
    throw std::logic_error("two modules handle IQ " + iq_type_name(type) + " <" + name + " xmlns='" + ns + "'/> on " +
                           name_);
  }
  iq_handlers_.emplace(std::move(key), Entry<api::IqHandler>{0, seq_++, owner, std::move(fn)});
}

const api::IqHandler* HostState::find_iq_handler(api::IqScope scope, api::IqType type, const std::string& ns,
                                                 const std::string& name) const {
  auto it = iq_handlers_.find(std::make_tuple(static_cast<int>(scope), static_cast<int>(type), ns, name));
  if (it == iq_handlers_.end()) {
    it = iq_handlers_.find(std::make_tuple(static_cast<int>(scope), static_cast<int>(type), ns, std::string()));
  }
  return it == iq_handlers_.end() ? nullptr : &it->second.fn;
}

void HostState::add_feature(std::string f, const void* owner) {
  features_.emplace_back(std::move(f), owner);
}
void HostState::add_account_feature(std::string f, const void* owner) {
  account_features_.emplace_back(std::move(f), owner);
}
void HostState::add_identity(api::Identity id, const void* owner) {
  identities_.emplace_back(std::move(id), owner);
}

namespace {
std::vector<std::string> sorted_unique(const std::vector<std::pair<std::string, const void*>>& in) {
  std::vector<std::string> out;
  out.reserve(in.size());
  for (const auto& [f, owner] : in) {
    out.push_back(f);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}
} // namespace

std::vector<std::string> HostState::features() const {
  return sorted_unique(features_);
}
std::vector<std::string> HostState::account_features() const {
  return sorted_unique(account_features_);
}

std::vector<api::Identity> HostState::identities() const {
  std::vector<api::Identity> out;
  for (const auto& [id, owner] : identities_) {
    if (std::find(out.begin(), out.end(), id) == out.end()) {
      out.push_back(id);
    }
  }
  return out;
}

void HostState::add_stream_feature(api::StreamStage stage, Element feature, const void* owner) {
  stream_features_.emplace_back(stage, std::move(feature), owner);
}

std::vector<Element> HostState::stream_features(api::StreamStage stage) const {
  std::vector<Element> out;
  for (const auto& [s, feature, owner] : stream_features_) {
    if (s == stage) {
      out.push_back(feature);
    }
  }
  return out;
}

void HostState::add_session_handler(api::SessionEventKind kind, api::SessionHandler fn, const void* owner) {
  session_handlers_[static_cast<int>(kind)].push_back(Entry<api::SessionHandler>{0, seq_++, owner, std::move(fn)});
}

void HostState::fire_session_event(const api::SessionEvent& ev) const {
  auto it = session_handlers_.find(static_cast<int>(ev.kind));
  if (it == session_handlers_.end()) {
    return;
  }
  for (const auto& e : it->second) {
    e.fn(ev);
  }
}

void HostState::request_idle(std::chrono::seconds after) {
  long want = static_cast<long>(after.count());
  long cur = idle_after_.load();
  while ((cur == 0 || want < cur) && !idle_after_.compare_exchange_weak(cur, want)) {
  }
}

void HostState::add_event_handler(std::type_index type, std::shared_ptr<void> fn, int priority, const void* owner) {
  insert_sorted(event_handlers_[type], Entry<std::shared_ptr<void>>{priority, seq_++, owner, std::move(fn)});
}

void HostState::for_each_event_handler(std::type_index type,
                                       const std::function<bool(const std::shared_ptr<void>&)>& visit) const {
  auto it = event_handlers_.find(type);
  if (it == event_handlers_.end()) {
    return;
  }
  for (const auto& e : it->second) {
    if (visit(e.fn)) {
      return;
    }
  }
}

std::string HostState::add_pending_iq(PendingIq pending) {
  std::lock_guard lock(pending_mutex_);
  std::string id = "cg-iq-" + std::to_string(++pending_seq_);
  pending_.emplace(id, std::move(pending));
  return id;
}

bool HostState::complete_pending_iq(const std::string& id, Element reply) {
  std::shared_ptr<asio::steady_timer> timer;
  {
    std::lock_guard lock(pending_mutex_);
    auto it = pending_.find(id);
    if (it == pending_.end()) {
      return false;
    }
    // Only the entity the IQ was sent to may answer it (RFC 6120 §8.2.3: the response comes from the 'to').
    auto from = api::Jid::parse(reply.attr("from"));
    auto peer = api::Jid::parse(it->second.peer);
    if (!from || !peer || (*from != *peer && !(peer->is_bare() && from->bare() == *peer))) {
      return false;
    }
    *it->second.result = std::move(reply);
    timer = std::move(it->second.timer);
    pending_.erase(it);
  }
  asio::post(timer->get_executor(), [timer] { timer->cancel(); });
  return true;
}

std::optional<Element> HostState::take_pending_result(const std::string& id, const PendingIq& pending) {
  std::lock_guard lock(pending_mutex_);
  pending_.erase(id);
  return *pending.result;
}

void HostState::remove_owner(const void* owner) {
  for (auto& [key, list] : stanza_handlers_) {
    std::erase_if(list, [&](const auto& e) { return e.owner == owner; });
  }
  std::erase_if(iq_handlers_, [&](const auto& kv) { return kv.second.owner == owner; });
  std::erase_if(features_, [&](const auto& f) { return f.second == owner; });
  std::erase_if(account_features_, [&](const auto& f) { return f.second == owner; });
  std::erase_if(identities_, [&](const auto& f) { return f.second == owner; });
  std::erase_if(stream_features_, [&](const auto& f) { return std::get<2>(f) == owner; });
  for (auto& [key, list] : session_handlers_) {
    std::erase_if(list, [&](const auto& e) { return e.owner == owner; });
  }
  for (auto& [key, list] : event_handlers_) {
    std::erase_if(list, [&](const auto& e) { return e.owner == owner; });
  }
}

ModuleHost::ModuleHost(CoreServices& core, HostState& host, std::string module_name,
                       const std::map<std::string, api::OptionValue, std::less<>>& options)
    : core_(core), host_(host), module_name_(std::move(module_name)), options_(options) {}

const api::OptionValue& ModuleHost::option_value(std::string_view key) const {
  auto it = options_.find(key);
  if (it == options_.end()) {
    throw std::out_of_range("module " + module_name_ + " read undeclared option '" + std::string(key) + "'");
  }
  return it->second;
}

void ModuleHost::send(Element stanza) {
  if (!stanza.has_attr("from")) {
    stanza.set_attr("from", host_.name());
  }
  core_.route_local(std::move(stanza));
}

asio::awaitable<std::optional<Element>> ModuleHost::send_iq(Element iq, std::chrono::milliseconds timeout) {
  auto executor = co_await asio::this_coro::executor;
  HostState::PendingIq pending{std::make_shared<asio::steady_timer>(executor, timeout),
                               std::make_shared<std::optional<Element>>(), std::string(iq.attr("to"))};
  std::string id = host_.add_pending_iq(pending);
  std::string caller_id(iq.attr("id"));
  iq.set_attr("id", id);
  if (!iq.has_attr("from")) {
    iq.set_attr("from", host_.name());
  }
  core_.route_local(std::move(iq));
  boost::system::error_code ec;
  co_await pending.timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  auto result = host_.take_pending_result(id, pending);
  if (result) {
    result->set_attr("id", caller_id);
  }
  co_return result;
}

} // namespace cg::modules
