// XEP-0202: Entity Time 2.0 (timestamps per XEP-0082) — the spec's examples, and the time module against the
// fake host.
#include "tests/xep/fake_host.hpp"
#include "xep/xep0202_time.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

using cg::api::Element;
using cg::api::IqReply;
using cg::api::IqScope;
using cg::api::IqType;
using cg::test::canonical;
using cg::test::FakeHost;
using cg::test::parse_stanza;
using cg::test::parse_xml;
namespace etime = cg::xep::time;
using std::chrono::system_clock;

namespace {

// XEP-0202 Example 1: Querying Another Entity for the Local Time. (Version 2.0 of the spec uses the urn:xmpp:time
// namespace; the examples of the 1.x drafts carried a provisional one.)
constexpr const char* kExample1 = R"(
<iq type='get'
    from='romeo@montague.net/orchard'
    to='juliet@capulet.com/balcony'
    id='time_1'>
  <time xmlns='urn:xmpp:time'/>
</iq>)";

// XEP-0202 Example 2: A Response to the Query.
constexpr const char* kExample2 = R"(
<iq type='result'
    from='juliet@capulet.com/balcony'
    to='romeo@montague.net/orchard'
    id='time_1'>
  <time xmlns='urn:xmpp:time'>
    <tzo>-06:00</tzo>
    <utc>2006-12-19T17:58:35Z</utc>
  </time>
</iq>)";

system_clock::time_point utc(int year, int month, int day, int hour, int minute, int second) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return system_clock::from_time_t(timegm(&tm));
}

// Whether `s` has the form of `pattern`, where 'd' stands for a digit, 's' for a sign and any other character for
// itself. (Not std::regex: with -fsanitize, g++ 12 warns falsely inside <regex>.)
bool has_form(std::string_view s, std::string_view pattern) {
  if (s.size() != pattern.size()) {
    return false;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = pattern[i] == 'd'   ? (c >= '0' && c <= '9')
                    : pattern[i] == 's' ? (c == '+' || c == '-')
                                        : c == pattern[i];
    if (!ok) {
      return false;
    }
  }
  return true;
}

// Reads the XEP-0082 DateTime the module writes ("2026-11-25T06:01:02.345Z"); nullopt if it is not of that form.
std::optional<system_clock::time_point> parse_utc(const std::string& s) {
  if (!has_form(s, "dddd-dd-ddTdd:dd:dd.dddZ")) {
    return std::nullopt;
  }
  auto n = [&](std::size_t pos, std::size_t len) { return std::stoi(s.substr(pos, len)); };
  return utc(n(0, 4), n(5, 2), n(8, 2), n(11, 2), n(14, 2), n(17, 2)) + std::chrono::milliseconds(n(20, 3));
}

// Sets TZ for the lifetime of the object, then restores it.
class ScopedTimeZone {
public:
  explicit ScopedTimeZone(const char* tz) {
    if (const char* old = std::getenv("TZ")) {
      old_ = old;
    }
    setenv("TZ", tz, 1);
    tzset();
  }
  ~ScopedTimeZone() {
    if (old_) {
      setenv("TZ", old_->c_str(), 1);
    } else {
      unsetenv("TZ");
    }
    tzset();
  }
  ScopedTimeZone(const ScopedTimeZone&) = delete;
  ScopedTimeZone& operator=(const ScopedTimeZone&) = delete;

private:
  std::optional<std::string> old_;
};

etime::EntityTime ask(FakeHost& host) {
  IqReply reply = host.call_iq(IqScope::Host, "<iq type='get' from='romeo@montague.net/orchard' "
                                              "to='capulet.com' id='time_1'><time xmlns='urn:xmpp:time'/></iq>");
  REQUIRE_FALSE(reply.is_error());
  REQUIRE(reply.payload());
  auto t = etime::EntityTime::parse(*reply.payload());
  REQUIRE(t);
  return *t;
}

} // namespace

TEST_CASE("time: XEP-0202 example 2 parses and serialises back", "[xep0202][spec]") {
  const Element iq = parse_xml(kExample2);
  const Element* time = iq.first_child();
  REQUIRE(time != nullptr);
  auto t = etime::EntityTime::parse(*time);
  REQUIRE(t);
  CHECK(t->tzo == "-06:00");
  CHECK(t->utc == "2006-12-19T17:58:35Z");
  CHECK(canonical(t->to_element()) == canonical(*time));
}

TEST_CASE("time: parse rejects invalid payloads", "[xep0202]") {
  using etime::EntityTime;
  // XEP-0202 §3: <tzo/> and <utc/> are both REQUIRED in a result.
  CHECK_FALSE(EntityTime::parse(parse_xml("<time xmlns='urn:xmpp:time'><utc>2006-12-19T17:58:35Z</utc></time>")));
  CHECK_FALSE(EntityTime::parse(parse_xml("<time xmlns='urn:xmpp:time'><tzo>-06:00</tzo></time>")));
  CHECK_FALSE(EntityTime::parse(parse_xml("<time xmlns='urn:xmpp:time'><tzo/><utc>2006-12-19T17:58:35Z</utc></time>")));
  CHECK_FALSE(EntityTime::parse(parse_xml("<time xmlns='urn:xmpp:time'/>")));
  // XEP-0090's legacy namespace is not this protocol.
  CHECK_FALSE(EntityTime::parse(parse_xml("<query xmlns='jabber:iq:time'><utc>20061219T17:58:35</utc></query>")));
  CHECK_FALSE(EntityTime::parse(
      parse_xml("<time xmlns='urn:xmpp:other'><tzo>-06:00</tzo><utc>2006-12-19T17:58:35Z</utc></time>")));
}

TEST_CASE("time: format_tzo writes XEP-0082 offsets", "[xep0202]") {
  CHECK(etime::format_tzo(0) == "+00:00");
  CHECK(etime::format_tzo(3600) == "+01:00");
  CHECK(etime::format_tzo(-6 * 3600) == "-06:00"); // XEP-0202 example 2
  CHECK(etime::format_tzo(5 * 3600 + 30 * 60) == "+05:30");
  CHECK(etime::format_tzo(5 * 3600 + 45 * 60) == "+05:45");
  CHECK(etime::format_tzo(-(3 * 3600 + 30 * 60)) == "-03:30");
  CHECK(etime::format_tzo(14 * 3600) == "+14:00");
  CHECK(etime::format_tzo(-12 * 3600) == "-12:00");
}

TEST_CASE("time: format_utc writes XEP-0082 DateTime in UTC with milliseconds", "[xep0202]") {
  CHECK(etime::format_utc(system_clock::from_time_t(0)) == "1970-01-01T00:00:00.000Z");
  // XEP-0202 example 2's instant.
  CHECK(etime::format_utc(utc(2006, 12, 19, 17, 58, 35)) == "2006-12-19T17:58:35.000Z");
  CHECK(etime::format_utc(utc(2006, 12, 19, 17, 58, 35) + std::chrono::milliseconds(7)) == "2006-12-19T17:58:35.007Z");
  CHECK(etime::format_utc(utc(2038, 1, 19, 3, 14, 8)) == "2038-01-19T03:14:08.000Z");
  // XEP-0082 example 1's instant (before the epoch), and a fraction of a second before it.
  CHECK(etime::format_utc(utc(1969, 7, 21, 2, 56, 15)) == "1969-07-21T02:56:15.000Z");
  CHECK(etime::format_utc(utc(1969, 7, 21, 2, 56, 15) + std::chrono::milliseconds(500)) == "1969-07-21T02:56:15.500Z");
  CHECK(etime::format_utc(system_clock::from_time_t(0) - std::chrono::milliseconds(1)) == "1969-12-31T23:59:59.999Z");
}

TEST_CASE("time: the module answers with the zone offset and the current UTC time", "[xep0202][module]") {
  FakeHost host("capulet.com");
  auto module = etime::make_module();
  host.load(*module);
  CHECK(host.features() == std::vector<std::string>{"urn:xmpp:time"});
  CHECK(host.has_iq_handler(IqScope::Host, IqType::Get, etime::ns, "time"));
  CHECK_FALSE(host.has_iq_handler(IqScope::Host, IqType::Set, etime::ns, "time"));

  const auto before = system_clock::now();
  etime::EntityTime t = ask(host);
  const auto after = system_clock::now();

  // XEP-0082 TZD as XEP-0202 uses it: ^[+-]\d\d:\d\d$.
  CHECK(has_form(t.tzo, "sdd:dd"));
  CHECK_FALSE(has_form("06:00", "sdd:dd"));
  CHECK_FALSE(has_form("+6:00", "sdd:dd"));
  CHECK_FALSE(has_form("Z", "sdd:dd"));
  auto when = parse_utc(t.utc);
  REQUIRE(when);
  CHECK(*when >= before - std::chrono::seconds(5));
  CHECK(*when <= after + std::chrono::seconds(5));

  // The reply stanza has the shape of example 2.
  const Element request = parse_stanza(kExample1);
  Element stanza = FakeHost::reply_stanza(request, host.call_iq(IqScope::Host, IqType::Get, request,
                                                                *cg::api::Jid::parse("romeo@montague.net/orchard"),
                                                                *cg::api::Jid::parse("capulet.com")));
  Element* time = stanza.child("time", etime::ns);
  REQUIRE(time != nullptr);
  Element* expected_time = nullptr;
  Element expected = parse_stanza(kExample2);
  expected_time = expected.child("time", etime::ns);
  REQUIRE(expected_time != nullptr);
  // Same elements; the values are the server's.
  *expected_time = etime::EntityTime{time->child_text("tzo"), time->child_text("utc")}.to_element();
  CHECK(canonical(stanza) == canonical(expected));
}

TEST_CASE("time: the offset follows the server's time zone", "[xep0202][module]") {
  FakeHost host("capulet.com");
  auto module = etime::make_module();
  host.load(*module);
  {
    // POSIX TZ: "hours west of UTC", so this zone is UTC-06:30, without daylight saving time.
    ScopedTimeZone zone("XST+6:30");
    CHECK(ask(host).tzo == "-06:30");
  }
  {
    ScopedTimeZone zone("XST-5:45");
    CHECK(ask(host).tzo == "+05:45");
  }
  {
    ScopedTimeZone zone("UTC0");
    CHECK(ask(host).tzo == "+00:00");
  }
}
