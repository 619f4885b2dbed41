// Per virtual host: every handler, feature and identity that the host's modules registered. Registration happens
// while modules load (before the server accepts connections) and is read without locks afterwards; unregistration
// (remove_owner) happens after the I/O threads have stopped.
#pragma once

#include "server/api/module.hpp"

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <typeindex>
#include <unordered_map>
#include <vector>

namespace cg::modules {

using api::Element;

// The services of the core that module contexts and the router use; implemented by core::Server.
class CoreServices {
public:
  virtual ~CoreServices() = default;
  virtual boost::asio::any_io_executor executor() = 0;
  // Routes a stanza generated inside the server (no Route::Pre).
  virtual void route_local(Element stanza) = 0;
  virtual void close_session(const api::Jid& full, std::string condition, std::string text) = 0;
  virtual std::vector<api::SessionInfo> sessions(const api::Jid& bare) = 0;
  virtual storage::Driver& storage() = 0;
  virtual boost::asio::awaitable<void> run_blocking(std::function<void()> work) = 0;
  virtual boost::asio::awaitable<bool> user_exists(std::string host, std::string node) = 0;
  using AccountResult = api::ModuleContext::AccountResult;
  virtual boost::asio::awaitable<AccountResult> create_account(std::string host, std::string node,
                                                               std::string password) = 0;
  virtual boost::asio::awaitable<AccountResult> set_password(std::string host, std::string node,
                                                             std::string password) = 0;
  virtual boost::asio::awaitable<AccountResult> delete_account(std::string host, std::string node) = 0;
  virtual const api::ServerInfo& server_info() const = 0;
  virtual spdlog::logger& logger() = 0;
};

class HostState {
public:
  explicit HostState(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }

  // Stanza handlers.
  void add_stanza_handler(api::StanzaKind kind, api::Route route, api::StanzaHandler fn, int priority,
                          const void* owner);
  api::Flow run_stanza_handlers(api::StanzaEvent& event) const;
  bool has_stanza_handlers(api::StanzaKind kind, api::Route route) const;

  // IQ handlers. Two modules claiming the same (scope, type, namespace, element) is a programming error.
  void add_iq_handler(api::IqScope scope, api::IqType type, std::string ns, std::string name, api::IqHandler fn,
                      const void* owner);
  const api::IqHandler* find_iq_handler(api::IqScope scope, api::IqType type, const std::string& ns,
                                        const std::string& name) const;

  // Service discovery.
  void add_feature(std::string f, const void* owner);
  void add_account_feature(std::string f, const void* owner);
  void add_identity(api::Identity id, const void* owner);
  std::vector<std::string> features() const;
  std::vector<std::string> account_features() const;
  std::vector<api::Identity> identities() const;
  void add_stream_feature(api::StreamStage stage, Element feature, const void* owner);
  std::vector<Element> stream_features(api::StreamStage stage) const;

  // Session events.
  void add_session_handler(api::SessionEventKind kind, api::SessionHandler fn, const void* owner);
  void fire_session_event(const api::SessionEvent& ev) const;
  void request_idle(std::chrono::seconds after);
  // 0 = nobody wants idle events.
  std::chrono::seconds idle_after() const { return std::chrono::seconds(idle_after_.load()); }

  // Typed module events.
  void add_event_handler(std::type_index type, std::shared_ptr<void> fn, int priority, const void* owner);
  void for_each_event_handler(std::type_index type,
                              const std::function<bool(const std::shared_ptr<void>&)>& visit) const;

  // IQs the host's modules sent and await (ModuleContext::send_iq).
  struct PendingIq {
    std::shared_ptr<boost::asio::steady_timer> timer;
    std::shared_ptr<std::optional<Element>> result;
    std::string peer; // the address the IQ went to: only it may answer
  };
  std::string add_pending_iq(PendingIq pending);
  // Hands a reply to its waiter; false when no module awaits this id.
  bool complete_pending_iq(const std::string& id, Element reply);
  // Removes the entry (after a timeout) and returns the result if one arrived.
  std::optional<Element> take_pending_result(const std::string& id, const PendingIq& pending);

  // Undoes every registration made by `owner`.
  void remove_owner(const void* owner);

private:
  template <class F>
  struct Entry {
    int priority;
    std::uint64_t seq;
    const void* owner;
    F fn;
  };
  std::string name_;
  std::uint64_t seq_ = 0;
  std::map<std::pair<int, int>, std::vector<Entry<api::StanzaHandler>>> stanza_handlers_;
  std::map<std::tuple<int, int, std::string, std::string>, Entry<api::IqHandler>> iq_handlers_;
  std::vector<std::pair<std::string, const void*>> features_;
  std::vector<std::pair<std::string, const void*>> account_features_;
  std::vector<std::pair<api::Identity, const void*>> identities_;
  std::vector<std::tuple<api::StreamStage, Element, const void*>> stream_features_;
  std::map<int, std::vector<Entry<api::SessionHandler>>> session_handlers_;
  std::unordered_map<std::type_index, std::vector<Entry<std::shared_ptr<void>>>> event_handlers_;
  std::atomic<long> idle_after_{0};

  std::mutex pending_mutex_;
  std::unordered_map<std::string, PendingIq> pending_;
  std::uint64_t pending_seq_ = 0;
};

// The ModuleContext a module sees: one per (module, host).
class ModuleHost final : public api::ModuleContext {
public:
  ModuleHost(CoreServices& core, HostState& host, std::string module_name,
             const std::map<std::string, api::OptionValue, std::less<>>& options);

  const std::string& host() const override { return host_.name(); }
  const api::ServerInfo& server_info() const override { return core_.server_info(); }
  spdlog::logger& log() override { return core_.logger(); }
  boost::asio::any_io_executor executor() override { return core_.executor(); }
  const api::OptionValue& option_value(std::string_view key) const override;

  void add_feature(std::string feature) override { host_.add_feature(std::move(feature), this); }
  void add_identity(api::Identity identity) override { host_.add_identity(std::move(identity), this); }
  void add_account_feature(std::string feature) override { host_.add_account_feature(std::move(feature), this); }
  std::vector<std::string> features() const override { return host_.features(); }
  std::vector<api::Identity> identities() const override { return host_.identities(); }
  std::vector<std::string> account_features() const override { return host_.account_features(); }
  void add_stream_feature(api::StreamStage stage, Element feature) override {
    host_.add_stream_feature(stage, std::move(feature), this);
  }

  void on_stanza(api::StanzaKind kind, api::Route route, api::StanzaHandler handler, int priority) override {
    host_.add_stanza_handler(kind, route, std::move(handler), priority, this);
  }
  void on_iq(api::IqScope scope, api::IqType type, std::string payload_ns, std::string payload_name,
             api::IqHandler handler) override {
    host_.add_iq_handler(scope, type, std::move(payload_ns), std::move(payload_name), std::move(handler), this);
  }
  void on_session(api::SessionEventKind kind, api::SessionHandler handler) override {
    host_.add_session_handler(kind, std::move(handler), this);
  }
  void request_idle_events(std::chrono::seconds after) override { host_.request_idle(after); }

  void send(Element stanza) override;
  boost::asio::awaitable<std::optional<Element>> send_iq(Element iq, std::chrono::milliseconds timeout) override;
  void close_session(const api::Jid& full_jid, std::string condition, std::string text) override {
    core_.close_session(full_jid, std::move(condition), std::move(text));
  }
  std::vector<api::SessionInfo> sessions(const api::Jid& bare_jid) const override { return core_.sessions(bare_jid); }

  storage::Driver& storage() override { return core_.storage(); }
  boost::asio::awaitable<void> run_blocking(std::function<void()> work) override {
    return core_.run_blocking(std::move(work));
  }
  boost::asio::awaitable<bool> user_exists(std::string_view node) override {
    return core_.user_exists(host_.name(), std::string(node));
  }
  boost::asio::awaitable<AccountResult> create_account(std::string node, std::string password) override {
    return core_.create_account(host_.name(), std::move(node), std::move(password));
  }
  boost::asio::awaitable<AccountResult> set_password(std::string node, std::string password) override {
    return core_.set_password(host_.name(), std::move(node), std::move(password));
  }
  boost::asio::awaitable<AccountResult> delete_account(std::string node) override {
    return core_.delete_account(host_.name(), std::move(node));
  }

  const std::string& module_name() const { return module_name_; }

protected:
  void add_event_handler(std::type_index type, std::shared_ptr<void> handler, int priority) override {
    host_.add_event_handler(type, std::move(handler), priority, this);
  }
  void for_each_event_handler(std::type_index type,
                              const std::function<bool(const std::shared_ptr<void>&)>& visit) override {
    host_.for_each_event_handler(type, visit);
  }

private:
  CoreServices& core_;
  HostState& host_;
  std::string module_name_;
  const std::map<std::string, api::OptionValue, std::less<>>& options_;
};

} // namespace cg::modules
