// XEP-0202: Entity Time, version 2.0 (2009-09-11), with XEP-0082 date-time profiles.
#include "xep/xep0202_time.hpp"

#include <cstdio>
#include <ctime>

namespace cg::xep::time {

using api::Element;
using api::IqReply;

std::string format_utc(std::chrono::system_clock::time_point t) {
  // Rounded down (floor, not toward zero), so that an instant before 1970 gets the right second and a fraction in
  // [0, 999]: 1969-12-31T23:59:59.999Z, not 1970-01-01T00:00:00.-01Z.
  auto ms = std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch());
  auto secs = std::chrono::floor<std::chrono::seconds>(ms);
  std::time_t whole = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&whole, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>((ms - secs).count()));
  return buf;
}

std::string format_tzo(long seconds_east) {
  char sign = seconds_east < 0 ? '-' : '+';
  long a = seconds_east < 0 ? -seconds_east : seconds_east;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%c%02ld:%02ld", sign, a / 3600, (a % 3600) / 60);
  return buf;
}

std::optional<EntityTime> EntityTime::parse(const Element& time) {
  if (!time.is("time", ns)) {
    return std::nullopt;
  }
  EntityTime t{time.child_text("tzo"), time.child_text("utc")};
  // XEP-0202 §3: both <tzo/> and <utc/> are REQUIRED in a result.
  if (t.tzo.empty() || t.utc.empty()) {
    return std::nullopt;
  }
  return t;
}

Element EntityTime::to_element() const {
  Element t("time", std::string(ns));
  t.add_text_child("tzo", tzo);
  t.add_text_child("utc", utc);
  return t;
}

namespace {

class TimeModule final : public api::Module {
public:
  api::ModuleInfo info() const override {
    return {"time",
            "Entity time: tells clients the server's clock and time zone",
            {{"XEP-0202", "2.0", "complete", ""}},
            {},
            {},
            true};
  }

  void load(api::ModuleContext& ctx) override {
    ctx.add_feature(std::string(ns));
    ctx.on_iq(api::IqScope::Host, api::IqType::Get, std::string(ns), "time",
              [](const api::IqRequest&) -> boost::asio::awaitable<IqReply> {
                auto now = std::chrono::system_clock::now();
                std::time_t secs = std::chrono::system_clock::to_time_t(now);
                std::tm local{};
                localtime_r(&secs, &local);
                co_return IqReply::result(EntityTime{format_tzo(local.tm_gmtoff), format_utc(now)}.to_element());
              });
  }
};

} // namespace

std::unique_ptr<api::Module> make_module() {
  return std::make_unique<TimeModule>();
}

} // namespace cg::xep::time
