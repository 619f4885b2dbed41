// XEP-0054: vcard-temp 1.2 (2008-07-16): each user's vCard, kept by the server and readable by anyone.
#pragma once

#include "server/api/module.hpp"

namespace cg::xep::vcard {

inline constexpr std::string_view ns = "vcard-temp";

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::vcard
