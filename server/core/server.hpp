// The server: owns the I/O threads, the config, storage, TLS, the router, the module hosts and the listeners.
#pragma once

#include "server/config/config.hpp"
#include "server/core/accounts.hpp"
#include "server/modules/host_state.hpp"
#include "server/net/auth_limiter.hpp"
#include "server/net/tls.hpp"
#include "server/routing/registry.hpp"
#include "server/routing/router.hpp"
#include "server/xml/stream_parser.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace cg::net {
class C2SSession;
class S2SManager;
} // namespace cg::net

namespace cg::core {

namespace asio = boost::asio;

// The c2s settings, read once from the config.
struct C2SSettings {
  bool require_encryption = true;
  xml::ParserLimits parser_limits;
  std::size_t max_preauth_bytes = 65536;
  std::chrono::seconds auth_timeout{60};
  std::chrono::seconds idle_timeout{600};
  std::size_t max_send_queue = 2 << 20;
  std::size_t max_connections_per_ip = 256;
  std::size_t rate_limit = 0;
  routing::ConflictPolicy conflict = routing::ConflictPolicy::KickOld;
  std::size_t max_resources = 10;
  std::chrono::seconds resume_timeout{300};
  std::size_t max_unacked = 1000;
  std::vector<std::string> mechanisms;
  bool allow_insecure_plain = false;
  int max_auth_attempts = 3;
};

// Every module the server can load (xep/registry.cpp and the summarizer's), in registration order.
const std::vector<api::ModuleFactory>& all_modules();
// The config schema: the core's sections plus every registered module's.
config::Schema full_schema();

// The checks of option values that the schema cannot express: a domain name, an IP address, options that only go
// together. chatgroupd runs them before it starts and chatgroupctl check-config runs the same, so that
// check-config accepts exactly what the server accepts (README: "validate a config file without starting").
// Each error names the key and, when the file can be read again, the line and column of its value.
std::vector<config::ConfigError> check_values(const config::Config& config);

// Where the running server's control socket is (data_dir/chatgroupd.sock).
std::string control_socket_path(const config::Config& config);

class Server final : public modules::CoreServices {
public:
  explicit Server(config::Config config);
  ~Server() override;

  // Opens storage, loads TLS and modules, binds the listeners. Throws std::runtime_error with a message for the
  // administrator (naming the file, address or option at fault).
  void start();
  // Runs the I/O threads until shutdown completes; returns the process exit code.
  int run();
  // Begins a graceful shutdown (thread-safe): stop listening, <system-shutdown/> to every stream, wait up to
  // server.shutdown_timeout, then stop.
  void shutdown();

  // --- CoreServices ---
  asio::any_io_executor executor() override { return io_.get_executor(); }
  void route_local(xml::Element stanza) override { router_.route_local(std::move(stanza)); }
  void close_session(const api::Jid& full, std::string condition, std::string text) override;
  std::vector<api::SessionInfo> sessions(const api::Jid& bare) override;
  storage::Driver& storage() override { return *storage_; }
  asio::awaitable<void> run_blocking(std::function<void()> work) override;
  asio::awaitable<bool> user_exists(std::string host, std::string node) override;
  asio::awaitable<AccountResult> create_account(std::string host, std::string node, std::string password) override;
  asio::awaitable<AccountResult> set_password(std::string host, std::string node, std::string password) override;
  asio::awaitable<AccountResult> delete_account(std::string host, std::string node) override;
  const api::ServerInfo& server_info() const override { return info_; }
  spdlog::logger& logger() override { return *log_; }

  // --- for sessions ---
  const config::Config& config() const { return config_; }
  const C2SSettings& c2s() const { return c2s_; }
  net::TlsManager& tls() { return *tls_; }
  routing::Router& router() { return router_; }
  // Federation; null when s2s.enabled is off.
  net::S2SManager* s2s() { return s2s_.get(); }
  routing::SessionRegistry& registry() { return registry_; }
  Accounts& accounts() { return *accounts_; }
  net::AuthLimiter& auth_limiter() { return *auth_limiter_; }
  modules::HostState* host(std::string_view name) { return router_.host(name); }
  const std::string& fake_salt_secret() const { return fake_salt_secret_; }
  bool shutting_down() const { return shutting_down_.load(); }

  // Live connections (bound or not), for shutdown and per-address limits.
  // Returns false when the address is over its connection limit (the session then refuses the stream).
  bool add_session(const std::shared_ptr<net::C2SSession>& session, const std::string& address);
  void remove_session(net::C2SSession* session, const std::string& address);
  std::size_t session_count() const;

  // XEP-0198 resumption ids → the sessions that may be resumed with them.
  void register_sm(const std::string& id, const std::shared_ptr<net::C2SSession>& session);
  void unregister_sm(const std::string& id, const net::C2SSession* session);
  std::shared_ptr<net::C2SSession> find_sm(const std::string& id);

  // The listening endpoints actually bound (port 0 in the config picks a free port).
  const std::vector<std::pair<std::string, asio::ip::tcp::endpoint>>& listening() const { return listening_; }

private:
  void open_storage();
  void load_modules();
  void listen();
  enum class Listener { C2S, C2SDirectTls, S2S, S2SDirectTls };
  void listen_on(const char* section, const std::vector<std::pair<int, Listener>>& ports);
  asio::awaitable<void> accept_loop(std::shared_ptr<asio::ip::tcp::acceptor> acceptor, Listener kind);
  void start_s2s();
  // The control socket for chatgroupctl (server/core/control.cpp).
  void start_control();
  std::string control_answer(const std::string& command);
  asio::awaitable<void> shutdown_sequence();
  void handle_signals();

  config::Config config_;
  C2SSettings c2s_;
  api::ServerInfo info_;
  std::shared_ptr<spdlog::logger> log_;
  asio::io_context io_;
  asio::thread_pool blocking_pool_{2};
  asio::signal_set signals_;
  std::unique_ptr<storage::Driver> storage_;
  std::unique_ptr<Accounts> accounts_;
  std::unique_ptr<net::TlsManager> tls_;
  std::unique_ptr<net::AuthLimiter> auth_limiter_;
  std::unique_ptr<net::S2SManager> s2s_;
  std::shared_ptr<void> control_;
  routing::SessionRegistry registry_;
  routing::Router router_;
  std::vector<std::unique_ptr<modules::HostState>> hosts_;
  struct LoadedModule {
    std::unique_ptr<api::Module> module;
    std::unique_ptr<modules::ModuleHost> context;
  };
  std::vector<LoadedModule> modules_;
  std::vector<std::shared_ptr<asio::ip::tcp::acceptor>> acceptors_;
  std::vector<std::pair<std::string, asio::ip::tcp::endpoint>> listening_;
  std::string fake_salt_secret_;
  std::atomic<bool> shutting_down_{false};

  mutable std::mutex sessions_mutex_;
  std::unordered_map<net::C2SSession*, std::weak_ptr<net::C2SSession>> sessions_;
  std::unordered_map<std::string, std::size_t> per_address_;
  std::unordered_map<std::string, std::weak_ptr<net::C2SSession>> sm_sessions_;
};

} // namespace cg::core
