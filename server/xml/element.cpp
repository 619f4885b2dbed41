// The element tree's accessors. Everything is a linear scan: stanzas have a handful of attributes and children.
#include "server/xml/element.hpp"

#include <algorithm>

namespace cg::xml {

namespace {

const Element* as_element(const Node& node) {
  return std::get_if<Element>(&node);
}

} // namespace

std::string_view Element::attr(std::string_view name) const {
  const std::string* value = find_attr(name);
  return value ? std::string_view(*value) : std::string_view();
}

const std::string* Element::find_attr(std::string_view name) const {
  for (const Attribute& a : attrs_) {
    if (a.name == name) {
      return &a.value;
    }
  }
  return nullptr;
}

Element& Element::set_attr(std::string_view name, std::string value) {
  for (Attribute& a : attrs_) {
    if (a.name == name) {
      a.value = std::move(value);
      return *this;
    }
  }
  attrs_.push_back(Attribute{std::string(name), std::move(value)});
  return *this;
}

void Element::remove_attr(std::string_view name) {
  std::erase_if(attrs_, [name](const Attribute& a) { return a.name == name; });
}

Element& Element::add(Element child) {
  return std::get<Element>(nodes_.emplace_back(std::move(child)));
}

Element& Element::add_child(std::string name, std::string ns) {
  if (ns.empty()) {
    ns = ns_;
  }
  return add(Element(std::move(name), std::move(ns)));
}

// Returns the new child (like add() and add_child()), not this element.
Element& Element::add_text_child(std::string name, std::string text, std::string ns) {
  Element& child = add_child(std::move(name), std::move(ns));
  child.add_text(std::move(text));
  return child;
}

// Adjacent runs of character data are merged into one text node, as the parser does, so that a built tree and
// a parsed tree of the same XML compare equal. Empty text adds nothing.
void Element::add_text(std::string text) {
  if (text.empty()) {
    return;
  }
  if (!nodes_.empty()) {
    if (auto* last = std::get_if<std::string>(&nodes_.back())) {
      last->append(text);
      return;
    }
  }
  nodes_.emplace_back(std::move(text));
}

const Element* Element::child(std::string_view name, std::string_view ns) const {
  if (ns.empty()) {
    ns = ns_;
  }
  for (const Node& node : nodes_) {
    const Element* el = as_element(node);
    if (el && el->name_ == name && el->ns_ == ns) {
      return el;
    }
  }
  return nullptr;
}

Element* Element::child(std::string_view name, std::string_view ns) {
  return const_cast<Element*>(static_cast<const Element*>(this)->child(name, ns));
}

const Element* Element::child_ns(std::string_view ns) const {
  for (const Node& node : nodes_) {
    const Element* el = as_element(node);
    if (el && el->ns_ == ns) {
      return el;
    }
  }
  return nullptr;
}

const Element* Element::first_child() const {
  for (const Node& node : nodes_) {
    if (const Element* el = as_element(node)) {
      return el;
    }
  }
  return nullptr;
}

std::vector<const Element*> Element::children() const {
  std::vector<const Element*> out;
  for (const Node& node : nodes_) {
    if (const Element* el = as_element(node)) {
      out.push_back(el);
    }
  }
  return out;
}

std::vector<const Element*> Element::children(std::string_view name, std::string_view ns) const {
  if (ns.empty()) {
    ns = ns_;
  }
  std::vector<const Element*> out;
  for (const Node& node : nodes_) {
    const Element* el = as_element(node);
    if (el && el->name_ == name && el->ns_ == ns) {
      out.push_back(el);
    }
  }
  return out;
}

std::size_t Element::element_count() const {
  return static_cast<std::size_t>(
      std::count_if(nodes_.begin(), nodes_.end(), [](const Node& node) { return as_element(node) != nullptr; }));
}

void Element::remove_children(std::string_view name, std::string_view ns) {
  if (ns.empty()) {
    ns = ns_;
  }
  // `ns` may view ns_, which erase_if does not touch.
  std::erase_if(nodes_, [&](const Node& node) {
    const Element* el = as_element(node);
    return el && el->name_ == name && el->ns_ == ns;
  });
}

std::string Element::text() const {
  std::string out;
  for (const Node& node : nodes_) {
    if (const auto* s = std::get_if<std::string>(&node)) {
      out += *s;
    }
  }
  return out;
}

std::string Element::child_text(std::string_view name, std::string_view ns) const {
  const Element* el = child(name, ns);
  return el ? el->text() : std::string();
}

} // namespace cg::xml
