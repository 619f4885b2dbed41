// XEP-0082 DateTime: formatting and parsing.
#include "server/api/datetime.hpp"

#include <catch2/catch.hpp>

using cg::api::format_datetime;
using cg::api::parse_datetime;

TEST_CASE("XEP-0082 §3.2 examples parse, with and without a time zone offset, to the same instant") {
  // Example 3 ("1969-07-21T02:56:15Z") and the same instant with an offset (Example 4).
  auto utc = parse_datetime("1969-07-21T02:56:15Z");
  auto offset = parse_datetime("1969-07-20T21:56:15-05:00");
  REQUIRE(utc);
  REQUIRE(offset);
  CHECK(*utc == *offset);
  CHECK(*utc == (-14159025LL) * 1'000'000);
  CHECK(format_datetime(*utc, 0) == "1969-07-21T02:56:15Z");
}

TEST_CASE("fractions of a second of any length are read to the microsecond") {
  CHECK(parse_datetime("2026-11-25T06:01:02.5Z") == parse_datetime("2026-11-25T06:01:02Z").value() + 500'000);
  CHECK(parse_datetime("2026-11-25T06:01:02.123456789Z") == parse_datetime("2026-11-25T06:01:02Z").value() + 123'456);
  const std::int64_t t = 1'795'586'462'345'678;
  CHECK(format_datetime(t, 3) == "2026-11-25T06:01:02.345Z");
  CHECK(format_datetime(t, 6) == "2026-11-25T06:01:02.345678Z");
  CHECK(parse_datetime(format_datetime(t, 6)) == t);
}

TEST_CASE("what is not a XEP-0082 DateTime is refused") {
  for (const char* bad :
       {"", "2026-11-25", "2026-11-25T06:01:02", "2026-11-25 06:01:02Z", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
        "2026-11-31T00:00:00Z", "2026-11-25T24:00:00Z", "2026-11-25T06:01:02.Z", "2026-11-25T06:01:02+0100",
        "2026-11-25T06:01:02Zjunk", "abcd-11-25T06:01:02Z"}) {
    INFO(bad);
    CHECK_FALSE(parse_datetime(bad));
  }
  CHECK(parse_datetime("2024-02-29T00:00:00Z")); // a leap day
}
