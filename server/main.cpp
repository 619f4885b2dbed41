// chatgroupd: the ChatGroup XMPP server.
#include "server/config/config.hpp"
#include "server/core/server.hpp"

#include <CLI/CLI.hpp>

#include <csignal>

#include <filesystem>
#include <iostream>

int main(int argc, char** argv) {
  // A peer that goes away while OpenSSL writes to its socket must cost that session an error, not the process
  // its life (OpenSSL's socket BIO writes without MSG_NOSIGNAL).
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"ChatGroup XMPP server"};
  std::string config_path;
  bool print_example = false;
  bool check_only = false;
  app.add_option("-c,--config", config_path, "TOML config file (default: built-in defaults: domain localhost)");
  app.add_flag("--print-example-config", print_example, "Print a config file with every option and its default");
  app.add_flag("--check-config", check_only, "Validate the config file and exit");
  app.set_version_flag("--version", std::string("chatgroupd ") + CHATGROUP_VERSION);
  CLI11_PARSE(app, argc, argv);

  const auto schema = cg::core::full_schema();
  if (print_example) {
    std::cout << cg::config::example_toml(schema);
    return 0;
  }
  cg::config::Config config = cg::config::defaults(schema);
  if (!config_path.empty()) {
    auto loaded = cg::config::load_file(config_path, schema);
    if (auto* errors = std::get_if<std::vector<cg::config::ConfigError>>(&loaded)) {
      for (const auto& e : *errors) {
        std::cerr << e.str() << "\n";
      }
      std::cerr << "chatgroupd: " << errors->size() << " error(s) in the config; not starting\n";
      return 2;
    }
    config = std::get<cg::config::Config>(std::move(loaded));
  }
  // Values the schema cannot check (a domain, an address): config errors too, reported the same way (status 2)
  // before anything is opened or created.
  if (auto errors = cg::core::check_values(config); !errors.empty()) {
    for (const auto& e : errors) {
      std::cerr << e.str() << "\n";
    }
    std::cerr << "chatgroupd: " << errors.size() << " error(s) in the config; not starting\n";
    return 2;
  }
  if (check_only) {
    std::cout << config.source() << ": ok\n";
    return 0;
  }

  std::unique_ptr<cg::core::Server> server;
  try {
    server = std::make_unique<cg::core::Server>(std::move(config));
    server->start();
  } catch (const std::exception& e) {
    std::cerr << "chatgroupd: cannot start: " << e.what() << "\n";
    return 1;
  }

  const auto& cfg = server->config();
  const auto& hosts = server->server_info().hosts;
  // The chatgroupctl next to this binary, as the user can type it from here.
  std::string ctl = "chatgroupctl";
  {
    std::error_code ec;
    auto self = std::filesystem::canonical("/proc/self/exe", ec);
    auto candidate = self.parent_path() / "chatgroupctl";
    if (!ec && std::filesystem::exists(candidate)) {
      auto rel = std::filesystem::relative(candidate, std::filesystem::current_path(), ec);
      ctl = !ec && !rel.empty() && rel.string().rfind("..", 0) != 0 ? rel.string() : candidate.string();
    }
  }
  if (!config_path.empty()) {
    ctl += " -c " + config_path;
  }
  std::cout << "ChatGroup " << CHATGROUP_VERSION << " serving " << hosts.front();
  for (std::size_t i = 1; i < hosts.size(); ++i) {
    std::cout << ", " << hosts[i];
  }
  std::cout << "\n";
  for (const auto& [kind, ep] : server->listening()) {
    std::cout << "  listening on " << ep << " (" << kind << ")\n";
  }
  std::cout << "  data directory: " << std::filesystem::absolute(cfg.get_string("server", "data_dir")).string() << "\n";
  std::cout << "  TLS certificate: " << server->tls().certificate_path()
            << (server->tls().self_signed() ? " (self-signed: clients will ask you to trust it)" : "") << "\n";
  std::cout << "Add a user:  " << ctl << " adduser alice@" << hosts.front() << "\n"
            << "Then log in with any XMPP client as alice@" << hosts.front() << " (server " << hosts.front()
            << ", port " << cfg.get_int("c2s", "port") << ").\n"
            << "chatgroupd: ready" << std::endl;
  return server->run();
}
