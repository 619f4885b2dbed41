// XEP-0202: Entity Time 2.0 (timestamps per XEP-0082).
#pragma once

#include "server/api/module.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace cg::xep::time {

inline constexpr std::string_view ns = "urn:xmpp:time";

struct EntityTime {
  std::string tzo; // "+01:00", "-06:00", "Z" is not used by XEP-0202 examples ("+00:00")
  std::string utc; // XEP-0082 DateTime in UTC, "2006-12-19T17:58:35Z"
  static std::optional<EntityTime> parse(const api::Element& time);
  api::Element to_element() const;
};

// XEP-0082 DateTime in UTC with milliseconds ("2026-11-25T06:01:02.345Z").
std::string format_utc(std::chrono::system_clock::time_point t);
// XEP-0082 time zone offset ("+01:00") from seconds east of UTC.
std::string format_tzo(long seconds_east);

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::time
