// XEP-0280: Message Carbons 1.0.1, with the XEP-0334 (Message Processing Hints) <no-copy/> hint — the "carbons"
// module.
//
// A resource enables carbons with <enable xmlns='urn:xmpp:carbons:2'/> (per session; forgotten when the session
// ends). Then it receives a <received/> copy of every eligible message to its account that the RFC 6121 delivery
// rules did not give it, and a <sent/> copy of every eligible message another resource of the account sends.
#pragma once

#include "server/api/module.hpp"

#include <string_view>

namespace cg::xep::carbons {

inline constexpr std::string_view ns = "urn:xmpp:carbons:2";
inline constexpr std::string_view ns_forward = "urn:xmpp:forward:0";
inline constexpr std::string_view ns_hints = "urn:xmpp:hints";
inline constexpr std::string_view ns_muc_user = "http://jabber.org/protocol/muc#user";
// Stanza handler priority (Route::Pre, Bare, Full): after MAM (which adds the <stanza-id/> the copies carry), before
// offline storage.
inline constexpr int priority = -60;

enum class Direction { Received, Sent };

// A carbon copy: a message carrying <received/> or <sent/> in urn:xmpp:carbons:2.
bool is_carbon(const api::Element& message);
// XEP-0280 §6: whether a message is copied (the XEP's suggested rules, and §7's opt-outs).
bool eligible(const api::Element& message, Direction direction);
// The copy for `to` (a full JID of `user`): XEP-0280 §8 / §9 — "the 'from' attribute MUST be the Carbons-enabled
// user's bare JID", the wrapper keeps the message's type, and <received/> or <sent/> holds the <forwarded/> original.
api::Element wrap(const api::Element& message, Direction direction, const api::Jid& user, const api::Jid& to);

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::carbons
