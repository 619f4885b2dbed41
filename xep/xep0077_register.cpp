// XEP-0077: In-Band Registration, version 2.5 (2023-11-25). Before authentication (on a TLS stream, unless
// c2s.require_encryption = false; the core only hands pre-authentication IQs over then): the registration fields and
// account creation, rate-limited per source address. After authentication: the account's registration, password
// change and account removal. Enabling the module is what allows registration: it is off by default
// (default_enabled = false), so a server lets nobody create accounts unless modules.enabled lists "register".
// Data forms (the optional extensibility of §5) are not offered.
#include "xep/xep0077_register.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <deque>
#include <mutex>
#include <unordered_map>

namespace cg::xep::reg {

using api::Element;
using api::IqReply;
using api::IqRequest;
using AccountResult = api::ModuleContext::AccountResult;

namespace {

using Clock = std::chrono::steady_clock;

// Registration attempts per source address within the last hour.
class RateLimiter {
public:
  explicit RateLimiter(std::size_t per_hour) : per_hour_(per_hour) {}

  // Counts an attempt from `address`; false (and not counted) when the address has used up its hour.
  bool admit(const std::string& address, Clock::time_point now) {
    if (per_hour_ == 0) {
      return true;
    }
    std::lock_guard lock(mutex_);
    const auto since = now - std::chrono::hours(1);
    if (attempts_.size() > 4096) {
      // Bounded memory: addresses whose hour is over are forgotten.
      std::erase_if(attempts_, [&](const auto& entry) { return entry.second.back() <= since; });
    }
    auto& times = attempts_[address];
    while (!times.empty() && times.front() <= since) {
      times.pop_front();
    }
    if (times.size() >= per_hour_) {
      return false;
    }
    times.push_back(now);
    return true;
  }

private:
  std::size_t per_hour_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::deque<Clock::time_point>> attempts_;
};

class RegisterModule final : public api::Module {
public:
  api::ModuleInfo info() const override {
    return {"register",
            "In-band registration: anyone who can connect may create an account (off unless listed in "
            "modules.enabled); users change their password and remove their account",
            {{"XEP-0077", "2.5", "partial", "no data forms (§5), no redirection to a web page (§6)"}},
            {},
            {api::opt_int("max_per_hour", 5, 0, 100000,
                          "Registration attempts allowed per source address per hour (listing \"register\" in "
                          "modules.enabled is what allows registration); 0 = no limit"),
             api::opt_string("instructions", "Choose a username and password to register with this server.",
                             "The <instructions/> text of the registration form")},
            false};
  }

  void load(api::ModuleContext& ctx) override {
    ctx_ = &ctx;
    limiter_ = std::make_unique<RateLimiter>(static_cast<std::size_t>(ctx.option<std::int64_t>("max_per_hour")));
    instructions_ = ctx.option<std::string>("instructions");
    // XEP-0077 §9: "If an entity supports the protocol defined herein, it SHOULD report that by including a
    // Service Discovery feature of "jabber:iq:register"".
    ctx.add_feature(std::string(ns));
    // §8: a server "MAY announce support for in-band registration by including the relevant stream feature"
    // (with the SASL mechanisms, before authentication; never to servers, whose streams carry no such features).
    ctx.add_stream_feature(api::StreamStage::BeforeAuth, Element("register", std::string(ns_feature)));

    ctx.on_iq(api::IqScope::Unauthenticated, api::IqType::Get, std::string(ns), "query",
              [this](const IqRequest& req) { return form(req); });
    ctx.on_iq(api::IqScope::Unauthenticated, api::IqType::Set, std::string(ns), "query",
              [this](const IqRequest& req) { return create(req); });
    // After authentication the IQ may have no 'to' (or the own bare JID: IqScope::Account) or the server's
    // domain (the password change example of §3.3: to='shakespeare.lit').
    for (auto scope : {api::IqScope::Account, api::IqScope::Host}) {
      ctx.on_iq(scope, api::IqType::Get, std::string(ns), "query",
                [this](const IqRequest& req) { return registered(req); });
      ctx.on_iq(scope, api::IqType::Set, std::string(ns), "query",
                [this](const IqRequest& req) { return change(req); });
    }
  }

private:
  // --- before authentication -------------------------------------------------------------------------------------

  boost::asio::awaitable<IqReply> form(const IqRequest&) {
    // §3.1: "If the entity is not already registered and the host supports In-Band Registration, the host MUST
    // inform the entity of the required registration fields."
    Element q("query", std::string(ns));
    q.add_text_child("instructions", instructions_);
    q.add_child("username");
    q.add_child("password");
    co_return IqReply::result(std::move(q));
  }

  boost::asio::awaitable<IqReply> create(const IqRequest& req) {
    if (req.payload.child("remove") != nullptr) {
      // §3.2: <unexpected-request/> "The host is an instant messaging server and the IQ get does not contain a
      // 'from' address because the entity is not registered with the server."
      co_return IqReply::error("unexpected-request", "authenticate before removing an account");
    }
    const Element* username = req.payload.child("username");
    const Element* password = req.payload.child("password");
    // §3.1: "If the requesting entity does not provide all of the requested information during registration
    // (This includes providing an empty password element ...) then the server or service MUST return a
    // <not-acceptable/> error to the requesting entity."
    if (username == nullptr || password == nullptr || username->text().empty() || password->text().empty()) {
      co_return IqReply::error("not-acceptable", "a username and a password are required");
    }
    // §3.1.1: "a server MAY return a <not-acceptable/> stanza error if an unregistered entity attempts to register
    // too many times". Prosody (mod_register_limits) answers a throttled address with policy-violation of type
    // 'wait', which tells the client to try again later rather than to change its request: so do we.
    if (!limiter_->admit(req.peer, Clock::now())) {
      auto e = api::StanzaError::make("policy-violation", "too many registrations from this address; try later");
      e.type = api::ErrorType::Wait;
      ctx_->log().info("register: refused a registration from {}: over modules.register.max_per_hour", req.peer);
      co_return IqReply::error(std::move(e));
    }
    const std::string node = username->text();
    auto result = co_await ctx_->create_account(node, password->text());
    switch (result) {
    case AccountResult::Ok:
      ctx_->log().info("register: {} registered {}@{}", req.peer, node, ctx_->host());
      // §3.1: "Host Informs Entity of Successful Registration": an empty result.
      co_return IqReply::result();
    case AccountResult::Exists:
      // §3.1: "a username conflict (the desired username is already in use by another entity)" → <conflict/>.
      co_return IqReply::error("conflict", "that username is taken");
    case AccountResult::InvalidUsername:
      co_return IqReply::error("not-acceptable", "that username is not valid");
    case AccountResult::InvalidPassword:
      co_return IqReply::error("not-acceptable", "that password is not valid");
    case AccountResult::NotFound:
      break;
    }
    co_return IqReply::error("internal-server-error");
  }

  // --- after authentication ----------------------------------------------------------------------------------------

  // The account an IQ after authentication is about: the sender's own, if the sender is one of this host's users
  // and the IQ is addressed to the server or to the sender's account.
  std::optional<api::Jid> own_account(const IqRequest& req) const {
    if (req.origin.kind != api::OriginKind::Client || !req.from.has_node() || req.from.domain() != ctx_->host()) {
      return std::nullopt;
    }
    if (!req.to.is_domain() && req.to != req.from.bare()) {
      return std::nullopt; // someone else's account: not ours to tell about
    }
    return req.from.bare();
  }

  boost::asio::awaitable<IqReply> registered(const IqRequest& req) {
    auto account = own_account(req);
    if (!account) {
      // §3.1: "If the host does not support In-Band Registration, it MUST return a <service-unavailable/> error"
      // — nobody but this host's own users registers here.
      co_return IqReply::error("service-unavailable");
    }
    // §3.1: "If the host determines (based on the 'from' address) that the entity is already registered, the IQ
    // result ... MUST contain an empty <registered/> element ..., SHOULD contain the registration information
    // currently on file for the entity (although the <password/> element MAY be empty), and SHOULD contain an
    // <instructions/> element".
    Element q("query", std::string(ns));
    q.add_child("registered");
    q.add_text_child("instructions", "You are registered. Send a new password to change it, or <remove/>.");
    q.add_text_child("username", account->node());
    q.add_child("password");
    co_return IqReply::result(std::move(q));
  }

  boost::asio::awaitable<IqReply> change(const IqRequest& req) {
    auto account = own_account(req);
    if (!account) {
      co_return IqReply::error("service-unavailable");
    }
    if (req.payload.child("remove") != nullptr) {
      // §3.2: <bad-request/> "The <remove/> element was not the only child element of the <query/> element."
      if (req.payload.element_count() != 1) {
        co_return IqReply::error("bad-request", "<remove/> comes alone");
      }
      IqReply removed = co_await remove(req, *account);
      co_return removed;
    }
    const Element* password = req.payload.child("password");
    // §3.3: "If the user provides an empty password element or a password element that contains no XML character
    // data ..., the server or service MUST NOT change the password to a null value, but instead MUST maintain the
    // existing password." <bad-request/>: "The password change request does not contain complete information".
    if (password == nullptr || password->text().empty()) {
      co_return IqReply::error("bad-request", "a new password is required");
    }
    if (const Element* username = req.payload.child("username"); username != nullptr) {
      auto prepped = api::Jid::nodeprep(username->text());
      if (!prepped || *prepped != account->node()) {
        co_return IqReply::error("forbidden", "you can change only your own password");
      }
    }
    // §3.3: "A given deployment MAY choose to disable password changes if the stream is not properly encrypted":
    // <not-authorized/> "The server or service does not consider the channel safe enough to enable a password
    // change." (Only with c2s.require_encryption = false can a session be unencrypted.)
    bool secure = false;
    for (const auto& s : ctx_->sessions(*account)) {
      if (s.jid == req.from) {
        secure = s.secure;
      }
    }
    if (!secure) {
      co_return IqReply::error("not-authorized", "change passwords over TLS only");
    }
    auto result = co_await ctx_->set_password(account->node(), password->text());
    switch (result) {
    case AccountResult::Ok:
      ctx_->log().info("register: {} changed their password", req.from.str());
      co_return IqReply::result();
    case AccountResult::InvalidPassword:
      co_return IqReply::error("not-acceptable", "that password is not valid");
    case AccountResult::NotFound:
      co_return IqReply::error("item-not-found", "no such account");
    case AccountResult::Exists:
    case AccountResult::InvalidUsername:
      break;
    }
    co_return IqReply::error("internal-server-error");
  }

  boost::asio::awaitable<IqReply> remove(const IqRequest& req, const api::Jid& account) {
    // §3.2: "Host Informs Entity of Successful Cancellation" (an IQ result), then "the server SHOULD then return a
    // <not-authorized/> stream error and terminate all active sessions for the entity". delete_account closes the
    // sessions at once, before this handler's reply could be routed; so the result is routed here first, ahead of
    // the stream error in the session's queue. (The router's own reply to this IQ then finds the session closed
    // and is dropped.)
    Element result = api::make_iq_result(req.stanza);
    if (result.attr("from").empty()) {
      result.set_attr("from", account.bare_str());
    }
    ctx_->send(std::move(result));
    auto outcome = co_await ctx_->delete_account(account.node());
    if (outcome != AccountResult::Ok) {
      ctx_->log().error("register: removing {} failed after its removal was acknowledged", account.str());
      co_return IqReply::error("internal-server-error");
    }
    ctx_->log().info("register: {} removed their account", req.from.str());
    AccountDeleted ev{account};
    ctx_->fire(ev);
    co_return IqReply::result();
  }

  api::ModuleContext* ctx_ = nullptr;
  std::unique_ptr<RateLimiter> limiter_;
  std::string instructions_;
};

} // namespace

std::unique_ptr<api::Module> make_module() {
  return std::make_unique<RegisterModule>();
}

} // namespace cg::xep::reg
