// libFuzzer target for the XML layer: the stream parser on arbitrary bytes in arbitrary pieces, restarts at a
// stanza's end_offset, and the writer's round trip (serialize → parse_element must give back the same tree).
//
// Input layout: byte 0 chooses the limits and whether to restart, byte 1 seeds the piece sizes, the rest is the
// stream. Build and run with scripts/fuzz.
#include "server/xml/stream_parser.hpp"
#include "server/xml/writer.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace cg::xml;

namespace {

[[noreturn]] void die(const char* what, std::string_view a, std::string_view b = {}) {
  std::fprintf(stderr, "%s\n--- 1 ---\n%.*s\n--- 2 ---\n%.*s\n", what, static_cast<int>(a.size()), a.data(),
               static_cast<int>(b.size()), b.data());
  std::abort();
}

void check_round_trip(const Element& el) {
  std::string written;
  serialize(written, el);
  ParserLimits loose;
  loose.max_stanza_bytes = written.size() + 64; // escaping and xmlns declarations may make it longer
  loose.max_depth = 1u << 20;
  Element back;
  std::string error;
  if (!parse_element(written, back, error, loose)) {
    die("serialized stanza does not parse", written, error);
  }
  if (!(back == el)) {
    std::string again;
    serialize(again, back);
    die("round trip changed the stanza", written, again);
  }
  // The content namespace switch, both ways.
  std::string s2s;
  serialize(s2s, el, ns::server);
  std::string c2s;
  serialize(c2s, el, ns::client);
}

void check_event(const StreamEvent& ev) {
  switch (ev.kind) {
  case StreamEvent::Kind::Open:
    if (!ev.element.is("stream", ns::streams) || ev.stream_prefix.empty()) {
      die("bad open event", ev.element.name(), ev.stream_prefix);
    }
    break;
  case StreamEvent::Kind::Stanza:
    check_round_trip(ev.element);
    break;
  case StreamEvent::Kind::Close:
    break;
  case StreamEvent::Kind::Error:
    if (ev.condition.empty()) {
      die("error without a condition", ev.text);
    }
    break;
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  const std::uint8_t mode = data[0];
  std::uint32_t rng = 0x9E3779B9u ^ (static_cast<std::uint32_t>(data[1]) * 0x01000193u);
  const std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);

  ParserLimits limits;
  if ((mode & 1) != 0) {
    limits.max_stanza_bytes = 32 + std::size_t((mode >> 1) & 7) * 64;
    limits.max_depth = 1 + ((mode >> 4) & 7);
  }
  const bool restart = (mode & 0x80) != 0;

  StreamParser parser(limits);
  std::size_t base = 0; // input position where the parser's offsets start
  std::size_t pos = 0;
  bool restarted = false;
  while (pos < input.size()) {
    rng = rng * 1103515245u + 12345u;
    const std::size_t max_piece = (rng >> 28) < 4 ? 4 : 512;
    const std::size_t n = std::min<std::size_t>(1 + (rng >> 16) % max_piece, input.size() - pos);
    const bool ok = parser.feed(input.substr(pos, n));
    if (ok == parser.failed()) {
      die("feed() and failed() disagree", input);
    }
    pos += n;
    const std::uint64_t fed = parser.bytes_fed();
    while (parser.has_event()) {
      const StreamEvent ev = parser.next_event();
      if (ev.kind != StreamEvent::Kind::Error && ev.end_offset > fed) {
        die("end_offset past the input", std::to_string(ev.end_offset), std::to_string(fed));
      }
      check_event(ev);
      if (restart && !restarted && ev.kind == StreamEvent::Kind::Stanza) {
        // What a session does after <success/>: a new parser over the bytes after the stanza.
        restarted = true;
        pos = base + static_cast<std::size_t>(ev.end_offset);
        base = pos;
        parser.reset();
        break;
      }
    }
    if (parser.failed()) {
      if (parser.feed("<x/>") || parser.has_event()) {
        die("parser accepted input after an error", input);
      }
      break;
    }
  }

  // The same bytes as one standalone element.
  Element el;
  std::string error;
  if (parse_element(input, el, error, limits)) {
    check_round_trip(el);
  } else if (error.empty()) {
    die("parse_element failed without an error", input);
  }
  return 0;
}
