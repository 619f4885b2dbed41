// XEP-0199: XMPP Ping 2.0.1.
#pragma once

#include "server/api/module.hpp"

namespace cg::xep::ping {

inline constexpr std::string_view ns = "urn:xmpp:ping";

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::ping
