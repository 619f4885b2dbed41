// XEP-0191: Blocking Command, version 1.1 (2007-02-15). The blocklist is map store "blocklist" (key: the blocked JID,
// normalised, as the user gave it: full, bare, domain/resource or domain); keyval store "blocklist_users" marks the
// users whose blocklist is not empty, so that every blocklist is in memory from the start: stanzas are checked
// against it without a storage read, whether the user is online or not (a block "applies across sessions", §5.3,
// so a blocked contact's message must not wait in the offline store either).
#include "xep/xep0191_blocking.hpp"

#include "xep/rfc6121_roster.hpp"
#include "xep/xep0077_register.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

namespace cg::xep::blocking {

using api::Element;
using api::Flow;
using api::IqReply;
using api::IqRequest;
using api::Jid;
using api::StanzaEvent;
using api::StanzaKind;

bool matches(const Jid& item, const Jid& address) {
  if (item.has_resource()) {
    return address == item; // <user@domain/resource>, <domain/resource>: only that resource
  }
  if (item.has_node()) {
    return address.bare() == item; // <user@domain>: any resource
  }
  // <domain>: "the domain itself matches, as does any user@domain, domain/resource, or address containing a
  // subdomain".
  const std::string& d = address.domain();
  const std::string& i = item.domain();
  return d == i || (d.size() > i.size() && d.ends_with(i) && d[d.size() - i.size() - 1] == '.');
}

bool covers(const std::set<std::string>& items, const Jid& address) {
  if (items.empty()) {
    return false;
  }
  if (items.contains(address.str()) || items.contains(address.bare_str())) {
    return true;
  }
  std::string_view domain = address.domain();
  while (true) {
    if (items.contains(std::string(domain))) {
      return true;
    }
    auto dot = domain.find('.');
    if (dot == std::string_view::npos) {
      return false;
    }
    domain.remove_prefix(dot + 1);
  }
}

namespace {

bool allowed_presence(roster::Subscription s) {
  // RFC 6121 §2.1.2.5: 'from' and 'both' — the contact has a subscription to the user's presence.
  return s == roster::Subscription::From || s == roster::Subscription::Both;
}

class BlockingModule final : public api::Module {
public:
  api::ModuleInfo info() const override {
    return {"blocking",
            "Blocking Command: users block contacts, domains or single resources; the server drops or refuses their "
            "stanzas",
            {{"XEP-0191", "1.1", "complete", ""}},
            {},
            {api::opt_int("max_items", 1000, 1, 100000,
                          "Most JIDs one user can block; a block beyond it gets not-acceptable")},
            true};
  }

  void load(api::ModuleContext& ctx) override {
    ctx_ = &ctx;
    max_items_ = static_cast<std::size_t>(ctx.option<std::int64_t>("max_items"));
    store_ = ctx.storage().map("blocklist");
    index_ = ctx.storage().keyval("blocklist_users");
    roster_ = std::make_unique<roster::Store>(ctx.storage());
    // Every non-empty blocklist, read once. Modules load before the server's I/O threads start, so this blocking
    // read holds up no session.
    for (const auto& user : index_->users(ctx.host())) {
      std::set<std::string> items;
      for (auto& [key, value] : store_->all(ctx.host(), user)) {
        items.insert(key);
      }
      if (!items.empty()) {
        lists_[user] = std::move(items);
      }
    }

    // XEP-0191 §5.1: "If the server supports the protocol defined herein, it MUST return a feature of
    // "urn:xmpp:blocking"".
    ctx.add_feature(std::string(ns));
    ctx.on_iq(api::IqScope::Account, api::IqType::Get, std::string(ns), "blocklist",
              [this](const IqRequest& req) { return get(req); });
    ctx.on_iq(api::IqScope::Account, api::IqType::Set, std::string(ns), "block",
              [this](const IqRequest& req) { return block(req); });
    ctx.on_iq(api::IqScope::Account, api::IqType::Set, std::string(ns), "unblock",
              [this](const IqRequest& req) { return unblock(req); });

    for (auto kind : {StanzaKind::Message, StanzaKind::Presence, StanzaKind::Iq}) {
      ctx.on_stanza(
          kind, api::Route::Pre, [this](StanzaEvent& ev) { return outbound(ev); }, priority);
      ctx.on_stanza(
          kind, api::Route::Bare, [this](StanzaEvent& ev) { return inbound(ev); }, priority);
      ctx.on_stanza(
          kind, api::Route::Full, [this](StanzaEvent& ev) { return inbound(ev); }, priority);
    }
    // The user's current presence, to send again to a contact who is unblocked (§5.4).
    ctx.on_stanza(StanzaKind::Presence, api::Route::Self, [this](StanzaEvent& ev) {
      track_presence(ev);
      return Flow::Continue;
    });
    ctx.on_session(api::SessionEventKind::Closed, [this](const api::SessionEvent& ev) {
      std::unique_lock lock(mutex_);
      if (auto it = interested_.find(ev.jid.bare_str()); it != interested_.end()) {
        it->second.erase(ev.jid.str());
        if (it->second.empty()) {
          interested_.erase(it);
        }
      }
      presence_.erase(ev.jid.str());
    });
    ctx.on<reg::AccountDeleted>([this](reg::AccountDeleted& ev) {
      std::unique_lock lock(mutex_);
      lists_.erase(ev.user.node());
      interested_.erase(ev.user.bare_str());
      return Flow::Continue;
    });
  }

private:
  // --- the blocklist IQs ---------------------------------------------------------------------------------------

  // Nullopt when `req` comes from the account it is addressed to (XEP-0191: the IQs are sent "with no 'to'
  // address (thus handled by the user's server)"); a blocklist is nobody else's business.
  static std::optional<IqReply> not_own(const IqRequest& req) {
    if (req.from.bare() != req.to) {
      return IqReply::error("forbidden", "a blocklist belongs to its owner only");
    }
    return std::nullopt;
  }

  boost::asio::awaitable<IqReply> get(const IqRequest& req) {
    if (auto refused = not_own(req)) {
      co_return std::move(*refused);
    }
    Element list("blocklist", std::string(ns));
    {
      std::unique_lock lock(mutex_);
      // XEP-0191 §5.3: pushes go to "all of the user's resources that have requested the blocklist".
      interested_[req.to.bare_str()].insert(req.from.str());
      if (auto it = lists_.find(req.to.node()); it != lists_.end()) {
        // §5.2: "the server MUST return an IQ-result containing a <blocklist/> element that in turn contains one
        // child <item/> element for each blocked contact" (an empty <blocklist/> when there is none).
        for (const auto& jid : it->second) {
          list.add_child("item").set_attr("jid", jid);
        }
      }
    }
    co_return IqReply::result(std::move(list));
  }

  // The <item jid=''/> children of a block or unblock command, normalised; an error when one is unusable.
  static std::variant<std::vector<Jid>, api::StanzaError> items_of(const Element& command) {
    std::vector<Jid> out;
    for (const Element* item : command.children("item", ns)) {
      const std::string* text = item->find_attr("jid");
      if (text == nullptr) {
        return api::StanzaError::make("bad-request", "an <item/> without 'jid'");
      }
      auto jid = Jid::parse(*text);
      if (!jid) {
        return api::StanzaError::make("jid-malformed", "not a JID: " + *text);
      }
      out.push_back(std::move(*jid));
    }
    return out;
  }

  boost::asio::awaitable<IqReply> block(const IqRequest& req) {
    if (auto refused = not_own(req)) {
      co_return std::move(*refused);
    }
    auto parsed = items_of(req.payload);
    if (auto* e = std::get_if<api::StanzaError>(&parsed)) {
      co_return IqReply::error(std::move(*e));
    }
    auto items = std::get<std::vector<Jid>>(std::move(parsed));
    // XEP-0191 §5.3: "If the <block/> element does not contain at least one <item/> child element, the server
    // MUST return a <bad-request/> error."
    if (items.empty()) {
      co_return IqReply::error("bad-request", "nothing to block");
    }
    const std::string host = ctx_->host();
    const Jid user = req.to;
    bool too_many = false;
    std::vector<roster::Item> roster;
    std::function<void()> job = [&] {
      // One change at a time (storage and memory agree); readers of the lists only wait for the swap below.
      std::lock_guard writing(write_mutex_);
      std::set<std::string> next;
      {
        std::shared_lock lock(mutex_);
        if (auto it = lists_.find(user.node()); it != lists_.end()) {
          next = it->second;
        }
      }
      for (const auto& jid : items) {
        next.insert(jid.str());
      }
      if (next.size() > max_items_) {
        too_many = true;
        return;
      }
      // The mark first: a crash between the two writes leaves a mark without items (harmless), never items that
      // nobody loads.
      index_->set(host, user.node(), "1");
      for (const auto& jid : items) {
        store_->set(host, user.node(), jid.str(), "");
      }
      {
        std::unique_lock lock(mutex_);
        lists_[user.node()] = std::move(next);
      }
      roster = roster_->items(host, user.node());
    };
    co_await ctx_->run_blocking(std::move(job));
    if (too_many) {
      co_return IqReply::error("not-acceptable", "no more than " + std::to_string(max_items_) + " blocked JIDs");
    }
    // §5.3: "When the user blocks communications with the contact, the user's server MUST send unavailable
    // presence information to the contact (but only if the contact is allowed to receive presence notifications
    // from the user ...)". (Unavailable presence passes the outbound check below, which stops only available
    // presence to a blocked JID.)
    for (const auto& to : presence_recipients(roster, items)) {
      for (const auto& s : ctx_->sessions(user)) {
        if (s.available) {
          Element p("presence", std::string(api::ns::client));
          p.set_attr("from", s.jid.str());
          p.set_attr("to", to.str());
          p.set_attr("type", "unavailable");
          ctx_->send(std::move(p));
        }
      }
    }
    push(user, "block", items);
    // §5.3: "If the server can successfully process the block command, it MUST return an IQ-result".
    co_return IqReply::result();
  }

  boost::asio::awaitable<IqReply> unblock(const IqRequest& req) {
    if (auto refused = not_own(req)) {
      co_return std::move(*refused);
    }
    auto parsed = items_of(req.payload);
    if (auto* e = std::get_if<api::StanzaError>(&parsed)) {
      co_return IqReply::error(std::move(*e));
    }
    auto items = std::get<std::vector<Jid>>(std::move(parsed));
    // §5.5: an empty <unblock/> unblocks every contact.
    const bool all = items.empty();
    const std::string host = ctx_->host();
    const Jid user = req.to;
    std::vector<roster::Item> roster;
    std::vector<Jid> released; // the items that were in the list and are no longer
    std::set<std::string> remaining;
    std::function<void()> job = [&] {
      std::lock_guard writing(write_mutex_);
      std::set<std::string> before;
      {
        std::shared_lock lock(mutex_);
        if (auto it = lists_.find(user.node()); it != lists_.end()) {
          before = it->second;
        }
      }
      remaining = before;
      if (all) {
        store_->remove_all(host, user.node());
        remaining.clear();
      } else {
        for (const auto& jid : items) {
          store_->remove(host, user.node(), jid.str());
          remaining.erase(jid.str());
        }
      }
      for (const auto& key : before) {
        if (!remaining.contains(key)) {
          if (auto jid = Jid::parse(key)) {
            released.push_back(std::move(*jid));
          }
        }
      }
      if (remaining.empty()) {
        index_->remove(host, user.node());
      }
      {
        std::unique_lock lock(mutex_);
        if (remaining.empty()) {
          lists_.erase(user.node());
        } else {
          lists_[user.node()] = remaining;
        }
      }
      if (!released.empty()) {
        roster = roster_->items(host, user.node());
      }
    };
    co_await ctx_->run_blocking(std::move(job));
    // §5.4: "When the user unblocks communications with the contact, the user's server MUST send the user's
    // current presence information to the contact (but only if the contact is allowed to receive presence
    // notifications from the user ...)" — unless another item still blocks that contact.
    std::vector<Element> current;
    {
      std::shared_lock lock(mutex_);
      for (const auto& s : ctx_->sessions(user)) {
        if (auto it = presence_.find(s.jid.str()); s.available && it != presence_.end()) {
          current.push_back(it->second);
        }
      }
    }
    for (const auto& to : presence_recipients(roster, released)) {
      if (covers(remaining, to)) {
        continue;
      }
      for (const auto& p : current) {
        Element copy = p;
        copy.set_attr("to", to.str());
        ctx_->send(std::move(copy));
      }
    }
    push(user, "unblock", items);
    co_return IqReply::result();
  }

  // The contacts that may see the user's presence (roster subscription 'from' or 'both') and are covered by one
  // of `items`: a bare JID, or the full JID of an item that names one resource of such a contact.
  static std::vector<Jid> presence_recipients(const std::vector<roster::Item>& roster, const std::vector<Jid>& items) {
    std::vector<Jid> out;
    for (const auto& contact : roster) {
      if (!allowed_presence(contact.subscription)) {
        continue;
      }
      for (const auto& item : items) {
        if (matches(item, contact.jid)) {
          out.push_back(contact.jid);
          break;
        }
        if (item.has_resource() && item.has_node() && item.bare() == contact.jid) {
          out.push_back(item);
        }
      }
    }
    return out;
  }

  // XEP-0191 §5.3/§5.4/§5.5: "The server MUST also send an IQ-set to all of the user's resources that have
  // requested the blocklist, containing the blocked item(s)" (for unblock-all: an empty <unblock/>).
  void push(const Jid& user, const char* command, const std::vector<Jid>& items) {
    std::vector<std::string> targets;
    {
      std::shared_lock lock(mutex_);
      if (auto it = interested_.find(user.bare_str()); it != interested_.end()) {
        targets.assign(it->second.begin(), it->second.end());
      }
    }
    for (const auto& target : targets) {
      Element iq("iq", std::string(api::ns::client));
      iq.set_attr("type", "set");
      iq.set_attr("id", "block-push-" + std::to_string(++push_seq_));
      // From the account's bare JID, as roster pushes are (RFC 6121 §2.1.6): clients accept those.
      iq.set_attr("from", user.bare_str());
      iq.set_attr("to", target);
      Element& c = iq.add_child(command, std::string(ns));
      for (const auto& jid : items) {
        c.add_child("item").set_attr("jid", jid.str());
      }
      ctx_->send(std::move(iq));
    }
  }

  // --- enforcement ---------------------------------------------------------------------------------------------

  bool is_blocked(const std::string& node, const Jid& address) const {
    std::shared_lock lock(mutex_);
    auto it = lists_.find(node);
    return it != lists_.end() && covers(it->second, address);
  }

  // The server itself and the user's own account are never "contacts" (a domain item naming this host would
  // otherwise cut the user off from their own server).
  bool exempt(const Jid& user, const Jid& other) const {
    return other.empty() || other.bare() == user.bare() || (other.is_domain() && other.domain() == ctx_->host());
  }

  // A bare copy of the error reply to `stanza`, routed back to its sender.
  void bounce(const Element& stanza, api::StanzaError error, bool blocked_condition) {
    Element reply = api::make_error_reply(stanza, error);
    if (blocked_condition) {
      if (Element* e = reply.child("error")) {
        e->add_child("blocked", std::string(ns_errors));
      }
    }
    if (!reply.attr("from").empty() && !reply.attr("to").empty()) {
      ctx_->send(std::move(reply));
    }
  }

  // Route::Pre: a stanza a local client sends.
  Flow outbound(StanzaEvent& ev) {
    if (exempt(ev.from, ev.to) || ev.from.domain() != ctx_->host() || !is_blocked(ev.from.node(), ev.to)) {
      return Flow::Continue;
    }
    auto type = ev.stanza.attr("type");
    // RFC 6120 §8.3.1: an error is never answered with an error (and an IQ result needs no answer).
    if (type == "error" || (ev.kind == StanzaKind::Iq && type == "result")) {
      return Flow::Stop;
    }
    // XEP-0191 §5.3: "If the user attempts to send an outbound stanza to the contact, the user's server MUST NOT
    // route the stanza to the contact but instead MUST return a <not-acceptable/> error containing an
    // application-specific error condition of <blocked/> qualified by the 'urn:xmpp:blocking:errors' namespace".
    // (Of type 'cancel', as in the XEP's example: the same stanza will not get through later.)
    auto error = api::StanzaError::make("not-acceptable", "you have blocked this JID");
    error.type = api::ErrorType::Cancel;
    bounce(ev.stanza, std::move(error), true);
    return Flow::Stop;
  }

  // Route::Bare / Route::Full: a stanza to a local account.
  Flow inbound(StanzaEvent& ev) {
    const Jid user = ev.to.bare();
    auto type = ev.stanza.attr("type");
    // Presence the server sends on behalf of a local user (a module's broadcast or probe) to a JID that user has
    // blocked: not routed (§5.3 "MUST NOT route the stanza to the contact"). Unavailable presence is what the
    // block itself sends (§5.3), and tells nothing.
    if (ev.kind == StanzaKind::Presence && ev.origin.kind == api::OriginKind::Local && ev.from.has_node() &&
        ev.from.domain() == ctx_->host() && type != "unavailable" && !exempt(ev.from, ev.to) &&
        is_blocked(ev.from.node(), ev.to)) {
      return Flow::Stop;
    }
    if (exempt(user, ev.from) || ev.to.domain() != ctx_->host()) {
      return Flow::Continue;
    }
    // Error replies the server generated (e.g. the <blocked/> error above, whose 'from' is the blocked JID) are not
    // stanzas from the contact.
    if (ev.origin.kind == api::OriginKind::Local && type == "error") {
      return Flow::Continue;
    }
    if (!is_blocked(user.node(), ev.from)) {
      return Flow::Continue;
    }
    // XEP-0191 §5.3: "Once the user has blocked communications with the contact, the user's server MUST NOT
    // deliver any XML stanzas from the contact to the user."
    switch (ev.kind) {
    case StanzaKind::Presence:
      // "For presence stanzas (including notifications, subscriptions, and probes), the server MUST NOT respond
      // and MUST NOT return an error."
      return Flow::Stop;
    case StanzaKind::Message:
      // "For message stanzas, the server SHOULD return an error, which SHOULD be <service-unavailable/>."
      if (type != "error") {
        bounce(ev.stanza, api::StanzaError::make("service-unavailable"), false);
      }
      return Flow::Stop;
    case StanzaKind::Iq:
      // "For IQ stanzas of type "get" or "set", the server MUST return an error, which SHOULD be
      // <service-unavailable/>. IQ stanzas of other types MUST be silently dropped by the server."
      if (type == "get" || type == "set") {
        bounce(ev.stanza, api::StanzaError::make("service-unavailable"), false);
      }
      return Flow::Stop;
    case StanzaKind::Other:
      return Flow::Stop;
    }
    return Flow::Stop;
  }

  void track_presence(const StanzaEvent& ev) {
    auto type = ev.stanza.attr("type");
    std::unique_lock lock(mutex_);
    if (type.empty()) {
      Element p = ev.stanza;
      p.set_attr("from", ev.from.str());
      presence_[ev.from.str()] = std::move(p);
    } else if (type == "unavailable") {
      presence_.erase(ev.from.str());
    }
  }

  api::ModuleContext* ctx_ = nullptr;
  std::size_t max_items_ = 0;
  std::shared_ptr<storage::MapStore> store_;
  std::shared_ptr<storage::KeyValStore> index_;
  std::unique_ptr<roster::Store> roster_;
  std::mutex write_mutex_;
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, std::set<std::string>> lists_;      // user (node) → blocked JIDs, none empty
  std::unordered_map<std::string, std::set<std::string>> interested_; // bare JID → full JIDs that asked for the list
  std::unordered_map<std::string, Element> presence_; // full JID → its last available presence (Route::Self)
  std::atomic<std::uint64_t> push_seq_{0};
};

} // namespace

std::unique_ptr<api::Module> make_module() {
  return std::make_unique<BlockingModule>();
}

} // namespace cg::xep::blocking
