// The XMPP stream parser on expat (2.5 on Debian 12).
//
// Decisions worth knowing:
// - The input is always UTF-8: the parser is created for "UTF-8", and an XML declaration naming any other encoding
//   is the stream error <unsupported-encoding/>.
// - Restricted XML (RFC 6120 §11.1): the handlers for DOCTYPE, entity and notation declarations, processing
//   instructions and comments stop the parser with <restricted-xml/>. The DOCTYPE handler fires at the '[' or '>'
//   that ends the DOCTYPE's name, before any entity declaration is read, so nothing can ever be expanded.
// - Non-whitespace character data between stanzas is <bad-format/> (RFC 6120 §4.9.3.1: XML that is well-formed
//   but cannot be processed); whitespace there (keepalives) is dropped.
// - After </stream:stream> the parser stops: further input (junk or not) is ignored, feed() keeps returning true,
//   so that a closed stream never produces a stream error.
// - Size limit: feed() hands expat at most one slice at a time and, after each slice, compares the bytes accepted
//   since the last top-level boundary (end of the header, of a stanza, of whitespace between stanzas) with
//   max_stanza_bytes. Memory stays within the limit plus one slice whatever the size of one feed() call; a
//   completed stanza is also measured exactly from its '<' to its end.
// - Text nodes are merged: one node per run of character data between two child elements.
#include "server/xml/stream_parser.hpp"

#include <algorithm>
#include <cstring>
#include <expat.h>
#include <stdexcept>
#include <strings.h>

namespace cg::xml {

namespace {

// Separates URI, local name and prefix in the names expat reports. A control character cannot occur in a
// namespace URI (XML 1.0 forbids it even as a character reference), nor in a name.
constexpr char kSep = '\x01';

struct ExpandedName {
  std::string_view uri;
  std::string_view local;
  std::string_view prefix;
};

ExpandedName split_name(const char* name) {
  const std::string_view s(name);
  const auto first = s.find(kSep);
  if (first == std::string_view::npos) {
    return {{}, s, {}};
  }
  const std::string_view uri = s.substr(0, first);
  const std::string_view rest = s.substr(first + 1);
  const auto second = rest.find(kSep);
  if (second == std::string_view::npos) {
    return {uri, rest, {}};
  }
  return {uri, rest.substr(0, second), rest.substr(second + 1)};
}

bool is_xml_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// A slice of input handed to expat at once: small enough to bound memory above the limit, large enough that
// re-scanning a token spanning slices (expat 2.5 restarts an incomplete token from its beginning) stays cheap.
std::size_t slice_size(const ParserLimits& limits) {
  return std::clamp<std::size_t>(limits.max_stanza_bytes / 16, 4 * 1024, 64 * 1024);
}

} // namespace

struct StreamParser::Impl {
  Impl(std::deque<StreamEvent>& events, const ParserLimits& limits, bool fragment)
      : events(events), limits(limits), fragment(fragment) {
    parser = XML_ParserCreateNS("UTF-8", kSep);
    if (parser == nullptr) {
      throw std::bad_alloc();
    }
    configure();
  }
  ~Impl() { XML_ParserFree(parser); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  std::deque<StreamEvent>& events;
  const ParserLimits& limits;
  const bool fragment; // parse_element(): the document element is the one top-level element, no stream wrapper

  XML_Parser parser = nullptr;
  std::size_t depth = 0;       // elements currently open, the stream element included
  std::vector<Element*> stack; // the open elements of the stanza being built
  Element stanza;
  std::string content_ns;         // the default namespace declared on the stream header
  std::uint64_t fed = 0;          // bytes handed to expat
  std::uint64_t boundary = 0;     // end of the last top-level markup
  std::uint64_t stanza_start = 0; // where the stanza being built began
  bool failed = false;
  bool closed = false;
  bool in_parse = false;
  char head[2] = {};
  std::size_t head_len = 0;
  bool head_checked = false;

  void configure() {
    XML_SetUserData(parser, this);
    XML_SetReturnNSTriplet(parser, XML_TRUE);
    XML_SetParamEntityParsing(parser, XML_PARAM_ENTITY_PARSING_NEVER);
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 6)
    // Deferred reparsing (expat 2.6) would hold back a complete stanza until more input arrives.
    XML_SetReparseDeferralEnabled(parser, XML_FALSE);
#endif
    XML_SetElementHandler(parser, &Impl::on_start, &Impl::on_end);
    XML_SetCharacterDataHandler(parser, &Impl::on_text);
    XML_SetStartNamespaceDeclHandler(parser, &Impl::on_namespace);
    XML_SetXmlDeclHandler(parser, &Impl::on_xml_decl);
    XML_SetStartDoctypeDeclHandler(parser, &Impl::on_doctype);
    XML_SetEntityDeclHandler(parser, &Impl::on_entity);
    XML_SetUnparsedEntityDeclHandler(parser, &Impl::on_unparsed_entity);
    XML_SetNotationDeclHandler(parser, &Impl::on_notation);
    XML_SetProcessingInstructionHandler(parser, &Impl::on_pi);
    XML_SetCommentHandler(parser, &Impl::on_comment);
  }

  void reset() {
    XML_ParserReset(parser, "UTF-8"); // clears the handlers and options too
    configure();
    depth = 0;
    stack.clear();
    stanza = Element();
    content_ns.clear();
    fed = 0;
    boundary = 0;
    stanza_start = 0;
    failed = false;
    closed = false;
    head_len = 0;
    head_checked = false;
  }

  // Offset just past the markup being reported (valid inside a handler).
  std::uint64_t event_end() const {
    return static_cast<std::uint64_t>(XML_GetCurrentByteIndex(parser)) +
           static_cast<std::uint64_t>(XML_GetCurrentByteCount(parser));
  }

  void fail(std::string_view condition, std::string text) {
    if (failed) {
      return;
    }
    failed = true;
    StreamEvent& ev = events.emplace_back();
    ev.kind = StreamEvent::Kind::Error;
    ev.condition = condition;
    ev.text = std::move(text);
    ev.end_offset = in_parse ? event_end() : fed;
    if (in_parse) {
      XML_StopParser(parser, XML_FALSE);
    }
  }

  void check_pending() {
    if (!failed && !closed && fed - boundary > limits.max_stanza_bytes) {
      fail("policy-violation", "a top-level element exceeds the limit of " + std::to_string(limits.max_stanza_bytes) +
                                   " bytes (max_stanza_bytes)");
    }
  }

  // Expat sniffs UTF-16 from a document's first two bytes (a BOM, or '<' next to a NUL) even when told the
  // input is UTF-8, so those two bytes are looked at here before expat sees any.
  void parse(std::string_view data, bool final) {
    if (!head_checked) {
      while (head_len < sizeof head && !data.empty()) {
        head[head_len++] = data.front();
        data.remove_prefix(1);
      }
      if (head_len < sizeof head && !final) {
        return;
      }
      head_checked = true;
      const auto b0 = static_cast<unsigned char>(head[0]);
      const auto b1 = static_cast<unsigned char>(head[1]);
      if (head_len == sizeof head && (b0 == 0 || b1 == 0 || (b0 == 0xFE && b1 == 0xFF) || (b0 == 0xFF && b1 == 0xFE))) {
        fed = head_len;
        fail("unsupported-encoding", "the stream is not UTF-8 (it looks like UTF-16 or UTF-32)");
        return;
      }
      parse_slices(std::string_view(head, head_len), final && data.empty());
      if (failed || closed || data.empty()) {
        return;
      }
    }
    parse_slices(data, final);
  }

  // Bytes accepted so far, including the ones held back for the encoding check.
  std::uint64_t accepted() const {
    return fed + (head_checked ? 0 : head_len);
  }

  void parse_slices(std::string_view data, bool final) {
    const std::size_t slice = slice_size(limits);
    std::size_t pos = 0;
    do {
      const std::size_t n = std::min(slice, data.size() - pos);
      const bool last = final && pos + n == data.size();
      in_parse = true;
      const XML_Status status = XML_Parse(parser, data.data() + pos, static_cast<int>(n), last ? XML_TRUE : XML_FALSE);
      in_parse = false;
      fed += n;
      pos += n;
      if (status == XML_STATUS_ERROR) {
        if (!failed && !closed) {
          const XML_Error code = XML_GetErrorCode(parser);
          fail(code == XML_ERROR_UNBOUND_PREFIX ? "bad-namespace-prefix" : "not-well-formed", XML_ErrorString(code));
        }
        return;
      }
      if (closed) {
        return;
      }
      check_pending();
    } while (!failed && pos < data.size());
  }

  void set_attributes(Element& el, const char** atts) {
    for (; *atts != nullptr; atts += 2) {
      const ExpandedName n = split_name(atts[0]);
      std::string name;
      if (n.uri.empty()) {
        name = n.local;
      } else if (n.uri == ns::xml) {
        name.reserve(4 + n.local.size());
        name.append("xml:").append(n.local);
      } else {
        name.reserve(n.uri.size() + n.local.size() + 2);
        name.append(1, '{').append(n.uri).append(1, '}').append(n.local);
      }
      // Expat has already rejected duplicate attributes, so append without set_attr()'s scan (which would make a
      // stanza with many attributes quadratic). The vector is a non-const member: the cast is well-defined.
      const_cast<std::vector<Attribute>&>(el.attrs()).push_back(Attribute{std::move(name), std::string(atts[1])});
    }
  }

  void start(const char* name, const char** atts) {
    if (failed) {
      return;
    }
    const std::size_t d = depth++;
    const ExpandedName n = split_name(name);
    if (!fragment && d == 0) {
      if (n.local != "stream" || n.uri != ns::streams) {
        fail("invalid-namespace", "the stream element must be <stream/> in " + std::string(ns::streams));
        return;
      }
      if (n.prefix.empty()) {
        fail("bad-namespace-prefix", "the stream namespace must be bound to a prefix");
        return;
      }
      StreamEvent& ev = events.emplace_back();
      ev.kind = StreamEvent::Kind::Open;
      ev.element.set_name(std::string(n.local));
      ev.element.set_ns(std::string(n.uri));
      set_attributes(ev.element, atts);
      ev.content_ns = content_ns;
      ev.stream_prefix = n.prefix;
      ev.end_offset = event_end();
      boundary = ev.end_offset;
      return;
    }
    const std::size_t top = fragment ? 0 : 1;
    if (d - top + 1 > limits.max_depth) {
      fail("policy-violation",
           "elements are nested deeper than the limit of " + std::to_string(limits.max_depth) + " (max_depth)");
      return;
    }
    Element* el;
    if (d == top) {
      stanza_start = static_cast<std::uint64_t>(XML_GetCurrentByteIndex(parser));
      el = &stanza;
    } else {
      el = &std::get<Element>(stack.back()->nodes().emplace_back(std::in_place_type<Element>));
    }
    el->set_name(std::string(n.local));
    el->set_ns(std::string(n.uri));
    set_attributes(*el, atts);
    stack.push_back(el);
  }

  void end() {
    if (failed) {
      return;
    }
    const std::size_t d = --depth;
    if (!fragment && d == 0) {
      StreamEvent& ev = events.emplace_back();
      ev.kind = StreamEvent::Kind::Close;
      ev.end_offset = event_end();
      boundary = ev.end_offset;
      closed = true;
      XML_StopParser(parser, XML_FALSE); // whatever follows is ignored
      return;
    }
    stack.pop_back();
    if (stack.empty()) {
      const std::uint64_t end_offset = event_end();
      if (end_offset - stanza_start > limits.max_stanza_bytes) {
        fail("policy-violation", "a top-level element exceeds the limit of " + std::to_string(limits.max_stanza_bytes) +
                                     " bytes (max_stanza_bytes)");
        return;
      }
      StreamEvent& ev = events.emplace_back();
      ev.kind = StreamEvent::Kind::Stanza;
      ev.element = std::move(stanza);
      ev.end_offset = end_offset;
      boundary = end_offset;
      stanza = Element();
    }
  }

  void text(const char* s, int len) {
    if (failed || len <= 0) {
      return;
    }
    const std::string_view data(s, static_cast<std::size_t>(len));
    if (stack.empty()) {
      // Between stanzas.
      if (std::all_of(data.begin(), data.end(), is_xml_space)) {
        boundary = event_end();
        return;
      }
      fail("bad-format", "character data outside of a stanza");
      return;
    }
    auto& nodes = stack.back()->nodes();
    if (!nodes.empty()) {
      if (auto* last = std::get_if<std::string>(&nodes.back())) {
        last->append(data);
        return;
      }
    }
    nodes.emplace_back(std::in_place_type<std::string>, data);
  }

  static Impl& self(void* user) {
    return *static_cast<Impl*>(user);
  }

  static void XMLCALL on_start(void* user, const XML_Char* name, const XML_Char** atts) {
    self(user).start(name, atts);
  }
  static void XMLCALL on_end(void* user, const XML_Char*) {
    self(user).end();
  }
  static void XMLCALL on_text(void* user, const XML_Char* s, int len) {
    self(user).text(s, len);
  }
  static void XMLCALL on_namespace(void* user, const XML_Char* prefix, const XML_Char* uri) {
    Impl& p = self(user);
    // Namespace declarations are reported before the start tag that carries them, so depth is still 0.
    if (!p.fragment && p.depth == 0 && prefix == nullptr) {
      p.content_ns = uri != nullptr ? uri : "";
    }
  }
  static void XMLCALL on_xml_decl(void* user, const XML_Char*, const XML_Char* encoding, int) {
    Impl& p = self(user);
    if (encoding != nullptr && strcasecmp(encoding, "UTF-8") != 0) {
      p.fail("unsupported-encoding", "only UTF-8 is supported, not " + std::string(encoding));
      return;
    }
    p.boundary = p.event_end();
  }
  static void XMLCALL on_doctype(void* user, const XML_Char*, const XML_Char*, const XML_Char*, int) {
    self(user).fail("restricted-xml", "a DOCTYPE is not allowed (RFC 6120 §11.1)");
  }
  static void XMLCALL on_entity(void* user, const XML_Char*, int, const XML_Char*, int, const XML_Char*,
                                const XML_Char*, const XML_Char*, const XML_Char*) {
    self(user).fail("restricted-xml", "entity declarations are not allowed (RFC 6120 §11.1)");
  }
  static void XMLCALL on_unparsed_entity(void* user, const XML_Char*, const XML_Char*, const XML_Char*, const XML_Char*,
                                         const XML_Char*) {
    self(user).fail("restricted-xml", "entity declarations are not allowed (RFC 6120 §11.1)");
  }
  static void XMLCALL on_notation(void* user, const XML_Char*, const XML_Char*, const XML_Char*, const XML_Char*) {
    self(user).fail("restricted-xml", "notation declarations are not allowed (RFC 6120 §11.1)");
  }
  static void XMLCALL on_pi(void* user, const XML_Char*, const XML_Char*) {
    self(user).fail("restricted-xml", "processing instructions are not allowed (RFC 6120 §11.1)");
  }
  static void XMLCALL on_comment(void* user, const XML_Char*) {
    self(user).fail("restricted-xml", "comments are not allowed (RFC 6120 §11.1)");
  }
};

StreamParser::StreamParser(ParserLimits limits) : limits_(limits) {
  impl_ = std::make_unique<Impl>(events_, limits_, false);
}

StreamParser::~StreamParser() = default;

bool StreamParser::feed(std::string_view data) {
  if (failed_) {
    return false;
  }
  if (!data.empty() && !impl_->closed) {
    impl_->parse(data, false);
    fed_ = impl_->accepted();
    failed_ = impl_->failed;
  }
  return !failed_;
}

StreamEvent StreamParser::next_event() {
  if (events_.empty()) {
    throw std::logic_error("StreamParser::next_event() without an event");
  }
  StreamEvent ev = std::move(events_.front());
  events_.pop_front();
  return ev;
}

void StreamParser::reset() {
  impl_->reset();
  events_.clear();
  fed_ = 0;
  failed_ = false;
}

bool parse_element(std::string_view xml, Element& out, std::string& error, ParserLimits limits) {
  std::deque<StreamEvent> events;
  StreamParser::Impl impl(events, limits, true);
  impl.parse(xml, true);
  for (StreamEvent& ev : events) {
    if (ev.kind == StreamEvent::Kind::Error) {
      error = ev.condition + ": " + ev.text;
      return false;
    }
  }
  // Expat accepts exactly one document element, so a successful final parse produced exactly one event.
  if (events.size() != 1) {
    error = "not-well-formed: no element found";
    return false;
  }
  out = std::move(events.front().element);
  return true;
}

} // namespace cg::xml
