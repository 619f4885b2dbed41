// The stream parser on hostile input: restricted XML, malformed XML, namespaces, encodings, and the limits.
#include "helpers.hpp"

using namespace cg::xml;
using namespace cg::xml::test;
using Kind = StreamEvent::Kind;

namespace {

std::string in_stream(std::string_view body) {
  return std::string(kHeader) + std::string(body);
}

const std::string kBillionLaughs = "<?xml version='1.0'?>\n"
                                   "<!DOCTYPE lolz [\n"
                                   " <!ENTITY lol 'lol'>\n"
                                   " <!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>\n"
                                   " <!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>\n"
                                   " <!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>\n"
                                   " <!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'>\n"
                                   " <!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'>\n"
                                   " <!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'>\n"
                                   " <!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'>\n"
                                   " <!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'>\n"
                                   " <!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>\n"
                                   "]>\n"
                                   "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
                                   "<message><body>&lol9;</body></message>";

} // namespace

TEST_CASE("hostile: billion laughs is restricted-xml before any entity is read", "[xml][hostile]") {
  const auto events = parse_all(kBillionLaughs);
  REQUIRE(events.size() == 1);
  CHECK(the_error(events).condition == "restricted-xml");

  // The error is there as soon as the DOCTYPE's internal subset begins: not one declaration was parsed.
  StreamParser p;
  const std::size_t bracket = kBillionLaughs.find('[');
  CHECK_FALSE(p.feed(std::string_view(kBillionLaughs).substr(0, bracket + 1)));
  REQUIRE(p.has_event());
  CHECK(p.next_event().condition == "restricted-xml");

  Element el;
  std::string error;
  CHECK_FALSE(parse_element(kBillionLaughs.substr(0, kBillionLaughs.find("<stream:")) + "<a>&lol9;</a>", el, error));
  CHECK(error.rfind("restricted-xml", 0) == 0);
}

TEST_CASE("hostile: restricted XML (RFC 6120 §11.1)", "[xml][hostile]") {
  const char* cases[] = {
      // DOCTYPE, with and without an internal subset, before the header
      "<!DOCTYPE stream:stream><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
      "<?xml version='1.0'?><!DOCTYPE x SYSTEM 'http://example.com/x.dtd'>",
      "<!DOCTYPE x PUBLIC '-//X//EN' 'x.dtd'>",
      // an internal entity declaration (and its use)
      "<!DOCTYPE x [<!ENTITY e 'expanded'>]><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
      "<message><body>&e;</body></message>",
      // external and parameter entities
      "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>",
      "<!DOCTYPE x [<!ENTITY % p SYSTEM 'http://example.com/p'> %p;]><x/>",
      // processing instructions
      "<?xml-stylesheet href='x'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
      // comments
      "<!-- hello --><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
  };
  for (const char* c : cases) {
    INFO(c);
    CHECK(error_condition(c) == "restricted-xml");
  }
  // Inside the stream: between stanzas and inside a stanza.
  CHECK(error_condition(in_stream("<presence/><!-- keepalive? -->")) == "restricted-xml");
  CHECK(error_condition(in_stream("<message><body>a<!--x-->b</body></message>")) == "restricted-xml");
  CHECK(error_condition(in_stream("<?php echo 1; ?>")) == "restricted-xml");
  CHECK(error_condition(in_stream("<message><?pi?></message>")) == "restricted-xml");
  // Stanzas before the offending markup are still delivered, in order.
  const auto events = parse_all(in_stream("<presence/><!---->"));
  REQUIRE(events.size() == 3);
  CHECK(events[1].kind == Kind::Stanza);
  CHECK(events[2].condition == "restricted-xml");
}

TEST_CASE("hostile: malformed XML is not-well-formed", "[xml][hostile]") {
  const char* cases[] = {
      "<message><body>&foo;</body></message>",                      // undeclared entity
      "<message><body>&#0;</body></message>",                       // forbidden character reference
      "<message><body>&#xD800;</body></message>",                   // surrogate
      "<message><body></stream:stream>",                            // unclosed tags, then the stream's end
      "<message></presence>",                                       // mismatched
      "<message to='a' to='b'/>",                                   // duplicate attribute
      "<message to=a/>",                                            // unquoted
      "<message><body>a < b</body></message>",                      // bare <
      "<message><body>a & b</body></message>",                      // bare &
      "<1message/>",                                                // bad name
      "<?xml version='1.0'?>",                                      // XML declaration in the middle
      "<!DOCTYPE x>",                                               // DOCTYPE after the document element began
      "<message xmlns:p='urn:p' xmlns:q='urn:p' p:a='1' q:a='2'/>", // same expanded attribute twice
  };
  for (const char* c : cases) {
    INFO(c);
    const auto ev = the_error(parse_all(in_stream(c)));
    CHECK(ev.condition == "not-well-formed");
    CHECK_FALSE(ev.text.empty()); // expat's message
  }
  CHECK(error_condition("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='a' to='b'>") ==
        "not-well-formed");
}

TEST_CASE("hostile: invalid UTF-8 and forbidden characters", "[xml][hostile]") {
  const char* bad[] = {
      "\xFF",             // never valid
      "\xC3\x28",         // broken two-byte sequence
      "\xC0\xAF",         // overlong '/'
      "\xE0\x80\xAF",     // overlong, three bytes
      "\xED\xA0\x80",     // UTF-16 surrogate
      "\xF4\x90\x80\x80", // above U+10FFFF
      "\x80",             // lone continuation byte
      "\x01",             // control character
      "\x1B[31m",         // terminal escape
  };
  for (const char* b : bad) {
    INFO(b);
    CHECK(error_condition(in_stream(std::string("<message><body>") + b + "</body></message>")) == "not-well-formed");
    CHECK(error_condition(in_stream(std::string("<message to='") + b + "'/>")) == "not-well-formed");
  }
  CHECK(error_condition(std::string("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='\xFF'>")) ==
        "not-well-formed");
  // A sequence cut at the end of the input is simply incomplete, not an error.
  StreamParser p;
  REQUIRE(p.feed(in_stream("<message><body>\xF0\x9F")));
  REQUIRE(p.feed("\x98\x80</body></message>"));
  const auto events = drain(p);
  REQUIRE(events.size() == 2);
  CHECK(events[1].element.child_text("body") == "😀");
}

TEST_CASE("hostile: encodings other than UTF-8", "[xml][hostile]") {
  CHECK(error_condition("<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream "
                        "xmlns:stream='http://etherx.jabber.org/streams'>") == "unsupported-encoding");
  CHECK(error_condition("<?xml version='1.0' encoding='UTF-16'?>") == "unsupported-encoding");
  CHECK(error_condition("<?xml version='1.0' encoding='US-ASCII'?>") == "unsupported-encoding");
  // UTF-16 and UTF-32, with or without a byte order mark, even when the two telling bytes arrive apart (expat
  // would switch to UTF-16 on its own).
  CHECK(error_condition(std::string("\xFF\xFE<\0s\0", 6)) == "unsupported-encoding");
  CHECK(error_condition(std::string("\xFE\xFF\0<\0s", 6)) == "unsupported-encoding");
  CHECK(error_condition(std::string("<\0s\0", 4)) == "unsupported-encoding");
  CHECK(error_condition(std::string("\0<\0s", 4)) == "unsupported-encoding");
  CHECK(error_condition(std::string("\0\0\0<", 4)) == "unsupported-encoding");
  CHECK(the_error(parse_pieces(std::string("\xFF\xFE<\0s\0", 6), {1})).condition == "unsupported-encoding");
  {
    StreamParser p;
    CHECK(p.feed("<"));
    CHECK(p.bytes_fed() == 1);
    CHECK_FALSE(p.has_event());
    CHECK_FALSE(p.feed(std::string_view("\0", 1)));
    CHECK(the_error(drain(p)).condition == "unsupported-encoding");
  }
  Element el;
  std::string error;
  CHECK_FALSE(parse_element(std::string("<\0a\0/\0>\0", 8), el, error));
  CHECK(error.rfind("unsupported-encoding", 0) == 0);
  CHECK_FALSE(parse_element("<", el, error));
  CHECK(error.rfind("not-well-formed", 0) == 0);
  // Latin-1 bytes without a declaration are invalid UTF-8.
  CHECK(error_condition(in_stream("<message><body>Gr\xFC\xDF"
                                  "e</body></message>")) == "not-well-formed");
}

TEST_CASE("hostile: namespaces", "[xml][hostile]") {
  SECTION("unbound prefixes are bad-namespace-prefix") {
    CHECK(error_condition("<stream:stream xmlns='jabber:client'>") == "bad-namespace-prefix");
    CHECK(error_condition(in_stream("<foo:message/>")) == "bad-namespace-prefix");
    CHECK(error_condition(in_stream("<message foo:to='x'/>")) == "bad-namespace-prefix");
    CHECK(error_condition(in_stream("<message><a:b xmlns:c='urn:c'/></message>")) == "bad-namespace-prefix");
  }
  SECTION("the stream namespace as the default namespace is bad-namespace-prefix") {
    CHECK(error_condition("<stream xmlns='http://etherx.jabber.org/streams' version='1.0'>") == "bad-namespace-prefix");
  }
  SECTION("a wrong root is invalid-namespace") {
    CHECK(error_condition("<stream:stream xmlns:stream='http://etherx.jabber.org/streams/wrong'>") ==
          "invalid-namespace");
    CHECK(error_condition("<stream:stream xmlns:stream='jabber:client'>") == "invalid-namespace");
    CHECK(error_condition("<stream:streams xmlns:stream='http://etherx.jabber.org/streams'>") == "invalid-namespace");
    CHECK(error_condition("<message xmlns='jabber:client'>") == "invalid-namespace");
    CHECK(error_condition("<stream/>") == "invalid-namespace");
  }
}

TEST_CASE("hostile: text between stanzas is bad-format", "[xml][hostile]") {
  CHECK(error_condition(in_stream("hello")) == "bad-format");
  CHECK(error_condition(in_stream("<presence/>  x  <presence/>")) == "bad-format");
  CHECK(error_condition(in_stream("&amp;")) == "bad-format");
  CHECK(error_condition(in_stream("<![CDATA[x]]>")) == "bad-format");
  CHECK(error_condition(in_stream("\xC2\xA0")) == "bad-format"); // no-break space is not XML whitespace
}

TEST_CASE("hostile: after an error the parser accepts nothing", "[xml][hostile]") {
  StreamParser p;
  CHECK_FALSE(p.feed(in_stream("<message>&bad;</message><presence/>")));
  CHECK(p.failed());
  const std::uint64_t fed = p.bytes_fed();
  CHECK_FALSE(p.feed("<presence/>"));
  CHECK_FALSE(p.feed(""));
  CHECK(p.bytes_fed() == fed);
  const auto events = drain(p);
  REQUIRE(events.size() == 2); // Open and exactly one error
  CHECK(events[1].kind == Kind::Error);
}

TEST_CASE("hostile: a 10 MB stanza fails without being buffered", "[xml][hostile][limits]") {
  const ParserLimits limits; // 256 KiB
  const std::size_t piece = 64 * 1024;
  const std::size_t total = 10 * 1024 * 1024;

  SECTION("fed in 64 KiB pieces: the error arrives long before the end") {
    for (const std::string& open : {std::string("<message><body>"), std::string("<message to='")}) {
      INFO(open);
      StreamParser p(limits);
      REQUIRE(p.feed(in_stream(open)));
      const std::string chunk(piece, 'A');
      std::size_t pieces = 0;
      bool ok = true;
      while (ok && pieces * piece < total) {
        ok = p.feed(chunk);
        ++pieces;
      }
      CHECK_FALSE(ok);
      CHECK(pieces * piece <= limits.max_stanza_bytes + piece);
      CHECK(p.bytes_fed() <= kHeader.size() + limits.max_stanza_bytes + piece);
      const auto events = drain(p);
      CHECK(the_error(events).condition == "policy-violation");
    }
  }
  SECTION("fed in one call: only about the limit is ever handed to expat") {
    const std::string huge = in_stream("<message><body>" + std::string(total, 'A') + "</body></message>");
    StreamParser p(limits);
    CHECK_FALSE(p.feed(huge));
    CHECK(p.bytes_fed() <= kHeader.size() + limits.max_stanza_bytes + piece);
    CHECK(the_error(drain(p)).condition == "policy-violation");
  }
  SECTION("a huge stream header or prolog token is caught the same way") {
    ParserLimits small;
    small.max_stanza_bytes = 4096;
    for (const std::string& start : {std::string("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='"),
                                     std::string("<!-- "), std::string("<?xml version='1.0' encoding='")}) {
      INFO(start);
      StreamParser p(small);
      bool ok = p.feed(start);
      std::size_t fed = start.size();
      const std::string chunk(1000, 'a');
      while (ok && fed < total) {
        ok = p.feed(chunk);
        fed += chunk.size();
      }
      CHECK_FALSE(ok);
      CHECK(fed <= 4096 + 1000 + start.size());
      CHECK(the_error(drain(p)).condition == "policy-violation");
    }
  }
}

TEST_CASE("hostile: 10,000 levels of nesting", "[xml][hostile][limits]") {
  std::string deep = std::string(kHeader);
  for (int i = 0; i < 10000; ++i) {
    deep += "<a>";
  }
  const auto events = parse_all(deep);
  CHECK(the_error(events).condition == "policy-violation");
  CHECK(events.size() == 2);

  std::string fragment;
  for (int i = 0; i < 10000; ++i) {
    fragment += "<a>";
  }
  Element el;
  std::string error;
  CHECK_FALSE(parse_element(fragment, el, error));
  CHECK(error.rfind("policy-violation", 0) == 0);
}

TEST_CASE("hostile: whitespace keepalives do not count toward the stanza limit", "[xml][hostile][limits]") {
  ParserLimits limits;
  limits.max_stanza_bytes = 1024;
  StreamParser p(limits);
  REQUIRE(p.feed(kHeader));
  const std::string spaces(4096, ' ');
  Lcg rng{7};
  std::size_t fed = 0;
  const std::size_t total = 1024 * 1024;
  while (fed < total) {
    const std::size_t n = std::min(rng.between(1, 4096), total - fed);
    REQUIRE(p.feed(std::string_view(spaces).substr(0, n)));
    fed += n;
  }
  // Also newlines, tabs and CR LF pairs split across calls.
  for (int i = 0; i < 2000; ++i) {
    REQUIRE(p.feed("\r"));
    REQUIRE(p.feed("\n\t"));
  }
  const std::string stanza = "<message><body>" + std::string(900, 'x') + "</body></message>";
  REQUIRE(p.feed(stanza));
  const auto events = drain(p);
  INFO(describe(events));
  REQUIRE(events.size() == 2);
  CHECK(events[1].kind == Kind::Stanza);
  CHECK(events[1].element.child_text("body").size() == 900);
  CHECK(events[1].end_offset == p.bytes_fed());
}

TEST_CASE("hostile: many small stanzas do not accumulate toward the limit", "[xml][hostile][limits]") {
  ParserLimits limits;
  limits.max_stanza_bytes = 256; // the header (about 150 bytes) is a top-level element too
  std::string data = std::string(kHeader);
  for (int i = 0; i < 5000; ++i) {
    data += "<presence/>\n";
  }
  for (std::size_t piece : {std::size_t(1), std::size_t(5), std::size_t(4096), data.size()}) {
    INFO(piece);
    const auto events = parse_pieces(data, {piece}, limits);
    CHECK(events.size() == 5001);
    CHECK(events.back().kind == Kind::Stanza);
  }
}
