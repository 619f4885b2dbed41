// XEP-0049: Private XML Storage 1.2 (jabber:iq:private).
#pragma once

#include "server/api/module.hpp"

#include <string>
#include <string_view>

namespace cg::xep::priv {

inline constexpr std::string_view ns = "jabber:iq:private";

// XEP-0049 §2.3: "Certain namespaces are reserved in Jabber (namespaces beginning with 'jabber:' or
// 'http://jabber.org/', as well as 'vcard-temp')".
bool is_reserved_namespace(std::string_view ns);

// The map store key of a stored element: "{namespace}name".
std::string key_of(const api::Element& el);

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::priv
