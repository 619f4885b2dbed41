// Incoming server-to-server streams: the receiving entity of RFC 6120 §4–6 and XEP-0220.
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
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

namespace cg::net {

namespace ns = xml::ns;
using xml::Element;

namespace {

std::string random_id() {
  unsigned char raw[12];
  RAND_bytes(raw, sizeof raw);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

// <db:result/> or <db:verify/> answers, with the db: prefix the stream header declares.
std::string db_answer(std::string_view name, std::string_view from, std::string_view to, std::string_view type,
                      std::string_view id = {}, std::string_view error_condition = {}) {
  std::string s = "<db:";
  s += name;
  s += " from='";
  xml::escape_attr(s, from);
  s += "' to='";
  xml::escape_attr(s, to);
  if (!id.empty()) {
    s += "' id='";
    xml::escape_attr(s, id);
  }
  s += "' type='";
  s += type;
  if (error_condition.empty()) {
    s += "'/>";
  } else {
    // XEP-0220 §2.4: dialback errors carry a stanza error.
    s += "'><error type='cancel'><";
    s += error_condition;
    s += " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:";
    s += name;
    s += ">";
  }
  return s;
}

} // namespace

S2SIn::S2SIn(core::Server& server, S2SManager& manager, asio::ip::tcp::socket socket, bool direct_tls)
    : S2SStream(server, manager, socket.get_executor()), direct_tls_(direct_tls) {
  transport_ = std::make_unique<Transport>(std::move(socket));
  peer_ = transport_->peer();
  address_ = transport_->peer_address();
}

S2SIn::~S2SIn() = default;

void S2SIn::start() {
  manager_.add(shared_from_this());
  asio::co_spawn(
      strand_, [self = std::static_pointer_cast<S2SIn>(shared_from_this())] { return self->run(); }, asio::detached);
}

S2SInfo S2SIn::info() const {
  std::lock_guard lock(info_mutex_);
  S2SInfo i;
  i.incoming = true;
  i.peer = peer_;
  i.local = header_to_;
  for (const auto& [remote, local] : authorized_) {
    i.remote += (i.remote.empty() ? "" : " ") + remote;
  }
  if (i.remote.empty()) {
    i.remote = header_from_;
  }
  i.auth = auth_method_;
  i.tls = transport_->secure() ? transport_->tls_version() : "";
  i.state = authorized_.empty() ? "authenticating" : "ready";
  return i;
}

asio::awaitable<void> S2SIn::run() {
  const auto& cfg = manager_.settings();
  try {
    counted_ = manager_.add_incoming_address(address_);
    arm_timer(cfg.auth_timeout, "connection-timeout");
    if (direct_tls_) {
      auto ctx = server_.tls().s2s_server_context();
      if (auto ec = co_await transport_->tls_accept(ctx.get())) {
        server_.logger().debug("s2s-in {}: TLS handshake failed: {}", peer_, transport_->tls_error());
        closing_ = true;
      }
    }
    if (!counted_ && !closing_) {
      stream_error("policy-violation", "too many connections from your address");
    }
    while (!closing_) {
      if (!co_await read_some()) {
        break;
      }
      while (!closing_ && parser_->has_event()) {
        auto ev = parser_->next_event();
        switch (ev.kind) {
        case xml::StreamEvent::Kind::Open:
          on_open(ev);
          break;
        case xml::StreamEvent::Kind::Stanza:
          if (stream_id_.empty()) {
            stream_error("not-well-formed", "element before the stream header");
            break;
          }
          co_await on_element(ev.element);
          break;
        case xml::StreamEvent::Kind::Close:
          closing_ = true;
          send_raw("</stream:stream>");
          break;
        case xml::StreamEvent::Kind::Error:
          stream_error(ev.condition, ev.text);
          break;
        }
      }
    }
  } catch (const std::exception& e) {
    server_.logger().error("s2s-in {}: {}", peer_, e.what());
    if (!closing_) {
      stream_error("internal-server-error");
    }
  }
  closing_ = true;
  timer_.cancel();
  co_await close_transport();
  if (counted_) {
    manager_.remove_incoming_address(address_);
  }
  for (const auto& domain : claimed_) {
    manager_.release_incoming_domain(domain);
  }
  manager_.remove(this);
  if (const auto i = info(); i.state == "ready") {
    server_.logger().info("s2s-in {}: stream from {} closed{}{}", peer_, i.remote, close_condition_.empty() ? "" : ": ",
                          close_condition_);
  }
}

void S2SIn::on_open(const xml::StreamEvent& ev) {
  const Element& h = ev.element;
  // RFC 6120 §4.8.2: the content namespace of a server stream is jabber:server.
  if (ev.content_ns != ns::server) {
    stream_error("invalid-namespace", "the stream's default namespace must be jabber:server");
    return;
  }
  auto to = api::Jid::nameprep(h.attr("to"));
  if (!to || server_.host(*to) == nullptr) {
    // RFC 6120 §4.9.3.6 host-unknown.
    stream_error("host-unknown", "this server does not serve that domain");
    return;
  }
  if (!header_to_.empty() && *to != header_to_) {
    stream_error("not-authorized", "the 'to' attribute must stay the same across stream restarts");
    return;
  }
  header_to_ = *to;
  if (h.has_attr("from")) {
    auto from = api::Jid::nameprep(h.attr("from"));
    if (!from) {
      stream_error("invalid-from", "the 'from' attribute is not a domain name");
      return;
    }
    header_from_ = *from;
  }
  if (!header_from_.empty() && !manager_.allowed(header_from_)) {
    stream_error("policy-violation", "this server does not federate with " + header_from_);
    return;
  }
  // A header without version="1.0" comes from a pre-RFC 3920 server: dialback only, no stream features.
  auto version = h.attr("version");
  version1_ = !version.empty() && version.substr(0, version.find('.')) == "1";
  send_header();
  if (version1_) {
    send_features();
  }
}

void S2SIn::send_header() {
  stream_id_ = random_id();
  std::string s = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                  "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' id='";
  s += stream_id_;
  s += "' from='";
  xml::escape_attr(s, header_to_);
  if (!header_from_.empty()) {
    s += "' to='";
    xml::escape_attr(s, header_from_);
  }
  s += version1_ ? "' version='1.0'>" : "'>";
  header_sent_ = true;
  send_raw(s);
}

bool S2SIn::claim(const std::string& domain) {
  if (claimed_.contains(domain)) {
    return true;
  }
  if (!manager_.claim_incoming_domain(domain)) {
    // s2s.max_streams_per_domain: a peer does not get to open streams without bound.
    stream_error("policy-violation", "too many streams from " + domain);
    return false;
  }
  claimed_.insert(domain);
  return true;
}

bool S2SIn::peer_verified_for(const std::string& domain) const {
  return transport_->secure() && verify_peer(transport_->ssl(), domain).verified();
}

void S2SIn::send_features() {
  const auto& cfg = manager_.settings();
  std::string s = "<stream:features>";
  if (!transport_->secure()) {
    s += "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>";
    s += cfg.require_encryption ? "<required/></starttls>" : "</starttls>";
  }
  if (transport_->secure() && !sasl_done_ && !header_from_.empty() && peer_verified_for(header_from_)) {
    // XEP-0178 §3: EXTERNAL is offered when the initiating server's certificate is valid for its domain.
    s += "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>";
  }
  const bool dialback_ok = cfg.allow_dialback && (transport_->secure() || cfg.dialback_without_tls);
  if (!sasl_done_ && dialback_ok && (transport_->secure() || !cfg.require_encryption)) {
    // XEP-0220 §2.4 / §8: the dialback stream feature, with support for dialback errors.
    s += "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>";
  }
  s += "</stream:features>";
  send_raw(s);
}

asio::awaitable<void> S2SIn::on_element(Element& el) {
  const auto& cfg = manager_.settings();
  if (el.is("starttls", ns::tls)) {
    co_await on_starttls();
    co_return;
  }
  if (el.is("error", ns::streams)) {
    // RFC 6120 §4.9: the peer ends the stream; we close ours without an error of our own.
    const std::string condition = peer_stream_error(el);
    server_.logger().info("s2s-in {}: stream error from the peer: {} {}", peer_, condition,
                          el.child_text("text", ns::stream_errors));
    close_condition_ = condition;
    closing_ = true;
    send_raw("</stream:stream>");
    co_return;
  }
  if (cfg.require_encryption && !transport_->secure()) {
    // RFC 6120 §5.3.1: with TLS mandatory, nothing else is accepted before it.
    stream_error("policy-violation", "TLS is required: negotiate STARTTLS first");
    co_return;
  }
  if (el.ns() == ns::sasl) {
    if (el.name() == "auth") {
      on_sasl_auth(el);
    } else {
      stream_error("unsupported-stanza-type", "unexpected SASL element");
    }
    co_return;
  }
  if (el.ns() == dialback::kNs) {
    if (el.name() == "result") {
      on_db_result(el);
    } else if (el.name() == "verify") {
      on_db_verify(el);
    } else {
      stream_error("unsupported-stanza-type", "unknown dialback element");
    }
    co_return;
  }
  if (el.ns() == ns::server && (el.name() == "message" || el.name() == "presence" || el.name() == "iq")) {
    on_stanza(std::move(el));
    co_return;
  }
  // RFC 6120 §4.9.3.24.
  stream_error("unsupported-stanza-type", "unknown top-level element <" + el.name() + "/>");
}

asio::awaitable<void> S2SIn::on_starttls() {
  if (transport_->secure()) {
    stream_error("policy-violation", "TLS is already established");
    co_return;
  }
  auto ctx = server_.tls().s2s_server_context();
  send_raw("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  co_await flush();
  if (closing_) {
    co_return;
  }
  if (auto ec = co_await transport_->tls_accept(ctx.get())) {
    server_.logger().debug("s2s-in {}: STARTTLS handshake failed: {}", peer_, transport_->tls_error());
    closing_ = true;
    co_return;
  }
  // RFC 6120 §5.4.3.3: the stream restarts over TLS.
  reset_parser();
  stream_id_.clear();
}

void S2SIn::on_sasl_auth(const Element& el) {
  if (el.attr("mechanism") != "EXTERNAL" || sasl_done_) {
    send_raw("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-mechanism/></failure>");
    return;
  }
  // XEP-0178 §3: the authorization identity is the initiating domain, or empty / "=" for the header's 'from'.
  std::string authzid;
  const std::string text = el.text();
  if (!text.empty() && text != "=") {
    auto decoded = sasl::base64_decode(text);
    if (!decoded) {
      send_raw("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><incorrect-encoding/></failure>");
      return;
    }
    authzid = *decoded;
  }
  const std::string domain = authzid.empty() ? header_from_ : authzid;
  auto prepared = api::Jid::nameprep(domain);
  if (!prepared || (!header_from_.empty() && *prepared != header_from_)) {
    send_raw("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-authzid/></failure>");
    return;
  }
  if (!peer_verified_for(*prepared)) {
    send_raw("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>");
    return;
  }
  if (!claim(*prepared)) {
    return;
  }
  sasl_done_ = true;
  {
    std::lock_guard lock(info_mutex_);
    authorized_.emplace(*prepared, header_to_);
    auth_method_ = "sasl-external";
  }
  timer_.cancel();
  arm_timer(manager_.settings().idle_timeout, "connection-timeout");
  send_raw("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
  server_.logger().info("s2s-in {}: {} authenticated with SASL EXTERNAL (certificate)", peer_, *prepared);
  // RFC 6120 §6.4.6: the initiating entity restarts the stream.
  reset_parser();
  stream_id_.clear();
}

void S2SIn::on_db_result(const Element& el) {
  const auto& cfg = manager_.settings();
  auto from = api::Jid::nameprep(el.attr("from"));
  auto to = api::Jid::nameprep(el.attr("to"));
  if (el.has_attr("type")) {
    // A verdict (<db:result type='valid'/>) is what a receiving server sends; on a stream that we receive it was
    // never requested. The 2012 dialback advisory: never take such a result as authentication.
    stream_error("not-authorized", "unrequested dialback result");
    return;
  }
  if (!from || !to) {
    stream_error("improper-addressing", "dialback request without valid 'from' and 'to'");
    return;
  }
  if (server_.host(*to) == nullptr) {
    // XEP-0220 §2.4: an unknown 'to' is host-unknown (as a dialback error, which we announced).
    send_raw(db_answer("result", *to, *from, "error", {}, "item-not-found"));
    return;
  }
  if (!manager_.allowed(*from)) {
    send_raw(db_answer("result", *to, *from, "error", {}, "forbidden"));
    return;
  }
  if (!cfg.allow_dialback || (!transport_->secure() && !cfg.dialback_without_tls)) {
    send_raw(db_answer("result", *to, *from, "error", {}, "not-allowed"));
    return;
  }
  const auto pair = std::make_pair(*from, *to);
  {
    std::lock_guard lock(info_mutex_);
    if (authorized_.contains(pair)) {
      send_raw(db_answer("result", *to, *from, "valid"));
      return;
    }
  }
  if (!pending_.insert(pair).second) {
    return; // already being verified
  }
  const std::string key = el.text();
  auto finish = [weak = weak_from_this(), pair, from = *from, to = *to](std::optional<bool> valid) {
    auto base = weak.lock();
    if (!base) {
      return;
    }
    auto self = std::static_pointer_cast<S2SIn>(base);
    asio::post(self->strand_, [self, pair, from, to, valid] {
      self->pending_.erase(pair);
      if (self->closing_) {
        return;
      }
      if (!valid) {
        self->send_raw(db_answer("result", to, from, "error", {}, "remote-server-not-found"));
        return;
      }
      if (!*valid) {
        self->server_.logger().info("s2s-in {}: dialback for {} failed: invalid key", self->peer_, from);
        self->send_raw(db_answer("result", to, from, "invalid"));
        return;
      }
      if (!self->claim(from)) {
        return;
      }
      {
        std::lock_guard lock(self->info_mutex_);
        self->authorized_.insert(pair);
        if (self->auth_method_.empty()) {
          self->auth_method_ = "dialback";
        }
      }
      self->timer_.cancel();
      self->arm_timer(self->manager_.settings().idle_timeout, "connection-timeout");
      self->server_.logger().info("s2s-in {}: {} authenticated with dialback", self->peer_, from);
      self->send_raw(db_answer("result", to, from, "valid"));
    });
  };
  // XEP-0220 §2.1.2: ask the authoritative server of 'from' whether it issued this key for this stream.
  manager_.verify(*to, *from, stream_id_, key, std::move(finish));
}

void S2SIn::on_db_verify(const Element& el) {
  auto from = api::Jid::nameprep(el.attr("from"));
  auto to = api::Jid::nameprep(el.attr("to"));
  const auto id = el.attr("id");
  if (el.has_attr("type")) {
    stream_error("not-authorized", "unrequested dialback verification answer");
    return;
  }
  if (!from || !to || id.empty()) {
    stream_error("improper-addressing", "dialback verification without 'from', 'to' and 'id'");
    return;
  }
  if (server_.host(*to) == nullptr) {
    send_raw(db_answer("verify", *to, *from, "error", id, "item-not-found"));
    return;
  }
  // XEP-0220 §2.2.2: we are the authoritative server of 'to'; the key we would have sent to 'from' on stream `id`.
  const std::string expected = dialback::key(manager_.secret(), *from, *to, id);
  const bool valid = dialback::keys_equal(expected, el.text());
  send_raw(db_answer("verify", *to, *from, valid ? "valid" : "invalid", id));
}

void S2SIn::on_stanza(Element el) {
  touch();
  arm_timer(manager_.settings().idle_timeout, "connection-timeout");
  auto from = api::Jid::parse(el.attr("from"));
  auto to = api::Jid::parse(el.attr("to"));
  if (!from || !to) {
    // RFC 6120 §4.9.3.10: stanzas between servers must be addressed both ways.
    stream_error("improper-addressing", "a stanza between servers needs valid 'from' and 'to'");
    return;
  }
  bool ok = false;
  {
    std::lock_guard lock(info_mutex_);
    ok = authorized_.contains(std::make_pair(from->domain(), to->domain()));
  }
  if (!ok) {
    if (server_.host(to->domain()) == nullptr) {
      stream_error("host-unknown", "this server does not serve " + to->domain());
    } else {
      // RFC 6120 §4.9.3.9 invalid-from: "the data provided in a 'from' attribute does not match an authorized JID
      // or validated domain as negotiated (1) between two servers using SASL or Server Dialback".
      stream_error("invalid-from", from->domain() + " is not authenticated on this stream");
    }
    return;
  }
  to_client_namespace(el);
  server_.router().from_server(std::move(el), *from, *to);
}

} // namespace cg::net
