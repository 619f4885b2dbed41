// A connection's byte stream: a non-blocking TCP socket, optionally wrapped in OpenSSL (SSL_set_fd, no extra
// buffering layer), driven by coroutines that wait for readiness on the socket's strand.
//
// Memory: a transport holds no read buffer. read() reads into a per-thread buffer and hands back a view that is
// valid only until the caller next suspends, so an idle connection costs its socket, its SSL object (whose
// buffers are released when idle) and nothing else.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <openssl/ssl.h>

#include <boost/system/error_code.hpp>
#include <memory>
#include <string>
#include <string_view>

namespace cg::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class Transport {
public:
  explicit Transport(tcp::socket socket);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Waits for and reads the next bytes. On success `out` views them (valid until the next suspension). Returns
  // an error for EOF (asio::error::eof), reset, TLS failure or cancellation.
  asio::awaitable<boost::system::error_code> read(std::string_view& out);
  // Writes all of `data` (which must stay alive until this completes).
  asio::awaitable<boost::system::error_code> write(std::string_view data);
  // Server-side TLS handshake. On failure the reason is in tls_error().
  asio::awaitable<boost::system::error_code> tls_accept(SSL_CTX* ctx);
  // Client-side TLS handshake (outgoing s2s): SNI `server_name`, ALPN `alpn` when not empty. Certificate checks
  // are the caller's (see verify_peer() in tls.hpp).
  asio::awaitable<boost::system::error_code> tls_connect(SSL_CTX* ctx, std::string server_name,
                                                         std::string_view alpn = {});
  // Sends close_notify if TLS is up (best effort, non-blocking) and closes the socket; pending waits end.
  void close();
  // Ends pending waits (the reader sees operation_aborted) without closing.
  void cancel();

  bool is_open() const { return socket_.is_open(); }
  bool secure() const { return ssl_ != nullptr && handshake_done_; }
  SSL* ssl() const { return ssl_; }
  const std::string& tls_error() const { return tls_error_; }
  std::string tls_version() const;
  // RFC 9266 tls-exporter (TLS 1.3, or TLS 1.2 with extended master secret); "" when unavailable.
  std::string tls_exporter() const;
  // RFC 5929 tls-unique: the first Finished message of the handshake; "" when unavailable. Defined for TLS 1.2;
  // on TLS 1.3 (full handshakes only) it is computed the same way for clients that still send it (slixmpp 1.8.3,
  // as packaged in Debian 12, uses tls-unique whatever the TLS version).
  std::string tls_unique() const;
  // RFC 5929 tls-server-end-point: the hash of our certificate; "" when unavailable.
  std::string tls_server_end_point() const;

  tcp::socket& socket() { return socket_; }
  const std::string& peer() const { return peer_; }
  const std::string& peer_address() const { return peer_address_; }

private:
  asio::awaitable<boost::system::error_code> handshake();
  asio::awaitable<boost::system::error_code> wait(tcp::socket::wait_type type);
  // Waits for what OpenSSL asked for (SSL_ERROR_WANT_READ or SSL_ERROR_WANT_WRITE).
  asio::awaitable<boost::system::error_code> wait_ssl(int ssl_error);
  tcp::socket socket_;
  SSL* ssl_ = nullptr;
  bool handshake_done_ = false;
  std::string tls_error_;
  std::string peer_;
  std::string peer_address_;
};

// The per-thread read buffer (not inlined: a coroutine must fetch it again after each resumption, as it may
// resume on another thread).
char* thread_read_buffer();
constexpr std::size_t kReadBufferSize = 16384;

} // namespace cg::net
