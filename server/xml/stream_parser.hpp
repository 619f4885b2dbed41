// The XMPP stream parser: expat with namespaces, restricted XML (RFC 6120 §11) and limits.
//
// Bytes go in with feed(); what comes out is a queue of events: the stream header, each complete top-level element
// (stanza or nonza) with its namespaces resolved, the end of the stream, or an error carrying the RFC 6120 §4.9.3
// stream error condition to send. After an error the parser accepts no more input.
#pragma once

#include "server/xml/element.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cg::xml {

struct ParserLimits {
  std::size_t max_stanza_bytes = 256 * 1024; // one top-level element, from its '<' to its end
  std::size_t max_depth = 64;                // element nesting inside a stanza (the stanza itself is depth 1)
};

struct StreamEvent {
  enum class Kind {
    Open,   // the <stream:stream> start tag; `element` has its attributes (no children)
    Stanza, // a complete top-level element
    Close,  // </stream:stream>
    Error,  // `condition` is a stream error condition, `text` a description
  };
  Kind kind;
  Element element;
  // Open: the default namespace the header declared (the stream's content namespace), "" if none.
  std::string content_ns;
  // Open: the prefix the stream element used ("stream" normally).
  std::string stream_prefix;
  std::string condition;
  std::string text;
  // Byte offset in the parser's input just past this event's markup (counted from the parser's creation).
  std::uint64_t end_offset = 0;
};

class StreamParser {
public:
  explicit StreamParser(ParserLimits limits = {});
  ~StreamParser();
  StreamParser(const StreamParser&) = delete;
  StreamParser& operator=(const StreamParser&) = delete;

  // Parses `data` (any split, including mid-UTF-8 sequence or mid-tag) and queues the resulting events.
  // Returns false once the parser is in error (the error event is queued once).
  bool feed(std::string_view data);

  bool has_event() const { return !events_.empty(); }
  StreamEvent next_event();
  std::deque<StreamEvent>& events() { return events_; }

  bool failed() const { return failed_; }
  // Total bytes accepted by feed() so far.
  std::uint64_t bytes_fed() const { return fed_; }

  // Restarts the stream (after STARTTLS or SASL success, RFC 6120 §4.3.3): a new document begins, the queue is
  // emptied.
  void reset();

  struct Impl;

private:
  std::unique_ptr<Impl> impl_;
  std::deque<StreamEvent> events_;
  std::uint64_t fed_ = 0;
  bool failed_ = false;
  ParserLimits limits_;
  friend struct Impl;
};

// Parses one complete XML fragment (a single element, e.g. from storage or a test) with the same restrictions.
// Returns false and sets `error` on failure.
bool parse_element(std::string_view xml, Element& out, std::string& error, ParserLimits limits = {});

} // namespace cg::xml
