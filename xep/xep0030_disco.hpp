// XEP-0030: Service Discovery 2.5rc3 — payloads, shared with modules that answer disco on their own nodes.
#pragma once

#include "server/api/disco.hpp"
#include "server/api/module.hpp"

#include <optional>
#include <string>
#include <vector>

namespace cg::xep::disco {

inline constexpr std::string_view ns_info = api::disco::ns_info;
inline constexpr std::string_view ns_items = api::disco::ns_items;

struct Info {
  std::string node;
  std::vector<api::Identity> identities;
  std::vector<std::string> features;

  static std::optional<Info> parse(const api::Element& query);
  api::Element to_element() const;
};

using Item = api::disco::Item;

struct Items {
  std::string node;
  std::vector<Item> items;

  static std::optional<Items> parse(const api::Element& query);
  api::Element to_element() const;
};

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::disco
