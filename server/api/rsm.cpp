// XEP-0059: Result Set Management 1.0.
#include "server/api/rsm.hpp"

#include <charconv>
#include <string>

namespace cg::api::rsm {

namespace {

bool is_xml_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_xml_space(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_xml_space(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// A non-negative integer (xs:nonNegativeInteger, surrounding whitespace allowed).
std::optional<std::size_t> parse_count(std::string_view text) {
  text = trim(text);
  if (!text.empty() && text.front() == '+') {
    text.remove_prefix(1);
  }
  std::size_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

StanzaError bad(std::string text) {
  return StanzaError::make("bad-request", std::move(text));
}

} // namespace

std::variant<Request, StanzaError> Request::parse(const Element& set) {
  if (!set.is("set", ns)) {
    return bad("not an RSM <set/>");
  }
  Request r;
  for (const Element* child : set.children()) {
    if (child->ns() != ns) {
      continue; // foreign elements are not ours to judge
    }
    const std::string& name = child->name();
    if (name == "max") {
      if (r.max) {
        return bad("<max/> appears twice");
      }
      r.max = parse_count(child->text());
      if (!r.max) {
        return bad("<max/> is not a non-negative integer");
      }
    } else if (name == "index") {
      if (r.index) {
        return bad("<index/> appears twice");
      }
      r.index = parse_count(child->text());
      if (!r.index) {
        return bad("<index/> is not a non-negative integer");
      }
    } else if (name == "after") {
      if (r.after) {
        return bad("<after/> appears twice");
      }
      // XEP-0059 §2.2: <after/> names the last item of the previous page; unlike <before/> (§2.5) it has no
      // meaning when empty.
      if (child->text().empty()) {
        return bad("<after/> is empty");
      }
      r.after = child->text();
    } else if (name == "before") {
      if (r.before) {
        return bad("<before/> appears twice");
      }
      r.before = child->text();
    }
  }
  return r;
}

Element Request::to_element() const {
  Element set("set", std::string(ns));
  if (max) {
    set.add_text_child("max", std::to_string(*max));
  }
  if (after) {
    set.add_text_child("after", *after);
  }
  if (before) {
    if (before->empty()) {
      set.add_child("before");
    } else {
      set.add_text_child("before", *before);
    }
  }
  if (index) {
    set.add_text_child("index", std::to_string(*index));
  }
  return set;
}

std::variant<Response, StanzaError> Response::parse(const Element& set) {
  if (!set.is("set", ns)) {
    return bad("not an RSM <set/>");
  }
  Response r;
  for (const Element* child : set.children()) {
    if (child->ns() != ns) {
      continue;
    }
    const std::string& name = child->name();
    if (name == "first") {
      if (r.first) {
        return bad("<first/> appears twice");
      }
      r.first = child->text();
      if (const std::string* index = child->find_attr("index")) {
        r.first_index = parse_count(*index);
        if (!r.first_index) {
          return bad("the 'index' of <first/> is not a non-negative integer");
        }
      }
    } else if (name == "last") {
      if (r.last) {
        return bad("<last/> appears twice");
      }
      r.last = child->text();
    } else if (name == "count") {
      if (r.count) {
        return bad("<count/> appears twice");
      }
      r.count = parse_count(child->text());
      if (!r.count) {
        return bad("<count/> is not a non-negative integer");
      }
    }
  }
  return r;
}

Element Response::to_element() const {
  Element set("set", std::string(ns));
  if (first) {
    Element& f = set.add_text_child("first", *first);
    if (first_index) {
      f.set_attr("index", std::to_string(*first_index));
    }
  }
  if (last) {
    set.add_text_child("last", *last);
  }
  if (count) {
    set.add_text_child("count", std::to_string(*count));
  }
  return set;
}

} // namespace cg::api::rsm
