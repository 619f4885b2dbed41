#include "server/net/c2s_session.hpp"

#include "server/core/server.hpp"
#include "server/net/transport.hpp"
#include "server/xml/writer.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

namespace cg::net {

namespace ns = xml::ns;
using xml::Element;

constexpr std::string_view kSmNs = "urn:xmpp:sm:3";

namespace {

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

Element sasl_element(std::string name, const std::string& raw_data) {
  Element el(std::move(name), std::string(ns::sasl));
  if (!raw_data.empty()) {
    el.add_text(sasl::base64_encode(raw_data));
  }
  return el;
}

// A SASL failure (RFC 6120 §6.4.5, §6.5): a <failure/> element in the SASL namespace whose child names the
// condition, e.g. <failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><aborted/></failure>. Built whole before
// sending: Element::add() returns the child, so `send(Element(failure).add(condition))` sent the bare condition
// element without its <failure/>, which no client recognises as the end of the exchange.
Element sasl_failure(std::string_view condition) {
  Element f("failure", std::string(ns::sasl));
  f.add_child(std::string(condition));
  return f;
}

} // namespace

C2SSession::C2SSession(core::Server& server, asio::ip::tcp::socket socket, bool direct_tls)
    : server_(server), watchdog_(socket.get_executor()), direct_tls_(direct_tls), created_(Clock::now()),
      last_activity_(created_), rate_time_(created_) {
  transport_ = std::make_unique<Transport>(std::move(socket));
  parser_ = std::make_unique<xml::StreamParser>(server_.c2s().parser_limits);
  peer_address_ = transport_->peer_address();
  rate_tokens_ =
      static_cast<double>(std::max(server_.c2s().rate_limit * 2, server_.c2s().parser_limits.max_stanza_bytes));
}

C2SSession::~C2SSession() = default;

void C2SSession::start() {
  over_limit_ = !server_.add_session(shared_from_this(), peer_address_);
  asio::co_spawn(
      watchdog_.get_executor(), [self = shared_from_this()] { return self->run(); }, asio::detached);
}

// ---------------------------------------------------------------------------------------------------------------
// Reading and the stream state machine

asio::awaitable<void> C2SSession::run() {
  try {
    arm_watchdog(server_.c2s().auth_timeout);
    if (direct_tls_) {
      // XEP-0368: TLS starts at once; the XMPP stream follows inside it.
      auto ctx = server_.tls().context();
      if (auto ec = co_await transport_->tls_accept(ctx.get())) {
        server_.logger().debug("c2s {}: TLS handshake failed: {}", transport_->peer(), transport_->tls_error());
        closing_ = true;
      }
    }
    const std::size_t rate = server_.c2s().rate_limit;
    while (!closing_) {
      std::string_view data;
      if (auto ec = co_await transport_->read(data)) {
        if (ec != asio::error::eof && ec != asio::error::operation_aborted) {
          server_.logger().debug("c2s {}: read: {} {}", transport_->peer(), ec.message(), transport_->tls_error());
        }
        break;
      }
      last_activity_ = Clock::now();
      idle_fired_ = false;
      if (!authenticated_) {
        preauth_total_ += data.size();
        if (preauth_total_ > server_.c2s().max_preauth_bytes) {
          stream_error("policy-violation", "too much data before authentication");
          break;
        }
        preauth_raw_.append(data);
      }
      parser_->feed(data); // `data` is not valid past the next suspension
      co_await process_events();
      if (rate > 0 && !closing_) {
        // Token bucket: refill by elapsed time, then pause reading while in debt.
        auto now = Clock::now();
        double cap = static_cast<double>(std::max(rate * 2, server_.c2s().parser_limits.max_stanza_bytes));
        rate_tokens_ = std::min(cap, rate_tokens_ + std::chrono::duration<double>(now - rate_time_).count() *
                                                        static_cast<double>(rate));
        rate_time_ = now;
        rate_tokens_ -= static_cast<double>(data.size());
        if (rate_tokens_ < 0) {
          asio::steady_timer pause(watchdog_.get_executor(),
                                   std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(-rate_tokens_ / static_cast<double>(rate))));
          boost::system::error_code ec;
          co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
      }
    }
  } catch (const std::exception& e) {
    // An unexpected exception ends only this session (DESIGN.md §3).
    server_.logger().error("c2s {} ({}): {}", transport_->peer(), jid_.str(), e.what());
    if (!closing_) {
      stream_error("internal-server-error");
    }
  }
  if (!closing_ && bound_ && sm_.resumable && !transferred_) {
    // XEP-0198 §5: the connection was lost without a closing </stream:stream> — keep the session for its client to
    // resume.
    co_await hibernate();
  }
  co_await finish();
}

asio::awaitable<void> C2SSession::process_events() {
  // The parser may be replaced by a stream restart inside handle_event(); always ask the current one.
  while (!closing_ && parser_->has_event()) {
    auto ev = parser_->next_event();
    co_await handle_event(ev);
  }
}

asio::awaitable<void> C2SSession::handle_event(xml::StreamEvent& ev) {
  switch (ev.kind) {
  case xml::StreamEvent::Kind::Open:
    on_open(ev);
    break;
  case xml::StreamEvent::Kind::Stanza:
    if (phase_ != Phase::Negotiating) {
      stream_error("not-well-formed", "stanza before the stream header");
      break;
    }
    co_await on_element(ev.element, ev.end_offset);
    break;
  case xml::StreamEvent::Kind::Close:
    // RFC 6120 §4.4: answer the closing tag with ours, then close the TCP connection.
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

void C2SSession::on_open(const xml::StreamEvent& ev) {
  const Element& h = ev.element;
  auto to = api::Jid::nameprep(h.attr("to"));
  lang_ = std::string(h.attr("xml:lang"));
  if (over_limit_) {
    stream_error("policy-violation", "too many connections from your address");
    return;
  }
  // RFC 6120 §4.8.2: the content namespace of a client stream is jabber:client.
  if (ev.content_ns != ns::client) {
    stream_error("invalid-namespace", "the stream's default namespace must be jabber:client");
    return;
  }
  if (!to || server_.host(*to) == nullptr) {
    // RFC 6120 §4.9.3.6: host-unknown — "The value of the 'to' attribute provided in the initial stream header
    // does not correspond to an FQDN that is serviced by the receiving entity."
    stream_error("host-unknown", h.has_attr("to") ? "this server does not serve that domain"
                                                  : "the stream header must name the server in 'to'");
    return;
  }
  if (!stream_host_.empty() && *to != stream_host_) {
    stream_error("not-authorized", "the 'to' attribute must stay the same across stream restarts");
    return;
  }
  stream_host_ = *to;
  // RFC 6120 §4.7.5: a header without version="1.0" (or with a major version other than 1) is refused. The major
  // and minor numbers are integers: "Leading zeros (e.g., '01.0') MUST be ignored by recipients".
  auto version = h.attr("version");
  auto major = version.substr(0, version.find('.'));
  while (major.size() > 1 && major.front() == '0') {
    major.remove_prefix(1);
  }
  if (major != "1") {
    stream_error("unsupported-version", "only XMPP 1.0 streams are supported");
    return;
  }
  send_header();
  send_features();
  phase_ = Phase::Negotiating;
}

std::vector<std::string> C2SSession::offered_mechanisms() const {
  std::vector<std::string> out;
  const bool secure = transport_->secure();
  const auto& cfg = server_.c2s();
  for (const auto& m : cfg.mechanisms) {
    if (sasl::is_plus(m) && (!secure || transport_->tls_server_end_point().empty())) {
      continue;
    }
    // DESIGN.md §6: PLAIN only inside TLS (unless explicitly allowed for loopback benchmarks).
    if (m == "PLAIN" && !secure && !cfg.allow_insecure_plain) {
      continue;
    }
    out.push_back(m);
  }
  return out;
}

void C2SSession::send_header() {
  std::string s = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  "xmlns:stream='http://etherx.jabber.org/streams' id='";
  stream_id_ = random_hex(12);
  s += stream_id_;
  s += "' from='";
  xml::escape_attr(s, stream_host_.empty() ? server_.server_info().hosts.front() : stream_host_);
  if (authenticated_) {
    s += "' to='";
    xml::escape_attr(s, jid_.bare_str());
  }
  s += "' version='1.0' xml:lang='en'>";
  header_sent_ = true;
  send_raw(s);
}

void C2SSession::send_features() {
  Element features("features", std::string(ns::streams));
  const bool secure = transport_->secure();
  const auto& cfg = server_.c2s();
  if (!authenticated_) {
    if (!secure) {
      Element& starttls = features.add_child("starttls", std::string(ns::tls));
      if (cfg.require_encryption) {
        starttls.add_child("required");
      }
    }
    // RFC 6120 §5.3.1: when TLS is mandatory-to-negotiate, offer nothing else before it.
    if (secure || !cfg.require_encryption) {
      auto mechs = offered_mechanisms();
      Element& m = features.add_child("mechanisms", std::string(ns::sasl));
      for (const auto& name : mechs) {
        m.add_text_child("mechanism", name);
        if (sasl::is_plus(name)) {
          mechanism_plus_offered_ = true;
        }
      }
      // XEP-0440: advertise the channel-binding types this connection supports.
      if (secure) {
        Element& cb = features.add_child("sasl-channel-binding", std::string(ns::sasl_cb));
        if (!transport_->tls_exporter().empty()) {
          cb.add_child("channel-binding").set_attr("type", "tls-exporter");
        }
        if (!transport_->tls_server_end_point().empty()) {
          cb.add_child("channel-binding").set_attr("type", "tls-server-end-point");
        }
        // tls-unique is advertised only where it is defined (TLS 1.2, RFC 9266 §3).
        if (transport_->tls_version() == "TLSv1.2" && !transport_->tls_unique().empty()) {
          cb.add_child("channel-binding").set_attr("type", "tls-unique");
        }
      }
      if (auto* host = server_.host(stream_host_)) {
        for (auto& f : host->stream_features(api::StreamStage::BeforeAuth)) {
          features.add(std::move(f));
        }
      }
    }
  } else if (!bound_) {
    features.add_child("bind", std::string(ns::bind));
    // RFC 3921 session establishment, kept for old clients: optional and a no-op (RFC 6121 Appendix E).
    features.add_child("session", std::string(ns::session)).add_child("optional");
    // XEP-0198 stream management (enable after binding, or resume instead of binding).
    features.add_child("sm", std::string(kSmNs));
    if (auto* host = server_.host(stream_host_)) {
      for (auto& f : host->stream_features(api::StreamStage::AfterAuth)) {
        features.add(std::move(f));
      }
    }
  }
  std::string s = "<stream:features>";
  for (const auto* child : features.children()) {
    xml::serialize(s, *child, ns::client);
  }
  s += "</stream:features>";
  send_raw(s);
}

asio::awaitable<void> C2SSession::on_element(Element& el, std::uint64_t end_offset) {
  const auto& ens = el.ns();
  if (!authenticated_) {
    if (el.is("starttls", ns::tls)) {
      co_await on_starttls();
    } else if (ens == ns::sasl) {
      if (el.name() == "auth") {
        co_await on_auth(el, end_offset);
      } else if (el.name() == "response") {
        co_await on_sasl_response(el, end_offset);
      } else if (el.name() == "abort") {
        mechanism_.reset();
        send(sasl_failure("aborted"));
      } else {
        stream_error("unsupported-stanza-type", "unknown SASL element");
      }
    } else if (el.is("iq", ns::client) && (transport_->secure() || !server_.c2s().require_encryption) &&
               unauthenticated_iq_handler(el) != nullptr) {
      co_await on_unauthenticated_iq(el);
    } else {
      // RFC 6120 §4.9.3.12 not-authorized: stanzas or other data before the stream is authenticated.
      stream_error("not-authorized", server_.c2s().require_encryption && !transport_->secure()
                                         ? "TLS is required: negotiate STARTTLS first"
                                         : "authenticate first");
    }
    co_return;
  }
  if (ens == kSmNs) {
    co_await on_sm_element(el);
    co_return;
  }
  if (ens != ns::client || (el.name() != "message" && el.name() != "presence" && el.name() != "iq")) {
    if (ens == ns::sasl || ens == ns::tls) {
      stream_error("policy-violation", "the stream is already authenticated");
    } else {
      // RFC 6120 §4.9.3.24: unsupported-stanza-type.
      stream_error("unsupported-stanza-type", "unknown top-level element <" + el.name() + "/>");
    }
    co_return;
  }
  if (!bound_) {
    if (el.name() == "iq") {
      on_iq_before_bind(el);
    } else {
      // RFC 6120 §7.1: no stanzas before a resource is bound.
      stream_error("not-authorized", "bind a resource first");
    }
    co_return;
  }
  on_stanza(std::move(el));
}

asio::awaitable<void> C2SSession::on_starttls() {
  if (transport_->secure()) {
    stream_error("policy-violation", "TLS is already established");
    co_return;
  }
  auto ctx = server_.tls().context();
  if (!ctx) {
    // RFC 6120 §5.4.2.2: failure, then close the stream and the connection.
    send_raw("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>");
    closing_ = true;
    co_return;
  }
  send_raw("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  co_await flush();
  if (closing_) {
    co_return;
  }
  if (auto ec = co_await transport_->tls_accept(ctx.get())) {
    server_.logger().debug("c2s {}: STARTTLS handshake failed: {}", transport_->peer(), transport_->tls_error());
    closing_ = true;
    co_return;
  }
  // RFC 6120 §5.4.3.3: after TLS the stream restarts; nothing sent before it carries over.
  restart_stream(std::uint64_t(-1));
}

void C2SSession::restart_stream(std::uint64_t carry_from) {
  std::string carry;
  if (carry_from < preauth_raw_.size()) {
    carry = preauth_raw_.substr(carry_from);
  }
  preauth_raw_.clear();
  parser_->reset();
  phase_ = Phase::AwaitHeader;
  // The restarted stream is a new stream: until we answer its header, a stream error must be preceded by a new
  // response header (RFC 6120 §4.9.1.2: "If the error is triggered by the initiating entity's stream header, the
  // receiving entity MUST still send the opening <stream> tag").
  header_sent_ = false;
  if (!authenticated_) {
    preauth_raw_ = carry;
  }
  if (!carry.empty()) {
    parser_->feed(carry);
  }
}

asio::awaitable<void> C2SSession::on_auth(const Element& el, std::uint64_t end_offset) {
  const auto& cfg = server_.c2s();
  if (mechanism_) {
    // A new <auth/> aborts the exchange in progress.
    mechanism_.reset();
  }
  if (cfg.require_encryption && !transport_->secure()) {
    // RFC 6120 §6.5.3 encryption-required.
    send(sasl_failure("encryption-required"));
    co_return;
  }
  if (auto banned = server_.auth_limiter().banned_for(peer_address_); banned.count() > 0) {
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(banned).count() + 1;
    Element f("failure", std::string(ns::sasl));
    f.add_child("temporary-auth-failure");
    f.add_text_child("text", "too many failed attempts from your address; try again in " + std::to_string(secs) + " s");
    send(f);
    co_return;
  }
  std::string name(el.attr("mechanism"));
  auto offered = offered_mechanisms();
  if (std::find(offered.begin(), offered.end(), name) == offered.end()) {
    if (!transport_->secure() &&
        std::find(cfg.mechanisms.begin(), cfg.mechanisms.end(), name) != cfg.mechanisms.end()) {
      // A configured mechanism withheld only because this stream has no TLS (PLAIN, the -PLUS variants). RFC 6120
      // §6.5.3 encryption-required: "The mechanism requested by the initiating entity cannot be used unless the
      // confidentiality and integrity of the underlying stream are protected (typically via TLS)."
      send(sasl_failure("encryption-required"));
      co_return;
    }
    // RFC 6120 §6.5.5 invalid-mechanism.
    send(sasl_failure("invalid-mechanism"));
    co_return;
  }
  sasl::MechanismContext mctx;
  if (transport_->secure()) {
    if (auto e = transport_->tls_exporter(); !e.empty()) {
      mctx.channel_bindings.push_back({"tls-exporter", e});
    }
    if (auto e = transport_->tls_server_end_point(); !e.empty()) {
      mctx.channel_bindings.push_back({"tls-server-end-point", e});
    }
    if (auto e = transport_->tls_unique(); !e.empty()) {
      mctx.channel_bindings.push_back({"tls-unique", e});
    }
  }
  mctx.plus_advertised = mechanism_plus_offered_;
  mctx.fake_salt_secret = server_.fake_salt_secret();
  mechanism_ = sasl::make_mechanism(name, std::move(mctx));
  if (!mechanism_) {
    send(sasl_failure("invalid-mechanism"));
    co_return;
  }
  std::string text = el.text();
  if (text == "=") {
    // RFC 6120 §6.4.2: "=" is a zero-length initial response, which neither PLAIN nor SCRAM accepts. (An <auth/>
    // with no text at all has no initial response: the mechanism answers that with an empty challenge.)
    co_await sasl_fail("malformed-request", "an empty initial response is not valid for " + name);
    co_return;
  }
  co_await sasl_feed(sasl::base64_decode(text), end_offset);
}

asio::awaitable<void> C2SSession::sasl_feed(std::optional<std::string> decoded, std::uint64_t end_offset) {
  if (!decoded) {
    // RFC 6120 §6.5.2 incorrect-encoding.
    co_await sasl_fail("incorrect-encoding", "");
    co_return;
  }
  sasl::Step step = mechanism_->step(*decoded);
  co_await sasl_continue(std::move(step), end_offset);
}

asio::awaitable<void> C2SSession::on_sasl_response(const Element& el, std::uint64_t end_offset) {
  if (!mechanism_) {
    send(sasl_failure("malformed-request"));
    co_return;
  }
  std::string text = el.text();
  // An empty <response/> (or "=") is a zero-length response.
  std::optional<std::string> decoded =
      text.empty() || text == "=" ? std::optional<std::string>("") : sasl::base64_decode(text);
  co_await sasl_feed(std::move(decoded), end_offset);
}

asio::awaitable<void> C2SSession::sasl_continue(sasl::Step step, std::uint64_t end_offset) {
  if (step.status == sasl::Step::Status::NeedCredentials) {
    // Credential lookup (and PLAIN's PBKDF2) run on the storage worker, never on this I/O thread.
    auto* mech = mechanism_.get();
    auto node = api::Jid::nodeprep(step.username);
    std::string host = stream_host_;
    sasl::Step next;
    std::string username = step.username;
    std::function<void()> lookup = [&] {
      std::optional<sasl::Credentials> creds;
      if (node) {
        creds = server_.accounts().credentials(host, *node);
      }
      next = mech->credentials(creds);
    };
    co_await server_.run_blocking(std::move(lookup));
    if (closing_) {
      co_return;
    }
    if (next.username.empty()) {
      next.username = username;
    }
    if (next.authzid.empty()) {
      next.authzid = step.authzid;
    }
    step = std::move(next);
  }
  switch (step.status) {
  case sasl::Step::Status::Challenge:
    send(sasl_element("challenge", step.data));
    co_return;
  case sasl::Step::Status::NeedCredentials:
    co_await sasl_fail("temporary-auth-failure", "unexpected mechanism state");
    co_return;
  case sasl::Step::Status::Failure: {
    // (Computed before the co_await: GCC 12 double-destroys ?: temporaries inside a co_await expression.)
    std::string condition = step.condition.empty() ? std::string("not-authorized") : step.condition;
    co_await sasl_fail(std::move(condition), step.text);
  }
    co_return;
  case sasl::Step::Status::Success:
    break;
  }
  auto node = api::Jid::nodeprep(step.username);
  auto user = node ? api::Jid::from_parts(*node, stream_host_, "") : std::nullopt;
  if (!user) {
    co_await sasl_fail("not-authorized", "");
    co_return;
  }
  if (!step.authzid.empty()) {
    // RFC 6120 §6.4.6: an authzid other than the user's own bare JID is refused with invalid-authzid.
    auto authz = api::Jid::parse(step.authzid);
    if (!authz || *authz != *user) {
      co_await sasl_fail("invalid-authzid", "you may only act as yourself");
      co_return;
    }
  }
  mechanism_.reset();
  authenticated_ = true;
  jid_ = *user;
  send(sasl_element("success", step.data));
  server_.logger().info("c2s {}: authenticated as {}", transport_->peer(), jid_.bare_str());
  arm_watchdog(server_.c2s().auth_timeout);
  // RFC 6120 §6.4.6: the stream restarts after <success/>. Bytes the client sent after its last SASL element
  // (pipelining) belong to the new stream.
  restart_stream(end_offset);
}

asio::awaitable<void> C2SSession::sasl_fail(std::string condition, std::string text) {
  mechanism_.reset();
  ++auth_failures_;
  auto delay = server_.auth_limiter().record_failure(peer_address_);
  server_.logger().info("c2s {}: authentication failed ({})", transport_->peer(), condition);
  if (delay.count() > 0) {
    asio::steady_timer t(watchdog_.get_executor(), delay);
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (closing_) {
    co_return;
  }
  Element f("failure", std::string(ns::sasl));
  f.add_child(condition);
  if (!text.empty()) {
    f.add_text_child("text", text);
  }
  send(f);
  // RFC 6120 §6.4.5: "If the initiating entity exceeds the number of retries, the receiving entity MUST close the
  // stream with a <not-authorized/> stream error".
  if (auth_failures_ >= server_.c2s().max_auth_attempts) {
    stream_error("not-authorized", "too many failed authentication attempts");
  }
}

const api::IqHandler* C2SSession::unauthenticated_iq_handler(const Element& iq) const {
  const Element* payload = iq.first_child();
  auto* host = server_.host(stream_host_);
  auto type = iq.attr("type");
  if (payload == nullptr || host == nullptr || (type != "get" && type != "set")) {
    return nullptr;
  }
  return host->find_iq_handler(api::IqScope::Unauthenticated, type == "get" ? api::IqType::Get : api::IqType::Set,
                               payload->ns(), payload->name());
}

asio::awaitable<void> C2SSession::on_unauthenticated_iq(const Element& iq) {
  // An IQ a module serves before authentication (XEP-0077 registration). It is answered on this stream directly:
  // the connection has no address to route to yet.
  const api::IqHandler* handler = unauthenticated_iq_handler(iq);
  if (!iq.has_attr("id") || iq.element_count() != 1) {
    send(api::make_error_reply(iq, "bad-request", "an IQ get or set needs an id and exactly one payload"));
    co_return;
  }
  const api::Jid none;
  const api::Jid host_jid = api::Jid::from_parts("", stream_host_, "").value_or(api::Jid());
  const api::Origin origin{api::OriginKind::Client, none};
  api::IqRequest req{
      iq,     *iq.first_child(), none, host_jid, iq.attr("type") == "get" ? api::IqType::Get : api::IqType::Set,
      origin, peer_address_};
  std::optional<api::IqReply> reply;
  try {
    reply = co_await (*handler)(req);
  } catch (const std::exception& e) {
    server_.logger().error("c2s {}: unauthenticated IQ handler failed: {}", transport_->peer(), e.what());
  }
  if (closing_) {
    co_return;
  }
  Element out = !reply              ? api::make_error_reply(iq, "internal-server-error")
                : reply->is_error() ? api::make_error_reply(iq, reply->error_value())
                                    : api::make_iq_result(iq, std::move(reply->payload()));
  out.remove_attr("from");
  out.remove_attr("to");
  send(out);
}

void C2SSession::on_iq_before_bind(const Element& iq) {
  const Element* payload = iq.first_child();
  if (iq.attr("type") == "set" && payload != nullptr && payload->is("bind", ns::bind)) {
    bind_resource(iq, *payload);
    return;
  }
  if (iq.attr("type") == "set" && payload != nullptr && payload->is("session", ns::session)) {
    send(api::make_iq_result(iq));
    return;
  }
  stream_error("not-authorized", "bind a resource first");
}

void C2SSession::bind_resource(const Element& iq, const Element& bind) {
  std::string requested = bind.child_text("resource");
  std::string resource;
  if (requested.empty()) {
    // RFC 6120 §7.6: the server generates a resource when the client provides none.
    resource = "cg-" + random_hex(6);
  } else {
    auto prepped = api::Jid::resourceprep(requested);
    if (!prepped) {
      // RFC 6120 §7.7.2.1: a resource that cannot be processed by resourceprep → bad-request.
      send(api::make_error_reply(iq, "bad-request", "the resource is not valid (resourceprep)"));
      return;
    }
    resource = *prepped;
  }
  api::Jid full = jid_.with_resource(resource);
  api::SessionInfo info;
  info.jid = full;
  info.peer = transport_->peer();
  info.secure = transport_->secure();
  info.last_activity = Clock::now();
  const auto& cfg = server_.c2s();
  auto result = server_.registry().bind(full, shared_from_this(), info, cfg.conflict, cfg.max_resources);
  switch (result.status) {
  case routing::BindResult::Status::Conflict:
    // RFC 6120 §7.7.2.2: the resource is in use and the policy is to refuse.
    send(api::make_error_reply(iq, "conflict", "this resource is already in use"));
    return;
  case routing::BindResult::Status::TooManyResources:
    // RFC 6120 §7.6.2.1: the account has reached its limit of connected resources.
    send(api::make_error_reply(iq, "resource-constraint", "too many resources are connected"));
    return;
  case routing::BindResult::Status::Ok:
    break;
  }
  if (result.replaced) {
    // RFC 6120 §7.7.2.2: override the old session, which gets a <conflict/> stream error.
    result.replaced->close("conflict", "replaced by a new connection with the same resource");
  }
  jid_ = full;
  bound_ = true;
  Element b("bind", std::string(ns::bind));
  b.add_text_child("jid", full.str());
  Element reply = api::make_iq_result(iq, std::move(b));
  reply.remove_attr("from");
  send(reply);
  server_.logger().info("c2s {}: bound {}", transport_->peer(), full.str());
  if (auto* h = server_.host(jid_.domain())) {
    h->fire_session_event({api::SessionEventKind::Bound, jid_, {}});
  }
  arm_watchdog(std::chrono::seconds(0));
}

bool C2SSession::check_stanza(Element& stanza, std::optional<api::Jid>& to) {
  const auto type = stanza.attr("type");
  if (const auto* t = stanza.find_attr("to")) {
    to = api::Jid::parse(*t);
    if (!to) {
      // RFC 6120 §8.3.3.8 jid-malformed.
      if (type != "error") {
        stanza.remove_attr("to");
        Element reply = api::make_error_reply(stanza, "jid-malformed", "the 'to' address is not a valid JID");
        reply.remove_attr("from");
        send(reply);
      }
      return false;
    }
  }
  if (stanza.name() == "iq") {
    const bool request = type == "get" || type == "set";
    // RFC 6120 §8.2.3: 'id' is REQUIRED; 'type' is one of get/set/result/error; a get or set has exactly one
    // child element, a result zero or one.
    const char* problem = nullptr;
    if (!stanza.has_attr("id")) {
      problem = "an IQ needs an 'id'";
    } else if (!request && type != "result" && type != "error") {
      problem = "an IQ's type is get, set, result or error";
    } else if (request && stanza.element_count() != 1) {
      problem = "an IQ get or set carries exactly one payload element";
    } else if (type == "result" && stanza.element_count() > 1) {
      problem = "an IQ result carries at most one payload element";
    }
    if (problem != nullptr) {
      if (type != "error" && type != "result") {
        Element reply = api::make_error_reply(stanza, "bad-request", problem);
        reply.remove_attr("from");
        send(reply);
      }
      return false;
    }
  } else if (stanza.name() == "presence") {
    static constexpr std::string_view kTypes[] = {
        "", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"};
    if (std::find(std::begin(kTypes), std::end(kTypes), type) == std::end(kTypes)) {
      Element reply = api::make_error_reply(stanza, "bad-request", "unknown presence type");
      reply.remove_attr("from");
      send(reply);
      return false;
    }
  }
  return true;
}

void C2SSession::on_stanza(Element stanza) {
  // XEP-0198: every stanza counts toward h, also one refused below (its error reply is its handling).
  api::AcceptToken ticket = sm_ticket();
  std::optional<api::Jid> to;
  if (!check_stanza(stanza, to)) {
    return;
  }
  // RFC 6120 §8.1.2.1: "When the server receives a stanza from a connected client, the server MUST add a 'from'
  // attribute to the stanza or override the 'from' attribute specified by the client, where the value of the
  // 'from' attribute MUST be the full JID ... determined by the server for the connected resource that generated
  // the stanza, or the bare JID ... in the case of subscription-related presence stanzas".
  auto type = stanza.attr("type");
  const bool subscription = stanza.name() == "presence" && (type == "subscribe" || type == "subscribed" ||
                                                            type == "unsubscribe" || type == "unsubscribed");
  stanza.set_attr("from", subscription ? jid_.bare_str() : jid_.str());
  // RFC 6120 §8.1.5: a stanza without xml:lang takes the stream's default language.
  if (!lang_.empty() && !stanza.has_attr("xml:lang")) {
    stanza.set_attr("xml:lang", lang_);
  }
  server_.router().from_client(std::move(stanza), jid_, std::move(to), std::move(ticket));
}

// ---------------------------------------------------------------------------------------------------------------
// Output

void C2SSession::deliver(Element stanza) {
  asio::post(watchdog_.get_executor(), [self = shared_from_this(), stanza = std::move(stanza)]() mutable {
    if (self->transferred_) {
      // Resumed elsewhere (XEP-0198): what was routed here before the registry changed goes to the successor.
      if (auto next = self->successor_.lock()) {
        next->deliver(std::move(stanza));
      }
      return;
    }
    if (self->closing_ || !self->bound_) {
      return;
    }
    self->send(stanza);
  });
}

void C2SSession::close(std::string condition, std::string text) {
  asio::post(watchdog_.get_executor(),
             [self = shared_from_this(), condition = std::move(condition), text = std::move(text)] {
               if (self->closing_) {
                 return;
               }
               if (self->hibernating_) {
                 // No connection to tell: end the hibernation, and with it the session.
                 self->closing_ = true;
                 self->close_condition_ = condition;
                 self->hibernate_timer_->cancel();
                 return;
               }
               if (self->transport_->ssl() != nullptr && !self->transport_->secure()) {
                 // In the middle of a TLS handshake (direct TLS before the ClientHello, or STARTTLS after
                 // <proceed/>) there is no stream to carry a stream error, and the handshake's SSL object cannot
                 // take our bytes: writing would wait for the peer, which is what we are giving up on (auth
                 // timeout, shutdown). Drop the TCP connection; the handshake's wait ends and run() winds down.
                 self->closing_ = true;
                 self->close_condition_ = condition;
                 self->transport_->close();
                 return;
               }
               self->stream_error(condition, text);
               // Wake the reader so it winds the session down once the error is written.
               asio::co_spawn(
                   self->watchdog_.get_executor(),
                   [self]() -> asio::awaitable<void> {
                     co_await self->flush();
                     self->transport_->cancel();
                   },
                   asio::detached);
             });
}

void C2SSession::send(const Element& el) {
  if (sm_.enabled && el.ns() == ns::client &&
      (el.name() == "message" || el.name() == "presence" || el.name() == "iq")) {
    // XEP-0198 §4: every stanza sent counts, and stays queued until the client acknowledges it.
    ++sm_.out_sent;
    sm_.unacked.push_back(el);
    if (sm_.unacked.size() > server_.c2s().max_unacked && !closing_) {
      sm_.unacked.clear();
      stream_error("policy-violation", "too many unacknowledged stanzas");
      return;
    }
    if (!sm_.ack_requested && !r_scheduled_ && transport_->is_open()) {
      // Ask for an acknowledgement once per burst of stanzas.
      r_scheduled_ = true;
      asio::post(watchdog_.get_executor(), [self = shared_from_this()] {
        self->r_scheduled_ = false;
        if (self->sm_.enabled && !self->sm_.ack_requested && !self->sm_.unacked.empty() && !self->closing_) {
          self->sm_.ack_requested = true;
          self->send_raw("<r xmlns='urn:xmpp:sm:3'/>");
        }
      });
    }
  }
  if (!transport_->is_open()) {
    return; // hibernating (XEP-0198): the stanza waits in the unacknowledged queue
  }
  const std::size_t before = out_.size();
  xml::serialize(out_, el, ns::client);
  if (out_.size() > before) {
    send_raw({});
  }
}

void C2SSession::send_raw(std::string_view data) {
  if (!transport_->is_open()) {
    return;
  }
  out_.append(data);
  if (out_.size() > server_.c2s().max_send_queue && !closing_) {
    // DESIGN.md §3: past the hard limit a slow reader is disconnected, never buffered without bound.
    out_.clear();
    stream_error("policy-violation", "too much data queued for this connection");
    return;
  }
  if (!writing_ && !out_.empty()) {
    start_writer();
  }
}

void C2SSession::start_writer() {
  writing_ = true;
  asio::co_spawn(
      watchdog_.get_executor(), [self = shared_from_this()] { return self->write_loop(); }, asio::detached);
}

asio::awaitable<void> C2SSession::write_loop() {
  while (!out_.empty()) {
    writing_buf_.swap(out_);
    out_.clear();
    auto ec = co_await transport_->write(writing_buf_);
    writing_buf_.clear();
    if (ec) {
      // The connection is lost (a reader wakes up from the closed socket); whether the session ends or waits for
      // a XEP-0198 resumption is decided in run().
      out_.clear();
      transport_->close();
      break;
    }
  }
  // Idle sessions keep no large buffers.
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

asio::awaitable<void> C2SSession::flush() {
  while ((writing_ || !out_.empty()) && transport_->is_open()) {
    if (!writing_) {
      start_writer();
    }
    if (!flush_timer_) {
      flush_timer_.emplace(watchdog_.get_executor());
    }
    flush_timer_->expires_at(Clock::time_point::max());
    boost::system::error_code ec;
    co_await flush_timer_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

void C2SSession::stream_error(std::string_view condition, std::string_view text, std::string_view app_xml) {
  if (closing_) {
    return;
  }
  if (hibernating_) {
    // Nobody to tell: the session just ends.
    closing_ = true;
    close_condition_ = std::string(condition);
    hibernate_timer_->cancel();
    return;
  }
  // RFC 6120 §4.9.1.2: an error at the stream header still gets our header first.
  if (!header_sent_) {
    send_header();
  }
  std::string s = "<stream:error><";
  s += condition;
  s += " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>";
  if (!text.empty()) {
    s += "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>";
    xml::escape_text(s, text);
    s += "</text>";
  }
  s += app_xml;
  s += "</stream:error></stream:stream>";
  send_raw(s);
  closing_ = true;
  close_condition_ = std::string(condition);
  server_.logger().debug("c2s {} ({}): stream error {}{}{}", transport_->peer(), jid_.str(), condition,
                         text.empty() ? "" : ": ", text);
}

// ---------------------------------------------------------------------------------------------------------------
// XEP-0198 stream management

namespace {

Element sm_failed(std::string_view condition) {
  Element f("failed", std::string(kSmNs));
  f.add_child(std::string(condition), std::string(ns::stanza_errors));
  return f;
}

std::optional<std::uint32_t> parse_h(std::string_view text) {
  std::uint32_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

// h values wrap at 2^32 (XEP-0198 §4): `value` has reached `target` when it is at most 2^31 ahead of it.
bool reached(std::uint32_t value, std::uint32_t target) {
  return static_cast<std::uint32_t>(value - target) < 0x80000000u;
}

// The accept token of a stanza received under stream management: when the last copy goes, the stanza counts as
// handled (on the session's strand).
class SmTicket {
public:
  SmTicket(std::weak_ptr<C2SSession> session, asio::any_io_executor strand, std::uint32_t seq)
      : session_(std::move(session)), strand_(std::move(strand)), seq_(seq) {}
  SmTicket(const SmTicket&) = delete;
  SmTicket& operator=(const SmTicket&) = delete;
  ~SmTicket() {
    if (auto s = session_.lock()) {
      asio::post(strand_, [s = std::move(s), seq = seq_] { s->sm_handled(seq); });
    }
  }

private:
  std::weak_ptr<C2SSession> session_;
  asio::any_io_executor strand_;
  std::uint32_t seq_;
};

} // namespace

api::AcceptToken C2SSession::sm_ticket() {
  if (!sm_.enabled) {
    return nullptr;
  }
  const std::uint32_t seq = sm_.in_received++;
  sm_.in_flight.push_back(false);
  return std::make_shared<SmTicket>(weak_from_this(), watchdog_.get_executor(), seq);
}

void C2SSession::sm_handled(std::uint32_t seq) {
  const std::uint32_t index = seq - sm_.in_handled;
  if (!sm_.enabled || index >= sm_.in_flight.size()) {
    return;
  }
  sm_.in_flight[index] = true;
  while (!sm_.in_flight.empty() && sm_.in_flight.front()) {
    sm_.in_flight.pop_front();
    ++sm_.in_handled;
  }
  sm_answer_requests();
  if (sm_.in_flight.empty() && pending_transfer_) {
    auto resume = std::move(pending_transfer_);
    pending_transfer_ = nullptr;
    resume();
  }
}

void C2SSession::sm_answer_requests() {
  // XEP-0198 §4: <a h=''/> tells how many stanzas were handled. An answer owed for an <r/> waits until every
  // stanza received before that <r/> is handled — for a message to an offline user that means stored on disk —
  // so an acknowledged stanza is never lost.
  while (!sm_.pending_r.empty() && reached(sm_.in_handled, sm_.pending_r.front())) {
    sm_.pending_r.pop_front();
    send_raw("<a xmlns='urn:xmpp:sm:3' h='" + std::to_string(sm_.in_handled) + "'/>");
  }
}

asio::awaitable<void> C2SSession::on_sm_element(const Element& el) {
  const auto& name = el.name();
  if (name == "enable") {
    sm_enable(el);
  } else if (name == "r") {
    if (sm_.enabled) {
      sm_.pending_r.push_back(sm_.in_received);
      sm_answer_requests();
    }
  } else if (name == "a") {
    sm_ack(el);
  } else if (name == "resume") {
    co_await on_resume(el);
  } else {
    stream_error("unsupported-stanza-type", "unknown stream management element <" + name + "/>");
  }
}

void C2SSession::sm_enable(const Element& el) {
  // XEP-0198 §3: stream management is enabled after resource binding, once.
  if (!bound_ || sm_.enabled) {
    send(sm_failed("unexpected-request"));
    return;
  }
  sm_.enabled = true;
  Element enabled("enabled", std::string(kSmNs));
  const auto timeout = server_.c2s().resume_timeout;
  const auto want = el.attr("resume");
  if ((want == "true" || want == "1") && timeout.count() > 0) {
    sm_.resumable = true;
    sm_.max = timeout;
    if (auto max = parse_h(el.attr("max")); max && *max > 0 && std::chrono::seconds(*max) < timeout) {
      sm_.max = std::chrono::seconds(*max);
    }
    sm_.id = random_hex(16);
    server_.register_sm(sm_.id, shared_from_this());
    enabled.set_attr("id", sm_.id);
    enabled.set_attr("resume", "true");
    enabled.set_attr("max", std::to_string(sm_.max.count()));
  }
  send(enabled);
}

void C2SSession::sm_ack(const Element& el) {
  auto h = parse_h(el.attr("h"));
  if (!sm_.enabled || !h) {
    return;
  }
  const std::uint32_t count = *h - sm_.out_acked;
  if (count > sm_.unacked.size()) {
    // XEP-0198 §4: acknowledging more than was sent is an error (<handled-count-too-high/>).
    std::string app = "<handled-count-too-high xmlns='urn:xmpp:sm:3' h='" + std::to_string(*h) + "' send-count='" +
                      std::to_string(sm_.out_sent) + "'/>";
    stream_error("undefined-condition", "you acknowledged more stanzas than were sent", app);
    return;
  }
  sm_.unacked.erase(sm_.unacked.begin(), sm_.unacked.begin() + count);
  sm_.out_acked = *h;
  sm_.ack_requested = false;
}

asio::awaitable<void> C2SSession::on_resume(const Element& el) {
  if (bound_ || sm_.enabled) {
    send(sm_failed("unexpected-request"));
    co_return;
  }
  const auto h = parse_h(el.attr("h"));
  const std::string previd(el.attr("previd"));
  auto previous = server_.find_sm(previd);
  if (!h || !previous || previous.get() == this) {
    // XEP-0198 §5: an unknown or expired session: <failed><item-not-found/></failed>; the client binds anew.
    send(sm_failed("item-not-found"));
    co_return;
  }
  auto self = shared_from_this();
  api::Jid bare = jid_.bare();
  std::optional<SmTransfer> state = co_await previous->transfer_to(self, std::move(bare));
  if (!state) {
    send(sm_failed("item-not-found"));
    co_return;
  }
  jid_ = state->jid;
  sm_ = std::move(state->sm);
  bound_ = true;
  if (!server_.registry().replace(jid_, previous.get(), self)) {
    server_.logger().error("c2s {}: resumed {} but its resource was no longer bound", transport_->peer(), jid_.str());
  }
  server_.register_sm(sm_.id, self);
  send_raw("<resumed xmlns='urn:xmpp:sm:3' previd='" + sm_.id + "' h='" + std::to_string(sm_.in_handled) + "'/>");
  server_.logger().info("c2s {}: resumed {} ({} stanzas to resend)", transport_->peer(), jid_.str(),
                        sm_.unacked.size() - std::min<std::size_t>(sm_.unacked.size(), *h - sm_.out_acked));
  // The client's h says what it got; everything after it is sent again, in order (XEP-0198 §5).
  Element ack("a", std::string(kSmNs));
  ack.set_attr("h", std::to_string(*h));
  sm_ack(ack);
  if (closing_) {
    co_return;
  }
  for (const auto& stanza : sm_.unacked) {
    xml::serialize(out_, stanza, ns::client);
  }
  if (!sm_.unacked.empty()) {
    sm_.ack_requested = true;
    out_ += "<r xmlns='urn:xmpp:sm:3'/>";
  }
  send_raw({});
  arm_watchdog(std::chrono::seconds(0));
}

asio::awaitable<std::optional<SmTransfer>> C2SSession::transfer_to(std::shared_ptr<C2SSession> successor,
                                                                   api::Jid bare) {
  auto self = shared_from_this();
  // (The initiation and the operation are named first: g++ 12 destroys lambdas inside a co_await expression twice.)
  auto initiation = [self, successor = std::move(successor), bare = std::move(bare)](auto handler) mutable {
    auto shared = std::make_shared<std::decay_t<decltype(handler)>>(std::move(handler));
    asio::post(self->watchdog_.get_executor(), [self, successor, bare, shared]() mutable {
      self->detach(successor, bare, [shared](std::optional<SmTransfer> result) {
        auto ex = asio::get_associated_executor(*shared);
        asio::post(ex, [shared, result = std::move(result)]() mutable { (*shared)(std::move(result)); });
      });
    });
  };
  auto operation = asio::async_initiate<const asio::use_awaitable_t<>, void(std::optional<SmTransfer>)>(
      std::move(initiation), asio::use_awaitable);
  co_return co_await std::move(operation);
}

void C2SSession::detach(std::shared_ptr<C2SSession> successor, const api::Jid& bare,
                        std::function<void(std::optional<SmTransfer>)> done) {
  if (finished_ || transferred_ || closing_ || !bound_ || !sm_.resumable || jid_.bare() != bare) {
    done(std::nullopt);
    return;
  }
  if (!sm_.in_flight.empty()) {
    // The h the client will be told must count every stanza it sent here: wait until they are handled.
    pending_transfer_ = [self = shared_from_this(), successor, bare, done]() mutable {
      self->detach(successor, bare, done);
    };
    return;
  }
  transferred_ = true;
  closing_ = true;
  successor_ = successor;
  SmTransfer out{jid_, std::move(sm_)};
  sm_ = SmState{};
  if (hibernating_) {
    hibernate_timer_->cancel();
  } else {
    // The client has already given this connection up; so do we.
    transport_->close();
  }
  done(std::move(out));
}

asio::awaitable<void> C2SSession::hibernate() {
  transport_->close();
  hibernating_ = true;
  server_.logger().info("c2s {}: connection of {} lost; waiting {} s for it to resume", transport_->peer(), jid_.str(),
                        sm_.max.count());
  hibernate_timer_.emplace(watchdog_.get_executor(), sm_.max);
  boost::system::error_code ec;
  co_await hibernate_timer_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  hibernating_ = false;
}

void C2SSession::reroute_unacked() {
  // XEP-0198 §5: stanzas the client never acknowledged were perhaps never received. Messages meant for the user
  // go back through the router: to another resource, or to offline storage.
  auto pending = std::move(sm_.unacked);
  sm_.unacked.clear();
  for (auto& stanza : pending) {
    if (stanza.name() != "message" || stanza.child("body") == nullptr) {
      continue;
    }
    auto type = stanza.attr("type");
    if (!(type.empty() || type == "chat" || type == "normal") || stanza.child_ns("urn:xmpp:carbons:2") != nullptr ||
        stanza.child_ns("urn:xmpp:mam:2") != nullptr) {
      continue;
    }
    server_.route_local(std::move(stanza));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Timers and the end

void C2SSession::arm_watchdog(Clock::duration after) {
  if (after <= Clock::duration::zero()) {
    on_watchdog();
    return;
  }
  watchdog_.expires_after(after);
  watchdog_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    if (ec) {
      return;
    }
    if (auto self = weak.lock()) {
      self->on_watchdog();
    }
  });
}

void C2SSession::on_watchdog() {
  if (closing_ || hibernating_) {
    return; // a hibernating session has its own timer (c2s.resume_timeout)
  }
  const auto now = Clock::now();
  const auto& cfg = server_.c2s();
  if (!bound_) {
    auto deadline = created_ + cfg.auth_timeout;
    if (now >= deadline) {
      // RFC 6120 §4.9.3.4 connection-timeout.
      close("connection-timeout", "authentication took too long");
      return;
    }
    arm_watchdog(deadline - now);
    return;
  }
  auto* host = server_.host(jid_.domain());
  const auto silence = now - last_activity_;
  if (silence >= cfg.idle_timeout) {
    close("connection-timeout", "no data received for too long");
    return;
  }
  Clock::duration next = cfg.idle_timeout - silence;
  if (host != nullptr) {
    auto idle_after = host->idle_after();
    if (idle_after.count() > 0) {
      if (silence >= idle_after && !idle_fired_) {
        idle_fired_ = true;
        host->fire_session_event({api::SessionEventKind::Idle, jid_, {}});
        // Look again one idle period later: if the client answered, its silence restarts from then.
        next = std::min<Clock::duration>(next, idle_after);
      } else if (silence < idle_after) {
        next = std::min<Clock::duration>(next, idle_after - silence);
      } else {
        next = std::min<Clock::duration>(next, idle_after);
      }
    }
  }
  arm_watchdog(std::max<Clock::duration>(next, std::chrono::milliseconds(100)));
}

asio::awaitable<void> C2SSession::finish() {
  closing_ = true;
  finished_ = true;
  if (transferred_) {
    // Resumed by another session, which now owns the resource, the stream management id and the queue.
    transport_->close();
    watchdog_.cancel();
    server_.remove_session(this, peer_address_);
    co_return;
  }
  if (!sm_.id.empty()) {
    server_.unregister_sm(sm_.id, this);
  }
  if (bound_) {
    server_.registry().unbind(jid_, this);
    reroute_unacked();
  }
  // Give queued output (a stream error, the closing tag) a bounded chance to leave.
  if (transport_->is_open() && (writing_ || !out_.empty())) {
    asio::steady_timer deadline(watchdog_.get_executor(), std::chrono::seconds(2));
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
  watchdog_.cancel();
  if (bound_) {
    bound_ = false;
    if (auto* h = server_.host(jid_.domain())) {
      h->fire_session_event({api::SessionEventKind::Closed, jid_, close_condition_});
    }
    server_.logger().info("c2s {}: {} disconnected{}{}", transport_->peer(), jid_.str(),
                          close_condition_.empty() ? "" : ": ", close_condition_);
  }
  server_.remove_session(this, peer_address_);
}

} // namespace cg::net
