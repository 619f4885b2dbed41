#include "server/net/transport.hpp"

#include "server/net/tls.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <sys/socket.h>

#include <cerrno>

namespace cg::net {

__attribute__((noinline)) char* thread_read_buffer() {
  thread_local char buffer[kReadBufferSize];
  return buffer;
}

Transport::Transport(tcp::socket socket) : socket_(std::move(socket)) {
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  socket_.set_option(tcp::no_delay(true), ec);
  auto ep = socket_.remote_endpoint(ec);
  if (!ec) {
    peer_address_ = ep.address().to_string();
    peer_ = (ep.address().is_v6() ? "[" + peer_address_ + "]" : peer_address_) + ":" + std::to_string(ep.port());
  }
}

Transport::~Transport() {
  if (ssl_ != nullptr) {
    SSL_free(ssl_);
  }
}

asio::awaitable<boost::system::error_code> Transport::wait(tcp::socket::wait_type type) {
  boost::system::error_code ec;
  co_await socket_.async_wait(type, asio::redirect_error(asio::use_awaitable, ec));
  co_return ec;
}

asio::awaitable<boost::system::error_code> Transport::wait_ssl(int ssl_error) {
  // (The wait type is named before the co_await: g++ 12 mishandles ?: inside a co_await expression.)
  const auto what = ssl_error == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write;
  co_return co_await wait(what);
}

asio::awaitable<boost::system::error_code> Transport::read(std::string_view& out) {
  while (true) {
    if (!socket_.is_open()) {
      co_return asio::error::operation_aborted;
    }
    // Fetched after every resumption: this coroutine may have moved to another thread.
    char* buf = thread_read_buffer();
    if (ssl_ != nullptr) {
      ERR_clear_error();
      int n = SSL_read(ssl_, buf, static_cast<int>(kReadBufferSize));
      if (n > 0) {
        out = std::string_view(buf, static_cast<std::size_t>(n));
        co_return boost::system::error_code{};
      }
      int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (auto ec = co_await wait_ssl(err)) {
          co_return ec;
        }
        continue;
      }
      if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0)) {
        co_return asio::error::eof;
      }
      tls_error_ = openssl_error();
      co_return asio::error::connection_reset;
    }
    ssize_t n = ::recv(socket_.native_handle(), buf, kReadBufferSize, 0);
    if (n > 0) {
      out = std::string_view(buf, static_cast<std::size_t>(n));
      co_return boost::system::error_code{};
    }
    if (n == 0) {
      co_return asio::error::eof;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto ec = co_await wait(tcp::socket::wait_read)) {
        co_return ec;
      }
      continue;
    }
    if (errno == EINTR) {
      continue;
    }
    co_return boost::system::error_code(errno, boost::system::system_category());
  }
}

asio::awaitable<boost::system::error_code> Transport::write(std::string_view data) {
  while (!data.empty()) {
    if (!socket_.is_open()) {
      co_return asio::error::operation_aborted;
    }
    if (ssl_ != nullptr) {
      ERR_clear_error();
      int n = SSL_write(ssl_, data.data(), static_cast<int>(std::min<std::size_t>(data.size(), 1 << 30)));
      if (n > 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (auto ec = co_await wait_ssl(err)) {
          co_return ec;
        }
        continue;
      }
      tls_error_ = openssl_error();
      co_return asio::error::connection_reset;
    }
    ssize_t n = ::send(socket_.native_handle(), data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto ec = co_await wait(tcp::socket::wait_write)) {
        co_return ec;
      }
      continue;
    }
    if (errno == EINTR) {
      continue;
    }
    co_return boost::system::error_code(errno, boost::system::system_category());
  }
  co_return boost::system::error_code{};
}

asio::awaitable<boost::system::error_code> Transport::tls_accept(SSL_CTX* ctx) {
  if (ssl_ != nullptr) {
    co_return asio::error::already_started;
  }
  ssl_ = SSL_new(ctx);
  if (ssl_ == nullptr) {
    tls_error_ = openssl_error();
    co_return asio::error::no_memory;
  }
  SSL_set_fd(ssl_, socket_.native_handle());
  SSL_set_accept_state(ssl_);
  co_return co_await handshake();
}

asio::awaitable<boost::system::error_code> Transport::tls_connect(SSL_CTX* ctx, std::string server_name,
                                                                  std::string_view alpn) {
  if (ssl_ != nullptr) {
    co_return asio::error::already_started;
  }
  ssl_ = SSL_new(ctx);
  if (ssl_ == nullptr) {
    tls_error_ = openssl_error();
    co_return asio::error::no_memory;
  }
  SSL_set_fd(ssl_, socket_.native_handle());
  SSL_set_connect_state(ssl_);
  // RFC 6120 §13.7.1.2 / RFC 6066: the SNI names the domain we want to talk to.
  SSL_set_tlsext_host_name(ssl_, server_name.c_str());
  if (!alpn.empty()) {
    std::string wire(1, static_cast<char>(alpn.size()));
    wire += alpn;
    SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned int>(wire.size()));
  }
  co_return co_await handshake();
}

asio::awaitable<boost::system::error_code> Transport::handshake() {
  while (true) {
    if (!socket_.is_open()) {
      co_return asio::error::operation_aborted;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);
    if (r == 1) {
      handshake_done_ = true;
      co_return boost::system::error_code{};
    }
    int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      if (auto ec = co_await wait_ssl(err)) {
        co_return ec;
      }
      continue;
    }
    tls_error_ = err == SSL_ERROR_SYSCALL ? "connection closed during the TLS handshake" : openssl_error();
    co_return asio::error::connection_refused;
  }
}

void Transport::close() {
  if (ssl_ != nullptr && handshake_done_ && socket_.is_open()) {
    ERR_clear_error();
    SSL_shutdown(ssl_);
    ERR_clear_error();
  }
  boost::system::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

void Transport::cancel() {
  boost::system::error_code ec;
  socket_.cancel(ec);
}

std::string Transport::tls_version() const {
  return ssl_ != nullptr ? SSL_get_version(ssl_) : "";
}

std::string Transport::tls_exporter() const {
  if (!secure()) {
    return {};
  }
  // RFC 9266 §3: tls-exporter with TLS 1.2 needs the extended master secret (RFC 7627).
  if (SSL_version(ssl_) != TLS1_3_VERSION && SSL_get_extms_support(ssl_) != 1) {
    return {};
  }
  static constexpr char kLabel[] = "EXPORTER-Channel-Binding";
  unsigned char out[32];
  if (SSL_export_keying_material(ssl_, out, sizeof out, kLabel, sizeof kLabel - 1, nullptr, 0, 0) != 1) {
    return {};
  }
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

std::string Transport::tls_unique() const {
  if (!secure()) {
    return {};
  }
  const bool resumed = SSL_session_reused(ssl_) == 1;
  if (SSL_version(ssl_) == TLS1_3_VERSION && resumed) {
    return {};
  }
  // RFC 5929 §3.1: the first Finished message: the client's on a full handshake, ours on an abbreviated one.
  char buf[EVP_MAX_MD_SIZE];
  std::size_t n = resumed ? SSL_get_finished(ssl_, buf, sizeof buf) : SSL_get_peer_finished(ssl_, buf, sizeof buf);
  return std::string(buf, std::min(n, sizeof buf));
}

std::string Transport::tls_server_end_point() const {
  if (!secure()) {
    return {};
  }
  X509* cert = SSL_get_certificate(ssl_);
  if (cert == nullptr) {
    return {};
  }
  // RFC 5929 §4.1: the certificate's signature hash, with MD5 and SHA-1 replaced by SHA-256.
  int md_nid = NID_undef;
  if (X509_get_signature_info(cert, &md_nid, nullptr, nullptr, nullptr) != 1) {
    return {};
  }
  if (md_nid == NID_md5 || md_nid == NID_sha1) {
    md_nid = NID_sha256;
  }
  const EVP_MD* md = EVP_get_digestbynid(md_nid);
  if (md == nullptr) {
    return {};
  }
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, md, buf, &len) != 1) {
    return {};
  }
  return std::string(reinterpret_cast<char*>(buf), len);
}

} // namespace cg::net
