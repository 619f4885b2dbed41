// XEP-0160: Best Practices for Handling Offline Messages 1.0.1 (2016-10-07), RFC 6121 §8.5.2.2, XEP-0203: Delayed
// Delivery 2.0 (2009-09-15).
//
// Storing: a Route::Bare handler (the router's rules have already sent a message to a bare JID, and a chat/normal
// message to a full JID that is not bound, there) takes a storable message when the account has no available
// resource of non-negative priority. Messages wait in one queue per account, so that they are appended in the
// order they arrived and the quota is counted exactly: a worker reads the stored count once, then issues
// append_async() calls in order (the store keeps append order and commits them in groups). The client's accept
// token travels with each message until its append has completed: XEP-0198 acknowledges only what is on disk.
//
// Delivering: when a session sends available presence with a non-negative priority for the first time in its life,
// a delivery pass for the account queries the queue (oldest first), sends each message to that full JID, then
// removes exactly those ids. Passes of one account never overlap. A message whose append completes after the pass
// took its snapshot is not lost: when an append completes while a session that already had its delivery is
// available, another pass runs. A message sent to a resource that has gone meanwhile falls back to the bare JID
// (RFC 6121 §8.5.3.2.1) and is stored again, keeping its original <delay/>.
#include "xep/xep0160_offline.hpp"

#include "server/api/datetime.hpp"
#include "server/api/xml.hpp"
#include "xep/xep0280_carbons.hpp"
#include "xep/xep0313_mam.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <deque>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace cg::xep::offline {

namespace asio = boost::asio;
using api::Element;
using api::Flow;
using api::Jid;

std::string_view message_type(const Element& message) {
  auto t = message.attr("type");
  if (t == "chat" || t == "groupchat" || t == "headline" || t == "error") {
    return t;
  }
  // RFC 6121 §5.2.2: "if an application receives a message with no 'type' attribute or the application does not
  // understand the value of the 'type' attribute provided, it MUST consider the message to be of type "normal"".
  return "normal";
}

namespace {
// A chat message that carries nothing but a XEP-0085 chat state (and what travels with any message: a thread, ids,
// hints).
bool chat_state_only(const Element& message) {
  bool state = false;
  for (const Element* c : message.children()) {
    if (c->ns() == "http://jabber.org/protocol/chatstates") {
      state = true;
    } else if (!(c->name() == "thread" && c->ns() == message.ns()) && c->ns() != mam::ns_sid &&
               c->ns() != mam::ns_hints) {
      return false;
    }
  }
  return state;
}
} // namespace

bool storable(const Element& message) {
  // XEP-0160 §4: normal and chat "SHOULD be stored offline"; groupchat, headline and error "SHOULD NOT be stored
  // offline".
  auto type = message_type(message);
  if (type != "chat" && type != "normal") {
    return false;
  }
  // "... with the exception of messages that contain only XEP-0085 content (such messages SHOULD NOT be stored
  // offline)" — RFC 6121 §8.5.2.2.1 then has the router answer them with <service-unavailable/>.
  if (type == "chat" && chat_state_only(message)) {
    return false;
  }
  // XEP-0334 §4: <no-store/> — "A message containing this hint should not be stored by a server either permanently
  // (as above) or temporarily, e.g. for later delivery to an offline client".
  if (mam::has_hint(message, "no-store")) {
    return false;
  }
  // Server-generated wrappers (a carbon copy, a MAM result) whose resource went away have nobody left to read them.
  return !carbons::is_carbon(message) && message.child("result", mam::ns) == nullptr;
}

void to_client_namespace(Element& el) {
  if (el.ns() == api::ns::server) {
    el.set_ns(std::string(api::ns::client));
  }
  for (auto& node : el.nodes()) {
    if (auto* child = std::get_if<Element>(&node)) {
      to_client_namespace(*child);
    }
  }
}

namespace {
const Element* own_delay(const Element& message, std::string_view host) {
  for (const Element* d : message.children("delay", ns_delay)) {
    if (d->attr("from") == host) {
      return d;
    }
  }
  return nullptr;
}
} // namespace

Element stored_form(Element message, std::string_view host, std::int64_t micros) {
  to_client_namespace(message);
  if (own_delay(message, host) == nullptr) {
    // XEP-0160 §3: "it is RECOMMENDED for the server to add a XEP-0203 extension to indicate that the message was
    // stored offline"; XEP-0203 §4: the stamp is "the time when the stanza was originally sent" (here: received)
    // and 'from' "the Jabber ID of the entity that originally sent the stanza or that delayed the delivery".
    Element& delay = message.add_child("delay", std::string(ns_delay));
    delay.set_attr("from", std::string(host));
    delay.set_attr("stamp", api::format_datetime(micros, 3));
    delay.add_text(std::string(delay_reason));
  }
  return message;
}

bool is_offline_delivery(const Element& message, const api::Origin& origin, std::string_view host) {
  return origin.kind == api::OriginKind::Local && own_delay(message, host) != nullptr;
}

namespace {

// A message waiting for its turn in its account's queue.
struct Pending {
  std::shared_ptr<const Element> stanza; // as received (for an error reply)
  Jid from;
  api::AcceptToken accept;
  std::int64_t received = 0;
};

struct UserQueue {
  std::deque<Pending> pending;
  bool worker = false;               // a worker coroutine owns the queue
  std::optional<std::size_t> stored; // messages stored or being stored (read once per queue lifetime)
  std::size_t in_flight = 0;         // appends issued, not completed
};

struct DeliveryState {
  bool running = false;
  bool again = false;
  Jid target;
};

struct State {
  State(api::ModuleContext& c, std::size_t max) : ctx(c), store(c.storage().archive(store_name)), max_messages(max) {}

  api::ModuleContext& ctx;
  std::shared_ptr<storage::ArchiveStore> store;
  const std::size_t max_messages;

  std::mutex mutex;
  std::unordered_map<std::string, UserQueue> queues;         // by account node
  std::unordered_set<Jid> delivered;                         // sessions that had their initial delivery
  std::unordered_map<std::string, DeliveryState> deliveries; // by account node
};

void bounce(State& st, const Element& stanza, api::StanzaError error) {
  if (api::is_error(stanza) || !stanza.has_attr("from")) {
    return; // RFC 6120 §8.3.1: never answer an error with an error
  }
  st.ctx.send(api::make_error_reply(stanza, error));
}

// The best session of `account` that already had its delivery and is available with priority >= 0, if any.
std::optional<Jid> delivered_target(State& st, const Jid& account) {
  std::optional<Jid> best;
  int best_priority = 0;
  auto sessions = st.ctx.sessions(account);
  std::lock_guard lock(st.mutex);
  for (const auto& s : sessions) {
    if (s.available && s.priority >= 0 && st.delivered.contains(s.jid) && (!best || s.priority > best_priority)) {
      best = s.jid;
      best_priority = s.priority;
    }
  }
  return best;
}

asio::awaitable<void> deliver(std::shared_ptr<State> st, std::string node, Jid target);

// Starts a delivery pass for `node` to `target`, or asks the running one to go round once more.
void request_delivery(const std::shared_ptr<State>& st, const std::string& node, const Jid& target) {
  {
    std::lock_guard lock(st->mutex);
    auto& d = st->deliveries[node];
    d.target = target;
    if (d.running) {
      d.again = true;
      return;
    }
    d.running = true;
  }
  asio::co_spawn(st->ctx.executor(), deliver(st, node, target), asio::detached);
}

asio::awaitable<void> deliver(std::shared_ptr<State> st, std::string node, Jid target) {
  api::ModuleContext& ctx = st->ctx;
  const std::string host = ctx.host();
  constexpr std::size_t batch = 500;
  while (true) {
    storage::ArchivePage page;
    std::size_t removed = 0;
    // Between batches the resource may have gone: its messages then stay where they are, in order, for the next
    // login (sending them would route them back here, behind newer ones).
    bool target_available = false;
    for (const auto& s : ctx.sessions(target.bare())) {
      target_available = target_available || (s.jid == target && s.available && s.priority >= 0);
    }
    if (!target_available) {
      std::lock_guard lock(st->mutex);
      auto& d = st->deliveries[node];
      if (!d.again) {
        st->deliveries.erase(node);
        co_return;
      }
      // Another resource asked for its delivery meanwhile.
      d.again = false;
      target = d.target;
      continue;
    }
    try {
      storage::ArchiveQuery q;
      q.limit = batch;
      std::function<void()> load = [&] { page = st->store->query(host, node, q); };
      co_await ctx.run_blocking(std::move(load));
      std::vector<std::string> ids;
      for (auto& item : page.items) {
        ids.push_back(item.id);
        std::string error;
        auto stanza = api::parse_xml(item.payload, &error);
        if (!stanza) {
          ctx.log().error("offline: dropping an unreadable stored message {} of {}@{}: {}", item.id, node, host, error);
          continue;
        }
        // XEP-0160 §3: "the server delivers the message to the resource that has sent that presence" — the
        // message keeps its <delay/> stamp, and is addressed to that resource so that it is routed there.
        stanza->set_attr("to", target.str());
        ctx.send(std::move(*stanza));
      }
      if (!ids.empty()) {
        storage::ArchiveQuery done;
        done.ids = std::move(ids);
        std::function<void()> remove = [&] { removed = st->store->remove(host, node, done); };
        co_await ctx.run_blocking(std::move(remove));
      }
      ctx.log().debug("offline: delivered {} message(s) to {}", page.items.size(), target.str());
    } catch (const std::exception& e) {
      ctx.log().error("offline: delivering the messages of {}@{} failed: {}", node, host, e.what());
      page.complete = true;
    }
    std::lock_guard lock(st->mutex);
    if (auto q = st->queues.find(node); q != st->queues.end() && q->second.stored) {
      *q->second.stored -= std::min(*q->second.stored, removed);
    }
    if (!page.complete) {
      continue; // more than one batch waiting
    }
    auto& d = st->deliveries[node];
    if (!d.again) {
      st->deliveries.erase(node);
      co_return;
    }
    d.again = false;
    target = d.target;
  }
}

// Removes the queue of `node` once nothing uses it any more (the stored count is then read afresh next time).
void release_queue_locked(State& st, const std::string& node) {
  auto it = st.queues.find(node);
  if (it != st.queues.end() && !it->second.worker && it->second.in_flight == 0 && it->second.pending.empty()) {
    st.queues.erase(it);
  }
}

asio::awaitable<void> run_queue(std::shared_ptr<State> st, std::string node) {
  api::ModuleContext& ctx = st->ctx;
  const std::string host = ctx.host();
  const Jid account = *Jid::from_parts(node, host, "");
  while (true) {
    bool need_count = false;
    {
      std::lock_guard lock(st->mutex);
      need_count = !st->queues[node].stored;
    }
    if (need_count) {
      std::size_t n = 0;
      try {
        std::function<void()> count = [&] { n = st->store->count(host, node); };
        co_await ctx.run_blocking(std::move(count));
      } catch (const std::exception& e) {
        ctx.log().error("offline: counting the stored messages of {}@{} failed: {}", node, host, e.what());
      }
      std::lock_guard lock(st->mutex);
      st->queues[node].stored = n;
    }
    std::deque<Pending> batch;
    {
      std::lock_guard lock(st->mutex);
      auto& q = st->queues[node];
      batch.swap(q.pending);
      if (batch.empty()) {
        q.worker = false;
        release_queue_locked(*st, node);
        co_return;
      }
    }
    for (auto& p : batch) {
      bool full = false;
      {
        std::lock_guard lock(st->mutex);
        auto& q = st->queues[node];
        if (*q.stored >= st->max_messages) {
          full = true;
        } else {
          ++*q.stored;
          ++q.in_flight;
        }
      }
      if (full) {
        // The quota (modules.offline.max_messages) is full: nothing is stored and the sender learns why. RFC 6120
        // §8.3.3.18 <resource-constraint/> (type wait): "the recipient or server is busy or lacks the system
        // resources necessary to service the request" — the sender may retry later. (XEP-0160 §3 suggests
        // <service-unavailable/> for a full queue; that would say offline storage does not exist at all.)
        api::StanzaError e = api::StanzaError::make("resource-constraint", "the recipient's offline storage is full");
        e.type = api::ErrorType::Wait;
        bounce(*st, *p.stanza, std::move(e));
        continue;
      }
      Element stored = stored_form(*p.stanza, host, p.received);
      storage::ArchiveItem item;
      item.when = p.received;
      item.with = p.from.bare_str();
      item.kind = std::string(message_type(stored));
      item.payload = api::to_xml(stored);
      auto original = p.stanza;
      auto accept = std::move(p.accept);
      // Runs on a storage thread (or inline, for the memory driver), once the item is on disk or failed.
      storage::ArchiveStore::AppendDone done = [st, node, account, original, accept](std::string /*id*/,
                                                                                     std::exception_ptr error) mutable {
        std::size_t on_disk = 0;
        {
          std::lock_guard lock(st->mutex);
          auto& q = st->queues[node];
          --q.in_flight;
          if (error && q.stored && *q.stored > 0) {
            --*q.stored;
          }
          on_disk = q.stored.value_or(0) - std::min(q.stored.value_or(0), q.in_flight);
          release_queue_locked(*st, node);
        }
        if (error) {
          std::string what = "unknown error";
          try {
            std::rethrow_exception(error);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          st->ctx.log().error("offline: storing a message for {} failed: {}", account.bare_str(), what);
          // Not stored, not delivered: the sender must not believe otherwise. RFC 6120 §8.3.3.6
          // <internal-server-error/>: "the server has experienced a misconfiguration or other internal error that
          // prevents it from processing the stanza" — which is what happened; <service-unavailable/> would claim
          // that the recipient does not take offline messages at all.
          asio::post(st->ctx.executor(), [st, original] {
            bounce(*st, *original, api::StanzaError::make("internal-server-error", "the message could not be stored"));
          });
        } else {
          st->ctx.log().debug("offline: stored a message for {} ({} on disk)", account.bare_str(), on_disk);
          if (auto target = delivered_target(*st, account)) {
            // The account came online (and had its delivery) while this append was under way: deliver it now.
            request_delivery(st, account.node(), *target);
          }
        }
        // Only now may the client's XEP-0198 acknowledgement go out: the message is on disk (or refused).
        accept.reset();
      };
      try {
        st->store->append_async(host, node, std::move(item), std::move(done));
      } catch (const std::exception& e) {
        // append_async itself threw (it should report through `done`): undo the count and answer.
        ctx.log().error("offline: storing a message for {}@{} failed: {}", node, host, e.what());
        {
          std::lock_guard lock(st->mutex);
          auto& q = st->queues[node];
          --q.in_flight;
          --*q.stored;
        }
        bounce(*st, *original, api::StanzaError::make("internal-server-error", "the message could not be stored"));
      }
    }
  }
}

class OfflineModule final : public api::Module {
public:
  api::ModuleInfo info() const override {
    return {"offline",
            "Offline messages: stored durably for accounts with no available resource, delivered at the next login",
            {{"XEP-0160", "1.0.1", "complete", ""},
             {"RFC 6121 §8.5.2.2", "RFC 6121", "complete", "chat and normal messages are stored offline"},
             {"XEP-0203", "2.0", "complete", "delay stamps on delivered offline messages"}},
            {},
            {api::opt_int("max_messages", 1000, 1, 1'000'000,
                          "Messages kept per account; beyond it senders get <resource-constraint/>")},
            true};
  }

  void load(api::ModuleContext& ctx) override {
    auto st = std::make_shared<State>(ctx, static_cast<std::size_t>(ctx.option<std::int64_t>("max_messages")));
    // XEP-0160 §5: "If a server supports offline message handling as described herein, it SHOULD return a
    // "msgoffline" feature".
    ctx.add_feature(std::string(feature));

    ctx.on_stanza(
        api::StanzaKind::Message, api::Route::Bare,
        [st](api::StanzaEvent& ev) {
          if (!storable(ev.stanza)) {
            return Flow::Continue; // the router's defaults apply (RFC 6121 §8.5.2.2)
          }
          // XEP-0160 §3: the server stores the message when "the intended recipient has no available resources
          // that have specified non-negative presence priority" (RFC 6121 §8.5.2.1.1: negative priority never
          // receives messages to the bare JID).
          for (const auto& s : st->ctx.sessions(ev.to)) {
            if (s.available && s.priority >= 0) {
              return Flow::Continue;
            }
          }
          const std::string node = ev.to.node();
          Pending p{std::make_shared<const Element>(std::move(ev.stanza)), ev.from, ev.accept, api::now_micros()};
          bool spawn = false;
          {
            std::lock_guard lock(st->mutex);
            auto& q = st->queues[node];
            q.pending.push_back(std::move(p));
            if (!q.worker) {
              q.worker = true;
              spawn = true;
            }
          }
          if (spawn) {
            asio::co_spawn(st->ctx.executor(), run_queue(st, node), asio::detached);
          }
          return Flow::Stop;
        },
        priority);

    // XEP-0160 §3: "When the recipient next sends non-negative available presence to the server, the server delivers
    // the message to the resource that has sent that presence."
    ctx.on_stanza(api::StanzaKind::Presence, api::Route::Self, [st](api::StanzaEvent& ev) {
      if (ev.stanza.has_attr("type")) {
        return Flow::Continue; // unavailable (or a subscription type without 'to'): not available presence
      }
      for (const auto& s : st->ctx.sessions(ev.from.bare())) {
        if (s.jid != ev.from) {
          continue;
        }
        if (!s.available || s.priority < 0) {
          return Flow::Continue;
        }
        bool first = false;
        {
          std::lock_guard lock(st->mutex);
          first = st->delivered.insert(ev.from).second;
        }
        if (first) {
          request_delivery(st, ev.from.node(), ev.from);
        }
      }
      return Flow::Continue;
    });
    ctx.on_session(api::SessionEventKind::Closed, [st](const api::SessionEvent& ev) {
      std::lock_guard lock(st->mutex);
      st->delivered.erase(ev.jid);
    });
  }
};

} // namespace

std::unique_ptr<api::Module> make_module() {
  return std::make_unique<OfflineModule>();
}

} // namespace cg::xep::offline
