// XEP-0082 date and time profiles: the DateTime format used by XEP-0203 delay stamps, XEP-0313 archive queries
// and XEP-0202 entity time.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cg::api {

// Microseconds since the Unix epoch (UTC): the time unit of the archive store.
std::int64_t now_micros();
std::int64_t to_micros(std::chrono::system_clock::time_point t);

// "CCYY-MM-DDThh:mm:ss[.sss…]Z" in UTC; `fraction_digits` 0, 3 (milliseconds) or 6 (microseconds).
std::string format_datetime(std::int64_t micros, int fraction_digits = 3);
// Parses a XEP-0082 DateTime ("1969-07-21T02:56:15Z", "1969-07-20T21:56:15-05:00", with an optional fraction
// of any length). nullopt when it is not one (XEP-0082 §3: the time zone designator is required).
std::optional<std::int64_t> parse_datetime(std::string_view text);

} // namespace cg::api
