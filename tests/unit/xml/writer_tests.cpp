// The escaping writer: escaping, namespace declarations, the content namespace switch, round trips.
#include "helpers.hpp"

#include "server/xml/writer.hpp"

using namespace cg::xml;
using namespace cg::xml::test;

namespace {

std::string esc_text(std::string_view s) {
  std::string out;
  escape_text(out, s);
  return out;
}

std::string esc_attr(std::string_view s) {
  std::string out;
  escape_attr(out, s);
  return out;
}

Element parse(std::string_view xml) {
  Element el;
  std::string error;
  INFO(xml);
  REQUIRE(parse_element(xml, el, error));
  CHECK(error.empty());
  return el;
}

} // namespace

TEST_CASE("writer: text escaping", "[xml][writer]") {
  CHECK(esc_text("") == "");
  CHECK(esc_text("plain text") == "plain text");
  CHECK(esc_text("a & b < c > d") == "a &amp; b &lt; c &gt; d");
  CHECK(esc_text("]]>") == "]]&gt;");
  // Quotes need no escaping in character data.
  CHECK(esc_text("it's \"quoted\"") == "it's \"quoted\"");
  // Multi-byte UTF-8 passes through untouched.
  CHECK(esc_text("Grüße 😀") == "Grüße 😀");
  // Tab and newline are kept; CR is written as a reference so that line-end normalisation does not eat it.
  CHECK(esc_text("a\tb\nc\rd") == "a\tb\nc&#13;d");
  // Characters XML cannot carry become U+FFFD.
  CHECK(esc_text(std::string_view("x\0y\x01z\x1b", 6)) == "x\xEF\xBF\xBDy\xEF\xBF\xBDz\xEF\xBF\xBD");
  // Appends to what is already there.
  std::string out = "<body>";
  escape_text(out, "1<2");
  CHECK(out == "<body>1&lt;2");
}

TEST_CASE("writer: attribute escaping", "[xml][writer]") {
  CHECK(esc_attr("a&b<c>d'e\"f") == "a&amp;b&lt;c&gt;d&apos;e&quot;f");
  CHECK(esc_attr("Grüße") == "Grüße");
  // Whitespace other than space would be normalised to spaces by a parser.
  CHECK(esc_attr("a\tb\nc\rd") == "a&#9;b&#10;c&#13;d");
  CHECK(esc_attr("\x02") == "\xEF\xBF\xBD");
}

TEST_CASE("writer: elements, attributes and text", "[xml][writer]") {
  Element presence("presence", "jabber:client");
  CHECK(to_string(presence, "jabber:client") == "<presence/>");
  CHECK(to_string(presence) == "<presence xmlns='jabber:client'/>");

  Element msg("message", "jabber:client");
  msg.set_attr("to", "juliet@example.com").set_attr("type", "chat").set_attr("xml:lang", "en");
  msg.set_attr("id", "a'b\"c<&>");
  msg.add_text_child("body", "I <3 you & \"you\"");
  CHECK(to_string(msg, "jabber:client") ==
        "<message to='juliet@example.com' type='chat' xml:lang='en' id='a&apos;b&quot;c&lt;&amp;&gt;'>"
        "<body>I &lt;3 you &amp; \"you\"</body></message>");

  // serialize() appends.
  std::string out = "<stream:stream>";
  serialize(out, presence, "jabber:client");
  CHECK(out == "<stream:stream><presence/>");
}

TEST_CASE("writer: xmlns only where the namespace changes", "[xml][writer]") {
  Element iq("iq", "jabber:client");
  iq.set_attr("type", "result");
  Element& query = iq.add_child("query", "jabber:iq:roster");
  query.add_child("item").set_attr("jid", "romeo@example.net");
  query.add_child("group", "jabber:client"); // back to the outer namespace: declared again
  iq.add(Element("unqualified"));            // no namespace at all inside a default namespace: xmlns=''
  CHECK(to_string(iq, "jabber:client") ==
        "<iq type='result'><query xmlns='jabber:iq:roster'><item jid='romeo@example.net'/>"
        "<group xmlns='jabber:client'/></query><unqualified xmlns=''/></iq>");

  Element bare("x");
  CHECK(to_string(bare) == "<x/>");
  bare.add_child("y");
  CHECK(to_string(bare) == "<x><y/></x>");
}

TEST_CASE("writer: namespaced attributes get prefixes", "[xml][writer]") {
  Element el("query", "urn:example");
  el.set_attr("{urn:a}one", "1");
  el.set_attr("plain", "p");
  el.set_attr("{urn:b}two", "2'");
  el.set_attr("{http://www.w3.org/XML/1998/namespace}space", "preserve");
  const std::string xml = to_string(el);
  CHECK(xml == "<query xmlns='urn:example' xmlns:ns1='urn:a' ns1:one='1' plain='p' xmlns:ns2='urn:b' "
               "ns2:two='2&apos;' xml:space='preserve'/>");

  // Parsed back, the names are "{uri}local" again (and xml:* for the xml namespace).
  const Element back = parse(xml);
  CHECK(back.attr("{urn:a}one") == "1");
  CHECK(back.attr("{urn:b}two") == "2'");
  CHECK(back.attr("plain") == "p");
  CHECK(back.attr("xml:space") == "preserve");

  // A child declares its own prefixes; reusing ns1 there is fine.
  Element parent("a", "urn:p");
  parent.set_attr("{urn:a}x", "1");
  parent.add_child("b").set_attr("{urn:c}y", "2");
  const Element parsed = parse(to_string(parent));
  CHECK(parsed.attr("{urn:a}x") == "1");
  CHECK(parsed.child("b")->attr("{urn:c}y") == "2");
}

TEST_CASE("writer: stream content namespace switch", "[xml][writer]") {
  // A stanza from a c2s stream (jabber:client) written to an s2s stream (jabber:server), with a forwarded copy
  // whose jabber:client must stay as it is (XEP-0297).
  Element msg("message", "jabber:client");
  msg.set_attr("from", "romeo@example.net/orchard").set_attr("to", "juliet@example.com");
  msg.add_text_child("body", "hi");
  Element& fwd = msg.add_child("forwarded", "urn:xmpp:forward:0");
  fwd.add_child("message", "jabber:client").add_text_child("body", "old");
  Element& err = msg.add_child("error");
  err.set_attr("type", "cancel");
  err.add_child("item-not-found", "urn:ietf:params:xml:ns:xmpp-stanzas");

  CHECK(to_string(msg, "jabber:server") ==
        "<message from='romeo@example.net/orchard' to='juliet@example.com'><body>hi</body>"
        "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>old</body></message></forwarded>"
        "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
  CHECK(to_string(msg, "jabber:client") ==
        "<message from='romeo@example.net/orchard' to='juliet@example.com'><body>hi</body>"
        "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>old</body></message></forwarded>"
        "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");

  // And back: jabber:server into a c2s stream.
  Element from_s2s("presence", "jabber:server");
  from_s2s.add_text_child("status", "away");
  CHECK(to_string(from_s2s, "jabber:client") == "<presence><status>away</status></presence>");

  // No switch outside a content namespace, nor for other namespaces.
  CHECK(to_string(from_s2s) == "<presence xmlns='jabber:server'><status>away</status></presence>");
  CHECK(to_string(from_s2s, "jabber:component:accept") ==
        "<presence xmlns='jabber:server'><status>away</status></presence>");
  Element nonza("r", "urn:xmpp:sm:3");
  CHECK(to_string(nonza, "jabber:server") == "<r xmlns='urn:xmpp:sm:3'/>");
}

TEST_CASE("writer: switched stanza parses in the new stream namespace", "[xml][writer]") {
  const Element original = parse("<message xmlns='jabber:client' to='a@b'><body>x</body>"
                                 "<x xmlns='jabber:x:data'><field var='v'><value>1</value></field></x></message>");
  std::string stream = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>";
  serialize(stream, original, "jabber:server");
  const auto events = parse_all(stream);
  INFO(describe(events));
  REQUIRE(events.size() == 2);
  REQUIRE(events[1].kind == StreamEvent::Kind::Stanza);
  const Element& got = events[1].element;
  CHECK(got.is("message", "jabber:server"));
  CHECK(got.child("body", "jabber:server")->text() == "x");
  CHECK(got.child("x", "jabber:x:data")->child("field")->child_text("value") == "1");
}

TEST_CASE("writer: parse, serialize, parse gives the same tree", "[xml][writer]") {
  const char* samples[] = {
      "<message xmlns='jabber:client' to='juliet@example.com' type='chat' xml:lang='en'><body>Grüße 😀 &amp; "
      "&lt;tags&gt; &apos;q&apos; &quot;dq&quot;</body><thread>t</thread></message>",
      "<iq xmlns='jabber:client' type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='a@b' "
      "name='A &amp; B'><group>Friends</group></item></query></iq>",
      "<a xmlns='urn:a'><b xmlns=''><c/></b>text<d xmlns='urn:d'/>more text</a>",
      "<p:a xmlns:p='urn:p' xmlns:q='urn:q' q:attr='v' attr='w'><p:b q:x='1'/><c/></p:a>",
      "<x xmlns='urn:x'><![CDATA[<not markup> & ]]>tail</x>",
      "<x xmlns='urn:x' a='tab&#9;nl&#10;cr&#13;'>cr&#13;lf&#10;tab&#9;</x>",
      "<x xml:lang='de' xml:space='preserve'>  leading and trailing  </x>",
      "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms "
      "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>",
      "<xml:weird xmlns='urn:d'><inner/></xml:weird>",
  };
  for (const char* sample : samples) {
    INFO(sample);
    const Element first = parse(sample);
    const std::string written = to_string(first);
    INFO(written);
    const Element second = parse(written);
    CHECK(first == second);
    // And once more, byte for byte stable.
    CHECK(to_string(second) == written);
  }
}
