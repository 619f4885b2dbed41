// XEP-0092: Software Version 1.1.
#pragma once

#include "server/api/module.hpp"

#include <optional>
#include <string>

namespace cg::xep::version {

inline constexpr std::string_view ns = "jabber:iq:version";

struct Version {
  std::string name;
  std::string version;
  std::string os; // optional
  static std::optional<Version> parse(const api::Element& query);
  api::Element to_element() const;
};

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::version
