// Shared helpers for the XML unit tests.
#pragma once

#include "server/xml/stream_parser.hpp"
#include "server/xml/writer.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace cg::xml::test {

// A c2s stream header as clients send it.
inline constexpr std::string_view kHeader =
    "<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>";

inline const char* kind_name(StreamEvent::Kind k) {
  switch (k) {
  case StreamEvent::Kind::Open:
    return "Open";
  case StreamEvent::Kind::Stanza:
    return "Stanza";
  case StreamEvent::Kind::Close:
    return "Close";
  case StreamEvent::Kind::Error:
    return "Error";
  }
  return "?";
}

inline std::vector<StreamEvent> drain(StreamParser& p) {
  std::vector<StreamEvent> out;
  while (p.has_event()) {
    out.push_back(p.next_event());
  }
  return out;
}

// Feeds `data` in one call and returns every event.
inline std::vector<StreamEvent> parse_all(std::string_view data, ParserLimits limits = {}) {
  StreamParser p(limits);
  p.feed(data);
  return drain(p);
}

// Feeds `data` in pieces of the given sizes (cycled) and returns every event.
inline std::vector<StreamEvent> parse_pieces(std::string_view data, const std::vector<std::size_t>& sizes,
                                             ParserLimits limits = {}) {
  StreamParser p(limits);
  std::size_t pos = 0;
  for (std::size_t i = 0; pos < data.size(); ++i) {
    const std::size_t n = std::min(sizes[i % sizes.size()], data.size() - pos);
    p.feed(data.substr(pos, n));
    pos += n;
  }
  return drain(p);
}

// The events' meaningful content as one comparable string (errors without their offset, which depends on how
// the input was split).
inline std::string describe(const std::vector<StreamEvent>& events) {
  std::string out;
  for (const StreamEvent& ev : events) {
    out += kind_name(ev.kind);
    switch (ev.kind) {
    case StreamEvent::Kind::Open:
      out += " prefix=" + ev.stream_prefix + " content_ns=" + ev.content_ns + " ";
      serialize(out, ev.element);
      break;
    case StreamEvent::Kind::Stanza:
      out += " ";
      serialize(out, ev.element);
      break;
    case StreamEvent::Kind::Close:
      break;
    case StreamEvent::Kind::Error:
      out += " " + ev.condition;
      break;
    }
    if (ev.kind != StreamEvent::Kind::Error) {
      out += " @" + std::to_string(ev.end_offset);
    }
    out += "\n";
  }
  return out;
}

// Equal events: same kinds, trees, header data, conditions, and offsets (except for errors, whose offset depends
// on how the input was split).
inline bool same_events(const std::vector<StreamEvent>& a, const std::vector<StreamEvent>& b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    const StreamEvent& x = a[i];
    const StreamEvent& y = b[i];
    if (x.kind != y.kind || !(x.element == y.element) || x.content_ns != y.content_ns ||
        x.stream_prefix != y.stream_prefix || x.condition != y.condition) {
      return false;
    }
    if (x.kind != StreamEvent::Kind::Error && x.end_offset != y.end_offset) {
      return false;
    }
  }
  return true;
}

// The single Error event among `events` (REQUIREs exactly one, and that it is the last).
inline StreamEvent the_error(const std::vector<StreamEvent>& events) {
  INFO(describe(events));
  REQUIRE(!events.empty());
  REQUIRE(events.back().kind == StreamEvent::Kind::Error);
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    REQUIRE(events[i].kind != StreamEvent::Kind::Error);
  }
  return events.back();
}

inline std::string error_condition(std::string_view data, ParserLimits limits = {}) {
  return the_error(parse_all(data, limits)).condition;
}

// Deterministic pseudo-random numbers for piece sizes (no dependency on the platform's <random> distributions).
struct Lcg {
  std::uint64_t state;
  std::uint32_t next() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::uint32_t>(state >> 33);
  }
  std::size_t between(std::size_t lo, std::size_t hi) { return lo + next() % (hi - lo + 1); }
};

} // namespace cg::xml::test
