// XEP-0313: Message Archive Management 1.1.1 (2024-02-20), XEP-0441: Message Archive Management Preferences 0.2.0,
// XEP-0359: Unique and Stable Stanza IDs 0.7.0, XEP-0297: Stanza Forwarding 1.0, XEP-0059 paging.
//
// Archiving happens in stanza handlers, which cannot wait for storage: the archive id is generated here, the
// <stanza-id/> goes into the message at once, and the item is appended in the background (append_async keeps the
// order of the calls). What reads an archive (a query, the metadata) first waits until every append to that archive
// issued before it arrived has completed: a client that received a message with a <stanza-id/> and then queries sees
// that message (XEP-0313 §3.5 adds the id "when a message is archived"). Appends in flight are counted per archive;
// their completions (on the storage writer thread) are handed to the module's executor, which releases the readers
// waiting for them. What the decision needs — the user's XEP-0441 preferences and, for default='roster', the
// user's roster — is kept in memory: every stored preference is read when the module loads, and the roster of each
// user whose default is 'roster' is read then, when the preference is set, and again when it is older than a
// minute; roster changes that modules announce (roster::ItemChanged) update it at once.
//
// Queries run on the storage worker (ModuleContext::run_blocking); their results go out as messages before the IQ
// result, which closes the query (XEP-0313 §4: "the server MUST send the IQ result after last query result").
#include "xep/xep0313_mam.hpp"

#include "server/api/datetime.hpp"
#include "server/api/xml.hpp"
#include "xep/rfc6121_roster.hpp"
#include "xep/xep0160_offline.hpp"
#include "xep/xep0280_carbons.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <mutex>
#include <set>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

namespace cg::xep::mam {

namespace asio = boost::asio;
namespace df = api::dataforms;
using api::Element;
using api::Flow;
using api::IqReply;
using api::Jid;
using api::StanzaError;

bool has_hint(const Element& message, std::string_view hint) {
  return message.child(hint, ns_hints) != nullptr;
}

bool archivable(const Element& message) {
  auto type = offline::message_type(message);
  if (type != "chat" && type != "normal") {
    return false;
  }
  // XEP-0334 §4: <no-permanent-store/> — "A message containing this hint should not be stored by a server in any
  // permanent or semi-permanent storage" (MAM); <no-store/> means neither permanently nor temporarily.
  if (has_hint(message, "no-permanent-store") || has_hint(message, "no-store")) {
    return false;
  }
  // Copies and results are views of messages that are (or are not) archived already.
  if (carbons::is_carbon(message) || message.child("result", ns) != nullptr) {
    return false;
  }
  if (message.child("body", message.ns()) != nullptr || has_hint(message, "store")) {
    return true;
  }
  // End-to-end encrypted messages (OMEMO, OpenPGP for XMPP) carry no readable body but are conversation.
  return message.child("encrypted", "eu.siacs.conversations.axolotl") != nullptr ||
         message.child("encrypted", "urn:xmpp:omemo:2") != nullptr ||
         message.child("openpgp", "urn:xmpp:openpgp:0") != nullptr;
}

// --- XEP-0441 preferences ------------------------------------------------------------------------------------------

std::string_view to_string(Prefs::Default d) {
  switch (d) {
  case Prefs::Default::Always:
    return "always";
  case Prefs::Default::Never:
    return "never";
  case Prefs::Default::Roster:
    return "roster";
  }
  return "always";
}

namespace {
std::optional<Prefs::Default> default_from_string(std::string_view s) {
  if (s == "always") {
    return Prefs::Default::Always;
  }
  if (s == "never") {
    return Prefs::Default::Never;
  }
  if (s == "roster") {
    return Prefs::Default::Roster;
  }
  return std::nullopt;
}
} // namespace

std::variant<Prefs, StanzaError> Prefs::parse(const Element& prefs) {
  if (!prefs.is("prefs", ns)) {
    return StanzaError::make("bad-request", "not a <prefs xmlns='urn:xmpp:mam:2'/>");
  }
  Prefs p;
  // XEP-0441 §2.1.1: "The 'default' attribute of the 'prefs' element MUST be one of the following values".
  auto d = default_from_string(prefs.attr("default"));
  if (!d) {
    return StanzaError::make("bad-request", "the 'default' of <prefs/> is not always, never or roster");
  }
  p.default_mode = *d;
  for (auto [name, list] : {std::pair{"always", &p.always}, std::pair{"never", &p.never}}) {
    const Element* el = prefs.child(name, ns);
    if (el == nullptr) {
      continue; // "If missing from the preferences, <always/> SHOULD be assumed by the server to be an empty list."
    }
    for (const Element* j : el->children("jid", ns)) {
      auto jid = Jid::parse(j->text());
      if (!jid) {
        return StanzaError::make("jid-malformed", "'" + j->text() + "' is not a JID");
      }
      if (std::find(list->begin(), list->end(), jid->str()) == list->end()) {
        list->push_back(jid->str());
      }
    }
  }
  return p;
}

Element Prefs::to_element() const {
  Element el("prefs", std::string(ns));
  el.set_attr("default", std::string(to_string(default_mode)));
  // XEP-0441 §2.1: "The <always> and <never> MUST also be present (even if empty)".
  for (auto [name, list] : {std::pair{"always", &always}, std::pair{"never", &never}}) {
    Element& l = el.add_child(name);
    for (const auto& j : *list) {
      l.add_text_child("jid", j);
    }
  }
  return el;
}

std::optional<bool> Prefs::listed(const Jid& target) const {
  auto matches = [&](const std::vector<std::string>& list) {
    for (const auto& entry : list) {
      auto j = Jid::parse(entry);
      if (!j) {
        continue;
      }
      // XEP-0441 §2.4: "If the listed JID contains a resource, compare against the target JID as-is. If the listed
      // JID has no resource (it is a bare JID) then first strip any resource from the target JID prior to
      // comparison."
      if (j->has_resource() ? *j == target : *j == target.bare()) {
        return true;
      }
    }
    return false;
  };
  if (matches(never)) {
    return false;
  }
  if (matches(always)) {
    return true;
  }
  return std::nullopt;
}

// --- queries -------------------------------------------------------------------------------------------------------

df::Form query_form() {
  df::Form f;
  f.type = df::FormType::Form;
  // XEP-0313 §4.1: "The hidden FORM_TYPE field MUST be set to this protocol's namespace, 'urn:xmpp:mam:2'"; §4.1.5:
  // "the types of these fields MUST be 'jid-single', 'text-single' and 'text-single' respectively".
  f.add(df::Field::hidden("FORM_TYPE", std::string(ns)));
  f.add(df::Field::make(df::FieldType::JidSingle, "with"));
  f.add(df::Field::make(df::FieldType::TextSingle, "start"));
  f.add(df::Field::make(df::FieldType::TextSingle, "end"));
  f.add(df::Field::make(df::FieldType::TextSingle, "before-id"));
  f.add(df::Field::make(df::FieldType::TextSingle, "after-id"));
  // "the server MUST include a XEP-0122 <validate/> element that signals the list is open to arbitrary values".
  df::Validation open;
  open.datatype = "xs:string";
  open.method = df::Validation::Method::Open;
  f.add(df::Field::make(df::FieldType::ListMulti, "ids")).with_validation(open);
  return f;
}

std::variant<Query, StanzaError> Query::parse(const Element& query) {
  if (!query.is("query", ns)) {
    return StanzaError::make("bad-request", "not a <query xmlns='urn:xmpp:mam:2'/>");
  }
  Query q;
  q.queryid = std::string(query.attr("queryid"));
  if (const Element* x = query.child("x", df::ns)) {
    auto parsed = df::Form::parse(*x);
    if (auto* err = std::get_if<StanzaError>(&parsed)) {
      return std::move(*err);
    }
    const auto& form = std::get<df::Form>(parsed);
    df::ValidateOptions options;
    options.allow_unknown_fields = false;
    if (auto problem = df::validate(query_form(), form, options)) {
      if (problem->problem == df::Problem::UnknownField) {
        // XEP-0313 §4.1.5: "If a client includes a form field that the server does not recognise, the server MUST
        // respond with a 'feature-not-implemented' error."
        return StanzaError::make("feature-not-implemented", "unknown field '" + problem->var + "'");
      }
      return problem->error;
    }
    // A field's value, without the whitespace around it ("" = absent).
    auto value = [&](std::string_view var) -> std::optional<std::string> {
      const df::Field* f = form.field(var);
      if (f == nullptr || f->values.empty()) {
        return std::nullopt;
      }
      std::string_view v = f->values.front();
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t' || v.front() == '\n' || v.front() == '\r')) {
        v.remove_prefix(1);
      }
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\n' || v.back() == '\r')) {
        v.remove_suffix(1);
      }
      if (v.empty()) {
        return std::nullopt;
      }
      return std::string(v);
    };
    if (auto with = value("with")) {
      q.with = Jid::parse(*with);
      if (!q.with) {
        return StanzaError::make("not-acceptable", "'with' is not a JID");
      }
    }
    for (auto [var, out] : {std::pair{"start", &q.start}, std::pair{"end", &q.end}}) {
      if (auto text = value(var)) {
        // XEP-0313 §4.1.2: "The 'start' and 'end' fields, if provided, MUST contain timestamps formatted according
        // to the DateTime profile defined in XEP-0082".
        *out = api::parse_datetime(*text);
        if (!*out) {
          return StanzaError::make("not-acceptable", std::string("'") + var + "' is not a XEP-0082 DateTime");
        }
      }
    }
    q.after_id = value("after-id");
    q.before_id = value("before-id");
    if (const df::Field* ids = form.field("ids")) {
      for (const auto& id : ids->values) {
        if (!id.empty() && std::find(q.ids.begin(), q.ids.end(), id) == q.ids.end()) {
          q.ids.push_back(id);
        }
      }
    }
  }
  if (const Element* set = query.child("set", api::rsm::ns)) {
    auto parsed = api::rsm::Request::parse(*set);
    if (auto* err = std::get_if<StanzaError>(&parsed)) {
      return std::move(*err);
    }
    q.rsm = std::get<api::rsm::Request>(parsed);
    // XEP-0313 §4.3.2: "RSM does not define the behaviour of including both <before> and <after> in the same
    // request. To retrieve a range of items between two known ids, use before-id and after-id in the query form".
    if (q.rsm.after && q.rsm.before) {
      return StanzaError::make("bad-request", "both <before/> and <after/>: use before-id and after-id instead");
    }
  }
  q.flip_page = query.child("flip-page", ns) != nullptr;
  return q;
}

namespace {

// XEP-0313 §3: "A server-assigned UID that MUST be unpredictable and unique within the archive"; XEP-0359 §4 "The
// values of the 'id' attribute SHOULD be unpredictable". 72 random bits from the kernel (getrandom: no user-space
// state a forked process could share) after 48 bits of milliseconds, in the same 20-character form as the ids the
// archive store makes itself: new ids sort last, so appends touch few pages of the store's id index.
std::string new_id() {
  std::array<unsigned char, 15> bytes{};
  const auto now =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  for (int i = 0; i < 6; ++i) {
    bytes[static_cast<std::size_t>(i)] = static_cast<unsigned char>(static_cast<std::uint64_t>(now) >> (40 - 8 * i));
  }
  std::size_t got = 6;
  while (got < bytes.size()) {
    ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw std::runtime_error(std::string("getrandom failed: ") + std::strerror(errno));
    }
    got += static_cast<std::size_t>(n);
  }
  // base64url's characters in ASCII order, so that ids sort as their bits do.
  static constexpr std::string_view alphabet = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
  std::string id;
  id.reserve(20);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{bytes[i]} << 16) | (std::uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    for (int shift = 18; shift >= 0; shift -= 6) {
      id.push_back(alphabet[(v >> shift) & 63]);
    }
  }
  return id;
}

// Removes every <stanza-id xmlns='urn:xmpp:sid:0' by=`by`/> child.
void strip_stanza_ids(Element& message, const std::string& by) {
  auto& nodes = message.nodes();
  std::erase_if(nodes, [&](const cg::xml::Node& n) {
    const auto* el = std::get_if<Element>(&n);
    return el != nullptr && el->is("stanza-id", ns_sid) && el->attr("by") == by;
  });
}

bool has_stanza_id(const Element& message, const std::string& by) {
  for (const Element* s : message.children("stanza-id", ns_sid)) {
    if (s->attr("by") == by) {
      return true;
    }
  }
  return false;
}

// A XEP-0082 DateTime for an archive time: to the microsecond (archive order is finer than a second, and clients
// that page by time need the exact value), without a fraction when there is none.
std::string stamp(std::int64_t micros) {
  return api::format_datetime(micros, micros % 1'000'000 == 0 ? 0 : 6);
}

struct RosterCache {
  std::unordered_set<std::string> contacts; // bare JIDs
  std::chrono::steady_clock::time_point loaded;
  bool loading = false;
};

constexpr auto kRosterRefresh = std::chrono::seconds(60);
constexpr auto kPurgeInterval = std::chrono::hours(24);
// The longest a reader waits for the appends in flight before it reads what the archive holds (a storage that slow
// is failing; the reader is answered rather than kept waiting).
constexpr auto kAppendWait = std::chrono::seconds(15);

// A reader of an archive waiting for appends in flight.
struct AppendWaiter {
  std::uint64_t upto = 0;         // every append with a sequence number <= upto must have completed
  std::function<void(bool)> wake; // resumes the reader (true: the appends completed, false: timed out); called
                                  // once, by whoever took the waiter out of its archive's list
};

// The appends in flight to one archive and the readers waiting for them.
struct Appends {
  std::set<std::uint64_t> pending; // sequence numbers, issued in increasing order (completions come in any order)
  std::vector<std::shared_ptr<AppendWaiter>> waiters;
};

struct State {
  explicit State(api::ModuleContext& c)
      : ctx(c), store(c.storage().archive(store_name)), prefs_store(c.storage().keyval(mam::prefs_store)) {}

  api::ModuleContext& ctx;
  std::shared_ptr<storage::ArchiveStore> store;
  std::shared_ptr<storage::KeyValStore> prefs_store;
  std::size_t max_page = 250;
  std::size_t max_messages = 0;
  std::int64_t retention_days = 0;
  Prefs::Default server_default = Prefs::Default::Always;

  std::mutex mutex;
  std::unordered_map<std::string, Prefs> prefs; // users with stored preferences
  std::unordered_map<std::string, RosterCache> rosters;
  std::unordered_set<std::string> trimming;
  std::optional<std::chrono::steady_clock::time_point> last_purge;
  bool purging = false;

  std::mutex appends_mutex;
  std::uint64_t last_append = 0;                    // the sequence number of the latest append issued
  std::unordered_map<std::string, Appends> appends; // by user; only archives with appends in flight or waiters
};

// --- appends in flight ---------------------------------------------------------------------------------------------

// Registers an append to `node`'s archive about to be issued; returns its sequence number.
std::uint64_t begin_append(State& st, const std::string& node) {
  std::lock_guard lock(st.appends_mutex);
  const std::uint64_t seq = ++st.last_append;
  st.appends[node].pending.insert(seq);
  return seq;
}

// The append `seq` to `node`'s archive has completed (stored or failed): wakes the readers that waited only for it
// and earlier ones.
void end_append(State& st, const std::string& node, std::uint64_t seq) {
  std::vector<std::shared_ptr<AppendWaiter>> ready;
  {
    std::lock_guard lock(st.appends_mutex);
    auto it = st.appends.find(node);
    if (it == st.appends.end()) {
      return;
    }
    Appends& a = it->second;
    a.pending.erase(seq);
    const std::uint64_t oldest = a.pending.empty() ? std::numeric_limits<std::uint64_t>::max() : *a.pending.begin();
    std::vector<std::shared_ptr<AppendWaiter>> still;
    for (auto& w : a.waiters) {
      if (w->upto < oldest) {
        ready.push_back(std::move(w));
      } else {
        still.push_back(std::move(w));
      }
    }
    a.waiters = std::move(still);
    if (a.pending.empty() && a.waiters.empty()) {
      st.appends.erase(it);
    }
  }
  for (const auto& w : ready) {
    w->wake(true);
  }
}

// Takes `w` out of `node`'s list; false when it is no longer there (woken already).
bool take_waiter(State& st, const std::string& node, const std::shared_ptr<AppendWaiter>& w) {
  std::lock_guard lock(st.appends_mutex);
  auto it = st.appends.find(node);
  if (it == st.appends.end()) {
    return false;
  }
  auto& waiters = it->second.waiters;
  auto found = std::find(waiters.begin(), waiters.end(), w);
  if (found == waiters.end()) {
    return false;
  }
  waiters.erase(found);
  if (it->second.pending.empty() && waiters.empty()) {
    st.appends.erase(it);
  }
  return true;
}

// Completes (with true) once every append to `node`'s archive issued before the call has completed, stored or
// failed — at once when none is in flight — or after kAppendWait (with false). Completion handlers run on their
// associated executor (a coroutine resumes on its own).
template <typename Token>
auto async_wait_appends(std::shared_ptr<State> st, std::string node, Token&& token) {
  auto initiate = [](auto handler, std::shared_ptr<State> st, std::string node) {
    using Handler = std::decay_t<decltype(handler)>;
    auto h = std::make_shared<Handler>(std::move(handler));
    auto resume = [st, h](bool settled) {
      auto ex = asio::get_associated_executor(*h, st->ctx.executor());
      asio::post(ex, [h, settled] { (*h)(settled); });
    };
    std::unique_lock lock(st->appends_mutex);
    auto it = st->appends.find(node);
    if (it == st->appends.end() || it->second.pending.empty()) {
      lock.unlock();
      resume(true);
      return;
    }
    // The bound is a timer on a strand of its own: whoever wakes the waiter (on any thread) cancels it there.
    auto strand = asio::make_strand(st->ctx.executor());
    auto timer = std::make_shared<asio::steady_timer>(strand, kAppendWait);
    auto w = std::make_shared<AppendWaiter>();
    w->upto = st->last_append;
    w->wake = [resume, strand, timer](bool settled) {
      asio::post(strand, [timer] { timer->cancel(); });
      resume(settled);
    };
    it->second.waiters.push_back(w);
    // Posted before the lock is released, so before any cancel a waker can post (the strand keeps their order).
    asio::post(strand, [st, node, w, timer] {
      timer->async_wait([st, node, w](const boost::system::error_code& ec) {
        if (!ec && take_waiter(*st, node, w)) {
          w->wake(false);
        }
      });
    });
  };
  return asio::async_initiate<Token, void(bool)>(std::move(initiate), token, std::move(st), std::move(node));
}

// Waits (bounded) until the appends to `node`'s archive issued so far have completed: what the reader reads then
// includes every message whose <stanza-id/> has been handed out.
asio::awaitable<void> settle_appends(std::shared_ptr<State> st, std::string node) {
  const bool settled = co_await async_wait_appends(st, node, asio::use_awaitable);
  if (!settled) {
    st->ctx.log().warn("mam: archiving for {}@{} has not completed within {} s; the query reads what is stored", node,
                       st->ctx.host(), std::chrono::duration_cast<std::chrono::seconds>(kAppendWait).count());
  }
}

// --- the archiving decision ----------------------------------------------------------------------------------------

asio::awaitable<void> load_roster(std::shared_ptr<State> st, std::string node) {
  std::vector<roster::Item> items;
  bool ok = true;
  try {
    roster::Store rs(st->ctx.storage());
    const std::string host = st->ctx.host();
    std::function<void()> job = [&] { items = rs.items(host, node); };
    co_await st->ctx.run_blocking(std::move(job));
  } catch (const std::exception& e) {
    ok = false;
    st->ctx.log().error("mam: reading the roster of {}@{} failed: {}", node, st->ctx.host(), e.what());
  }
  std::lock_guard lock(st->mutex);
  auto& cache = st->rosters[node];
  cache.loading = false;
  if (ok) {
    cache.contacts.clear();
    for (const auto& item : items) {
      cache.contacts.insert(item.jid.bare_str());
    }
    cache.loaded = std::chrono::steady_clock::now();
  }
}

// XEP-0441: whether a message between `user` and `target` is archived. Never blocks: for default='roster' it uses
// the roster in memory and refreshes it in the background when it is old.
bool should_archive(const std::shared_ptr<State>& st, const Jid& user, const Jid& target) {
  bool refresh = false;
  bool result = false;
  {
    std::lock_guard lock(st->mutex);
    auto it = st->prefs.find(user.node());
    const Prefs* p = it == st->prefs.end() ? nullptr : &it->second;
    const Prefs::Default mode = p != nullptr ? p->default_mode : st->server_default;
    if (auto listed = p != nullptr ? p->listed(target) : std::nullopt) {
      return *listed;
    }
    switch (mode) {
    case Prefs::Default::Always:
      return true;
    case Prefs::Default::Never:
      return false;
    case Prefs::Default::Roster: {
      // XEP-0441 §2.4: "When comparing the message target JID against the user's roster ... the comparison MUST
      // use the bare target JID".
      auto& cache = st->rosters[user.node()];
      result = cache.contacts.contains(target.bare_str());
      if (!cache.loading && std::chrono::steady_clock::now() - cache.loaded > kRosterRefresh) {
        cache.loading = true;
        refresh = true;
      }
      break;
    }
    }
  }
  if (refresh) {
    asio::co_spawn(st->ctx.executor(), load_roster(st, user.node()), asio::detached);
  }
  return result;
}

// --- retention and limits ------------------------------------------------------------------------------------------

// Removes what is older than modules.mam.retention_days, at most once a day (also right after start, at the first
// archive write or query).
asio::awaitable<void> purge_if_due(std::shared_ptr<State> st) {
  if (st->retention_days <= 0) {
    co_return;
  }
  {
    std::lock_guard lock(st->mutex);
    const auto now = std::chrono::steady_clock::now();
    if (st->purging || (st->last_purge && now - *st->last_purge < kPurgeInterval)) {
      co_return;
    }
    st->purging = true;
  }
  std::size_t removed = 0;
  try {
    const std::int64_t cutoff = api::now_micros() - st->retention_days * 86'400LL * 1'000'000LL;
    const std::string host = st->ctx.host();
    std::function<void()> job = [&] { removed = st->store->remove_older_than(host, cutoff); };
    co_await st->ctx.run_blocking(std::move(job));
    if (removed > 0) {
      st->ctx.log().info("mam: removed {} archived message(s) older than {} day(s)", removed, st->retention_days);
    }
  } catch (const std::exception& e) {
    st->ctx.log().error("mam: the retention purge failed: {}", e.what());
  }
  std::lock_guard lock(st->mutex);
  st->purging = false;
  st->last_purge = std::chrono::steady_clock::now();
}

// Keeps at most modules.mam.max_messages per user. XEP-0313 §3.2: "Any such deleted messages MUST be the oldest in
// the archive, i.e. it is not permitted to create gaps or "holes" in the archive."
asio::awaitable<void> trim(std::shared_ptr<State> st, std::string node) {
  const std::string host = st->ctx.host();
  try {
    std::function<void()> job = [&] {
      const std::size_t n = st->store->count(host, node);
      if (n <= st->max_messages) {
        return;
      }
      storage::ArchiveQuery oldest;
      oldest.limit = n - st->max_messages;
      auto page = st->store->query(host, node, oldest);
      storage::ArchiveQuery doomed;
      for (auto& item : page.items) {
        doomed.ids.push_back(std::move(item.id));
      }
      if (!doomed.ids.empty()) {
        st->store->remove(host, node, doomed);
      }
    };
    co_await st->ctx.run_blocking(std::move(job));
  } catch (const std::exception& e) {
    st->ctx.log().error("mam: trimming the archive of {}@{} failed: {}", node, host, e.what());
  }
  std::lock_guard lock(st->mutex);
  st->trimming.erase(node);
}

void schedule_trim(const std::shared_ptr<State>& st, const std::string& node) {
  if (st->max_messages == 0) {
    return;
  }
  {
    std::lock_guard lock(st->mutex);
    if (!st->trimming.insert(node).second) {
      return;
    }
  }
  asio::co_spawn(st->ctx.executor(), trim(st, node), asio::detached);
}

// Archives `ev.stanza` for `user` (bare) with `other` as the other party, and adds the <stanza-id/>.
void archive(const std::shared_ptr<State>& st, api::StanzaEvent& ev, const Jid& user, const Jid& other) {
  const std::string by = user.bare_str();
  const std::string id = new_id();
  // XEP-0313 §3: "The entire original stanza SHOULD be stored" — as it arrived, without this archive's id.
  Element copy = ev.stanza;
  strip_stanza_ids(copy, by);
  offline::to_client_namespace(copy);
  storage::ArchiveItem item;
  item.id = id;
  item.when = api::now_micros();
  item.with = other.bare_str();
  item.kind = std::string(offline::message_type(copy));
  item.payload = api::to_xml(copy);
  // XEP-0313 §3.5: "When a message is archived, the server MUST add an <stanza-id/> element ... The 'by' attribute
  // MUST be set to the address of the archive. For regular users that’s the bare JID of the account". XEP-0359 §4:
  // "Stanzas MUST posses, in the direct child level of the stanza, at most one <stanza-id/> extension element with
  // the same XMPP address as value of the 'by' attribute" — any other with this 'by' has been removed already.
  Element& sid = ev.stanza.add_child("stanza-id", std::string(ns_sid));
  sid.set_attr("id", id);
  sid.set_attr("by", by);
  const std::string node = user.node();
  // Counted in flight before the message goes on (a reader from now on waits for it) until its completion, stored or
  // failed, has reached the module's executor. Exactly once: `done` and a throwing append_async race for `finished`.
  const std::uint64_t seq = begin_append(*st, node);
  auto finished = std::make_shared<std::atomic<bool>>(false);
  storage::ArchiveStore::AppendDone done = [st, node, seq, finished](std::string, std::exception_ptr error) {
    if (finished->exchange(true)) {
      return;
    }
    // On the storage writer thread: only hand over.
    asio::post(st->ctx.executor(), [st, node, seq, error] {
      end_append(*st, node, seq);
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          st->ctx.log().error("mam: archiving a message of {}@{} failed: {}", node, st->ctx.host(), e.what());
        } catch (...) {
          st->ctx.log().error("mam: archiving a message of {}@{} failed", node, st->ctx.host());
        }
        return;
      }
      schedule_trim(st, node);
    });
  };
  try {
    st->store->append_async(st->ctx.host(), node, std::move(item), std::move(done));
  } catch (const std::exception& e) {
    st->ctx.log().error("mam: archiving a message of {}@{} failed: {}", node, st->ctx.host(), e.what());
    if (!finished->exchange(true)) {
      end_append(*st, node, seq);
    }
  }
  if (st->retention_days > 0) {
    asio::co_spawn(st->ctx.executor(), purge_if_due(st), asio::detached);
  }
}

// --- query execution -----------------------------------------------------------------------------------------------

struct Result {
  std::vector<storage::ArchiveItem> items; // oldest first
  bool complete = false;
  std::optional<std::size_t> count;
  std::optional<std::size_t> first_index;
};

bool matches_full_jid(const storage::ArchiveItem& item, const Jid& with) {
  auto stanza = api::parse_xml(item.payload);
  if (!stanza) {
    return false;
  }
  // XEP-0313 §4.1.1: "A message in a user's archive matches if the JID matches either the to or from of the
  // message" (a full JID: exactly).
  for (auto attr : {"from", "to"}) {
    if (auto j = Jid::parse(stanza->attr(attr)); j && *j == with) {
      return true;
    }
  }
  return false;
}

// A page of a query whose 'with' is a full JID: the store filters by the bare JID and this scans its pages for exact
// matches (at most kScanLimit items per query; beyond that the page ends early and is not complete). No <count/>.
Result scan_full_jid(storage::ArchiveStore& store, const std::string& host, const std::string& node,
                     storage::ArchiveQuery q, const Jid& with, std::size_t limit) {
  constexpr std::size_t kChunk = 200;
  constexpr std::size_t kScanLimit = 20'000;
  Result r;
  std::vector<storage::ArchiveItem> found;
  const bool backwards = q.from_end;
  std::size_t scanned = 0;
  bool exhausted = false;
  q.limit = kChunk;
  while (found.size() <= limit && scanned < kScanLimit) {
    auto page = store.query(host, node, q);
    scanned += page.items.size();
    if (backwards) {
      for (auto it = page.items.rbegin(); it != page.items.rend() && found.size() <= limit; ++it) {
        if (matches_full_jid(*it, with)) {
          found.push_back(*it);
        }
      }
    } else {
      for (auto& item : page.items) {
        if (found.size() > limit) {
          break;
        }
        if (matches_full_jid(item, with)) {
          found.push_back(item);
        }
      }
    }
    if (page.complete || page.items.empty()) {
      exhausted = true;
      break;
    }
    if (backwards) {
      q.before_id = page.items.front().id;
    } else {
      q.after_id = page.items.back().id;
    }
  }
  r.complete = exhausted && found.size() <= limit;
  if (found.size() > limit) {
    found.resize(limit);
  }
  if (backwards) {
    std::reverse(found.begin(), found.end());
  }
  r.items = std::move(found);
  return r;
}

// Checks that `id` is in the archive (XEP-0313 §4.1.3 / §4.3.2: an unknown id is item-not-found).
void require_id(storage::ArchiveStore& store, const std::string& host, const std::string& node, const std::string& id) {
  storage::ArchiveQuery q;
  q.ids = {id};
  q.limit = 0;
  if (store.query(host, node, q).total != 1) {
    throw storage::StorageError("no archived message with id '" + id + "'", storage::StorageError::Kind::NotFound);
  }
}

// Runs on the storage worker.
Result run_query(storage::ArchiveStore& store, const std::string& host, const std::string& node, const Query& query,
                 std::size_t limit) {
  storage::ArchiveQuery q;
  if (query.with) {
    q.with = query.with->bare_str();
  }
  q.start = query.start;
  q.end = query.end;
  q.ids = query.ids;
  if (!query.ids.empty()) {
    // XEP-0313 §4.1.3: "If any UID requested by the client in any of the 'before-id', 'after-id' or 'ids' form
    // fields is not present in the archive, the server MUST return an item-not-found error".
    storage::ArchiveQuery exist;
    exist.ids = query.ids;
    exist.limit = 0;
    if (store.query(host, node, exist).total != query.ids.size()) {
      throw storage::StorageError("an id in 'ids' is not in the archive", storage::StorageError::Kind::NotFound);
    }
  }
  // The form's after-id/before-id bound the range; RSM's <after/>/<before/> page inside it. When both name a bound
  // on one side, the tighter one applies.
  q.after_id = query.after_id;
  q.before_id = query.before_id;
  if (query.after_id) {
    require_id(store, host, node, *query.after_id);
  }
  if (query.before_id) {
    require_id(store, host, node, *query.before_id);
  }
  if (query.rsm.after) {
    require_id(store, host, node, *query.rsm.after);
    if (!q.after_id) {
      q.after_id = query.rsm.after;
    } else {
      storage::ArchiveQuery later;
      later.ids = {*query.rsm.after};
      later.after_id = q.after_id;
      later.limit = 1;
      if (!store.query(host, node, later).items.empty()) {
        q.after_id = query.rsm.after;
      }
    }
  }
  if (query.rsm.before && !query.rsm.before->empty()) {
    require_id(store, host, node, *query.rsm.before);
    if (!q.before_id) {
      q.before_id = query.rsm.before;
    } else {
      storage::ArchiveQuery earlier;
      earlier.ids = {*query.rsm.before};
      earlier.before_id = q.before_id;
      earlier.limit = 1;
      if (!store.query(host, node, earlier).items.empty()) {
        q.before_id = query.rsm.before;
      }
    }
  }
  // XEP-0313 §4.3.3: "To request the page at the end of the archive ... include just an empty <before/> element";
  // a <before>UID</before> pages backwards as well (XEP-0059 §2.5).
  q.from_end = query.rsm.before.has_value();

  if (query.with && query.with->has_resource()) {
    return scan_full_jid(store, host, node, q, *query.with, limit);
  }
  // The RSM count and index describe the result set as the form defines it; with after-id/before-id in the form
  // the store's count would ignore that range, so they are left out then.
  const bool countable = !query.after_id && !query.before_id;
  Result r;
  if (query.rsm.index && !query.rsm.after && !query.rsm.before) {
    // XEP-0059 §2.6: the page that starts at item `index`.
    q.limit = *query.rsm.index + limit;
    auto page = store.query(host, node, q);
    const std::size_t skip = std::min(*query.rsm.index, page.items.size());
    r.items.assign(std::make_move_iterator(page.items.begin() + static_cast<std::ptrdiff_t>(skip)),
                   std::make_move_iterator(page.items.end()));
    r.complete = page.complete;
    if (countable) {
      r.count = page.total;
      r.first_index = *query.rsm.index;
    }
    return r;
  }
  q.limit = limit;
  auto page = store.query(host, node, q);
  r.items = std::move(page.items);
  r.complete = page.complete;
  if (countable) {
    r.count = page.total;
    r.first_index = page.first_index;
  }
  return r;
}

constexpr std::size_t kMaxIndex = 100'000;

asio::awaitable<IqReply> handle_query(std::shared_ptr<State> st, const api::IqRequest& req) {
  auto parsed = Query::parse(req.payload);
  if (auto* err = std::get_if<StanzaError>(&parsed)) {
    co_return IqReply::error(std::move(*err));
  }
  const Query query = std::move(std::get<Query>(parsed));
  if (query.rsm.index && *query.rsm.index > kMaxIndex) {
    co_return IqReply::error("feature-not-implemented", "an RSM <index/> beyond 100000");
  }
  // XEP-0313 §4.3.1: "To conserve resources, a server MAY place a reasonable limit on how many stanzas may be
  // pushed to a client in one request" (modules.mam.max_page_size).
  const std::size_t limit = query.rsm.max ? std::min(*query.rsm.max, st->max_page) : st->max_page;
  co_await purge_if_due(st);

  const std::string host = st->ctx.host();
  const std::string node = req.to.node();
  // XEP-0313 §3.5: the <stanza-id/> is added "when a message is archived" — every id handed out before this query
  // arrived names a message the query finds (also as an RSM <after/> or an after-id).
  co_await settle_appends(st, node);
  Result result;
  std::optional<StanzaError> failure;
  std::function<void()> job = [&] {
    try {
      result = run_query(*st->store, host, node, query, limit);
    } catch (const storage::StorageError& e) {
      if (e.kind() != storage::StorageError::Kind::NotFound) {
        throw;
      }
      // XEP-0313 §4.3.2: "If the UID contained within an <after> or <before> element is not present in the
      // archive, the server MUST return an item-not-found error in response to the query."
      failure = StanzaError::make("item-not-found", e.what());
    }
  };
  co_await st->ctx.run_blocking(std::move(job));
  if (failure) {
    co_return IqReply::error(std::move(*failure));
  }

  // XEP-0313 §4.2: each result is a message with <result queryid id><forwarded><delay stamp/><message/></forwarded>.
  std::vector<const storage::ArchiveItem*> order;
  for (const auto& item : result.items) {
    order.push_back(&item);
  }
  if (query.flip_page) {
    // XEP-0313 §4.3.4: "flipping a page does not affect what results are returned in response to the query. It
    // only affects the order in which they are transmitted".
    std::reverse(order.begin(), order.end());
  }
  for (const auto* item : order) {
    std::string error;
    auto original = api::parse_xml(item->payload, &error);
    if (!original) {
      st->ctx.log().error("mam: unreadable archived message {} of {}@{}: {}", item->id, node, host, error);
      continue;
    }
    Element msg("message", std::string(api::ns::client));
    msg.set_attr("to", req.from.str());
    msg.set_attr("from", req.to.bare_str());
    msg.set_attr("id", new_id());
    Element& res = msg.add_child("result", std::string(ns));
    if (!query.queryid.empty()) {
      // "If the client gave a 'queryid' attribute in its initial query, the server MUST also include that in this
      // result element."
      res.set_attr("queryid", query.queryid);
    }
    // "The result messages MUST contain a <result/> element with an 'id' attribute that gives the current
    // message's archive UID".
    res.set_attr("id", item->id);
    Element& fwd = res.add_child("forwarded", std::string(ns_forward));
    // "The value of the 'stamp' attribute MUST be the time the message was originally received by the forwarding
    // entity."
    fwd.add_child("delay", std::string(ns_delay)).set_attr("stamp", stamp(item->when));
    fwd.add(std::move(*original));
    st->ctx.send(std::move(msg));
  }

  // XEP-0313 §4: "The final IQ result response MUST include an RSM <set/> element, wrapped into a <fin/> element".
  Element fin("fin", std::string(ns));
  if (result.complete) {
    // §4.3.2: "When the results returned by the server are complete ... the server MUST include a 'complete'
    // attribute on the <fin> element, with a value of 'true'".
    fin.set_attr("complete", "true");
  }
  api::rsm::Response set;
  if (!result.items.empty()) {
    set.first = result.items.front().id;
    set.first_index = result.first_index;
    set.last = result.items.back().id;
  }
  set.count = result.count;
  fin.add(set.to_element());
  co_return IqReply::result(std::move(fin));
}

asio::awaitable<IqReply> handle_metadata(std::shared_ptr<State> st, const api::IqRequest& req) {
  const std::string host = st->ctx.host();
  const std::string node = req.to.node();
  co_await settle_appends(st, node); // the last message delivered is the last one here
  storage::ArchivePage first;
  storage::ArchivePage last;
  std::function<void()> job = [&] {
    storage::ArchiveQuery q;
    q.limit = 1;
    first = st->store->query(host, node, q);
    q.from_end = true;
    last = st->store->query(host, node, q);
  };
  co_await st->ctx.run_blocking(std::move(job));
  // XEP-0313 §5: "This element MUST include <start/> and <end/> elements, which each have an 'id' and XEP-0082
  // formatted 'timestamp of the first and last messages in the archive respectively" (an empty archive has none).
  Element md("metadata", std::string(ns));
  if (!first.items.empty() && !last.items.empty()) {
    for (auto [name, item] : {std::pair{"start", &first.items.front()}, std::pair{"end", &last.items.back()}}) {
      Element& e = md.add_child(name);
      e.set_attr("id", item->id);
      e.set_attr("timestamp", stamp(item->when));
    }
  }
  co_return IqReply::result(std::move(md));
}

asio::awaitable<IqReply> handle_prefs_set(std::shared_ptr<State> st, const api::IqRequest& req) {
  auto parsed = Prefs::parse(req.payload);
  if (auto* err = std::get_if<StanzaError>(&parsed)) {
    co_return IqReply::error(std::move(*err));
  }
  Prefs prefs = std::move(std::get<Prefs>(parsed));
  const std::string host = st->ctx.host();
  const std::string node = req.to.node();
  const std::string text = api::to_xml(prefs.to_element());
  std::function<void()> save = [&] { st->prefs_store->set(host, node, text); };
  co_await st->ctx.run_blocking(std::move(save));
  if (prefs.default_mode == Prefs::Default::Roster) {
    // The roster is read before the answer, so that messages after it are judged by it.
    {
      std::lock_guard lock(st->mutex);
      st->rosters[node].loading = true;
    }
    co_await load_roster(st, node);
  }
  {
    std::lock_guard lock(st->mutex);
    st->prefs[node] = prefs;
    if (prefs.default_mode != Prefs::Default::Roster) {
      st->rosters.erase(node);
    }
  }
  // XEP-0441 §2.1: "The server then replies with the applied preferences".
  co_return IqReply::result(prefs.to_element());
}

asio::awaitable<void> load_prefs(std::shared_ptr<State> st) {
  const std::string host = st->ctx.host();
  std::vector<std::pair<std::string, Prefs>> loaded;
  try {
    std::function<void()> job = [&] {
      for (const auto& user : st->prefs_store->users(host)) {
        auto text = st->prefs_store->get(host, user);
        if (!text) {
          continue;
        }
        auto el = api::parse_xml(*text);
        if (!el) {
          continue;
        }
        auto p = Prefs::parse(*el);
        if (auto* prefs = std::get_if<Prefs>(&p)) {
          loaded.emplace_back(user, std::move(*prefs));
        }
      }
    };
    co_await st->ctx.run_blocking(std::move(job));
  } catch (const std::exception& e) {
    st->ctx.log().error("mam: reading the archiving preferences failed: {}", e.what());
  }
  std::vector<std::string> roster_users;
  {
    std::lock_guard lock(st->mutex);
    for (auto& [user, prefs] : loaded) {
      if (prefs.default_mode == Prefs::Default::Roster) {
        roster_users.push_back(user);
        st->rosters[user].loading = true;
      }
      // A preference set through an IQ while this ran is newer than the stored one.
      st->prefs.emplace(user, std::move(prefs));
    }
  }
  for (const auto& user : roster_users) {
    co_await load_roster(st, user);
  }
}

// Only the account itself reads its archive and preferences (XEP-0313 §7.1: "If a client requests access to an
// archive it does not have permissions for the server MUST return an iq with type error, and the error condition
// SHOULD be 'forbidden'").
bool own_account(const api::IqRequest& req) {
  return req.from.bare() == req.to;
}

class MamModule final : public api::Module {
public:
  api::ModuleInfo info() const override {
    return {"mam",
            "Message archive: every chat message archived per user, queried with filters and paging",
            {{"XEP-0313", "1.1.1", "complete", "user archives; groupchat messages are not archived"},
             {"XEP-0441", "0.2.0", "complete", ""},
             {"XEP-0359", "0.7.0", "complete", "stanza-id on archived messages"},
             {"XEP-0059", "1.0", "complete", "RSM in archive queries"}},
            {},
            {api::opt_string("default", "always", "Archiving for users who set no preference (XEP-0441)",
                             {"always", "never", "roster"}),
             api::opt_int("max_page_size", 250, 1, 10'000, "Most results one archive query returns"),
             api::opt_int("max_messages", 0, 0, 100'000'000,
                          "Messages kept per user; beyond it the oldest are removed; 0 = no limit"),
             api::opt_int("retention_days", 0, 0, 36'500, "Days messages are kept (checked daily); 0 = for ever")},
            true};
  }

  void load(api::ModuleContext& ctx) override {
    auto st = std::make_shared<State>(ctx);
    st->max_page = static_cast<std::size_t>(ctx.option<std::int64_t>("max_page_size"));
    st->max_messages = static_cast<std::size_t>(ctx.option<std::int64_t>("max_messages"));
    st->retention_days = ctx.option<std::int64_t>("retention_days");
    st->server_default = *default_from_string(ctx.option<std::string>("default"));

    // XEP-0313 §6: "it MUST advertise the 'urn:xmpp:mam:2' and 'urn:xmpp:mam:2#extended' features in response to
    // XEP-0030 requests made to archiving JIDs (i.e. JIDs hosting an archive, such as users' bare JIDs)".
    ctx.add_account_feature(std::string(ns));
    ctx.add_account_feature(std::string(ns_extended));
    ctx.add_account_feature(std::string(ns_sid));

    // Outgoing: archived in the sender's archive. A message to the sender's own account is archived once, as it
    // arrives (XEP-0313 §5.1.1: "it MUST store such a stanza within a given archive only once").
    ctx.on_stanza(
        api::StanzaKind::Message, api::Route::Pre,
        [st](api::StanzaEvent& ev) {
          const Jid user = ev.from.bare();
          const Jid to = ev.to.empty() ? user : ev.to;
          // A client cannot hand out ids of this archive (XEP-0359 §4).
          strip_stanza_ids(ev.stanza, user.bare_str());
          if (to.bare() == user || !archivable(ev.stanza) || !should_archive(st, user, to)) {
            return Flow::Continue;
          }
          archive(st, ev, user, to);
          return Flow::Continue;
        },
        archive_priority);
    // The <stanza-id/> of the sender's archive went along for the sent carbons; it leaves with nothing else.
    // XEP-0313 §3.5: "Servers MUST NOT include the <stanza-id/> element in messages addressed to JIDs that do not
    // have permissions to access the archive, such as a users’s outgoing messages to their contacts. However
    // servers SHOULD include the element as a child of the forwarded message when using XEP-0280".
    ctx.on_stanza(
        api::StanzaKind::Message, api::Route::Pre,
        [](api::StanzaEvent& ev) {
          strip_stanza_ids(ev.stanza, ev.from.bare_str());
          return Flow::Continue;
        },
        strip_priority);

    // Incoming: archived in the recipient's archive, to a bare JID or to a bound full JID.
    auto incoming = [st](api::StanzaEvent& ev) {
      const Jid user = ev.to.bare();
      const std::string by = user.bare_str();
      if (ev.origin.kind == api::OriginKind::Local) {
        // The server's own re-sends (offline delivery) already carry this archive's id: archived once only.
        if (offline::is_offline_delivery(ev.stanza, ev.origin, st->ctx.host()) || has_stanza_id(ev.stanza, by)) {
          return Flow::Continue;
        }
      } else {
        // XEP-0359 §4 / §5: a server "MUST ignore the existing value of 'id' and override it" — a <stanza-id/>
        // claiming to be from this archive that a client or another server put there is removed.
        strip_stanza_ids(ev.stanza, by);
      }
      if (!archivable(ev.stanza) || !should_archive(st, user, ev.from)) {
        return Flow::Continue;
      }
      archive(st, ev, user, ev.from);
      return Flow::Continue;
    };
    ctx.on_stanza(api::StanzaKind::Message, api::Route::Bare, incoming, archive_priority);
    ctx.on_stanza(api::StanzaKind::Message, api::Route::Full, incoming, archive_priority);

    ctx.on_iq(api::IqScope::Account, api::IqType::Get, std::string(ns), "query",
              [](const api::IqRequest& req) -> asio::awaitable<IqReply> {
                if (!own_account(req)) {
                  co_return IqReply::error("forbidden");
                }
                // XEP-0313 §4.1.5: "The server replies with all the form fields it supports in queries".
                Element q("query", std::string(ns));
                q.add(query_form().to_element());
                co_return IqReply::result(std::move(q));
              });
    ctx.on_iq(api::IqScope::Account, api::IqType::Set, std::string(ns), "query",
              [st](const api::IqRequest& req) -> asio::awaitable<IqReply> {
                if (!own_account(req)) {
                  co_return IqReply::error("forbidden");
                }
                co_return co_await handle_query(st, req);
              });
    ctx.on_iq(api::IqScope::Account, api::IqType::Get, std::string(ns), "metadata",
              [st](const api::IqRequest& req) -> asio::awaitable<IqReply> {
                if (!own_account(req)) {
                  co_return IqReply::error("forbidden");
                }
                co_return co_await handle_metadata(st, req);
              });
    ctx.on_iq(api::IqScope::Account, api::IqType::Get, std::string(ns), "prefs",
              [st](const api::IqRequest& req) -> asio::awaitable<IqReply> {
                if (!own_account(req)) {
                  co_return IqReply::error("forbidden");
                }
                Prefs p;
                {
                  std::lock_guard lock(st->mutex);
                  auto it = st->prefs.find(req.to.node());
                  if (it != st->prefs.end()) {
                    p = it->second;
                  } else {
                    p.default_mode = st->server_default;
                  }
                }
                co_return IqReply::result(p.to_element());
              });
    ctx.on_iq(api::IqScope::Account, api::IqType::Set, std::string(ns), "prefs",
              [st](const api::IqRequest& req) -> asio::awaitable<IqReply> {
                if (!own_account(req)) {
                  co_return IqReply::error("forbidden");
                }
                co_return co_await handle_prefs_set(st, req);
              });

    // Roster changes announced by other modules keep the 'roster' preference current.
    ctx.on<roster::ItemChanged>(
        [st](roster::ItemChanged& ev) {
          std::lock_guard lock(st->mutex);
          auto it = st->rosters.find(ev.user.node());
          if (it != st->rosters.end()) {
            if (ev.removed || ev.item.subscription == roster::Subscription::Remove) {
              it->second.contacts.erase(ev.item.jid.bare_str());
            } else {
              it->second.contacts.insert(ev.item.jid.bare_str());
            }
          }
          return Flow::Continue;
        },
        1000);

    asio::co_spawn(ctx.executor(), load_prefs(st), asio::detached);
  }
};

} // namespace

std::unique_ptr<api::Module> make_module() {
  return std::make_unique<MamModule>();
}

} // namespace cg::xep::mam
