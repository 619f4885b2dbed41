// RFC 6121 (March 2011) §2: Managing the Roster, with roster versioning (§2.6, formerly XEP-0237 version 1.3).
// Roster get, set and remove, pushes to every interested resource, a limit on items per user; the rosters of
// online users are kept in memory and every change to one user's roster runs in that user's queue (Service).
#include "xep/rfc6121_roster.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <deque>
#include <exception>
#include <mutex>
#include <set>
#include <unordered_map>

namespace cg::xep::roster {

namespace asio = boost::asio;
using api::Element;
using api::IqReply;
using api::Jid;

// ---------------------------------------------------------------------------------------------------------------
// Items

std::string_view to_string(Subscription s) {
  switch (s) {
  case Subscription::None:
    return "none";
  case Subscription::To:
    return "to";
  case Subscription::From:
    return "from";
  case Subscription::Both:
    return "both";
  case Subscription::Remove:
    return "remove";
  }
  return "none";
}

std::optional<Subscription> subscription_from_string(std::string_view s) {
  if (s == "none") {
    return Subscription::None;
  }
  if (s == "to") {
    return Subscription::To;
  }
  if (s == "from") {
    return Subscription::From;
  }
  if (s == "both") {
    return Subscription::Both;
  }
  if (s == "remove") {
    return Subscription::Remove;
  }
  return std::nullopt;
}

Element Item::to_element() const {
  Element el("item", std::string(ns));
  el.set_attr("jid", jid.str());
  if (!name.empty()) {
    el.set_attr("name", name);
  }
  el.set_attr("subscription", std::string(to_string(subscription)));
  // RFC 6121 §2.1.2.2: the 'ask' attribute with the value "subscribe" signals a pending outbound request
  // ("None + Pending Out", "From + Pending Out").
  if (ask) {
    el.set_attr("ask", "subscribe");
  }
  // §2.1.2.1: "approved" is included only when "true" (a pre-approval, §3.4).
  if (approved) {
    el.set_attr("approved", "true");
  }
  for (const auto& g : groups) {
    el.add_text_child("group", g);
  }
  return el;
}

std::optional<Item> Item::parse(const Element& el) {
  if (!el.is("item", ns)) {
    return std::nullopt;
  }
  // RFC 6121 §2.1.2.3: "The 'jid' attribute ... is REQUIRED whenever a client or server adds, updates, deletes,
  // or returns a roster item."
  auto jid = Jid::parse(el.attr("jid"));
  if (!jid) {
    return std::nullopt;
  }
  Item item;
  item.jid = *jid;
  item.name = std::string(el.attr("name"));
  // §2.1.2.5: "In a roster set, the 'subscription' attribute MAY be included with a value of "remove" ...; the
  // server MUST ignore all values of the 'subscription' attribute other than "remove"." ('ask' and 'approved' in a
  // roster set are likewise the server's to decide, §2.1.2.1 / §2.1.2.2.)
  if (el.attr("subscription") == "remove") {
    item.subscription = Subscription::Remove;
  }
  for (const auto* g : el.children("group", ns)) {
    item.groups.push_back(g->text());
  }
  return item;
}

std::string Item::serialize() const {
  Element el = to_element();
  if (pending_in) {
    el.set_attr("pending_in", "true");
  }
  return api::to_xml(el);
}

std::optional<Item> Item::deserialize(std::string_view stored) {
  auto el = api::parse_xml(stored);
  if (!el || !el->is("item", ns)) {
    return std::nullopt;
  }
  auto jid = Jid::parse(el->attr("jid"));
  auto sub = subscription_from_string(el->attr("subscription"));
  if (!jid || !sub || *sub == Subscription::Remove) {
    return std::nullopt;
  }
  Item item;
  item.jid = *jid;
  item.name = std::string(el->attr("name"));
  item.subscription = *sub;
  item.ask = el->attr("ask") == "subscribe";
  item.approved = el->attr("approved") == "true";
  item.pending_in = el->attr("pending_in") == "true";
  for (const auto* g : el->children("group", ns)) {
    item.groups.push_back(g->text());
  }
  return item;
}

const Item* Roster::find(const Jid& contact) const {
  auto it = items.find(contact);
  return it == items.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------------------------------------------
// Store

namespace {

// Version bumps are read-modify-write: serialised per user, also between modules that use the Store directly.
std::mutex& version_lock(std::string_view host, std::string_view user) {
  static std::array<std::mutex, 64> locks;
  const std::size_t h = std::hash<std::string_view>{}(host) ^ (std::hash<std::string_view>{}(user) << 1);
  return locks[h % locks.size()];
}

std::string next_version(storage::KeyValStore& versions, std::string_view host, std::string_view user) {
  std::lock_guard lock(version_lock(host, user));
  std::uint64_t next = 0;
  auto current = versions.get(host, user);
  std::uint64_t value = 0;
  if (current && !current->empty()) {
    auto [ptr, ec] = std::from_chars(current->data(), current->data() + current->size(), value);
    if (ec == std::errc() && ptr == current->data() + current->size()) {
      next = value + 1;
    }
  }
  if (next == 0) {
    // The first change (or an unreadable version): start from the clock, so that a client's cached version of an
    // account that was deleted and created again cannot match the new roster's versions.
    next = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
  }
  std::string text = std::to_string(next);
  versions.set(host, user, text);
  return text;
}

} // namespace

Store::Store(storage::Driver& driver)
    : items_(driver.map("roster")), versions_(driver.keyval("roster_version")),
      pending_(driver.map("presence_pending")) {}

std::vector<Item> Store::items(std::string_view host, std::string_view user) {
  std::vector<Item> out;
  for (const auto& [key, value] : items_->all(host, user)) {
    if (auto item = Item::deserialize(value)) {
      out.push_back(std::move(*item));
    }
  }
  return out;
}

std::optional<Item> Store::get(std::string_view host, std::string_view user, const Jid& contact) {
  auto value = items_->get(host, user, contact.str());
  if (!value) {
    return std::nullopt;
  }
  return Item::deserialize(*value);
}

std::string Store::put(std::string_view host, std::string_view user, const Item& item) {
  // The version first: a crash between the two writes leaves a new version over an unchanged roster (a client
  // fetches the roster once more), never a changed roster under a version a client already has.
  std::string version = next_version(*versions_, host, user);
  items_->set(host, user, item.jid.str(), item.serialize());
  return version;
}

std::string Store::remove(std::string_view host, std::string_view user, const Jid& contact) {
  std::string version = next_version(*versions_, host, user);
  items_->remove(host, user, contact.str());
  return version;
}

std::string Store::version(std::string_view host, std::string_view user) {
  auto v = versions_->get(host, user);
  return v && !v->empty() ? *v : std::string("0");
}

std::vector<std::pair<Jid, Element>> Store::pending(std::string_view host, std::string_view user) {
  std::vector<std::pair<Jid, Element>> out;
  for (const auto& [key, value] : pending_->all(host, user)) {
    auto jid = Jid::parse(key);
    auto el = api::parse_xml(value);
    if (jid && el) {
      out.emplace_back(std::move(*jid), std::move(*el));
    }
  }
  return out;
}

std::optional<Element> Store::pending(std::string_view host, std::string_view user, const Jid& contact) {
  auto value = pending_->get(host, user, contact.str());
  if (!value) {
    return std::nullopt;
  }
  return api::parse_xml(*value);
}

void Store::set_pending(std::string_view host, std::string_view user, const Jid& contact, const Element& request) {
  pending_->set(host, user, contact.str(), api::to_xml(request));
}

bool Store::remove_pending(std::string_view host, std::string_view user, const Jid& contact) {
  return pending_->remove(host, user, contact.str());
}

Roster Store::load(std::string_view host, std::string_view user) {
  Roster r;
  r.version = version(host, user);
  for (auto& item : items(host, user)) {
    Jid key = item.jid;
    r.items.emplace(std::move(key), std::move(item));
  }
  for (auto& [jid, el] : pending(host, user)) {
    r.pending_in.emplace(std::move(jid), std::move(el));
  }
  return r;
}

std::shared_ptr<Service> find_service(api::ModuleContext& ctx) {
  ServiceRequest req;
  ctx.fire(req);
  return req.service;
}

// ---------------------------------------------------------------------------------------------------------------
// The service: per-user queues, the cache of online users' rosters, interested resources, pushes

namespace {

// RFC 6121 §2.3.3 lets the server limit the length of names and groups ("greater than a server-configured limit"
// → not-acceptable).
constexpr std::size_t kMaxNameBytes = 1024;
constexpr std::size_t kMaxGroupBytes = 1024;

class RosterService final : public Service, public std::enable_shared_from_this<RosterService> {
public:
  RosterService(api::ModuleContext& ctx, std::size_t max_items)
      : ctx_(ctx), store_(ctx.storage()), max_items_(max_items) {}

  void post(const Jid& user, Job job) override {
    const Jid bare = user.bare();
    bool start = false;
    {
      std::lock_guard lock(mutex_);
      auto& q = queues_[bare.str()];
      start = q.empty();
      q.push_back(std::move(job));
    }
    if (start) {
      asio::co_spawn(ctx_.executor(), drain(shared_from_this(), bare), asio::detached);
    }
  }

  asio::awaitable<void> run(const Jid& user, Job job) override {
    auto self = shared_from_this();
    auto init = [self, user, job = std::move(job)](auto handler) mutable {
      auto h = std::make_shared<decltype(handler)>(std::move(handler));
      Job wrapped = [job = std::move(job), h]() -> asio::awaitable<void> {
        std::exception_ptr error;
        try {
          co_await job();
        } catch (...) {
          error = std::current_exception();
        }
        // Resume the waiting coroutine on its own executor, not inside this queue.
        auto ex = asio::get_associated_executor(*h);
        asio::post(ex, [h, error]() { (*h)(error); });
      };
      self->post(user, std::move(wrapped));
    };
    co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr)>(std::move(init),
                                                                                            asio::use_awaitable);
  }

  asio::awaitable<std::shared_ptr<const Roster>> roster(const Jid& user) override {
    const std::string key = user.bare().str();
    std::shared_ptr<const Roster> found = cached(key);
    if (found) {
      co_return found;
    }
    std::function<Roster()> load = [self = shared_from_this(), node = user.node()] {
      return self->store_.load(self->ctx_.host(), node);
    };
    Roster loaded = co_await ctx_.blocking(std::move(load));
    auto fresh = std::make_shared<const Roster>(std::move(loaded));
    {
      std::lock_guard lock(mutex_);
      auto [it, inserted] = cache_.try_emplace(key, fresh);
      found = it->second;
    }
    co_return found;
  }

  asio::awaitable<std::optional<Item>> item(const Jid& user, const Jid& contact) override {
    std::optional<Item> out;
    if (auto r = cached(user.bare().str())) {
      if (const Item* i = r->find(contact)) {
        out = *i;
      }
      co_return out;
    }
    std::function<std::optional<Item>()> read = [self = shared_from_this(), node = user.node(), contact] {
      return self->store_.get(self->ctx_.host(), node, contact);
    };
    out = co_await ctx_.blocking(std::move(read));
    co_return out;
  }

  asio::awaitable<std::optional<Element>> pending(const Jid& user, const Jid& contact) override {
    std::optional<Element> out;
    if (auto r = cached(user.bare().str())) {
      if (auto it = r->pending_in.find(contact); it != r->pending_in.end()) {
        out = it->second;
      }
      co_return out;
    }
    std::function<std::optional<Element>()> read = [self = shared_from_this(), node = user.node(), contact] {
      return self->store_.pending(self->ctx_.host(), node, contact);
    };
    out = co_await ctx_.blocking(std::move(read));
    co_return out;
  }

  asio::awaitable<std::string> put(const Jid& user, Item item) override {
    std::function<std::string()> write = [self = shared_from_this(), node = user.node(), item] {
      return self->store_.put(self->ctx_.host(), node, item);
    };
    std::string version = co_await ctx_.blocking(std::move(write));
    ItemChanged ev{user.bare(), std::move(item), version, false};
    ctx_.fire(ev);
    co_return version;
  }

  asio::awaitable<std::string> remove(const Jid& user, const Jid& contact) override {
    std::function<std::string()> write = [self = shared_from_this(), node = user.node(), contact] {
      return self->store_.remove(self->ctx_.host(), node, contact);
    };
    std::string version = co_await ctx_.blocking(std::move(write));
    Item gone;
    gone.jid = contact;
    gone.subscription = Subscription::Remove;
    ItemChanged ev{user.bare(), std::move(gone), version, true};
    ctx_.fire(ev);
    co_return version;
  }

  asio::awaitable<void> set_pending(const Jid& user, const Jid& contact, Element request) override {
    std::function<void()> write = [self = shared_from_this(), node = user.node(), contact, request] {
      self->store_.set_pending(self->ctx_.host(), node, contact, request);
    };
    co_await ctx_.blocking(std::move(write));
    update_cached(user.bare().str(), [&](Roster& r) { r.pending_in.insert_or_assign(contact, std::move(request)); });
  }

  asio::awaitable<void> drop_pending(const Jid& user, const Jid& contact) override {
    std::function<void()> write = [self = shared_from_this(), node = user.node(), contact] {
      self->store_.remove_pending(self->ctx_.host(), node, contact);
    };
    co_await ctx_.blocking(std::move(write));
    update_cached(user.bare().str(), [&](Roster& r) { r.pending_in.erase(contact); });
  }

  std::vector<Jid> interested(const Jid& user) const override {
    std::vector<Jid> out;
    std::lock_guard lock(mutex_);
    if (auto it = interested_.find(user.bare().str()); it != interested_.end()) {
      for (const auto& resource : it->second) {
        out.push_back(user.bare().with_resource(resource));
      }
    }
    return out;
  }

  std::size_t max_items() const override { return max_items_; }

  // --- for the module ------------------------------------------------------------------------------------------
  void mark_interested(const Jid& full) {
    if (full.has_resource()) {
      std::lock_guard lock(mutex_);
      interested_[full.bare().str()].insert(full.resource());
    }
  }

  void forget_session(const Jid& full) {
    std::lock_guard lock(mutex_);
    if (auto it = interested_.find(full.bare().str()); it != interested_.end()) {
      it->second.erase(full.resource());
      if (it->second.empty()) {
        interested_.erase(it);
      }
    }
  }

  // ItemChanged, from this module or another: the cached roster follows, and the change is pushed.
  void changed(const ItemChanged& ev) {
    update_cached(ev.user.bare().str(), [&](Roster& r) {
      if (ev.removed) {
        r.items.erase(ev.item.jid);
      } else {
        r.items.insert_or_assign(ev.item.jid, ev.item);
      }
      if (!ev.version.empty()) {
        r.version = ev.version;
      }
    });
    push(ev);
  }

  Store& store() { return store_; }

private:
  std::shared_ptr<const Roster> cached(const std::string& key) const {
    std::lock_guard lock(mutex_);
    auto it = cache_.find(key);
    return it == cache_.end() ? nullptr : it->second;
  }

  template <class F>
  void update_cached(const std::string& key, F&& change) {
    std::lock_guard lock(mutex_);
    auto it = cache_.find(key);
    if (it == cache_.end()) {
      return;
    }
    // Copy on write: a job may still be reading the previous snapshot.
    auto next = std::make_shared<Roster>(*it->second);
    change(*next);
    it->second = std::move(next);
  }

  // RFC 6121 §2.1.6: "The server MUST send a roster push to all interested resources" — every resource of the
  // user that requested the roster, including the one whose roster set caused the change (§2.3.2). The client
  // answers each push with an IQ result, which the router discards.
  void push(const ItemChanged& ev) {
    for (const auto& full : interested(ev.user)) {
      Element iq("iq", std::string(api::ns::client));
      iq.set_attr("type", "set");
      iq.set_attr("id", "push" + std::to_string(++push_seq_));
      // §2.1.6: a client "MUST ignore the stanza unless it has no 'from' attribute ... or it has a 'from'
      // attribute whose value matches the user's bare JID".
      iq.set_attr("from", ev.user.bare().str());
      iq.set_attr("to", full.str());
      Element& query = iq.add_child("query", std::string(ns));
      // §2.6.3 (roster versioning): each push carries the version that the change produced.
      if (!ev.version.empty()) {
        query.set_attr("ver", ev.version);
      }
      if (ev.removed) {
        Element& item = query.add_child("item");
        item.set_attr("jid", ev.item.jid.str());
        item.set_attr("subscription", "remove");
      } else {
        query.add(ev.item.to_element());
      }
      ctx_.send(std::move(iq));
    }
  }

  static asio::awaitable<void> drain(std::shared_ptr<RosterService> self, Jid user) {
    const std::string key = user.str();
    while (true) {
      Job job;
      {
        std::lock_guard lock(self->mutex_);
        // The entry stays in the queue while it runs: a job posted meanwhile waits behind it.
        job = std::move(self->queues_[key].front());
      }
      try {
        co_await job();
      } catch (const std::exception& e) {
        self->ctx_.log().error("roster: a job for {} failed: {}", key, e.what());
      } catch (...) {
        self->ctx_.log().error("roster: a job for {} failed", key);
      }
      job = nullptr; // releases what the job held (an accept token) before the next one starts
      const bool online = !self->ctx_.sessions(user).empty();
      {
        std::lock_guard lock(self->mutex_);
        auto it = self->queues_.find(key);
        it->second.pop_front();
        if (it->second.empty()) {
          self->queues_.erase(it);
          // Rosters stay in memory only while their user has sessions.
          if (!online) {
            self->cache_.erase(key);
          }
          co_return;
        }
      }
    }
  }

  api::ModuleContext& ctx_;
  Store store_;
  const std::size_t max_items_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::deque<Job>> queues_;              // bare JID → jobs (front: running)
  std::unordered_map<std::string, std::shared_ptr<const Roster>> cache_; // bare JID → roster
  std::unordered_map<std::string, std::set<std::string>> interested_;    // bare JID → resources
  std::atomic<std::uint64_t> push_seq_{0};
};

// The checks of RFC 6121 §2.3.3 on a roster set's <query/>; returns the error, or nullopt and the item.
std::optional<api::StanzaError> check_set(const Element& query, const Jid& user, Item& out) {
  auto items = query.children("item", ns);
  // §2.3.3: "The server MUST return a <bad-request/> stanza error to the client if the roster set contains any of
  // the following violations: 1. The <query/> element contains more than one <item/> child element."
  if (items.size() != 1) {
    return api::StanzaError::make("bad-request", "a roster set carries exactly one <item/>");
  }
  const Element& el = *items.front();
  if (el.attr("jid").empty()) {
    return api::StanzaError::make("bad-request", "the item has no 'jid'");
  }
  auto item = Item::parse(el);
  if (!item) {
    return api::StanzaError::make("jid-malformed", "the item's 'jid' is not a valid JID");
  }
  if (item->subscription != Subscription::Remove) {
    // §2.3.3: not-acceptable when "The length of the 'name' attribute is greater than a server-configured limit",
    // "The XML character data of the <group/> element is of zero length", or "... is larger than a
    // server-configured limit"; bad-request when "The <item/> element contains more than one <group/> element,
    // but there are duplicate groups".
    if (item->name.size() > kMaxNameBytes) {
      return api::StanzaError::make("not-acceptable", "the name is too long");
    }
    std::set<std::string> seen;
    for (const auto& g : item->groups) {
      if (g.empty()) {
        return api::StanzaError::make("not-acceptable", "a group name is empty");
      }
      if (g.size() > kMaxGroupBytes) {
        return api::StanzaError::make("not-acceptable", "a group name is too long");
      }
      if (!seen.insert(g).second) {
        return api::StanzaError::make("bad-request", "a group is named twice");
      }
    }
    // The user is implicitly subscribed to its own presence (RFC 6121 §4.2.2: "an entity is implicitly subscribed
    // to its own presence"); an item for the own bare JID would have one item stand for both ends of a
    // subscription. Refused as Prosody does.
    if (item->jid.bare() == user) {
      return api::StanzaError::make("not-allowed", "the own JID cannot be a roster item");
    }
  }
  out = std::move(*item);
  return std::nullopt;
}

class RosterModule final : public api::Module {
public:
  api::ModuleInfo info() const override {
    return {"roster",
            "Rosters: contact lists with names and groups, pushed to every interested resource, versioned",
            {{"RFC 6121 §2", "RFC 6121", "complete", ""}, {"XEP-0237", "1.3", "complete", "as RFC 6121 §2.6"}},
            {},
            {api::opt_int("max_items", 1000, 1, 1000000,
                          "Most items one user's roster may hold; beyond it a new item gets <resource-constraint/>")},
            true};
  }

  void load(api::ModuleContext& ctx) override {
    auto svc = std::make_shared<RosterService>(ctx, static_cast<std::size_t>(ctx.option<std::int64_t>("max_items")));

    // RFC 6121 §2.6.1: "If a server supports roster versioning, then it MUST advertise the following stream
    // feature during stream negotiation: <ver xmlns='urn:xmpp:features:rosterver'/>".
    ctx.add_stream_feature(api::StreamStage::AfterAuth, Element("ver", std::string(ns_ver_feature)));

    ctx.on<ServiceRequest>([svc](ServiceRequest& req) {
      req.service = svc;
      return api::Flow::Stop;
    });
    ctx.on<ItemChanged>([svc](ItemChanged& ev) {
      svc->changed(ev);
      return api::Flow::Continue;
    });

    // Rosters are loaded once per session start, while the client negotiates, and kept while the user is online.
    ctx.on_session(api::SessionEventKind::Bound, [svc](const api::SessionEvent& ev) {
      Service::Job preload = [svc, user = ev.jid.bare()]() -> asio::awaitable<void> { co_await svc->roster(user); };
      svc->post(ev.jid, std::move(preload));
    });
    ctx.on_session(api::SessionEventKind::Closed, [svc](const api::SessionEvent& ev) {
      svc->forget_session(ev.jid);
      // An empty job: when the queue drains, a user without sessions leaves the cache.
      Service::Job noop = []() -> asio::awaitable<void> { co_return; };
      svc->post(ev.jid, std::move(noop));
    });

    ctx.on_iq(api::IqScope::Account, api::IqType::Get, std::string(ns), "query",
              [svc](const api::IqRequest& req) { return roster_get(svc, req); });
    ctx.on_iq(api::IqScope::Account, api::IqType::Set, std::string(ns), "query",
              [svc, &ctx](const api::IqRequest& req) { return roster_set(ctx, svc, req); });
  }

private:
  static asio::awaitable<IqReply> roster_get(std::shared_ptr<RosterService> svc, const api::IqRequest& req) {
    // Only the account itself reads its roster (RFC 6121 §2.3.3's rule for sets, applied to gets as well: "The
    // server MUST return a <forbidden/> stanza error to the client if the sender of the roster set is not
    // authorized to update the roster").
    if (req.from.bare() != req.to) {
      co_return IqReply::error("forbidden", "a roster belongs to its account");
    }
    const Jid user = req.to;
    const Jid full = req.from;
    const bool has_ver = req.payload.has_attr("ver");
    const std::string client_ver(req.payload.attr("ver"));
    std::shared_ptr<const Roster> roster;
    Service::Job job = [svc, user, full, &roster]() -> asio::awaitable<void> {
      // §2.1.6: a resource that requested the roster is an "interested resource" and gets pushes from now on.
      svc->mark_interested(full);
      roster = co_await svc->roster(user);
    };
    co_await svc->run(user, std::move(job));
    // RFC 6121 §2.6.3: "If the roster did not change since the version enumerated by the client, the server MUST
    // return an empty IQ-result" (changes after it arrive as pushes); otherwise the whole roster and its version.
    if (has_ver && client_ver == roster->version) {
      co_return IqReply::result();
    }
    Element query("query", std::string(ns));
    query.set_attr("ver", roster->version);
    for (const auto& [jid, item] : roster->items) {
      query.add(item.to_element());
    }
    co_return IqReply::result(std::move(query));
  }

  static asio::awaitable<IqReply> roster_set(api::ModuleContext& ctx, std::shared_ptr<RosterService> svc,
                                             const api::IqRequest& req) {
    // RFC 6121 §2.3.3: "The server MUST return a <forbidden/> stanza error to the client if the sender of the
    // roster set is not authorized to update the roster (where typically only an authenticated resource of the
    // account itself is authorized)."
    if (req.from.bare() != req.to) {
      co_return IqReply::error("forbidden", "a roster belongs to its account");
    }
    const Jid user = req.to;
    Item requested;
    if (auto error = check_set(req.payload, user, requested)) {
      co_return IqReply::error(std::move(*error));
    }
    std::optional<api::StanzaError> failure;
    Service::Job job = [&ctx, svc, user, requested, &failure]() -> asio::awaitable<void> {
      auto roster = co_await svc->roster(user);
      const Item* existing = roster->find(requested.jid);
      if (requested.subscription == Subscription::Remove) {
        if (existing == nullptr) {
          // §2.5.3: "If the value of the 'jid' attribute specifies an item that is not in the roster, then the
          // server MUST return an <item-not-found/> stanza error."
          failure = api::StanzaError::make("item-not-found");
          co_return;
        }
        Item old = *existing;
        co_await remove_item(ctx, svc, user, old);
        co_return;
      }
      Item item;
      if (existing != nullptr) {
        // An update changes what the client controls (name, groups) and keeps the subscription state.
        item = *existing;
      } else {
        if (roster->items.size() >= svc->max_items()) {
          // A per-account quota on stored items is a resource limit (RFC 6120 §8.3.3.18 resource-constraint,
          // as ejabberd answers a full offline queue); not-allowed would claim that roster sets are refused
          // altogether.
          failure = api::StanzaError::make("resource-constraint",
                                           "the roster is full (" + std::to_string(svc->max_items()) + " items)");
          co_return;
        }
        item.jid = requested.jid;
        // The contact may have asked for a subscription before the user added it ("None + Pending In").
        item.pending_in = roster->pending_in.contains(requested.jid);
      }
      item.name = requested.name;
      item.groups = requested.groups;
      // §2.3.2: "the server MUST ... send a roster push containing the new roster item to all of the user's
      // interested resources, including the resource that generated the roster set" (ItemChanged pushes).
      co_await svc->put(user, std::move(item));
    };
    co_await svc->run(user, std::move(job));
    if (failure) {
      co_return IqReply::error(std::move(*failure));
    }
    // §2.3.2: "The server MUST return an IQ stanza of type "result" to the connected resource that sent the roster
    // set."
    co_return IqReply::result();
  }

  // RFC 6121 §2.5.2: removing an item also ends the subscriptions in both directions: "the user's server MUST
  // ... send a presence stanza of type "unsubscribe" to the contact (in order to unsubscribe from the contact's
  // presence) [and] a presence stanza of type "unsubscribed" to the contact (in order to cancel the contact's
  // subscription to the user's presence)" — each as the item's state needs it.
  static asio::awaitable<void> remove_item(api::ModuleContext& ctx, std::shared_ptr<RosterService> svc, const Jid& user,
                                           const Item& old) {
    auto presence = [&](std::string type, const Jid& from) {
      Element p("presence", std::string(api::ns::client));
      p.set_attr("from", from.str());
      p.set_attr("to", old.jid.str());
      if (!type.empty()) {
        p.set_attr("type", std::move(type));
      }
      ctx.send(std::move(p));
    };
    const bool has_from = old.subscription == Subscription::From || old.subscription == Subscription::Both;
    const bool has_to = old.subscription == Subscription::To || old.subscription == Subscription::Both;
    if (has_from) {
      // §3.2.2: the contact no longer gets the user's presence, so the user is unavailable to it from now on.
      for (const auto& s : ctx.sessions(user)) {
        if (s.available) {
          presence("unavailable", s.jid);
        }
      }
    }
    if (has_from || old.pending_in) {
      presence("unsubscribed", user);
    }
    if (has_to || old.ask) {
      presence("unsubscribe", user);
    }
    if (old.pending_in) {
      co_await svc->drop_pending(user, old.jid);
    }
    co_await svc->remove(user, old.jid);
  }
};

} // namespace

std::unique_ptr<api::Module> make_module() {
  return std::make_unique<RosterModule>();
}

} // namespace cg::xep::roster
