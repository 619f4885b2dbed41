// XEP-0012: Last Activity 1.2 (jabber:iq:last): the server's uptime, and how long ago a user logged out.
#pragma once

#include "server/api/module.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace cg::xep::last {

inline constexpr std::string_view ns = "jabber:iq:last";

// What keyval store "last" keeps per user: when the user's last session ended (or their last available resource
// went unavailable), and the status text of their last unavailable presence.
struct Record {
  std::int64_t when = 0; // microseconds since the Unix epoch
  std::string status;
  bool operator==(const Record&) const = default;
  std::string encode() const; // "<when>\n<status>"
  static std::optional<Record> decode(std::string_view value);
};

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::last
