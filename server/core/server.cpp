#include "server/core/server.hpp"

#include "server/net/c2s_session.hpp"
#include "server/net/s2s.hpp"
#include "storage/sqlite/sqlite_driver.hpp"
#include "summarizer/summary_module.hpp"
#include "xep/registry.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/rand.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <thread>

namespace cg::core {

namespace fs = std::filesystem;
using tcp = asio::ip::tcp;

// Every module: the XEPs of xep/registry.cpp and the summary command (summarizer/, which xep/ may not include).
const std::vector<api::ModuleFactory>& all_modules() {
  static const std::vector<api::ModuleFactory> modules = [] {
    std::vector<api::ModuleFactory> out = xep::module_registry();
    out.push_back(&summarizer::make_module); // issue 6: AI summaries (off by default)
    return out;
  }();
  return modules;
}

config::Schema full_schema() {
  std::vector<std::string> all_names;
  std::vector<std::string> default_names;
  std::vector<api::ModuleInfo> infos;
  for (auto factory : all_modules()) {
    auto info = factory()->info();
    all_names.push_back(info.name);
    if (info.default_enabled) {
      default_names.push_back(info.name);
    }
    infos.push_back(std::move(info));
  }
  config::Schema schema;
  for (auto section : config::core_sections(default_names)) {
    if (section.name == "modules") {
      for (auto& opt : section.options) {
        if (opt.key == "enabled") {
          opt.choices = all_names;
        }
      }
    }
    schema.add(std::move(section));
  }
  for (auto& info : infos) {
    schema.add(api::OptionSection{"modules." + info.name, info.summary, info.options});
  }
  return schema;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Where `section.key` is set in the TOML file at `path`: {line, column of the value}, 1-based; {0, 0} when the
// file cannot be read again (e.g. /dev/stdin) or the key is not found. A line scan, enough for the plain
// `[section]` / `key = value` layout of a config file (the loader has already accepted the file).
std::pair<int, int> locate(const std::string& path, std::string_view section, std::string_view key) {
  std::ifstream in(path);
  std::string line;
  std::string current;
  int number = 0;
  const std::string dotted = std::string(section) + "." + std::string(key);
  while (std::getline(in, line)) {
    ++number;
    std::string_view t = trim(line);
    if (t.empty() || t.front() == '#') {
      continue;
    }
    if (t.front() == '[') {
      auto close = t.find(']');
      current = close == std::string_view::npos ? std::string() : std::string(trim(t.substr(1, close - 1)));
      continue;
    }
    auto eq = t.find('=');
    if (eq == std::string_view::npos) {
      continue;
    }
    std::string_view name = trim(t.substr(0, eq));
    if ((current == section && name == key) || (current.empty() && name == dotted)) {
      auto value_at = line.find('=') + 1;
      while (value_at < line.size() && (line[value_at] == ' ' || line[value_at] == '\t')) {
        ++value_at;
      }
      return {number, static_cast<int>(value_at) + 1};
    }
  }
  return {0, 0};
}

} // namespace

std::vector<config::ConfigError> check_values(const config::Config& cfg) {
  std::vector<config::ConfigError> errors;
  auto error = [&](std::string_view section, std::string_view key, std::string message) {
    auto [line, column] = cfg.is_set(section, key) ? locate(cfg.source(), section, key) : std::pair<int, int>{0, 0};
    errors.push_back(config::ConfigError{cfg.source(), line, column, std::string(section) + "." + std::string(key),
                                         std::move(message)});
  };
  const auto& hosts = cfg.get_list("server", "hosts");
  if (hosts.empty()) {
    error("server", "hosts", "at least one domain is needed");
  }
  for (const auto& h : hosts) {
    // RFC 7622 §3.2: a domainpart is a domain name (IDNA) or an IP literal.
    if (!api::Jid::nameprep(h)) {
      error("server", "hosts", "'" + h + "' is not a valid domain name");
    }
  }
  const bool has_cert = !cfg.get_string("tls", "certificate").empty();
  const bool has_key = !cfg.get_string("tls", "key").empty();
  if (has_cert && !has_key) {
    error("tls", "certificate", "tls.key is not set: tls.certificate and tls.key are set together");
  } else if (has_key && !has_cert) {
    error("tls", "key", "tls.certificate is not set: tls.certificate and tls.key are set together");
  }
  for (const char* section : {"c2s", "s2s"}) {
    for (const auto& a : cfg.get_list(section, "addresses")) {
      boost::system::error_code ec;
      asio::ip::make_address(a, ec);
      if (ec) {
        error(section, "addresses", "'" + a + "' is not an IP address");
      }
    }
  }
  for (const auto& r : cfg.get_list("s2s", "routes")) {
    const auto eq = r.find('=');
    const auto colon = r.rfind(':');
    std::uint64_t port = 0;
    const bool port_ok = colon != std::string::npos && colon > eq &&
                         std::from_chars(r.data() + colon + 1, r.data() + r.size(), port).ec == std::errc() &&
                         port > 0 && port < 65536;
    if (eq == std::string::npos || !api::Jid::nameprep(r.substr(0, eq)) || !port_ok || colon == eq + 1) {
      error("s2s", "routes", "'" + r + "' is not \"domain=host:port\"");
    }
  }
  for (const char* key : {"allow", "deny"}) {
    for (const auto& d : cfg.get_list("s2s", key)) {
      if (!api::Jid::nameprep(d)) {
        error("s2s", key, "'" + d + "' is not a valid domain name");
      }
    }
  }
  // In the order of the file, like the loader's errors (those without a line last).
  std::stable_sort(errors.begin(), errors.end(), [](const config::ConfigError& a, const config::ConfigError& b) {
    return (a.line == 0 ? INT_MAX : a.line) < (b.line == 0 ? INT_MAX : b.line);
  });
  return errors;
}

namespace {

std::shared_ptr<spdlog::logger> make_logger(const config::Config& cfg) {
  std::shared_ptr<spdlog::logger> log;
  const auto& file = cfg.get_string("log", "file");
  if (file.empty()) {
    log = std::make_shared<spdlog::logger>("chatgroup", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  } else {
    log = std::make_shared<spdlog::logger>("chatgroup", std::make_shared<spdlog::sinks::basic_file_sink_mt>(file));
  }
  log->set_level(spdlog::level::from_str(cfg.get_string("log", "level")));
  log->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  log->flush_on(spdlog::level::info);
  return log;
}

C2SSettings read_c2s(const config::Config& cfg) {
  C2SSettings s;
  s.require_encryption = cfg.get_bool("c2s", "require_encryption");
  s.parser_limits.max_stanza_bytes = static_cast<std::size_t>(cfg.get_int("c2s", "max_stanza_size"));
  s.parser_limits.max_depth = static_cast<std::size_t>(cfg.get_int("c2s", "max_depth"));
  s.max_preauth_bytes = static_cast<std::size_t>(cfg.get_int("c2s", "max_preauth_bytes"));
  s.auth_timeout = std::chrono::seconds(cfg.get_int("c2s", "auth_timeout"));
  s.idle_timeout = std::chrono::seconds(cfg.get_int("c2s", "idle_timeout"));
  s.max_send_queue = static_cast<std::size_t>(cfg.get_int("c2s", "max_send_queue"));
  s.max_connections_per_ip = static_cast<std::size_t>(cfg.get_int("c2s", "max_connections_per_ip"));
  s.rate_limit = static_cast<std::size_t>(cfg.get_int("c2s", "rate_limit"));
  s.conflict = cfg.get_string("c2s", "resource_conflict") == "refuse" ? routing::ConflictPolicy::Refuse
                                                                      : routing::ConflictPolicy::KickOld;
  s.max_resources = static_cast<std::size_t>(cfg.get_int("c2s", "max_resources"));
  s.resume_timeout = std::chrono::seconds(cfg.get_int("c2s", "resume_timeout"));
  s.max_unacked = static_cast<std::size_t>(cfg.get_int("c2s", "max_unacked"));
  s.mechanisms = cfg.get_list("auth", "mechanisms");
  s.allow_insecure_plain = cfg.get_bool("auth", "allow_insecure_plain");
  s.max_auth_attempts = static_cast<int>(cfg.get_int("auth", "max_attempts"));
  return s;
}

} // namespace

Server::Server(config::Config config)
    : config_(std::move(config)), c2s_(read_c2s(config_)), log_(make_logger(config_)), signals_(io_),
      router_(registry_, *this) {
  info_.name = "ChatGroup";
  info_.version = CHATGROUP_VERSION;
  for (const auto& h : config_.get_list("server", "hosts")) {
    auto prepped = api::Jid::nameprep(h);
    if (!prepped) {
      throw std::runtime_error(config_.source() + ": key 'server.hosts': '" + h + "' is not a valid domain name");
    }
    info_.hosts.push_back(*prepped);
  }
  if (info_.hosts.empty()) {
    throw std::runtime_error(config_.source() + ": key 'server.hosts': at least one domain is needed");
  }
  net::AuthLimits limits;
  limits.base_delay = std::chrono::seconds(config_.get_int("auth", "failure_delay"));
  limits.max_delay = std::chrono::seconds(config_.get_int("auth", "failure_delay_max"));
  limits.ban_after = static_cast<std::size_t>(config_.get_int("auth", "ban_after"));
  limits.window = std::chrono::seconds(config_.get_int("auth", "ban_window"));
  limits.ban_time = std::chrono::seconds(config_.get_int("auth", "ban_time"));
  auth_limiter_ = std::make_unique<net::AuthLimiter>(limits);
}

Server::~Server() {
  blocking_pool_.join();
  for (auto& m : modules_) {
    for (auto& h : hosts_) {
      h->remove_owner(m.context.get());
    }
  }
}

void Server::open_storage() {
  fs::path data_dir(config_.get_string("server", "data_dir"));
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) {
    throw std::runtime_error("cannot create the data directory " + data_dir.string() + ": " + ec.message());
  }
  if (config_.get_string("storage", "driver") == "memory") {
    storage_ = storage::make_memory_driver();
  } else {
    fs::path db(config_.get_string("storage", "database"));
    if (db.is_relative()) {
      db = data_dir / db;
    }
    storage::SqliteOptions opts;
    opts.path = db.string();
    opts.synchronous_full = config_.get_string("storage", "synchronous") == "full";
    storage_ = storage::open_sqlite(opts);
  }
  accounts_ =
      std::make_unique<Accounts>(*storage_, static_cast<std::uint32_t>(config_.get_int("auth", "scram_iterations")));
  // A per-server secret for SCRAM's fake salts, stable across restarts so unknown users stay indistinguishable.
  auto secrets = storage_->keyval("server");
  auto secret = secrets->get("", "fake-salt-secret");
  if (!secret) {
    std::string raw(32, '\0');
    RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(raw.size()));
    secret = sasl::base64_encode(raw);
    secrets->set("", "fake-salt-secret", *secret);
  }
  fake_salt_secret_ = *secret;
}

void Server::load_modules() {
  std::map<std::string, api::ModuleFactory> by_name;
  std::map<std::string, api::ModuleInfo> infos;
  for (auto factory : all_modules()) {
    auto info = factory()->info();
    by_name[info.name] = factory;
    infos[info.name] = info;
  }
  // Dependency order: a module loads after the modules it depends on.
  std::vector<std::string> order;
  std::set<std::string> placed;
  std::set<std::string> visiting;
  std::function<void(const std::string&, const std::string&)> place = [&](const std::string& name,
                                                                          const std::string& wanted_by) {
    if (placed.contains(name)) {
      return;
    }
    if (!infos.contains(name)) {
      throw std::runtime_error(config_.source() + ": key 'modules.enabled': unknown module '" + name + "'" +
                               (wanted_by.empty() ? "" : " (needed by '" + wanted_by + "')"));
    }
    if (!visiting.insert(name).second) {
      throw std::runtime_error("module dependency cycle through '" + name + "'");
    }
    for (const auto& dep : infos[name].depends) {
      place(dep, name);
    }
    placed.insert(name);
    order.push_back(name);
  };
  for (const auto& name : config_.get_list("modules", "enabled")) {
    place(name, "");
  }
  for (const auto& host : info_.hosts) {
    hosts_.push_back(std::make_unique<modules::HostState>(host));
    router_.add_host(hosts_.back().get());
  }
  for (auto& host : hosts_) {
    for (const auto& name : order) {
      LoadedModule m;
      m.module = by_name[name]();
      m.context = std::make_unique<modules::ModuleHost>(*this, *host, name, config_.section("modules." + name));
      m.module->load(*m.context);
      modules_.push_back(std::move(m));
    }
  }
  log_->info("modules loaded on {}: {}", fmt::join(info_.hosts, ", "), fmt::join(order, ", "));
}

void Server::listen() {
  std::vector<std::pair<int, Listener>> ports;
  if (auto p = config_.get_int("c2s", "port"); p > 0) {
    ports.emplace_back(static_cast<int>(p), Listener::C2S);
  }
  if (auto p = config_.get_int("c2s", "direct_tls_port"); p > 0) {
    ports.emplace_back(static_cast<int>(p), Listener::C2SDirectTls);
  }
  listen_on("c2s", ports);
  if (s2s_) {
    ports.clear();
    if (auto p = config_.get_int("s2s", "port"); p > 0) {
      ports.emplace_back(static_cast<int>(p), Listener::S2S);
    }
    if (auto p = config_.get_int("s2s", "direct_tls_port"); p > 0) {
      ports.emplace_back(static_cast<int>(p), Listener::S2SDirectTls);
    }
    listen_on("s2s", ports);
  }
}

void Server::listen_on(const char* section, const std::vector<std::pair<int, Listener>>& ports) {
  for (const auto& addr_text : config_.get_list(section, "addresses")) {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(addr_text, ec);
    if (ec) {
      throw std::runtime_error(config_.source() + ": key '" + section + ".addresses': '" + addr_text +
                               "' is not an IP address");
    }
    for (auto [port, kind] : ports) {
      const bool direct_tls = kind == Listener::C2SDirectTls || kind == Listener::S2SDirectTls;
      tcp::endpoint ep(addr, static_cast<unsigned short>(port));
      auto acceptor = std::make_shared<tcp::acceptor>(io_);
      acceptor->open(ep.protocol(), ec);
      if (!ec) {
        acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
        if (addr.is_v6()) {
          acceptor->set_option(asio::ip::v6_only(true), ec);
        }
        acceptor->bind(ep, ec);
      }
      if (!ec) {
        acceptor->listen(4096, ec);
      }
      if (ec) {
        throw std::runtime_error("cannot listen on " + addr_text + ":" + std::to_string(port) + " (" + section +
                                 (direct_tls ? ".direct_tls_port" : ".port") + "): " + ec.message());
      }
      auto bound = acceptor->local_endpoint();
      static constexpr const char* kNames[] = {"c2s-starttls", "c2s-direct-tls", "s2s-starttls", "s2s-direct-tls"};
      listening_.emplace_back(kNames[static_cast<int>(kind)], bound);
      acceptors_.push_back(acceptor);
      asio::co_spawn(io_, accept_loop(acceptor, kind), asio::detached);
    }
  }
}

asio::awaitable<void> Server::accept_loop(std::shared_ptr<tcp::acceptor> acceptor, Listener kind) {
  while (!shutting_down_) {
    boost::system::error_code ec;
    tcp::socket socket =
        co_await acceptor->async_accept(asio::make_strand(io_), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (shutting_down_ || ec == asio::error::operation_aborted) {
        co_return;
      }
      // Out of file descriptors (or another transient failure): back off instead of spinning.
      log_->warn("accept failed: {}", ec.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    switch (kind) {
    case Listener::C2S:
    case Listener::C2SDirectTls:
      std::make_shared<net::C2SSession>(*this, std::move(socket), kind == Listener::C2SDirectTls)->start();
      break;
    case Listener::S2S:
    case Listener::S2SDirectTls:
      std::make_shared<net::S2SIn>(*this, *s2s_, std::move(socket), kind == Listener::S2SDirectTls)->start();
      break;
    }
  }
}

void Server::start_s2s() {
  if (!config_.get_bool("s2s", "enabled")) {
    return;
  }
  net::S2SSettings s;
  s.require_encryption = config_.get_bool("s2s", "require_encryption");
  s.allow_dialback = config_.get_bool("s2s", "allow_dialback");
  s.dialback_without_tls = config_.get_bool("s2s", "dialback_without_tls");
  s.parser_limits.max_stanza_bytes = static_cast<std::size_t>(config_.get_int("s2s", "max_stanza_size"));
  s.parser_limits.max_depth = static_cast<std::size_t>(config_.get_int("c2s", "max_depth"));
  s.connect_timeout = std::chrono::seconds(config_.get_int("s2s", "connect_timeout"));
  s.auth_timeout = std::chrono::seconds(config_.get_int("s2s", "auth_timeout"));
  s.idle_timeout = std::chrono::seconds(config_.get_int("s2s", "idle_timeout"));
  s.max_queue = static_cast<std::size_t>(config_.get_int("s2s", "max_queue"));
  s.max_send_queue = static_cast<std::size_t>(config_.get_int("s2s", "max_send_queue"));
  s.max_connections_per_ip = static_cast<std::size_t>(config_.get_int("s2s", "max_connections_per_ip"));
  s.max_backoff = std::chrono::seconds(config_.get_int("s2s", "max_backoff"));
  s.max_streams_per_domain = static_cast<std::size_t>(config_.get_int("s2s", "max_streams_per_domain"));
  for (const auto& d : config_.get_list("s2s", "allow")) {
    s.allow.push_back(api::Jid::nameprep(d).value_or(d));
  }
  for (const auto& d : config_.get_list("s2s", "deny")) {
    s.deny.push_back(api::Jid::nameprep(d).value_or(d));
  }
  net::ResolverOptions r;
  r.nameserver = config_.get_string("s2s", "nameserver");
  r.use_hosts = config_.get_bool("s2s", "use_hosts_file");
  for (const auto& route : config_.get_list("s2s", "routes")) {
    const auto eq = route.find('=');
    r.static_routes[api::Jid::nameprep(route.substr(0, eq)).value_or(route.substr(0, eq))] = route.substr(eq + 1);
  }
  r.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(s.connect_timeout);
  r.logger = log_;
  s2s_ = std::make_unique<net::S2SManager>(*this, std::move(s), std::move(r));
  router_.set_remote_route([this](xml::Element stanza, const api::Jid& from, const api::Jid& to) {
    s2s_->route(std::move(stanza), from, to);
  });
}

void Server::start() {
  open_storage();
  net::TlsSettings tls;
  tls.certificate = config_.get_string("tls", "certificate");
  tls.key = config_.get_string("tls", "key");
  tls.data_dir = config_.get_string("server", "data_dir");
  tls.hosts = info_.hosts;
  tls.tls13_only = config_.get_string("tls", "min_version") == "1.3";
  tls.ca_file = config_.get_string("s2s", "ca_file");
  tls.system_trust = config_.get_bool("s2s", "system_trust");
  tls_ = std::make_unique<net::TlsManager>(tls);
  tls_->load();
  load_modules();
  start_s2s();
  listen();
  start_control();
  handle_signals();
}

void Server::handle_signals() {
  signals_.add(SIGINT);
  signals_.add(SIGTERM);
  signals_.add(SIGHUP);
  signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
    if (ec) {
      return;
    }
    if (signo == SIGHUP) {
      auto err = tls_->reload();
      if (err.empty()) {
        log_->info("SIGHUP: reloaded the TLS certificate {}", tls_->certificate_path());
      } else {
        log_->error("SIGHUP: keeping the previous TLS certificate: {}", err);
      }
      handle_signals();
      return;
    }
    log_->info("{}: shutting down", signo == SIGINT ? "SIGINT" : "SIGTERM");
    shutdown();
  });
}

int Server::run() {
  auto n = static_cast<unsigned>(config_.get_int("server", "threads"));
  if (n == 0) {
    n = std::max(1u, std::thread::hardware_concurrency());
  }
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < n; ++i) {
    threads.emplace_back([this] { io_.run(); });
  }
  io_.run();
  for (auto& t : threads) {
    t.join();
  }
  log_->info("stopped");
  return 0;
}

void Server::shutdown() {
  asio::co_spawn(io_, shutdown_sequence(), asio::detached);
}

asio::awaitable<void> Server::shutdown_sequence() {
  if (shutting_down_.exchange(true)) {
    co_return;
  }
  boost::system::error_code ec;
  for (auto& a : acceptors_) {
    a->close(ec);
  }
  if (control_) {
    std::static_pointer_cast<asio::local::stream_protocol::acceptor>(control_)->close(ec);
    std::error_code fs_ec;
    std::filesystem::remove(control_socket_path(config_), fs_ec);
  }
  signals_.cancel(ec);
  std::vector<std::shared_ptr<net::C2SSession>> live;
  {
    std::lock_guard lock(sessions_mutex_);
    for (auto& [ptr, weak] : sessions_) {
      if (auto s = weak.lock()) {
        live.push_back(std::move(s));
      }
    }
  }
  log_->info("closing {} connection(s)", live.size());
  for (auto& s : live) {
    s->close("system-shutdown", "the server is shutting down");
  }
  live.clear();
  if (s2s_) {
    s2s_->close_all("system-shutdown", "the server is shutting down");
  }
  // Wait for the streams to close, up to server.shutdown_timeout.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(config_.get_int("server", "shutdown_timeout"));
  asio::steady_timer tick(io_);
  auto open_streams = [this] { return session_count() + (s2s_ ? s2s_->count() : 0); };
  while (open_streams() > 0 && std::chrono::steady_clock::now() < deadline) {
    tick.expires_after(std::chrono::milliseconds(20));
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (auto left = open_streams(); left > 0) {
    log_->warn("{} connection(s) still open after server.shutdown_timeout; stopping anyway", left);
  }
  io_.stop();
}

bool Server::add_session(const std::shared_ptr<net::C2SSession>& session, const std::string& address) {
  std::lock_guard lock(sessions_mutex_);
  sessions_[session.get()] = session;
  auto& n = per_address_[address];
  ++n;
  return c2s_.max_connections_per_ip == 0 || n <= c2s_.max_connections_per_ip;
}

void Server::remove_session(net::C2SSession* session, const std::string& address) {
  std::lock_guard lock(sessions_mutex_);
  sessions_.erase(session);
  if (auto it = per_address_.find(address); it != per_address_.end() && --it->second == 0) {
    per_address_.erase(it);
  }
}

void Server::register_sm(const std::string& id, const std::shared_ptr<net::C2SSession>& session) {
  std::lock_guard lock(sessions_mutex_);
  sm_sessions_[id] = session;
}

void Server::unregister_sm(const std::string& id, const net::C2SSession* session) {
  std::lock_guard lock(sessions_mutex_);
  auto it = sm_sessions_.find(id);
  if (it != sm_sessions_.end()) {
    auto s = it->second.lock();
    if (!s || s.get() == session) {
      sm_sessions_.erase(it);
    }
  }
}

std::shared_ptr<net::C2SSession> Server::find_sm(const std::string& id) {
  std::lock_guard lock(sessions_mutex_);
  auto it = sm_sessions_.find(id);
  return it == sm_sessions_.end() ? nullptr : it->second.lock();
}

std::size_t Server::session_count() const {
  std::lock_guard lock(sessions_mutex_);
  return sessions_.size();
}

void Server::close_session(const api::Jid& full, std::string condition, std::string text) {
  if (auto sink = registry_.find(full)) {
    sink->close(std::move(condition), std::move(text));
  }
}

std::vector<api::SessionInfo> Server::sessions(const api::Jid& bare) {
  std::vector<api::SessionInfo> out;
  for (auto& r : registry_.resources(bare)) {
    out.push_back(r.info);
  }
  return out;
}

namespace {

// Runs `work` on `pool` and completes on the caller's executor with the exception it threw, if any. Written with
// async_initiate rather than co_spawn of a capturing lambda: g++ 12 destroys such temporaries twice when they
// appear inside a co_await expression.
template <class Token>
auto async_offload(asio::thread_pool& pool, std::function<void()> work, Token&& token) {
  return asio::async_initiate<Token, void(std::exception_ptr)>(
      [&pool](auto handler, std::function<void()> fn) {
        auto ex = asio::get_associated_executor(handler);
        auto guard = asio::make_work_guard(ex);
        asio::post(pool, [handler = std::move(handler), fn = std::move(fn), guard = std::move(guard)]() mutable {
          std::exception_ptr error;
          try {
            fn();
          } catch (...) {
            error = std::current_exception();
          }
          auto target = guard.get_executor();
          asio::post(target,
                     [handler = std::move(handler), error, guard = std::move(guard)]() mutable { handler(error); });
        });
      },
      token, std::move(work));
}

} // namespace

asio::awaitable<void> Server::run_blocking(std::function<void()> work) {
  co_await async_offload(blocking_pool_, std::move(work), asio::use_awaitable);
}

asio::awaitable<bool> Server::user_exists(std::string host, std::string node) {
  bool exists = false;
  std::function<void()> lookup = [&] { exists = accounts_->exists(host, node); };
  co_await run_blocking(std::move(lookup));
  co_return exists;
}

namespace {

modules::CoreServices::AccountResult to_api(Accounts::Result r) {
  using R = modules::CoreServices::AccountResult;
  switch (r) {
  case Accounts::Result::Ok:
    return R::Ok;
  case Accounts::Result::Exists:
    return R::Exists;
  case Accounts::Result::NotFound:
    return R::NotFound;
  case Accounts::Result::InvalidUsername:
    return R::InvalidUsername;
  case Accounts::Result::InvalidPassword:
    return R::InvalidPassword;
  }
  return R::NotFound;
}

} // namespace

asio::awaitable<Server::AccountResult> Server::create_account(std::string host, std::string node,
                                                              std::string password) {
  Accounts::Result r = Accounts::Result::NotFound;
  std::function<void()> job = [&] { r = accounts_->create(host, node, password); };
  co_await run_blocking(std::move(job));
  co_return to_api(r);
}

asio::awaitable<Server::AccountResult> Server::set_password(std::string host, std::string node, std::string password) {
  Accounts::Result r = Accounts::Result::NotFound;
  std::function<void()> job = [&] { r = accounts_->set_password(host, node, password); };
  co_await run_blocking(std::move(job));
  co_return to_api(r);
}

asio::awaitable<Server::AccountResult> Server::delete_account(std::string host, std::string node) {
  Accounts::Result r = Accounts::Result::NotFound;
  std::function<void()> job = [&] { r = accounts_->remove(host, node); };
  co_await run_blocking(std::move(job));
  if (r == Accounts::Result::Ok) {
    if (auto bare = api::Jid::from_parts(node, host, "")) {
      for (auto& res : registry_.resources(*bare)) {
        res.sink->close("not-authorized", "the account was deleted");
      }
    }
  }
  co_return to_api(r);
}

} // namespace cg::core
