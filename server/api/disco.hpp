// XEP-0030 nodes as an extension point. The disco module (xep/xep0030_disco.cpp) answers queries to the host
// without a 'node' itself, from every module's add_feature()/add_identity(). A query with a 'node' belongs to the
// module that owns the node (XEP-0050's command list and commands, later others): the disco module fires a
// NodeQuery (ModuleContext::fire), and the owner fills in the answer and returns Flow::Stop. A node nobody claims
// is answered with item-not-found (XEP-0030 §3.2, §4.2).
//
//   ctx.on<api::disco::NodeQuery>([](api::disco::NodeQuery& q) {
//     if (q.node != "urn:example:node") {
//       return api::Flow::Continue;
//     }
//     if (q.kind == api::disco::NodeQuery::Kind::Info) {
//       q.identities.push_back({"automation", "command-list", "Commands", ""});
//       q.features.push_back("http://jabber.org/protocol/commands");
//     }
//     return api::Flow::Stop;
//   });
//
// Handlers run on I/O threads, possibly several at once; registration is undone on unload like every other.
#pragma once

#include "server/api/module.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cg::api::disco {

inline constexpr std::string_view ns_info = "http://jabber.org/protocol/disco#info";
inline constexpr std::string_view ns_items = "http://jabber.org/protocol/disco#items";

// A disco#items <item/>.
struct Item {
  std::string jid;
  std::string node;
  std::string name;
  bool operator==(const Item&) const = default;
};

// A disco#info or disco#items query with a 'node', to the host's domain.
struct NodeQuery {
  enum class Kind { Info, Items };
  Kind kind;
  const Jid& from; // the requester (a full JID for a local client, or a remote entity)
  const Jid& to;   // the host
  std::string_view node;

  // The answer, filled in by the node's owner before it returns Flow::Stop.
  std::vector<Identity> identities;  // Info: at least one (XEP-0030 §3.1)
  std::vector<std::string> features; // Info
  std::vector<Item> items;           // Items
  std::optional<StanzaError> error;  // instead of a result, e.g. forbidden for a node the requester may not see
};

} // namespace cg::api::disco
