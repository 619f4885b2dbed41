// XEP-0077: In-Band Registration 2.5 (jabber:iq:register): creating an account before authentication, changing its
// password and removing it after. Off unless listed in modules.enabled.
#pragma once

#include "server/api/module.hpp"

namespace cg::xep::reg {

inline constexpr std::string_view ns = "jabber:iq:register";
inline constexpr std::string_view ns_feature = "http://jabber.org/features/iq-register";

// Fired (ModuleContext::fire) once an account was removed in-band, for modules that keep per-account state in
// memory (the stored data is already gone: ModuleContext::delete_account removes it).
struct AccountDeleted {
  api::Jid user; // bare
};

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::reg
