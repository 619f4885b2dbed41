// RFC 6121 §2: the roster, and the storage format of roster items shared by the modules that need a user's roster
// (presence subscriptions, MAM's "roster" preference, blocking). One place defines how a roster is stored.
#pragma once

#include "server/api/module.hpp"
#include "server/api/xml.hpp"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cg::xep::roster {

inline constexpr std::string_view ns = "jabber:iq:roster";
inline constexpr std::string_view ns_ver_feature = "urn:xmpp:features:rosterver";

// RFC 6121 §2.1.2.5 subscription states, plus the pending flags of §3 (ask='subscribe' = pending out;
// pending in is stored with the item so that it survives restarts).
enum class Subscription { None, To, From, Both, Remove };

struct Item {
  api::Jid jid; // the contact's bare JID
  std::string name;
  Subscription subscription = Subscription::None;
  bool ask = false;        // pending out (ask='subscribe')
  bool pending_in = false; // an inbound subscription request awaits the user's answer
  bool approved = false;   // pre-approved (RFC 6121 §3.4)
  std::vector<std::string> groups;

  bool operator==(const Item&) const = default;
  // <item/> as in a roster result or push (pending_in is not shown to clients; approved only when true).
  api::Element to_element() const;
  // Parses an <item/> from a client's roster set: jid, name, groups; subscription only "remove" is honoured.
  static std::optional<Item> parse(const api::Element& item);

  // The stored form: the <item/> with every field, pending_in included, as XML text (api::to_xml).
  std::string serialize() const;
  static std::optional<Item> deserialize(std::string_view stored);
};

std::string_view to_string(Subscription s);
std::optional<Subscription> subscription_from_string(std::string_view s);

// One user's roster as it is kept in memory for users who are online.
struct Roster {
  std::string version;                         // XEP-0237 / RFC 6121 §2.6 roster version ("0" before any change)
  std::map<api::Jid, Item> items;              // by contact
  std::map<api::Jid, api::Element> pending_in; // stored inbound subscription requests (RFC 6121 §3.1.3), by contact
  const Item* find(const api::Jid& contact) const;
};

// The stored roster of one user (map store "roster": key = contact bare JID, value = serialised Item; keyval store
// "roster_version": the roster version string of XEP-0237). Blocking: call through ModuleContext::blocking().
class Store {
public:
  explicit Store(storage::Driver& driver);
  std::vector<Item> items(std::string_view host, std::string_view user);
  std::optional<Item> get(std::string_view host, std::string_view user, const api::Jid& contact);
  // Stores the item and returns the roster's new version.
  std::string put(std::string_view host, std::string_view user, const Item& item);
  // Removes the contact and returns the roster's new version.
  std::string remove(std::string_view host, std::string_view user, const api::Jid& contact);
  std::string version(std::string_view host, std::string_view user);

  // Inbound subscription requests awaiting the user's answer (map store "presence_pending": key = contact bare
  // JID, value = the request stanza as XML text): RFC 6121 §3.1.3 "the contact's server MUST keep a record of
  // the complete presence stanza comprising the subscription request, including any extended content".
  std::vector<std::pair<api::Jid, api::Element>> pending(std::string_view host, std::string_view user);
  std::optional<api::Element> pending(std::string_view host, std::string_view user, const api::Jid& contact);
  void set_pending(std::string_view host, std::string_view user, const api::Jid& contact, const api::Element& request);
  bool remove_pending(std::string_view host, std::string_view user, const api::Jid& contact);

  // Everything at once: items, pending requests and version.
  Roster load(std::string_view host, std::string_view user);

private:
  std::shared_ptr<storage::MapStore> items_;
  std::shared_ptr<storage::KeyValStore> versions_;
  std::shared_ptr<storage::MapStore> pending_;
};

// Fired (ModuleContext::fire) by any module that changed a roster item, so that the roster module pushes it to the
// user's interested resources (RFC 6121 §2.1.6). `removed` for a removal.
struct ItemChanged {
  api::Jid user; // bare
  Item item;
  std::string version;
  bool removed = false;
};

// What the roster module offers the modules that change rosters (the presence module): one queue of work per user,
// so that changes to one roster never interleave (a roster set and an inbound subscription approval read, change
// and write the same item), and the rosters of online users kept in memory (loaded once per session start, updated
// on every ItemChanged) so that presence routing reads no storage.
class Service {
public:
  using Job = std::function<boost::asio::awaitable<void>()>;
  virtual ~Service() = default;

  // Runs `job` on the I/O executor once every job queued earlier for `user` (bare JID) has finished; jobs of one
  // user never overlap. An exception ends only that job (it is logged).
  virtual void post(const api::Jid& user, Job job) = 0;
  // The same, resuming the caller once the job has finished (an exception propagates to the caller). Never call
  // it from inside a job of the same user (that job would wait for itself).
  virtual boost::asio::awaitable<void> run(const api::Jid& user, Job job) = 0;

  // The following are for use inside a job of `user`.
  // The whole roster: from memory, or loaded from storage (and kept while the user has sessions).
  virtual boost::asio::awaitable<std::shared_ptr<const Roster>> roster(const api::Jid& user) = 0;
  // One item, without loading a whole roster that is not in memory.
  virtual boost::asio::awaitable<std::optional<Item>> item(const api::Jid& user, const api::Jid& contact) = 0;
  // The stored inbound subscription request from `contact`, if any.
  virtual boost::asio::awaitable<std::optional<api::Element>> pending(const api::Jid& user,
                                                                      const api::Jid& contact) = 0;
  // Stores the item, then fires ItemChanged (which pushes it). Returns the new roster version.
  virtual boost::asio::awaitable<std::string> put(const api::Jid& user, Item item) = 0;
  // Removes the item, then fires ItemChanged (removed). Returns the new roster version.
  virtual boost::asio::awaitable<std::string> remove(const api::Jid& user, const api::Jid& contact) = 0;
  virtual boost::asio::awaitable<void> set_pending(const api::Jid& user, const api::Jid& contact,
                                                   api::Element request) = 0;
  virtual boost::asio::awaitable<void> drop_pending(const api::Jid& user, const api::Jid& contact) = 0;

  // The user's interested resources (RFC 6121 §2.1.6: those that requested the roster in this session).
  virtual std::vector<api::Jid> interested(const api::Jid& user) const = 0;
  // The configured limit on items per user (modules.roster.max_items).
  virtual std::size_t max_items() const = 0;
};

// Fired by a module that needs the roster service; the roster module fills it in.
struct ServiceRequest {
  std::shared_ptr<Service> service;
};
// The roster service of the context's host (nullptr when the roster module is not loaded).
std::shared_ptr<Service> find_service(api::ModuleContext& ctx);

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::roster
