// RFC 6121 §3–4: presence subscriptions (the state machine of Appendix A, pre-approval) and presence (initial,
// probes, broadcast, directed, unavailable).
#pragma once

#include "server/api/module.hpp"
#include "xep/rfc6121_roster.hpp"

#include <optional>
#include <string_view>

namespace cg::xep::presence {

// RFC 6121 §3.4: "the server MUST advertise ... <sub xmlns='urn:xmpp:features:pre-approval'/>".
inline constexpr std::string_view ns_preapproval_feature = "urn:xmpp:features:pre-approval";

// The subscription states of RFC 6121 Appendix A.1, as one party's server sees a contact.
enum class State { None, NonePendingOut, NonePendingIn, NonePendingOutIn, To, ToPendingIn, From, FromPendingOut, Both };
inline constexpr State kAllStates[] = {
    State::None, State::NonePendingOut, State::NonePendingIn, State::NonePendingOutIn, State::To, State::ToPendingIn,
    State::From, State::FromPendingOut, State::Both};
// "None + Pending Out+In" and so on, as the RFC writes them.
std::string_view to_string(State s);
// The state of a contact: its roster item, or (no item) whether an inbound request from it is pending.
State state_of(const roster::Item* item, bool pending_without_item = false);
// Sets the item's subscription, ask and pending_in to `s`.
void apply(State s, roster::Item& item);
bool has_from(State s); // the contact is subscribed to the user's presence
bool has_to(State s);   // the user is subscribed to the contact's presence
bool has_pending_in(State s);

enum class Type { Subscribe, Subscribed, Unsubscribe, Unsubscribed };
std::optional<Type> subscription_type(std::string_view presence_type);
std::string_view to_string(Type t);

struct Transition {
  bool pass;  // Appendix A.2: route the stanza to the contact; A.3: deliver it to the user
  State next; // the new state (== the old one for "no state change")
  bool operator==(const Transition&) const = default;
};
// Appendix A.2: the user's server, for a subscription stanza the user sends to a contact.
Transition outbound(Type type, State s);
// Appendix A.3: the contact's server, for a subscription stanza from the user to the contact.
Transition inbound(Type type, State s);

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::presence
