// The stream parser on well-formed input: events, split input, offsets, limits at their edges, reset, parse_element.
#include "helpers.hpp"

using namespace cg::xml;
using namespace cg::xml::test;
using Kind = StreamEvent::Kind;

namespace {

// A client stream with a bit of everything: keepalives, UTF-8, entities, character references, CDATA, prefixed
// elements, namespaced attributes, an empty element.
const std::string kSample = std::string(kHeader) +
                            "\n  <iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>\r\n \t"
                            "<message to='juliet@example.com' type='chat' xml:lang='de'><body>Grüße 😀 &amp; "
                            "&lt;3 &#x1F600; &#228;</body><x xmlns='urn:x' xmlns:p='urn:p' p:flag='ja'>"
                            "<![CDATA[a<b]]>c</x></message>"
                            "<presence/>  "
                            "<stream:features/>"
                            "</stream:stream>";

std::size_t end_of(std::string_view data, std::string_view markup, std::size_t from = 0) {
  const auto pos = data.find(markup, from);
  REQUIRE(pos != std::string_view::npos);
  return pos + markup.size();
}

} // namespace

TEST_CASE("stream parser: open, stanzas, close", "[xml][parser]") {
  const auto events = parse_all(kSample);
  INFO(describe(events));
  REQUIRE(events.size() == 6);

  const StreamEvent& open = events[0];
  CHECK(open.kind == Kind::Open);
  CHECK(open.element.is("stream", ns::streams));
  CHECK(open.element.attr("to") == "example.com");
  CHECK(open.element.attr("version") == "1.0");
  CHECK(open.element.attr("xml:lang") == "en");
  CHECK(open.element.attrs().size() == 3); // xmlns declarations are not attributes
  CHECK(open.element.nodes().empty());
  CHECK(open.content_ns == "jabber:client");
  CHECK(open.stream_prefix == "stream");
  CHECK(open.end_offset == kHeader.size());

  const StreamEvent& iq = events[1];
  CHECK(iq.kind == Kind::Stanza);
  CHECK(iq.element.is("iq", "jabber:client"));
  CHECK(iq.element.attr("id") == "r1");
  CHECK(iq.element.child("query", "jabber:iq:roster") != nullptr);
  CHECK(iq.element.nodes().size() == 1);

  const Element& msg = events[2].element;
  CHECK(events[2].kind == Kind::Stanza);
  CHECK(msg.is("message", "jabber:client"));
  CHECK(msg.attr("xml:lang") == "de");
  CHECK(msg.child_text("body") == "Grüße 😀 & <3 😀 ä");
  // One merged text node however expat split the character data.
  CHECK(msg.child("body")->nodes().size() == 1);
  const Element* x = msg.child("x", "urn:x");
  REQUIRE(x != nullptr);
  CHECK(x->attr("{urn:p}flag") == "ja");
  CHECK(x->text() == "a<bc");
  CHECK(x->nodes().size() == 1);

  CHECK(events[3].kind == Kind::Stanza);
  CHECK(events[3].element.is("presence", "jabber:client"));
  CHECK(events[4].kind == Kind::Stanza);
  CHECK(events[4].element.is("features", ns::streams));
  CHECK(events[5].kind == Kind::Close);
}

TEST_CASE("stream parser: end_offset is just past each event's markup", "[xml][parser]") {
  const auto events = parse_all(kSample);
  REQUIRE(events.size() == 6);
  CHECK(events[0].end_offset == kHeader.size());
  CHECK(events[1].end_offset == end_of(kSample, "</iq>"));
  CHECK(events[2].end_offset == end_of(kSample, "</message>"));
  CHECK(events[3].end_offset == end_of(kSample, "<presence/>"));
  CHECK(events[4].end_offset == end_of(kSample, "<stream:features/>"));
  CHECK(events[5].end_offset == kSample.size());
}

TEST_CASE("stream parser: input split at every byte position", "[xml][parser]") {
  const auto reference = parse_all(kSample);
  REQUIRE(reference.size() == 6);
  for (std::size_t cut = 0; cut <= kSample.size(); ++cut) {
    StreamParser p;
    CHECK(p.feed(std::string_view(kSample).substr(0, cut)));
    CHECK(p.feed(std::string_view(kSample).substr(cut)));
    const auto got = drain(p);
    INFO("cut at " << cut << "\n" << describe(got));
    REQUIRE(same_events(got, reference));
  }
}

TEST_CASE("stream parser: input fed byte by byte and in random pieces", "[xml][parser]") {
  const auto reference = parse_all(kSample);
  CHECK(same_events(parse_pieces(kSample, {1}), reference));
  CHECK(same_events(parse_pieces(kSample, {2}), reference));
  CHECK(same_events(parse_pieces(kSample, {3}), reference));
  Lcg rng{42};
  for (int round = 0; round < 200; ++round) {
    std::vector<std::size_t> sizes;
    for (int i = 0; i < 16; ++i) {
      sizes.push_back(rng.between(1, 40));
    }
    const auto got = parse_pieces(kSample, sizes);
    INFO(describe(got));
    REQUIRE(same_events(got, reference));
  }
}

TEST_CASE("stream parser: events are delivered as soon as their markup is complete", "[xml][parser]") {
  StreamParser p;
  const std::string stanza = "<message><body>x</body></message>";
  REQUIRE(p.feed(std::string(kHeader).substr(0, kHeader.size() - 1)));
  CHECK_FALSE(p.has_event());
  REQUIRE(p.feed(">"));
  REQUIRE(p.has_event());
  CHECK(p.next_event().kind == Kind::Open);
  REQUIRE(p.feed(stanza.substr(0, stanza.size() - 1)));
  CHECK_FALSE(p.has_event());
  REQUIRE(p.feed(">"));
  REQUIRE(p.has_event());
  CHECK(p.next_event().element.child_text("body") == "x");
  CHECK_FALSE(p.has_event());
  CHECK(p.bytes_fed() == kHeader.size() + stanza.size());
  CHECK_THROWS(p.next_event());
}

TEST_CASE("stream parser: whitespace keepalives between stanzas are ignored", "[xml][parser]") {
  StreamParser p;
  REQUIRE(p.feed(kHeader));
  REQUIRE(p.feed(" "));
  REQUIRE(p.feed("\n"));
  REQUIRE(p.feed("\r\n\t  "));
  REQUIRE(p.feed("<presence/>"));
  REQUIRE(p.feed("   "));
  const auto events = drain(p);
  INFO(describe(events));
  REQUIRE(events.size() == 2);
  CHECK(events[0].kind == Kind::Open);
  CHECK(events[1].kind == Kind::Stanza);
  CHECK(events[1].element.is("presence", "jabber:client"));
  CHECK(events[1].element.nodes().empty());
}

TEST_CASE("stream parser: stream headers", "[xml][parser]") {
  SECTION("s2s header with another prefix and no XML declaration") {
    const auto events = parse_all("<db:stream xmlns='jabber:server' xmlns:db='http://etherx.jabber.org/streams' "
                                  "from='a.example' to='b.example' version='1.0' id='abc'><db:features/>");
    INFO(describe(events));
    REQUIRE(events.size() == 2);
    CHECK(events[0].content_ns == "jabber:server");
    CHECK(events[0].stream_prefix == "db");
    CHECK(events[0].element.attr("from") == "a.example");
    CHECK(events[0].element.attr("id") == "abc");
    CHECK(events[1].element.is("features", ns::streams));
  }
  SECTION("no default namespace") {
    const auto events = parse_all("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><x/>");
    REQUIRE(events.size() == 2);
    CHECK(events[0].content_ns.empty());
    CHECK(events[1].element.is("x", ""));
  }
  SECTION("XML declaration in UTF-8, either case, and a BOM") {
    CHECK(parse_all("<?xml version='1.0' encoding='UTF-8'?>" + std::string(kHeader.substr(21))).at(0).kind ==
          Kind::Open);
    CHECK(parse_all("<?xml version='1.0' encoding='utf-8'?>" + std::string(kHeader.substr(21))).at(0).kind ==
          Kind::Open);
    CHECK(parse_all("\xEF\xBB\xBF" + std::string(kHeader)).at(0).kind == Kind::Open);
  }
}

TEST_CASE("stream parser: input after </stream:stream> is ignored", "[xml][parser]") {
  StreamParser p;
  REQUIRE(p.feed(std::string(kHeader) + "<presence/></stream:stream><junk>"));
  CHECK(p.feed("more junk <<<"));
  CHECK_FALSE(p.failed());
  const auto events = drain(p);
  INFO(describe(events));
  REQUIRE(events.size() == 3);
  CHECK(events[2].kind == Kind::Close);
}

TEST_CASE("stream parser: re-feeding the bytes after end_offset reproduces the following events", "[xml][parser]") {
  // A client that pipelines its new stream header right after <auth/> (the session restarts the parser after
  // <success/> and re-feeds what followed the <auth/> element).
  const std::string second_header = "<stream:stream xmlns='jabber:client' "
                                    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";
  const std::string after = second_header + "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                                            "</iq> <presence/>";
  const std::string data =
      std::string(kHeader) + "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>" + after;

  StreamParser p;
  REQUIRE(p.feed(data));
  auto events = drain(p);
  REQUIRE(events.size() >= 2);
  REQUIRE(events[1].element.is("auth", ns::sasl));
  const std::uint64_t cut = events[1].end_offset;
  CHECK(std::string_view(data).substr(cut) == after);

  p.reset();
  CHECK(p.bytes_fed() == 0);
  CHECK_FALSE(p.has_event());
  REQUIRE(p.feed(std::string_view(data).substr(cut)));
  const auto restarted = drain(p);
  INFO(describe(restarted));
  REQUIRE(restarted.size() == 3);
  CHECK(restarted[0].kind == Kind::Open);
  CHECK(restarted[0].end_offset == second_header.size()); // offsets count from the reset
  CHECK(restarted[1].element.child("bind", ns::bind) != nullptr);
  CHECK(restarted[2].element.is("presence", "jabber:client"));

  // The same through every cut point of a normal stream: the tail after any stanza, behind a fresh header,
  // gives the events that followed it, shifted by the difference in offsets.
  const auto reference = parse_all(kSample);
  for (std::size_t i = 1; i + 1 < reference.size(); ++i) {
    const std::uint64_t at = reference[i].end_offset;
    const std::string refed = std::string(kHeader) + kSample.substr(at);
    auto tail = parse_all(refed);
    REQUIRE(tail.size() == reference.size() - i);
    for (std::size_t k = 1; k < tail.size(); ++k) {
      const StreamEvent& want = reference[i + k];
      const StreamEvent& got = tail[k];
      CHECK(got.kind == want.kind);
      CHECK(got.element == want.element);
      CHECK(got.end_offset - kHeader.size() == want.end_offset - at);
    }
  }
}

TEST_CASE("stream parser: reset() starts a new document", "[xml][parser]") {
  StreamParser p;
  REQUIRE_FALSE(p.feed(std::string(kHeader) + "<message><!-- no --></message>"));
  CHECK(p.failed());
  CHECK(p.has_event());
  CHECK_FALSE(p.feed("<presence/>"));

  p.reset();
  CHECK_FALSE(p.failed());
  CHECK_FALSE(p.has_event());
  CHECK(p.bytes_fed() == 0);
  // A new document: an XML declaration and a header with a different content namespace are fine again.
  const std::string s2s = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                          "xmlns:stream='http://etherx.jabber.org/streams'><message/>";
  REQUIRE(p.feed(s2s));
  auto events = drain(p);
  REQUIRE(events.size() == 2);
  CHECK(events[0].content_ns == "jabber:server");
  CHECK(events[0].end_offset == s2s.size() - std::string_view("<message/>").size());
  CHECK(events[1].element.is("message", "jabber:server"));
  CHECK(p.bytes_fed() == s2s.size());

  // Reset in the middle of a stanza drops the partial stanza.
  REQUIRE(p.feed("<message><body>half"));
  p.reset();
  REQUIRE(p.feed(std::string(kHeader) + "<presence/>"));
  events = drain(p);
  REQUIRE(events.size() == 2);
  CHECK(events[1].element.is("presence", "jabber:client"));
}

TEST_CASE("stream parser: stanza size limit is exact", "[xml][parser][limits]") {
  const std::string stanza = "<message><body>" + std::string(1000, 'x') + "</body></message>";
  ParserLimits at_limit;
  at_limit.max_stanza_bytes = stanza.size();
  ParserLimits below;
  below.max_stanza_bytes = stanza.size() - 1;
  const std::string data = std::string(kHeader) + "   " + stanza + " " + stanza;

  for (std::size_t piece : {std::size_t(1), std::size_t(7), std::size_t(100), data.size()}) {
    INFO("pieces of " << piece);
    auto ok = parse_pieces(data, {piece}, at_limit);
    INFO(describe(ok));
    REQUIRE(ok.size() == 3);
    CHECK(ok[2].kind == Kind::Stanza);

    auto too_big = parse_pieces(data, {piece}, below);
    CHECK(the_error(too_big).condition == "policy-violation");
    CHECK(the_error(too_big).text.find("max_stanza_bytes") != std::string::npos);
    CHECK(too_big.size() == 2); // Open, then the error for the first stanza
  }
}

TEST_CASE("stream parser: depth limit is exact", "[xml][parser][limits]") {
  auto nested = [](std::size_t levels) {
    std::string s;
    for (std::size_t i = 0; i < levels; ++i) {
      s += "<a>";
    }
    for (std::size_t i = 0; i < levels; ++i) {
      s += "</a>";
    }
    return s;
  };
  ParserLimits limits;
  limits.max_depth = 5;
  auto ok = parse_all(std::string(kHeader) + nested(5), limits);
  REQUIRE(ok.size() == 2);
  CHECK(ok[1].kind == Kind::Stanza);
  CHECK(error_condition(std::string(kHeader) + nested(6), limits) == "policy-violation");
  CHECK(the_error(parse_all(std::string(kHeader) + nested(6), limits)).text.find("max_depth") != std::string::npos);

  Element el;
  std::string error;
  CHECK(parse_element(nested(5), el, error, limits));
  CHECK_FALSE(parse_element(nested(6), el, error, limits));
  CHECK(error.rfind("policy-violation", 0) == 0);
}

TEST_CASE("parse_element: one standalone element", "[xml][parser]") {
  Element el;
  std::string error;
  REQUIRE(parse_element("<message xmlns='jabber:client' to='a@b'><body>x &amp; y</body></message>", el, error));
  CHECK(el.is("message", "jabber:client"));
  CHECK(el.attr("to") == "a@b");
  CHECK(el.child_text("body") == "x & y");

  REQUIRE(parse_element("<?xml version='1.0'?>\n  <x/>\n", el, error));
  CHECK(el.is("x", ""));
  CHECK(el.nodes().empty());

  REQUIRE(parse_element("<x xmlns='urn:x'>  </x>", el, error));
  CHECK(el.text() == "  "); // whitespace inside an element is content

  struct Bad {
    const char* xml;
    const char* condition;
  };
  const Bad bad[] = {
      {"", "not-well-formed"},
      {"   ", "not-well-formed"},
      {"<a/><b/>", "not-well-formed"},
      {"<a>", "not-well-formed"},
      {"text", "not-well-formed"},
      {"<a>&foo;</a>", "not-well-formed"},
      {"<p:a/>", "bad-namespace-prefix"},
      {"<a><!-- c --></a>", "restricted-xml"},
      {"<?pi x?><a/>", "restricted-xml"},
      {"<!DOCTYPE a><a/>", "restricted-xml"},
      {"<?xml version='1.0' encoding='ISO-8859-1'?><a/>", "unsupported-encoding"},
  };
  for (const Bad& b : bad) {
    INFO(b.xml);
    error.clear();
    CHECK_FALSE(parse_element(b.xml, el, error));
    CHECK(error.rfind(b.condition, 0) == 0);
    CHECK(error.size() > std::string_view(b.condition).size()); // with a description
  }

  ParserLimits small;
  small.max_stanza_bytes = 12;
  CHECK(parse_element("<a>12345</a>", el, error, small));
  CHECK_FALSE(parse_element("<a>123456</a>", el, error, small));
  CHECK(error.rfind("policy-violation", 0) == 0);
}
