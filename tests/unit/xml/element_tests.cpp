// The Element API.
#include "server/xml/element.hpp"

#include <catch2/catch.hpp>

using cg::xml::Element;
using cg::xml::Node;

TEST_CASE("element: name, namespace and is()", "[xml][element]") {
  Element el("message", "jabber:client");
  CHECK(el.name() == "message");
  CHECK(el.ns() == "jabber:client");
  CHECK(el.is("message", "jabber:client"));
  CHECK_FALSE(el.is("message", "jabber:server"));
  CHECK_FALSE(el.is("iq", "jabber:client"));
  el.set_name("iq");
  el.set_ns("jabber:server");
  CHECK(el.is("iq", "jabber:server"));
  CHECK(Element("x").ns().empty());
}

TEST_CASE("element: attributes", "[xml][element]") {
  Element el("message", "jabber:client");
  CHECK(el.attr("to").empty());
  CHECK(el.find_attr("to") == nullptr);
  CHECK_FALSE(el.has_attr("to"));

  el.set_attr("to", "juliet@example.com").set_attr("type", "chat").set_attr("id", "");
  REQUIRE(el.attrs().size() == 3);
  CHECK(el.attr("to") == "juliet@example.com");
  CHECK(el.attr("type") == "chat");
  // Absent and empty are told apart by find_attr()/has_attr().
  REQUIRE(el.find_attr("id") != nullptr);
  CHECK(el.find_attr("id")->empty());
  CHECK(el.has_attr("id"));

  // Setting an existing attribute replaces its value in place.
  el.set_attr("to", "romeo@example.net");
  REQUIRE(el.attrs().size() == 3);
  CHECK(el.attrs()[0].name == "to");
  CHECK(el.attrs()[0].value == "romeo@example.net");

  el.remove_attr("type");
  CHECK(el.attrs().size() == 2);
  CHECK_FALSE(el.has_attr("type"));
  el.remove_attr("absent");
  CHECK(el.attrs().size() == 2);

  el.set_attr("xml:lang", "en");
  el.set_attr("{urn:example}flag", "1");
  CHECK(el.attr("xml:lang") == "en");
  CHECK(el.attr("{urn:example}flag") == "1");
}

TEST_CASE("element: adding children", "[xml][element]") {
  Element iq("iq", "jabber:client");
  Element& query = iq.add_child("query", "jabber:iq:roster");
  CHECK(query.is("query", "jabber:iq:roster"));
  // A child's namespace defaults to its parent's.
  Element& item = query.add_child("item");
  CHECK(item.ns() == "jabber:iq:roster");
  item.set_attr("jid", "a@b");
  CHECK(iq.child("query", "jabber:iq:roster")->child("item")->attr("jid") == "a@b");

  Element msg("message", "jabber:client");
  Element& body = msg.add_text_child("body", "hello");
  CHECK(body.is("body", "jabber:client"));
  CHECK(body.text() == "hello");
  Element& other = msg.add_text_child("x", "y", "urn:x");
  CHECK(other.is("x", "urn:x"));

  Element added = Element("thread", "jabber:client");
  added.add_text("t1");
  Element& ref = msg.add(std::move(added));
  CHECK(ref.is("thread", "jabber:client"));
  CHECK(msg.element_count() == 3);
  CHECK(msg.child_text("thread") == "t1");
}

TEST_CASE("element: text nodes merge and keep document order", "[xml][element]") {
  Element el("body", "jabber:client");
  el.add_text("");
  CHECK(el.nodes().empty());
  el.add_text("Hello, ");
  el.add_text("world");
  REQUIRE(el.nodes().size() == 1);
  CHECK(std::get<std::string>(el.nodes()[0]) == "Hello, world");
  el.add_child("b");
  el.add_text("!");
  REQUIRE(el.nodes().size() == 3);
  CHECK(std::holds_alternative<Element>(el.nodes()[1]));
  CHECK(std::get<std::string>(el.nodes()[2]) == "!");
  // text() concatenates the direct text children only.
  el.child("b")->add_text("ignored");
  CHECK(el.text() == "Hello, world!");
}

TEST_CASE("element: finding children", "[xml][element]") {
  Element msg("message", "jabber:client");
  msg.add_text("  ");
  msg.add_text_child("body", "one");
  msg.add_child("active", "http://jabber.org/protocol/chatstates");
  msg.add_text_child("body", "two");
  msg.add_text_child("body", "three", "urn:other");

  CHECK(msg.element_count() == 4);
  CHECK(msg.children().size() == 4);
  REQUIRE(msg.first_child() != nullptr);
  CHECK(msg.first_child()->text() == "one");

  // Empty namespace means the parent's namespace.
  REQUIRE(msg.child("body") != nullptr);
  CHECK(msg.child("body")->text() == "one");
  CHECK(msg.child("body", "urn:other")->text() == "three");
  CHECK(msg.child("nothing") == nullptr);
  CHECK(msg.child("active") == nullptr);
  CHECK(msg.child("active", "http://jabber.org/protocol/chatstates") != nullptr);

  CHECK(msg.child_ns("http://jabber.org/protocol/chatstates")->name() == "active");
  CHECK(msg.child_ns("urn:none") == nullptr);

  auto bodies = msg.children("body");
  REQUIRE(bodies.size() == 2);
  CHECK(bodies[0]->text() == "one");
  CHECK(bodies[1]->text() == "two");
  CHECK(msg.children("body", "urn:other").size() == 1);

  CHECK(msg.child_text("body") == "one");
  CHECK(msg.child_text("subject").empty());

  // Mutable lookup.
  msg.child("body")->add_text("!");
  CHECK(msg.child_text("body") == "one!");

  msg.remove_children("body");
  CHECK(msg.children("body").empty());
  CHECK(msg.element_count() == 2);
  CHECK(msg.child("body", "urn:other") != nullptr);
  REQUIRE(msg.nodes().size() == 3); // the text node is kept
  CHECK(std::holds_alternative<std::string>(msg.nodes()[0]));

  msg.clear();
  CHECK(msg.nodes().empty());
  CHECK(msg.first_child() == nullptr);
}

TEST_CASE("element: equality is deep", "[xml][element]") {
  auto make = [] {
    Element el("iq", "jabber:client");
    el.set_attr("type", "get");
    el.add_child("query", "jabber:iq:version").add_text("x");
    return el;
  };
  CHECK(make() == make());
  Element a = make();
  a.child("query", "jabber:iq:version")->add_text("y");
  CHECK_FALSE(a == make());
  Element b = make();
  b.set_attr("type", "set");
  CHECK_FALSE(b == make());
  Element c = make();
  c.set_ns("jabber:server");
  CHECK_FALSE(c == make());
}
