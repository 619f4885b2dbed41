// RFC 6121 §2: the roster, and the storage format of roster items shared by the modules that need a user's roster
// (presence subscriptions, MAM's "roster" preference, blocking). One place defines how a roster is stored.
#pragma once

#include "server/api/module.hpp"

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
};

std::string_view to_string(Subscription s);
std::optional<Subscription> subscription_from_string(std::string_view s);

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

private:
  std::shared_ptr<storage::MapStore> items_;
  std::shared_ptr<storage::KeyValStore> versions_;
};

// Fired (ModuleContext::fire) by any module that changed a roster item, so that the roster module pushes it to the
// user's interested resources (RFC 6121 §2.1.6). `removed` for a removal.
struct ItemChanged {
  api::Jid user; // bare
  Item item;
  std::string version;
  bool removed = false;
};

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::roster
