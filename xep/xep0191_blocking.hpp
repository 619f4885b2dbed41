// XEP-0191: Blocking Command 1.1 (urn:xmpp:blocking): a user's blocklist, and the server enforcing it.
#pragma once

#include "server/api/module.hpp"

#include <set>
#include <string>

namespace cg::xep::blocking {

inline constexpr std::string_view ns = "urn:xmpp:blocking";
inline constexpr std::string_view ns_errors = "urn:xmpp:blocking:errors";

// The priority of the module's stanza handlers (Route::Pre, Bare, Full): above every module that delivers, stores,
// archives or copies stanzas, so that a blocked contact's stanza is gone before any of them sees it.
inline constexpr int priority = 1000;

// XEP-0191 §4 JID matching: whether the blocklist item `item` covers `address`. <user@domain/resource> and
// <domain/resource> only that address; <user@domain> any of its resources; <domain> the domain, every address at
// it, and its subdomains.
bool matches(const api::Jid& item, const api::Jid& address);
// Whether any item of a blocklist (normalised JID strings) covers `address`.
bool covers(const std::set<std::string>& items, const api::Jid& address);

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::blocking
