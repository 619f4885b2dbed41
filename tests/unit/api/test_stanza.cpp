// Stanza helpers: kinds, error replies with the RFC 6120 §8.3 error syntax, IQ results.
#include "server/api/stanza.hpp"
#include "server/xml/stream_parser.hpp"
#include "server/xml/writer.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

using cg::api::Element;
using cg::api::ErrorType;
using cg::api::StanzaError;
using cg::api::StanzaKind;
namespace ns = cg::xml::ns;

template <>
struct Catch::StringMaker<cg::xml::Element> {
  static std::string convert(const cg::xml::Element& el) { return cg::xml::to_string(el); }
};

namespace {

Element parse(std::string_view xml) {
  Element el;
  std::string error;
  if (!cg::xml::parse_element(xml, el, error)) {
    throw std::invalid_argument(error);
  }
  return el;
}

Element iq_get() {
  return parse("<iq xmlns='jabber:client' from='romeo@example.net/orchard' to='juliet@example.com/balcony' "
               "id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>");
}

// RFC 6120 §8.3.3: the 22 defined conditions and the error type each "SHOULD" have (where the RFC allows two, the
// first it names; undefined-condition allows any and gets cancel).
struct Defined {
  const char* condition;
  ErrorType type;
  const char* type_name;
};
const std::vector<Defined> kDefined{
    {"bad-request", ErrorType::Modify, "modify"},             // §8.3.3.1
    {"conflict", ErrorType::Cancel, "cancel"},                // §8.3.3.2
    {"feature-not-implemented", ErrorType::Cancel, "cancel"}, // §8.3.3.3 ("cancel" or "modify")
    {"forbidden", ErrorType::Auth, "auth"},                   // §8.3.3.4
    {"gone", ErrorType::Cancel, "cancel"},                    // §8.3.3.5
    {"internal-server-error", ErrorType::Cancel, "cancel"},   // §8.3.3.6
    {"item-not-found", ErrorType::Cancel, "cancel"},          // §8.3.3.7
    {"jid-malformed", ErrorType::Modify, "modify"},           // §8.3.3.8
    {"not-acceptable", ErrorType::Modify, "modify"},          // §8.3.3.9
    {"not-allowed", ErrorType::Cancel, "cancel"},             // §8.3.3.10
    {"not-authorized", ErrorType::Auth, "auth"},              // §8.3.3.11
    {"policy-violation", ErrorType::Modify, "modify"},        // §8.3.3.12 ("modify" or "wait")
    {"recipient-unavailable", ErrorType::Wait, "wait"},       // §8.3.3.13
    {"redirect", ErrorType::Modify, "modify"},                // §8.3.3.14
    {"registration-required", ErrorType::Auth, "auth"},       // §8.3.3.15
    {"remote-server-not-found", ErrorType::Cancel, "cancel"}, // §8.3.3.16
    {"remote-server-timeout", ErrorType::Wait, "wait"},       // §8.3.3.17
    {"resource-constraint", ErrorType::Wait, "wait"},         // §8.3.3.18
    {"service-unavailable", ErrorType::Cancel, "cancel"},     // §8.3.3.19
    {"subscription-required", ErrorType::Auth, "auth"},       // §8.3.3.20
    {"undefined-condition", ErrorType::Cancel, "cancel"},     // §8.3.3.21
    {"unexpected-request", ErrorType::Wait, "wait"},          // §8.3.3.22 ("wait" or "modify")
};

} // namespace

TEST_CASE("stanza: kind_of", "[stanza]") {
  CHECK(cg::api::kind_of(Element("message", std::string(ns::client))) == StanzaKind::Message);
  CHECK(cg::api::kind_of(Element("presence", std::string(ns::client))) == StanzaKind::Presence);
  CHECK(cg::api::kind_of(Element("iq", std::string(ns::client))) == StanzaKind::Iq);
  CHECK(cg::api::kind_of(Element("iq", std::string(ns::server))) == StanzaKind::Iq);
  CHECK(cg::api::kind_of(Element("r", "urn:xmpp:sm:3")) == StanzaKind::Other);
  CHECK(cg::api::kind_of(Element("features", std::string(ns::streams))) == StanzaKind::Other);
  CHECK(cg::api::kind_of(Element("Message", std::string(ns::client))) == StanzaKind::Other);
}

TEST_CASE("stanza: error type names", "[stanza]") {
  CHECK(cg::api::error_type_name(ErrorType::Auth) == "auth");
  CHECK(cg::api::error_type_name(ErrorType::Cancel) == "cancel");
  CHECK(cg::api::error_type_name(ErrorType::Continue) == "continue");
  CHECK(cg::api::error_type_name(ErrorType::Modify) == "modify");
  CHECK(cg::api::error_type_name(ErrorType::Wait) == "wait");
}

TEST_CASE("stanza: the 22 defined conditions and their default error types (RFC 6120 §8.3.3)", "[stanza]") {
  REQUIRE(kDefined.size() == 22);
  std::set<std::string> distinct;
  for (const auto& d : kDefined) {
    distinct.insert(d.condition);
  }
  REQUIRE(distinct.size() == 22);

  for (const auto& d : kDefined) {
    INFO(d.condition);
    CHECK(cg::api::is_stanza_error_condition(d.condition));
    CHECK(cg::api::default_error_type(d.condition) == d.type);
    CHECK(StanzaError::make(d.condition).effective_type() == d.type);

    const Element reply = cg::api::make_error_reply(iq_get(), d.condition);
    const Element* error = reply.child("error");
    REQUIRE(error != nullptr);
    CHECK(error->attr("type") == d.type_name);
    // Exactly one child: the condition, in the stanzas namespace (no <text/> when there is none).
    REQUIRE(error->element_count() == 1);
    CHECK(error->first_child()->is(d.condition, ns::stanza_errors));
    CHECK(error->first_child()->nodes().empty());
  }
}

TEST_CASE("stanza: unknown conditions become undefined-condition", "[stanza]") {
  // Stream error conditions, typos, and other namespaces' conditions are not stanza error conditions.
  for (const char* unknown : {"connection-timeout", "host-unknown", "not-found", "Bad-Request", "", "x"}) {
    INFO("'" << unknown << "'");
    CHECK_FALSE(cg::api::is_stanza_error_condition(unknown));
    CHECK(cg::api::default_error_type(unknown) == ErrorType::Cancel);
    const Element reply = cg::api::make_error_reply(iq_get(), unknown, "why");
    const Element* error = reply.child("error");
    REQUIRE(error != nullptr);
    CHECK(error->attr("type") == "cancel");
    CHECK(error->child("undefined-condition", ns::stanza_errors) != nullptr);
    CHECK(error->child(unknown, ns::stanza_errors) == nullptr);
    CHECK(error->child_text("text", ns::stanza_errors) == "why");
  }
}

TEST_CASE("stanza: make_error_reply swaps the addresses and keeps id and kind", "[stanza]") {
  const Element reply = cg::api::make_error_reply(iq_get(), "service-unavailable");
  CHECK(reply.name() == "iq");
  CHECK(reply.ns() == ns::client);
  CHECK(reply.attr("to") == "romeo@example.net/orchard");
  CHECK(reply.attr("from") == "juliet@example.com/balcony");
  CHECK(reply.attr("id") == "v1");
  CHECK(reply.attr("type") == "error");
  CHECK(cg::api::is_error(reply));
  CHECK_FALSE(cg::api::is_error(iq_get()));

  // RFC 6120 §8.3.2 example: the whole reply.
  const Element expected = parse("<iq xmlns='jabber:client' id='v1' to='romeo@example.net/orchard' "
                                 "from='juliet@example.com/balcony' type='error'><error type='cancel'>"
                                 "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
  CHECK(reply == expected);

  // Absent addresses stay absent (a client's stanza without 'to' is answered without 'from').
  const Element no_to = parse("<message xmlns='jabber:client' from='romeo@example.net/orchard' id='m' "
                              "type='chat'><body>hi</body></message>");
  const Element r = cg::api::make_error_reply(no_to, "not-allowed");
  CHECK(r.attr("to") == "romeo@example.net/orchard");
  CHECK_FALSE(r.has_attr("from"));
  CHECK(r.name() == "message");
  CHECK(r.attr("type") == "error");

  const Element no_id = parse("<presence xmlns='jabber:client' from='a@example.com/r' to='b@example.com' "
                              "type='subscribe'/>");
  const Element p = cg::api::make_error_reply(no_id, "forbidden");
  CHECK(p.name() == "presence");
  CHECK_FALSE(p.has_attr("id"));
  CHECK(p.attr("type") == "error");
  CHECK(p.child("error")->attr("type") == "auth");
  // A stanza without a namespace (built in code) is answered in jabber:client.
  Element bare("iq");
  bare.set_attr("id", "x");
  bare.set_attr("type", "set");
  CHECK(cg::api::make_error_reply(bare, "bad-request").ns() == ns::client);
}

TEST_CASE("stanza: the error element has text with xml:lang, 'by', and an explicit type", "[stanza]") {
  StanzaError e = StanzaError::make("policy-violation", "Too many messages");
  e.by = "example.com";
  e.type = ErrorType::Wait; // RFC 6120 §8.3.3.12: "modify" or "wait", depending on the policy
  const Element reply = cg::api::make_error_reply(iq_get(), e);
  const Element* error = reply.child("error");
  REQUIRE(error != nullptr);
  CHECK(error->attr("type") == "wait");
  CHECK(error->attr("by") == "example.com");
  REQUIRE(error->element_count() == 2);
  // RFC 6120 §8.3.2: the condition first, then the optional <text/> with its xml:lang.
  const auto children = error->children();
  CHECK(children[0]->is("policy-violation", ns::stanza_errors));
  CHECK(children[1]->is("text", ns::stanza_errors));
  CHECK(children[1]->attr("xml:lang") == "en");
  CHECK(children[1]->text() == "Too many messages");

  // Without 'by' or text, neither appears.
  const Element plain = cg::api::make_error_reply(iq_get(), StanzaError::make("conflict"));
  CHECK_FALSE(plain.child("error")->has_attr("by"));
  CHECK(plain.child("error")->child("text", ns::stanza_errors) == nullptr);

  // The text is escaped on the wire.
  const Element tricky = cg::api::make_error_reply(iq_get(), "bad-request", "a <b> & 'c'");
  CHECK(cg::xml::to_string(tricky).find("a &lt;b&gt; &amp;") != std::string::npos);
}

TEST_CASE("stanza: the error element is in the stanza's namespace (jabber:server on s2s)", "[stanza]") {
  // RFC 6120 §8.3.2: <error/> is qualified by the content namespace of the stanza (jabber:client or
  // jabber:server). Written into an s2s stream, an <error xmlns='jabber:client'/> would not be a stanza error.
  const Element s2s = parse("<iq xmlns='jabber:server' from='romeo@example.net/orchard' to='juliet@example.com' "
                            "id='s1' type='get'><query xmlns='jabber:iq:roster'/></iq>");
  const Element reply = cg::api::make_error_reply(s2s, "item-not-found", "no such user");
  CHECK(reply.ns() == ns::server);
  const Element* error = reply.child("error", ns::server);
  REQUIRE(error != nullptr);
  CHECK(error->child("item-not-found", ns::stanza_errors) != nullptr);
  CHECK(cg::xml::to_string(reply, ns::server).find("<error type='cancel'>") != std::string::npos);
  // And it reads back.
  auto parsed = cg::api::parse_error(reply);
  CHECK(parsed.condition == "item-not-found");
  CHECK(parsed.text == "no such user");
}

TEST_CASE("stanza: message errors keep the original payload, IQ errors do not", "[stanza]") {
  const Element msg = parse("<message xmlns='jabber:client' from='romeo@example.net/orchard' "
                            "to='juliet@example.com/balcony' id='m1' type='chat' xml:lang='en'>"
                            "<body>Wherefore art thou?</body><thread>t1</thread>"
                            "<active xmlns='http://jabber.org/protocol/chatstates'/></message>");
  const Element reply = cg::api::make_error_reply(msg, "recipient-unavailable");
  CHECK(reply.attr("type") == "error");
  CHECK(reply.attr("id") == "m1");
  const auto children = reply.children();
  REQUIRE(children.size() == 4);
  CHECK(children[0]->is("body", ns::client));
  CHECK(children[0]->text() == "Wherefore art thou?");
  CHECK(children[1]->is("thread", ns::client));
  CHECK(children[2]->is("active", "http://jabber.org/protocol/chatstates"));
  // The error comes last, once.
  CHECK(children[3]->is("error", ns::client));
  CHECK(children[3]->attr("type") == "wait");
  CHECK(children[3]->child("recipient-unavailable", ns::stanza_errors) != nullptr);

  // A message that already carried an <error/> does not keep it next to the new one.
  Element with_error = msg;
  with_error.add(cg::api::StanzaError::make("gone").to_element());
  const Element again = cg::api::make_error_reply(with_error, "not-allowed");
  CHECK(again.children("error", ns::client).size() == 1);
  CHECK(cg::api::parse_error(again).condition == "not-allowed");

  // IQ: only the error (RFC 6120 §8.3.1 makes echoing the request optional).
  const Element iq_reply = cg::api::make_error_reply(iq_get(), "forbidden");
  REQUIRE(iq_reply.element_count() == 1);
  CHECK(iq_reply.first_child()->name() == "error");
}

TEST_CASE("stanza: make_iq_result", "[stanza]") {
  const Element result = cg::api::make_iq_result(iq_get());
  const Element expected = parse("<iq xmlns='jabber:client' id='v1' to='romeo@example.net/orchard' "
                                 "from='juliet@example.com/balcony' type='result'/>");
  CHECK(result == expected);

  Element payload("query", "jabber:iq:version");
  payload.add_text_child("name", "ChatGroup");
  const Element with = cg::api::make_iq_result(iq_get(), payload);
  REQUIRE(with.element_count() == 1);
  CHECK(*with.first_child() == payload);
  CHECK(with.attr("type") == "result");
  CHECK(with.attr("id") == "v1");

  // No 'from' on the request (a client's IQ to its server): no 'to' on the result.
  const Element own = parse("<iq xmlns='jabber:client' to='example.com' id='p' type='get'>"
                            "<ping xmlns='urn:xmpp:ping'/></iq>");
  const Element r = cg::api::make_iq_result(own);
  CHECK_FALSE(r.has_attr("to"));
  CHECK(r.attr("from") == "example.com");
  // s2s: stays in jabber:server.
  const Element s2s = parse("<iq xmlns='jabber:server' from='a.example' to='b.example' id='s' type='get'>"
                            "<ping xmlns='urn:xmpp:ping'/></iq>");
  CHECK(cg::api::make_iq_result(s2s).ns() == ns::server);
}

TEST_CASE("stanza: parse_error reads what make_error_reply writes", "[stanza]") {
  for (const auto& d : kDefined) {
    INFO(d.condition);
    StanzaError e = StanzaError::make(d.condition, std::string("text for ") + d.condition);
    e.by = "example.com";
    const auto back = cg::api::parse_error(cg::api::make_error_reply(iq_get(), e));
    CHECK(back.condition == d.condition);
    CHECK(back.text == std::string("text for ") + d.condition);
    REQUIRE(back.type);
    CHECK(*back.type == d.type);
    CHECK(back.by == "example.com");
  }
  // An explicit type survives the round trip.
  StanzaError cont = StanzaError::make("not-acceptable");
  cont.type = ErrorType::Continue;
  CHECK(cg::api::parse_error(cg::api::make_error_reply(iq_get(), cont)).type == ErrorType::Continue);
}

TEST_CASE("stanza: parse_error on received errors", "[stanza]") {
  // RFC 6120 §8.3.2: the condition, then <text/>, then an application-specific condition.
  const Element received =
      parse("<iq xmlns='jabber:client' from='pubsub.example.com' id='s1' to='juliet@example.com/balcony' type='error'>"
            "<error by='pubsub.example.com' type='cancel'>"
            "<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "<text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>[ ... application-specific ... ]</text>"
            "<too-many-subscriptions xmlns='http://jabber.org/protocol/pubsub#errors'/>"
            "</error></iq>");
  auto e = cg::api::parse_error(received);
  CHECK(e.condition == "undefined-condition");
  CHECK(e.text == "[ ... application-specific ... ]");
  CHECK(e.type == ErrorType::Cancel);
  CHECK(e.by == "pubsub.example.com");
  REQUIRE(e.application);
  CHECK(e.application->is("too-many-subscriptions", "http://jabber.org/protocol/pubsub#errors"));

  // No <error/> at all: no condition.
  const auto none = cg::api::parse_error(iq_get());
  CHECK(none.condition.empty());
  CHECK(none.text.empty());
  CHECK_FALSE(none.type);

  // An unknown type attribute is not guessed.
  const auto odd = cg::api::parse_error(parse("<iq xmlns='jabber:client' type='error' id='x'><error type='later'>"
                                              "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"));
  CHECK(odd.condition == "conflict");
  CHECK_FALSE(odd.type);
}

TEST_CASE("stanza: an application-specific condition follows the condition and the text (RFC 6120 §8.3.4)",
          "[stanza]") {
  // XEP-0050 §4.4: <bad-request/> with <bad-sessionid xmlns='http://jabber.org/protocol/commands'/>.
  const StanzaError e = StanzaError::make(
      "bad-request", Element("bad-sessionid", "http://jabber.org/protocol/commands"), "no such session");
  const Element reply = cg::api::make_error_reply(iq_get(), e);
  const Element* error = reply.child("error");
  REQUIRE(error != nullptr);
  CHECK(error->attr("type") == "modify");
  const auto children = error->children();
  REQUIRE(children.size() == 3);
  CHECK(children[0]->is("bad-request", ns::stanza_errors));
  CHECK(children[1]->is("text", ns::stanza_errors));
  CHECK(children[2]->is("bad-sessionid", "http://jabber.org/protocol/commands"));
  // It reads back; without one there is none.
  const auto back = cg::api::parse_error(reply);
  CHECK(back.condition == "bad-request");
  REQUIRE(back.application);
  CHECK(back.application->is("bad-sessionid", "http://jabber.org/protocol/commands"));
  CHECK_FALSE(cg::api::parse_error(cg::api::make_error_reply(iq_get(), "bad-request")).application);
}

TEST_CASE("stanza: StanzaError defaults", "[stanza]") {
  StanzaError e;
  CHECK(e.condition == "undefined-condition");
  CHECK(e.effective_type() == ErrorType::Cancel);
  const Element el = e.to_element();
  CHECK(el.name() == "error");
  CHECK(el.attr("type") == "cancel");
  CHECK(el.child("undefined-condition", ns::stanza_errors) != nullptr);
}
