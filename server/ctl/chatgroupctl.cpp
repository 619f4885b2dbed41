// chatgroupctl: administer a ChatGroup server — accounts and config checks. Works on the same database as a
// running chatgroupd (SQLite in WAL mode lets both use it at once).
#include "server/api/jid.hpp"
#include "server/config/config.hpp"
#include "server/core/accounts.hpp"
#include "server/core/server.hpp"
#include "storage/sqlite/sqlite_driver.hpp"

#include <CLI/CLI.hpp>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>

namespace {

namespace fs = std::filesystem;
using cg::config::Config;

int config_errors(const std::vector<cg::config::ConfigError>& errors) {
  for (const auto& e : errors) {
    std::cerr << e.str() << "\n";
  }
  std::cerr << "chatgroupctl: " << errors.size() << " error(s) in the config\n";
  return 2;
}

// Reads a password: at a terminal, twice without echo; otherwise one line from standard input.
std::optional<std::string> read_password(const std::string& prompt) {
  if (!isatty(STDIN_FILENO)) {
    std::string line;
    if (!std::getline(std::cin, line)) {
      std::cerr << "chatgroupctl: expected the password on standard input\n";
      return std::nullopt;
    }
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    return line;
  }
  termios old{};
  tcgetattr(STDIN_FILENO, &old);
  termios quiet = old;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  auto ask = [&](const std::string& text) {
    std::cerr << text << std::flush;
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    std::string line;
    std::getline(std::cin, line);
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::cerr << "\n";
    return line;
  };
  auto first = ask(prompt);
  auto second = ask("Repeat the password: ");
  if (first != second) {
    std::cerr << "chatgroupctl: the passwords do not match\n";
    return std::nullopt;
  }
  return first;
}

struct Context {
  Config config;
  std::unique_ptr<cg::storage::Driver> driver;
  std::unique_ptr<cg::core::Accounts> accounts;
  std::vector<std::string> hosts;
};

std::optional<Context> open(const std::string& config_path, int& rc) {
  const auto schema = cg::core::full_schema();
  Context ctx{cg::config::defaults(schema), nullptr, nullptr, {}};
  if (!config_path.empty()) {
    auto loaded = cg::config::load_file(config_path, schema);
    if (auto* errors = std::get_if<std::vector<cg::config::ConfigError>>(&loaded)) {
      rc = config_errors(*errors);
      return std::nullopt;
    }
    ctx.config = std::get<Config>(std::move(loaded));
  }
  if (auto errors = cg::core::check_values(ctx.config); !errors.empty()) {
    rc = config_errors(errors);
    return std::nullopt;
  }
  for (const auto& h : ctx.config.get_list("server", "hosts")) {
    if (auto p = cg::api::Jid::nameprep(h)) {
      ctx.hosts.push_back(*p);
    }
  }
  if (ctx.config.get_string("storage", "driver") != "sqlite") {
    std::cerr << "chatgroupctl: storage.driver is '" << ctx.config.get_string("storage", "driver")
              << "': accounts live only inside the running server\n";
    rc = 2;
    return std::nullopt;
  }
  fs::path data_dir(ctx.config.get_string("server", "data_dir"));
  fs::path db(ctx.config.get_string("storage", "database"));
  if (db.is_relative()) {
    db = data_dir / db;
  }
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  try {
    cg::storage::SqliteOptions opts;
    opts.path = db.string();
    opts.synchronous_full = ctx.config.get_string("storage", "synchronous") == "full";
    ctx.driver = cg::storage::open_sqlite(opts);
  } catch (const std::exception& e) {
    std::cerr << "chatgroupctl: " << e.what() << "\n";
    rc = 1;
    return std::nullopt;
  }
  ctx.accounts = std::make_unique<cg::core::Accounts>(
      *ctx.driver, static_cast<std::uint32_t>(ctx.config.get_int("auth", "scram_iterations")));
  return ctx;
}

// Parses USER@HOST and checks the host is served.
std::optional<cg::api::Jid> account_jid(const Context& ctx, const std::string& text) {
  auto jid = cg::api::Jid::parse(text);
  if (!jid || !jid->has_node() || jid->has_resource()) {
    std::cerr << "chatgroupctl: '" << text << "' is not an account address (user@domain)\n";
    return std::nullopt;
  }
  if (std::find(ctx.hosts.begin(), ctx.hosts.end(), jid->domain()) == ctx.hosts.end()) {
    std::cerr << "chatgroupctl: this server does not serve '" << jid->domain() << "' (server.hosts)\n";
    return std::nullopt;
  }
  return jid;
}

int report(cg::core::Accounts::Result r, const std::string& what, const cg::api::Jid& jid) {
  if (r == cg::core::Accounts::Result::Ok) {
    std::cout << what << " " << jid.bare_str() << "\n";
    return 0;
  }
  std::cerr << "chatgroupctl: " << jid.bare_str() << ": " << cg::core::Accounts::describe(r) << "\n";
  return 1;
}

// Asks the running chatgroupd over its control socket (data_dir/chatgroupd.sock).
int list_s2s(const std::string& config_path) {
  const auto schema = cg::core::full_schema();
  cg::config::LoadResult loaded = config_path.empty() ? cg::config::LoadResult(cg::config::defaults(schema))
                                                      : cg::config::load_file(config_path, schema);
  if (auto* errors = std::get_if<std::vector<cg::config::ConfigError>>(&loaded)) {
    return config_errors(*errors);
  }
  const std::string path = cg::core::control_socket_path(std::get<Config>(loaded));
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (fd < 0 || path.size() >= sizeof addr.sun_path) {
    std::cerr << "chatgroupctl: cannot use the control socket " << path << "\n";
    return 1;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::cerr << "chatgroupctl: chatgroupd is not running (no control socket at " << path << ": "
              << std::strerror(errno) << ")\n";
    ::close(fd);
    return 1;
  }
  const std::string command = "s2s\n";
  if (::write(fd, command.data(), command.size()) != static_cast<ssize_t>(command.size())) {
    ::close(fd);
    return 1;
  }
  std::string answer;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) {
    answer.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  std::printf("%-4s %-24s %-24s %-14s %-8s %-14s %s\n", "DIR", "LOCAL", "REMOTE", "AUTH", "TLS", "STATE", "PEER");
  std::istringstream lines(answer);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> f;
    std::istringstream fields(line);
    for (std::string x; std::getline(fields, x, '\t');) {
      f.push_back(x);
    }
    if (f.size() == 7) {
      std::printf("%-4s %-24s %-24s %-14s %-8s %-14s %s\n", f[0].c_str(), f[1].c_str(), f[2].c_str(), f[3].c_str(),
                  f[4].c_str(), f[5].c_str(), f[6].c_str());
    }
  }
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"Administer a ChatGroup server (accounts, config). Passwords are read from a prompt, or from "
               "standard input when it is not a terminal."};
  std::string config_path;
  app.add_option("-c,--config", config_path, "The server's TOML config file (default: built-in defaults)");
  app.require_subcommand(1);

  std::string jid_text;
  auto* adduser = app.add_subcommand("adduser", "Create an account");
  adduser->add_option("jid", jid_text, "user@domain")->required();
  auto* passwd = app.add_subcommand("passwd", "Set an account's password");
  passwd->add_option("jid", jid_text, "user@domain")->required();
  auto* deluser = app.add_subcommand("deluser", "Delete an account and everything stored for it");
  deluser->add_option("jid", jid_text, "user@domain")->required();
  std::string host_filter;
  auto* users = app.add_subcommand("users", "List the accounts (of every served domain, or of one)");
  users->add_option("domain", host_filter, "Only this domain");
  auto* s2s = app.add_subcommand("s2s", "List the running server's server-to-server connections");
  std::string check_path;
  auto* check = app.add_subcommand("check-config", "Validate a config file without starting the server");
  check->add_option("file", check_path, "The TOML file")->required();

  CLI11_PARSE(app, argc, argv);

  if (check->parsed()) {
    auto loaded = cg::config::load_file(check_path, cg::core::full_schema());
    if (auto* errors = std::get_if<std::vector<cg::config::ConfigError>>(&loaded)) {
      return config_errors(*errors);
    }
    // The same value checks as chatgroupd's: "ok" only for a file the server accepts.
    if (auto errors = cg::core::check_values(std::get<Config>(loaded)); !errors.empty()) {
      return config_errors(errors);
    }
    std::cout << check_path << ": ok\n";
    return 0;
  }

  if (s2s->parsed()) {
    return list_s2s(config_path);
  }

  int rc = 0;
  auto ctx = open(config_path, rc);
  if (!ctx) {
    return rc;
  }
  try {
    if (users->parsed()) {
      // The domain is compared in its normalised form (nameprep), and one the server does not serve is an error,
      // as for adduser — not an empty list that looks like "no accounts".
      std::string filter;
      if (!host_filter.empty()) {
        auto prepped = cg::api::Jid::nameprep(host_filter);
        if (!prepped || std::find(ctx->hosts.begin(), ctx->hosts.end(), *prepped) == ctx->hosts.end()) {
          std::cerr << "chatgroupctl: this server does not serve '" << host_filter << "' (server.hosts)\n";
          return 2;
        }
        filter = *prepped;
      }
      for (const auto& host : ctx->hosts) {
        if (!filter.empty() && host != filter) {
          continue;
        }
        for (const auto& u : ctx->accounts->list(host)) {
          std::cout << u << "@" << host << "\n";
        }
      }
      return 0;
    }
    auto jid = account_jid(*ctx, jid_text);
    if (!jid) {
      return 2;
    }
    if (deluser->parsed()) {
      return report(ctx->accounts->remove(jid->domain(), jid->node()), "deleted", *jid);
    }
    if (adduser->parsed() && ctx->accounts->exists(jid->domain(), jid->node())) {
      return report(cg::core::Accounts::Result::Exists, "", *jid);
    }
    if (passwd->parsed() && !ctx->accounts->exists(jid->domain(), jid->node())) {
      return report(cg::core::Accounts::Result::NotFound, "", *jid);
    }
    auto password = read_password("Password for " + jid->bare_str() + ": ");
    if (!password) {
      return 1;
    }
    if (adduser->parsed()) {
      return report(ctx->accounts->create(jid->domain(), jid->node(), *password), "created", *jid);
    }
    return report(ctx->accounts->set_password(jid->domain(), jid->node(), *password), "password changed for", *jid);
  } catch (const std::exception& e) {
    std::cerr << "chatgroupctl: " << e.what() << "\n";
    return 1;
  }
}
