// Outgoing server-to-server streams: the initiating entity of RFC 6120 §3–6, XEP-0178 and XEP-0220.
#include "server/core/server.hpp"
#include "server/net/dialback.hpp"
#include "server/net/s2s.hpp"
#include "server/net/tls.hpp"
#include "server/net/transport.hpp"
#include "server/sasl/sasl.hpp"
#include "server/xml/writer.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace cg::net {

namespace ns = xml::ns;
using xml::Element;
using tcp = asio::ip::tcp;

S2SOut::S2SOut(core::Server& server, S2SManager& manager, std::string local, std::string remote)
    : S2SStream(server, manager, asio::make_strand(server.executor())), local_(std::move(local)),
      remote_(std::move(remote)) {
  peer_ = remote_;
}

S2SOut::~S2SOut() = default;

void S2SOut::start() {
  manager_.add(shared_from_this());
  asio::co_spawn(
      strand_, [self = std::static_pointer_cast<S2SOut>(shared_from_this())] { return self->run(); }, asio::detached);
}

S2SInfo S2SOut::info() const {
  std::lock_guard lock(info_mutex_);
  S2SInfo i;
  i.incoming = false;
  i.local = local_ + piggybacked_;
  i.remote = remote_;
  i.peer = peer_;
  i.auth = auth_method_;
  i.tls = transport_ && transport_->secure() ? transport_->tls_version() : "";
  i.state = state_text_;
  return i;
}

bool S2SOut::enqueue(Element stanza) {
  // Called from any thread: the decision is taken on the strand; a closed stream hands the stanza back to the
  // manager, which opens a new one.
  asio::post(
      strand_, [self = std::static_pointer_cast<S2SOut>(shared_from_this()), stanza = std::move(stanza)]() mutable {
        if ((self->state_ == State::Closed || self->closing_) && !self->failure_condition_.empty()) {
          self->manager_.bounce(stanza, self->failure_condition_, self->failure_text_);
          return;
        }
        if (self->state_ == State::Closed || self->closing_) {
          std::deque<Element> leftover;
          leftover.push_back(std::move(stanza));
          self->manager_.out_ended(self.get(), false, {}, {}, std::move(leftover));
          return;
        }
        if (auto from = api::Jid::parse(stanza.attr("from")); from && from->domain() != self->local_) {
          // A piggybacking domain (XEP-0220 §2.5): its own authentication, its own queue.
          self->request_piggyback(from->domain());
          auto& extra = self->extra_[from->domain()];
          if (extra.ready) {
            self->send(stanza);
          } else if (extra.queue.size() >= self->manager_.settings().max_queue) {
            self->manager_.bounce(stanza, "resource-constraint", "too many stanzas waiting for " + self->remote_);
          } else {
            extra.queue.push_back(std::move(stanza));
          }
          return;
        }
        if (self->state_ == State::Ready) {
          self->send(stanza);
          return;
        }
        if (self->queue_.size() >= self->manager_.settings().max_queue) {
          // s2s.max_queue: the connection is not up yet and its queue is full.
          self->manager_.bounce(stanza, "resource-constraint", "too many stanzas waiting for " + self->remote_);
          return;
        }
        self->queue_.push_back(std::move(stanza));
      });
  return true;
}

void S2SOut::add_local(std::string local) {
  asio::post(strand_, [self = std::static_pointer_cast<S2SOut>(shared_from_this()), local = std::move(local)] {
    self->request_piggyback(local);
  });
}

void S2SOut::request_piggyback(const std::string& local) {
  if (local == local_ || extra_.contains(local) || closing_ || state_ != State::Ready) {
    return;
  }
  extra_[local];
  // XEP-0220 §2.5: a further <db:result/> on the authenticated stream, keyed to the same stream id.
  std::string s = "<db:result from='";
  xml::escape_attr(s, local);
  s += "' to='";
  xml::escape_attr(s, remote_);
  s += "'>";
  s += dialback::key(manager_.secret(), remote_, local, stream_id_);
  s += "</db:result>";
  send_raw(s);
  server_.logger().info("s2s-out {} -> {}: {} piggybacks on this stream (dialback)", local_, remote_, local);
}

void S2SOut::verify(std::string local, std::string id, std::string key, std::function<void(std::optional<bool>)> done) {
  asio::post(strand_, [self = std::static_pointer_cast<S2SOut>(shared_from_this()), local = std::move(local),
                       id = std::move(id), key = std::move(key), done = std::move(done)]() mutable {
    if (self->state_ == State::Closed || self->closing_) {
      done(std::nullopt);
      return;
    }
    self->verifies_.push_back({std::move(local), std::move(id), std::move(key), std::move(done), false});
    self->send_verifies();
  });
}

void S2SOut::send_verifies() {
  // <db:verify/> may go out once the stream is past TLS negotiation (XEP-0220 §2.2.1), authenticated or not.
  if (state_ != State::Authenticating && state_ != State::Ready) {
    return;
  }
  for (auto& v : verifies_) {
    if (v.sent) {
      continue;
    }
    v.sent = true;
    std::string s = "<db:verify from='";
    xml::escape_attr(s, v.local);
    s += "' to='";
    xml::escape_attr(s, remote_);
    s += "' id='";
    xml::escape_attr(s, v.id);
    s += "'>";
    xml::escape_text(s, v.key);
    s += "</db:verify>";
    send_raw(s);
  }
}

asio::awaitable<bool> S2SOut::connect() {
  auto found = co_await manager_.resolver().s2s_targets(remote_);
  if (found.targets.empty()) {
    // RFC 6120 §8.3.3.16 / §8.3.3.17: not found, or no answer in time.
    failure_condition_ = found.status == S2SStatus::timeout ? "remote-server-timeout" : "remote-server-not-found";
    failure_text_ = "no server found for " + remote_ + (found.reason.empty() ? "" : ": " + found.reason);
    co_return false;
  }
  const auto& targets = found.targets;
  const auto timeout = manager_.settings().connect_timeout;
  std::string last_error = "no address";
  for (const auto& target : targets) {
    auto addresses = co_await manager_.resolver().addresses(target.host);
    for (const auto& address : addresses) {
      tcp::socket socket(strand_);
      asio::steady_timer deadline(strand_, timeout);
      deadline.async_wait([&socket](const boost::system::error_code& ec) {
        if (!ec) {
          boost::system::error_code ignored;
          socket.cancel(ignored);
        }
      });
      boost::system::error_code ec;
      const tcp::endpoint ep(address, target.port);
      co_await socket.async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
      deadline.cancel();
      if (ec) {
        last_error = ep.address().to_string() + ":" + std::to_string(ep.port()) + ": " +
                     (ec == asio::error::operation_aborted ? std::string("timed out") : ec.message());
        server_.logger().debug("s2s-out {}: {}", remote_, last_error);
        if (closing_) {
          co_return false;
        }
        continue;
      }
      transport_ = std::make_unique<Transport>(std::move(socket));
      {
        std::lock_guard lock(info_mutex_);
        peer_ = transport_->peer();
        state_text_ = "negotiating";
      }
      direct_tls_ = target.direct_tls;
      if (direct_tls_) {
        // XEP-0368: TLS first, with ALPN xmpp-server.
        auto ctx = server_.tls().s2s_client_context();
        if (auto tls_ec = co_await transport_->tls_connect(ctx.get(), remote_, "xmpp-server")) {
          last_error = peer_ + ": TLS: " + transport_->tls_error();
          server_.logger().debug("s2s-out {}: {}", remote_, last_error);
          transport_->close();
          transport_.reset();
          continue;
        }
        const auto cert = verify_peer(transport_->ssl(), remote_);
        cert_verified_ = cert.verified();
        cert_error_ = cert.error;
      }
      co_return true;
    }
  }
  failure_condition_ = "remote-server-not-found";
  failure_text_ = "cannot connect to " + remote_ + " (" + last_error + ")";
  co_return false;
}

void S2SOut::send_header() {
  std::string s = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                  "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='";
  xml::escape_attr(s, local_);
  s += "' to='";
  xml::escape_attr(s, remote_);
  s += "' version='1.0'>";
  header_sent_ = true;
  send_raw(s);
}

asio::awaitable<void> S2SOut::run() {
  const auto& cfg = manager_.settings();
  try {
    arm_timer(cfg.auth_timeout, "remote-server-timeout");
    if (!co_await connect()) {
      fail(failure_condition_, failure_text_);
    } else {
      state_ = State::Negotiating;
      send_header();
      while (!closing_) {
        if (!co_await read_some()) {
          break;
        }
        while (!closing_ && parser_->has_event()) {
          auto ev = parser_->next_event();
          switch (ev.kind) {
          case xml::StreamEvent::Kind::Open:
            if (ev.content_ns != ns::server) {
              stream_error("invalid-namespace", "the stream's default namespace must be jabber:server");
              break;
            }
            stream_id_ = std::string(ev.element.attr("id"));
            version1_ = !ev.element.attr("version").empty();
            if (!version1_ && state_ == State::Negotiating) {
              // A pre-RFC 3920 server sends no features: dialback straight away.
              if (cfg.require_encryption) {
                fail("remote-server-not-found", remote_ + " does not support TLS");
              } else {
                dialback_offered_ = true;
                state_ = State::Authenticating;
                authenticate();
              }
            }
            break;
          case xml::StreamEvent::Kind::Stanza:
            co_await on_element(ev.element);
            break;
          case xml::StreamEvent::Kind::Close:
            if (!closing_) {
              closing_ = true;
              send_raw("</stream:stream>");
            }
            break;
          case xml::StreamEvent::Kind::Error:
            stream_error(ev.condition, ev.text);
            break;
          }
        }
      }
    }
  } catch (const std::exception& e) {
    server_.logger().error("s2s-out {}: {}", remote_, e.what());
    if (!closing_) {
      stream_error("internal-server-error");
    }
  }
  closing_ = true;
  timer_.cancel();
  if (state_ != State::Ready && failure_condition_.empty()) {
    failure_condition_ = "remote-server-not-found";
    failure_text_ = "the connection to " + remote_ + " closed before it was authenticated" +
                    (close_condition_.empty() ? "" : " (" + close_condition_ + ")");
  }
  const bool was_ready = state_ == State::Ready;
  state_ = State::Closed;
  piggyback_ok_ = false;
  for (auto& [domain, extra] : extra_) {
    // Piggybacking domains: what they had waiting goes back to routing (or is bounced if this stream failed).
    std::move(extra.queue.begin(), extra.queue.end(), std::back_inserter(queue_));
  }
  extra_.clear();
  {
    std::lock_guard lock(info_mutex_);
    state_text_ = "closed";
  }
  co_await close_transport();
  for (auto& v : verifies_) {
    v.done(std::nullopt);
  }
  verifies_.clear();
  if (!was_ready) {
    server_.logger().info("s2s-out {} -> {}: failed: {}", local_, remote_, failure_text_);
  } else {
    server_.logger().info("s2s-out {} -> {}: closed{}{}", local_, remote_, close_condition_.empty() ? "" : ": ",
                          close_condition_);
  }
  manager_.out_ended(this, !was_ready, failure_condition_, failure_text_, std::move(queue_));
  manager_.remove(this);
}

void S2SOut::on_timer(const std::string& condition) {
  if (state_ == State::Ready) {
    // s2s.idle_timeout: a quiet connection is closed politely; the next stanza opens a new one.
    const auto idle = std::chrono::steady_clock::now() - last_activity_;
    if (idle < manager_.settings().idle_timeout) {
      arm_timer(manager_.settings().idle_timeout - idle, condition);
      return;
    }
    closing_ = true;
    on_closing();
    send_raw("</stream:stream>");
    if (transport_) {
      asio::co_spawn(
          strand_,
          [self = std::static_pointer_cast<S2SOut>(shared_from_this())]() -> asio::awaitable<void> {
            co_await self->flush();
            self->transport_->cancel();
          },
          asio::detached);
    }
    return;
  }
  fail("remote-server-timeout", "no authenticated stream to " + remote_ + " within s2s.auth_timeout");
}

void S2SOut::on_closing() {
  piggyback_ok_ = false;
  std::lock_guard lock(info_mutex_);
  state_text_ = "closing";
}

void S2SOut::fail(std::string condition, std::string text) {
  if (failure_condition_.empty() || failure_condition_ != condition) {
    failure_condition_ = std::move(condition);
    failure_text_ = std::move(text);
  }
  if (!closing_) {
    if (transport_ && transport_->is_open() && header_sent_) {
      stream_error("undefined-condition", failure_text_);
    } else {
      closing_ = true;
      if (transport_) {
        transport_->cancel();
      }
    }
  }
}

asio::awaitable<void> S2SOut::on_element(Element& el) {
  const auto& cfg = manager_.settings();
  if (el.is("features", ns::streams)) {
    co_await on_features(el);
    co_return;
  }
  if (el.is("error", ns::streams)) {
    // RFC 6120 §4.9: the peer ends the stream; we close ours without an error of our own.
    const std::string condition = peer_stream_error(el);
    const std::string text = el.child_text("text", ns::stream_errors);
    server_.logger().info("s2s-out {} -> {}: stream error from the peer: {}{}{}", local_, remote_, condition,
                          text.empty() ? "" : ": ", text);
    if (state_ != State::Ready) {
      failure_condition_ = "remote-server-not-found";
      failure_text_ = remote_ + " ended the stream: " + condition + (text.empty() ? "" : " (" + text + ")");
    }
    closing_ = true;
    on_closing();
    send_raw("</stream:stream>");
    co_return;
  }
  if (el.is("proceed", ns::tls)) {
    auto ctx = server_.tls().s2s_client_context();
    if (auto ec = co_await transport_->tls_connect(ctx.get(), remote_)) {
      fail("remote-server-not-found", "TLS with " + remote_ + " failed: " + transport_->tls_error());
      closing_ = true;
      co_return;
    }
    const auto cert = verify_peer(transport_->ssl(), remote_);
    cert_verified_ = cert.verified();
    cert_error_ = cert.error;
    // RFC 6120 §5.4.3.3: restart the stream over TLS.
    reset_parser();
    send_header();
    co_return;
  }
  if (el.is("failure", ns::tls)) {
    fail("remote-server-not-found", remote_ + " refused STARTTLS");
    co_return;
  }
  if (el.ns() == ns::sasl) {
    if (el.name() == "success") {
      sasl_done_ = true;
      {
        std::lock_guard lock(info_mutex_);
        auth_method_ = "sasl-external";
      }
      // RFC 6120 §6.4.6: restart the stream; the features that follow complete the negotiation.
      reset_parser();
      send_header();
    } else if (el.name() == "failure") {
      external_failed_ = true;
      server_.logger().info("s2s-out {} -> {}: SASL EXTERNAL refused; trying dialback", local_, remote_);
      authenticate();
    }
    co_return;
  }
  if (el.ns() == dialback::kNs) {
    auto from = api::Jid::nameprep(el.attr("from"));
    auto to = api::Jid::nameprep(el.attr("to"));
    const auto type = el.attr("type");
    if (el.name() == "result" && to && *to != local_ && from && *from == remote_ && !type.empty() &&
        extra_.contains(*to) && !extra_[*to].ready) {
      // The verdict on a piggybacking domain (XEP-0220 §2.5), which we asked about on this stream.
      auto& extra = extra_[*to];
      if (type == "valid") {
        extra.ready = true;
        {
          std::lock_guard lock(info_mutex_);
          piggybacked_ += " " + *to;
        }
        server_.logger().info("s2s-out {} -> {}: {} authenticated with dialback (piggybacked)", local_, remote_, *to);
        while (!extra.queue.empty()) {
          send(extra.queue.front());
          extra.queue.pop_front();
        }
      } else {
        for (const auto& stanza : extra.queue) {
          manager_.bounce(stanza, "remote-server-not-found", remote_ + " did not accept the dialback key of " + *to);
        }
        extra_.erase(*to);
        manager_.forget(*to, remote_, this);
      }
      co_return;
    }
    if (el.name() == "result") {
      // The 2012 dialback advisory: a verdict counts only for the pair we asked about, on a stream where we asked.
      if (state_ != State::Authenticating || !auth_method_.empty() || !from || !to || *from != remote_ ||
          *to != local_ || type.empty()) {
        stream_error("not-authorized", "unrequested dialback result");
        co_return;
      }
      if (type == "valid") {
        {
          std::lock_guard lock(info_mutex_);
          auth_method_ = "dialback";
        }
        ready();
      } else {
        fail("remote-server-not-found",
             remote_ + " did not accept our dialback key" + (type == "error" ? " (dialback error)" : ""));
      }
      co_return;
    }
    if (el.name() == "verify") {
      const auto id = el.attr("id");
      for (auto it = verifies_.begin(); it != verifies_.end(); ++it) {
        // Answers are matched on the exact (from, to, id) we sent: domains are never mixed up.
        if (it->sent && it->id == id && from && *from == remote_ && to && *to == it->local) {
          auto done = std::move(it->done);
          verifies_.erase(it);
          const std::optional<bool> verdict =
              type == "valid" ? std::optional<bool>(true)
                              : (type == "invalid" ? std::optional<bool>(false) : std::optional<bool>());
          done(verdict);
          co_return;
        }
      }
      stream_error("not-authorized", "unrequested dialback verification answer");
      co_return;
    }
  }
  if (cfg.require_encryption && !transport_->secure()) {
    stream_error("policy-violation", "TLS is required");
    co_return;
  }
  // Stanzas come on the streams the peer opens to us (no XEP-0288 bidirectional streams here).
  stream_error("unsupported-stanza-type", "unexpected <" + el.name() + "/> on an outgoing stream");
}

asio::awaitable<void> S2SOut::on_features(const Element& features) {
  const auto& cfg = manager_.settings();
  if (!transport_->secure()) {
    if (features.child("starttls", ns::tls) != nullptr) {
      send_raw("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
      co_return;
    }
    if (cfg.require_encryption) {
      fail("remote-server-not-found", remote_ + " does not offer TLS (s2s.require_encryption)");
      co_return;
    }
  }
  if (sasl_done_) {
    ready();
    co_return;
  }
  sasl_external_offered_ = false;
  if (const auto* mechs = features.child("mechanisms", ns::sasl)) {
    for (const auto* m : mechs->children("mechanism", ns::sasl)) {
      if (m->text() == "EXTERNAL") {
        sasl_external_offered_ = true;
      }
    }
  }
  dialback_offered_ = features.child("dialback", dialback::kFeatureNs) != nullptr;
  state_ = State::Authenticating;
  {
    std::lock_guard lock(info_mutex_);
    state_text_ = "authenticating";
  }
  send_verifies();
  authenticate();
}

void S2SOut::authenticate() {
  const auto& cfg = manager_.settings();
  if (cert_verified_ && sasl_external_offered_ && !external_failed_) {
    // XEP-0178 §3: authenticate as our domain with our certificate.
    std::string s = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>";
    s += sasl::base64_encode(local_);
    s += "</auth>";
    send_raw(s);
    return;
  }
  const bool dialback_ok = cfg.allow_dialback && (transport_->secure() || cfg.dialback_without_tls);
  if (dialback_ok && (dialback_offered_ || !version1_ || cert_verified_)) {
    // XEP-0220 §2.1.1: <db:result/> with the key for this stream.
    std::string s = "<db:result from='";
    xml::escape_attr(s, local_);
    s += "' to='";
    xml::escape_attr(s, remote_);
    s += "'>";
    s += dialback::key(manager_.secret(), remote_, local_, stream_id_);
    s += "</db:result>";
    send_raw(s);
    return;
  }
  std::string why = "cannot authenticate to " + remote_;
  if (!cert_verified_) {
    why += ": its certificate is not valid (" + cert_error_ + ")";
  }
  if (!dialback_ok) {
    why += "; dialback is not allowed";
  } else if (!dialback_offered_) {
    why += "; it does not offer dialback";
  }
  fail("remote-server-not-found", why);
}

void S2SOut::ready() {
  state_ = State::Ready;
  {
    std::lock_guard lock(info_mutex_);
    state_text_ = "ready";
  }
  timer_.cancel();
  arm_timer(manager_.settings().idle_timeout, "idle");
  server_.logger().info("s2s-out {} -> {} ({}): authenticated with {}{}", local_, remote_, peer_, auth_method_,
                        transport_->secure() ? ", " + transport_->tls_version() : ", without TLS");
  manager_.out_ready(this);
  piggyback_ok_ = auth_method_ == "dialback";
  while (!queue_.empty()) {
    send(queue_.front());
    queue_.pop_front();
  }
  send_verifies();
}

} // namespace cg::net
