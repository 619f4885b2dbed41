// XEP-0012: Last Activity, version 1.2 (2007-02-15). To the server: its uptime (§4). To a user's bare JID: 0 while
// they have an available resource, else the seconds since they logged out with the status of their last
// unavailable presence (§2) — only for the user and contacts allowed to see their presence. To a full JID: routed
// to that client (§3), which answers for itself.
#include "xep/xep0012_last.hpp"

#include "server/api/datetime.hpp"
#include "xep/rfc6121_roster.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <spdlog/spdlog.h>

#include <charconv>
#include <mutex>
#include <unordered_map>

namespace cg::xep::last {

using api::Element;
using api::IqReply;
using api::IqRequest;

std::string Record::encode() const {
  return std::to_string(when) + "\n" + status;
}

std::optional<Record> Record::decode(std::string_view value) {
  auto nl = value.find('\n');
  if (nl == std::string_view::npos) {
    return std::nullopt;
  }
  Record r;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + nl, r.when);
  if (ec != std::errc() || ptr != value.data() + nl) {
    return std::nullopt;
  }
  r.status = std::string(value.substr(nl + 1));
  return r;
}

namespace {

Element query(std::int64_t seconds, const std::string& text = {}) {
  Element q("query", std::string(ns));
  q.set_attr("seconds", std::to_string(seconds));
  if (!text.empty()) {
    q.add_text(text);
  }
  return q;
}

class LastModule final : public api::Module {
public:
  api::ModuleInfo info() const override {
    return {"last",
            "Last Activity: the server's uptime, and when a contact was last online (to those who see their presence)",
            {{"XEP-0012", "1.2", "complete", ""}},
            {},
            {},
            true};
  }

  void load(api::ModuleContext& ctx) override {
    ctx_ = &ctx;
    started_ = std::chrono::steady_clock::now();
    store_ = ctx.storage().keyval("last");
    roster_ = std::make_unique<roster::Store>(ctx.storage());
    // XEP-0012 §5: the responding entity communicates protocol support with the feature 'jabber:iq:last'.
    ctx.add_feature(std::string(ns));
    ctx.add_account_feature(std::string(ns));
    ctx.on_iq(api::IqScope::Host, api::IqType::Get, std::string(ns), "query",
              [this](const IqRequest& req) { return uptime(req); });
    ctx.on_iq(api::IqScope::Account, api::IqType::Get, std::string(ns), "query",
              [this](const IqRequest& req) { return account(req); });
    // The status of the last unavailable presence, and the moment the user went offline.
    ctx.on_stanza(api::StanzaKind::Presence, api::Route::Self, [this](api::StanzaEvent& ev) {
      on_presence(ev);
      return api::Flow::Continue;
    });
    ctx.on_session(api::SessionEventKind::Closed, [this](const api::SessionEvent& ev) { on_closed(ev); });
  }

private:
  boost::asio::awaitable<IqReply> uptime(const IqRequest&) {
    // XEP-0012 §4: "the information contained in the IQ reply reflects the uptime of the JID sending the reply.
    // ... The <query/> element SHOULD NOT contain XML character data."
    auto up = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
    co_return IqReply::result(query(up.count()));
  }

  boost::asio::awaitable<IqReply> account(const IqRequest& req) {
    const std::string host = ctx_->host();
    const std::string user = req.to.node();
    if (req.from.bare() != req.to) {
      // XEP-0012 §2: "a server MUST NOT return last activity information to an entity that is not authorized to
      // view the user's presence information (normally via presence subscription), and MUST return a "Forbidden"
      // error in response to such a request". Authorized: a contact with a subscription to the user's presence,
      // i.e. 'from' or 'both' in the user's roster (RFC 6121 §2.1.2.5).
      const api::Jid contact = req.from.bare();
      std::optional<roster::Item> item;
      std::function<void()> job = [&] { item = roster_->get(host, user, contact); };
      co_await ctx_->run_blocking(std::move(job));
      if (!item ||
          (item->subscription != roster::Subscription::From && item->subscription != roster::Subscription::Both)) {
        co_return IqReply::error("forbidden", "only contacts subscribed to the user's presence may ask");
      }
    }
    // XEP-0012 §2: "If the user has at least one available resource when the server receives the request, the
    // response SHOULD contain an empty <query/> element whose 'seconds' attribute is set to a value of '0'."
    for (const auto& s : ctx_->sessions(req.to)) {
      if (s.available) {
        co_return IqReply::result(query(0));
      }
    }
    std::optional<Record> record;
    {
      std::lock_guard lock(mutex_);
      if (auto it = pending_.find(req.to.bare_str()); it != pending_.end()) {
        record = it->second; // written a moment ago, maybe not yet in storage
      }
    }
    if (!record) {
      std::optional<std::string> value;
      std::function<void()> job = [&] { value = store_->get(host, user); };
      co_await ctx_->run_blocking(std::move(job));
      if (value) {
        record = Record::decode(*value);
      }
    }
    if (!record) {
      // Never logged out since this module started keeping track: the XEP defines no answer. ejabberd's
      // (mod_last) is service-unavailable, "No info about last activity found": nothing to tell.
      co_return IqReply::error("service-unavailable", "no information about the last activity");
    }
    // XEP-0012 §2: "the number of seconds that have passed since the user last logged out. In addition, the
    // element MAY contain XML character data that specifies the status message of the last unavailable presence
    // received from the user."
    const std::int64_t seconds = std::max<std::int64_t>(0, (api::now_micros() - record->when) / 1000000);
    co_return IqReply::result(query(seconds, record->status));
  }

  bool any_available(const api::Jid& bare) const {
    for (const auto& s : ctx_->sessions(bare)) {
      if (s.available) {
        return true;
      }
    }
    return false;
  }

  void on_presence(const api::StanzaEvent& ev) {
    auto type = ev.stanza.attr("type");
    if (type == "unavailable") {
      std::string status = ev.stanza.child_text("status");
      {
        std::lock_guard lock(mutex_);
        statuses_[ev.from.str()] = status;
      }
      // The router has marked the session unavailable before Route::Self handlers run.
      if (!any_available(ev.from.bare())) {
        record(ev.from.bare(), std::move(status));
      }
    } else if (type.empty()) {
      std::lock_guard lock(mutex_);
      statuses_.erase(ev.from.str());
    }
  }

  void on_closed(const api::SessionEvent& ev) {
    std::string status;
    {
      std::lock_guard lock(mutex_);
      if (auto it = statuses_.find(ev.jid.str()); it != statuses_.end()) {
        status = std::move(it->second);
        statuses_.erase(it);
      }
    }
    // The closed session is no longer among the account's sessions: the user logged out when none is available.
    if (!any_available(ev.jid.bare())) {
      record(ev.jid.bare(), std::move(status));
    }
  }

  void record(const api::Jid& bare, std::string status) {
    Record r{api::now_micros(), std::move(status)};
    {
      std::lock_guard lock(mutex_);
      pending_[bare.bare_str()] = r;
    }
    boost::asio::co_spawn(ctx_->executor(), write(bare, r), boost::asio::detached);
  }

  boost::asio::awaitable<void> write(api::Jid bare, Record r) {
    const std::string host = ctx_->host();
    const std::string user = bare.node();
    const std::string value = r.encode();
    try {
      std::function<void()> job = [&] { store_->set(host, user, value); };
      co_await ctx_->run_blocking(std::move(job));
    } catch (const std::exception& e) {
      ctx_->log().error("last: storing the last activity of {} failed: {}", bare.str(), e.what());
    }
    std::lock_guard lock(mutex_);
    if (auto it = pending_.find(bare.bare_str()); it != pending_.end() && it->second == r) {
      pending_.erase(it);
    }
  }

  api::ModuleContext* ctx_ = nullptr;
  std::chrono::steady_clock::time_point started_;
  std::shared_ptr<storage::KeyValStore> store_;
  std::unique_ptr<roster::Store> roster_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::string> statuses_; // full JID → status of its last unavailable presence
  std::unordered_map<std::string, Record> pending_;       // bare JID → record being written
};

} // namespace

std::unique_ptr<api::Module> make_module() {
  return std::make_unique<LastModule>();
}

} // namespace cg::xep::last
