#include "server/core/server.hpp"
#include "server/net/s2s.hpp"
#include "server/net/transport.hpp"
#include "server/xml/writer.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace cg::net {

void to_client_namespace(xml::Element& el) {
  if (el.ns() == xml::ns::server) {
    el.set_ns(std::string(xml::ns::client));
  }
  for (auto& node : el.nodes()) {
    if (auto* child = std::get_if<xml::Element>(&node)) {
      to_client_namespace(*child);
    }
  }
}

std::string peer_stream_error(const xml::Element& error) {
  for (const auto* c : error.children()) {
    if (c->ns() == xml::ns::stream_errors && c->name() != "text") {
      return c->name();
    }
  }
  return "undefined-condition";
}

S2SStream::S2SStream(core::Server& server, S2SManager& manager, asio::any_io_executor strand)
    : server_(server), manager_(manager), strand_(strand), timer_(strand),
      last_activity_(std::chrono::steady_clock::now()) {
  parser_ = std::make_unique<xml::StreamParser>(manager_.settings().parser_limits);
}

S2SStream::~S2SStream() = default;

void S2SStream::reset_parser() {
  parser_ = std::make_unique<xml::StreamParser>(manager_.settings().parser_limits);
}

asio::awaitable<bool> S2SStream::read_some() {
  std::string_view data;
  if (auto ec = co_await transport_->read(data)) {
    if (ec != asio::error::eof && ec != asio::error::operation_aborted) {
      server_.logger().debug("{} {}: read: {} {}", direction(), peer_, ec.message(), transport_->tls_error());
    }
    co_return false;
  }
  touch();
  parser_->feed(data); // `data` is not valid past the next suspension
  co_return true;
}

void S2SStream::send(const xml::Element& el) {
  if (!transport_ || !transport_->is_open()) {
    return;
  }
  std::string s;
  xml::serialize(s, el, xml::ns::server);
  send_raw(s);
}

void S2SStream::send_raw(std::string_view data) {
  if (!transport_ || !transport_->is_open()) {
    return;
  }
  out_.append(data);
  touch();
  if (out_.size() > manager_.settings().max_send_queue && !closing_) {
    // DESIGN.md §3: a peer that does not read is dropped, never buffered without bound.
    out_.clear();
    stream_error("policy-violation", "too much data queued for this connection");
    return;
  }
  if (!writing_ && !out_.empty()) {
    start_writer();
  }
}

void S2SStream::start_writer() {
  writing_ = true;
  asio::co_spawn(
      strand_, [self = shared_from_this()] { return self->write_loop(); }, asio::detached);
}

asio::awaitable<void> S2SStream::write_loop() {
  while (!out_.empty()) {
    writing_buf_.swap(out_);
    out_.clear();
    auto ec = co_await transport_->write(writing_buf_);
    writing_buf_.clear();
    if (ec) {
      out_.clear();
      transport_->close();
      break;
    }
  }
  if (writing_buf_.capacity() > 4096) {
    std::string().swap(writing_buf_);
  }
  if (out_.capacity() > 4096) {
    std::string().swap(out_);
  }
  writing_ = false;
  if (flush_timer_) {
    flush_timer_->cancel();
  }
}

asio::awaitable<void> S2SStream::flush() {
  while (transport_ && (writing_ || !out_.empty()) && transport_->is_open()) {
    if (!writing_) {
      start_writer();
    }
    if (!flush_timer_) {
      flush_timer_.emplace(strand_);
    }
    flush_timer_->expires_at(std::chrono::steady_clock::time_point::max());
    boost::system::error_code ec;
    co_await flush_timer_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<void> S2SStream::close_transport() {
  if (!transport_) {
    co_return;
  }
  if (transport_->is_open() && (writing_ || !out_.empty())) {
    asio::steady_timer deadline(strand_, std::chrono::seconds(2));
    deadline.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (!ec && self) {
        self->transport_->close();
      }
    });
    co_await flush();
    deadline.cancel();
  }
  transport_->close();
}

void S2SStream::stream_error(std::string_view condition, std::string_view text) {
  if (closing_) {
    return;
  }
  std::string s;
  if (!header_sent_) {
    // RFC 6120 §4.9.1.2: an error at the stream header still gets our header first.
    s = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
        "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
    header_sent_ = true;
  }
  s += "<stream:error><";
  s += condition;
  s += " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>";
  if (!text.empty()) {
    s += "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>";
    xml::escape_text(s, text);
    s += "</text>";
  }
  s += "</stream:error></stream:stream>";
  send_raw(s);
  closing_ = true;
  close_condition_ = std::string(condition);
  server_.logger().info("{} {}: stream error {}{}{}", direction(), peer_, condition, text.empty() ? "" : ": ", text);
  on_closing();
  if (transport_) {
    // Wake the reader once the error is written.
    asio::co_spawn(
        strand_,
        [self = shared_from_this()]() -> asio::awaitable<void> {
          co_await self->flush();
          self->transport_->cancel();
        },
        asio::detached);
  }
}

void S2SStream::close(std::string condition, std::string text) {
  asio::post(strand_, [self = shared_from_this(), condition = std::move(condition), text = std::move(text)] {
    if (self->closing_) {
      return;
    }
    if (!self->transport_ || (self->transport_->ssl() != nullptr && !self->transport_->secure())) {
      // Not connected yet, or inside a TLS handshake: no stream to carry an error.
      self->closing_ = true;
      self->close_condition_ = condition;
      self->on_closing();
      if (self->transport_) {
        self->transport_->close();
      }
      self->timer_.cancel();
      return;
    }
    self->stream_error(condition, text);
  });
}

void S2SStream::arm_timer(std::chrono::steady_clock::duration after, std::string condition) {
  timer_.expires_after(after);
  timer_.async_wait([weak = weak_from_this(), condition = std::move(condition)](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (!ec && self && !self->closing_) {
      self->on_timer(condition);
    }
  });
}

void S2SStream::on_timer(const std::string& condition) {
  stream_error(condition);
}

} // namespace cg::net
