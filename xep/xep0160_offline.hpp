// XEP-0160: Best Practices for Handling Offline Messages 1.0.1, with RFC 6121 §8.5.2.2 (no available resource) and
// XEP-0203 (Delayed Delivery) 2.0 stamps — the "offline" module.
//
// A chat or normal message for an account with no available resource of non-negative priority is stored in the
// archive store "offline" (durably: the client's accept token, and so its XEP-0198 acknowledgement, waits for the
// write) and delivered, oldest first and stamped with <delay/>, to the first resource that then sends available
// presence with a non-negative priority; delivered messages are removed by id.
#pragma once

#include "server/api/module.hpp"

#include <cstdint>
#include <string_view>

namespace cg::xep::offline {

inline constexpr std::string_view feature = "msgoffline";
inline constexpr std::string_view store_name = "offline";
inline constexpr std::string_view ns_delay = "urn:xmpp:delay";
inline constexpr std::string_view delay_reason = "Offline Storage";
// Route::Bare priority: after everything that may consume or annotate a message (blocking, MAM, carbons).
inline constexpr int priority = -100;

// RFC 6121 §5.2.2: no 'type', or one the application does not understand, means "normal".
std::string_view message_type(const api::Element& message);
// XEP-0160 §4: chat and normal messages are stored (not groupchat, headline or error); never a XEP-0334 <no-store/>
// message, a carbon copy or a MAM result (server-generated wrappers whose resource has gone).
bool storable(const api::Element& message);
// The message as it is stored: in jabber:client (a stanza from s2s arrives in jabber:server) with a XEP-0203 <delay
// from=host/> stamped `micros` added, unless it already carries one from this host (a message stored again).
api::Element stored_form(api::Element message, std::string_view host, std::int64_t micros);
// A message the server is delivering from offline storage: generated inside the server (OriginKind::Local) and
// stamped with this host's <delay/>. Other modules (MAM, carbons) leave those alone.
bool is_offline_delivery(const api::Element& message, const api::Origin& origin, std::string_view host);
// Renames the jabber:server namespace to jabber:client throughout (elements that inherited the stream namespace).
void to_client_namespace(api::Element& el);

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::offline
