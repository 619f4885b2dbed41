// The control socket: a Unix socket in data_dir (mode 0600) on which chatgroupctl asks the running server about
// its live state. One line in ("s2s"), lines out, then the server closes the connection.
#include "server/core/server.hpp"
#include "server/net/s2s.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <filesystem>
#include <istream>

namespace cg::core {

namespace fs = std::filesystem;
using local = asio::local::stream_protocol;

std::string control_socket_path(const config::Config& config) {
  return (fs::path(config.get_string("server", "data_dir")) / "chatgroupd.sock").string();
}

std::string Server::control_answer(const std::string& command) {
  if (command == "s2s") {
    // One connection per line: direction, local domain, remote domain(s), authentication, TLS, state, peer.
    std::string out;
    if (s2s_) {
      for (const auto& i : s2s_->list()) {
        out += std::string(i.incoming ? "in" : "out") + "\t" + i.local + "\t" + i.remote + "\t" +
               (i.auth.empty() ? "-" : i.auth) + "\t" + (i.tls.empty() ? "-" : i.tls) + "\t" + i.state + "\t" + i.peer +
               "\n";
      }
    }
    return out;
  }
  return "error\tunknown command\n";
}

void Server::start_control() {
  const std::string path = control_socket_path(config_);
  std::error_code fs_ec;
  fs::remove(path, fs_ec); // a stale socket of an earlier run (start() refuses to run twice on one port anyway)
  boost::system::error_code ec;
  auto acceptor = std::make_shared<local::acceptor>(io_);
  acceptor->open(local(), ec);
  if (!ec) {
    acceptor->bind(local::endpoint(path), ec);
  }
  if (!ec) {
    ::chmod(path.c_str(), 0600);
    acceptor->listen(16, ec);
  }
  if (ec) {
    log_->warn("no control socket at {}: {} (chatgroupctl s2s will not work)", path, ec.message());
    return;
  }
  control_ = acceptor;
  asio::co_spawn(
      io_,
      [this, acceptor]() -> asio::awaitable<void> {
        while (!shutting_down_) {
          boost::system::error_code aec;
          local::socket socket = co_await acceptor->async_accept(asio::redirect_error(asio::use_awaitable, aec));
          if (aec) {
            co_return;
          }
          asio::co_spawn(
              io_,
              [this, s = std::move(socket)]() mutable -> asio::awaitable<void> {
                boost::system::error_code rec;
                asio::streambuf buf(1024);
                co_await asio::async_read_until(s, buf, '\n', asio::redirect_error(asio::use_awaitable, rec));
                if (rec) {
                  co_return;
                }
                std::istream in(&buf);
                std::string command;
                std::getline(in, command);
                const std::string answer = control_answer(command);
                co_await asio::async_write(s, asio::buffer(answer), asio::redirect_error(asio::use_awaitable, rec));
              },
              asio::detached);
        }
      },
      asio::detached);
}

} // namespace cg::core
