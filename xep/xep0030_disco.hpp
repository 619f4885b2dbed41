// XEP-0030: Service Discovery 2.5rc3 — payloads, shared with modules that answer disco on their own nodes.
#pragma once

#include "server/api/module.hpp"

#include <optional>
#include <string>
#include <vector>

namespace cg::xep::disco {

inline constexpr std::string_view ns_info = "http://jabber.org/protocol/disco#info";
inline constexpr std::string_view ns_items = "http://jabber.org/protocol/disco#items";

struct Info {
  std::string node;
  std::vector<api::Identity> identities;
  std::vector<std::string> features;

  static std::optional<Info> parse(const api::Element& query);
  api::Element to_element() const;
};

struct Item {
  std::string jid;
  std::string node;
  std::string name;
  bool operator==(const Item&) const = default;
};

struct Items {
  std::string node;
  std::vector<Item> items;

  static std::optional<Items> parse(const api::Element& query);
  api::Element to_element() const;
};

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::disco
