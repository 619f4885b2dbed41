#include "server/api/stanza.hpp"

#include <array>
#include <utility>

namespace cg::api {

namespace {

struct ConditionType {
  std::string_view condition;
  ErrorType type;
};

// RFC 6120 §8.3.3: each defined condition with the error type its examples use.
constexpr std::array<ConditionType, 22> kConditions{{
    {"bad-request", ErrorType::Modify},
    {"conflict", ErrorType::Cancel},
    {"feature-not-implemented", ErrorType::Cancel},
    {"forbidden", ErrorType::Auth},
    {"gone", ErrorType::Cancel},
    {"internal-server-error", ErrorType::Cancel},
    {"item-not-found", ErrorType::Cancel},
    {"jid-malformed", ErrorType::Modify},
    {"not-acceptable", ErrorType::Modify},
    {"not-allowed", ErrorType::Cancel},
    {"not-authorized", ErrorType::Auth},
    {"policy-violation", ErrorType::Modify},
    {"recipient-unavailable", ErrorType::Wait},
    {"redirect", ErrorType::Modify},
    {"registration-required", ErrorType::Auth},
    {"remote-server-not-found", ErrorType::Cancel},
    {"remote-server-timeout", ErrorType::Wait},
    {"resource-constraint", ErrorType::Wait},
    {"service-unavailable", ErrorType::Cancel},
    {"subscription-required", ErrorType::Auth},
    {"undefined-condition", ErrorType::Cancel},
    {"unexpected-request", ErrorType::Wait},
}};

} // namespace

StanzaKind kind_of(const Element& stanza) {
  const auto& n = stanza.name();
  if (n == "message") {
    return StanzaKind::Message;
  }
  if (n == "presence") {
    return StanzaKind::Presence;
  }
  if (n == "iq") {
    return StanzaKind::Iq;
  }
  return StanzaKind::Other;
}

std::string_view error_type_name(ErrorType t) {
  switch (t) {
  case ErrorType::Auth:
    return "auth";
  case ErrorType::Cancel:
    return "cancel";
  case ErrorType::Continue:
    return "continue";
  case ErrorType::Modify:
    return "modify";
  case ErrorType::Wait:
    return "wait";
  }
  return "cancel";
}

ErrorType default_error_type(std::string_view condition) {
  for (const auto& c : kConditions) {
    if (c.condition == condition) {
      return c.type;
    }
  }
  return ErrorType::Cancel;
}

bool is_stanza_error_condition(std::string_view condition) {
  for (const auto& c : kConditions) {
    if (c.condition == condition) {
      return true;
    }
  }
  return false;
}

Element StanzaError::to_element() const {
  Element error("error", std::string(ns::client));
  error.set_attr("type", std::string(error_type_name(effective_type())));
  if (!by.empty()) {
    error.set_attr("by", by);
  }
  error.add_child(is_stanza_error_condition(condition) ? condition : "undefined-condition",
                  std::string(ns::stanza_errors));
  if (!text.empty()) {
    error.add_text_child("text", text, std::string(ns::stanza_errors)).set_attr("xml:lang", "en");
  }
  if (application) {
    error.add(*application);
  }
  return error;
}

Element make_error_reply(const Element& stanza, const StanzaError& error) {
  Element reply(stanza.name(), stanza.ns().empty() ? std::string(ns::client) : stanza.ns());
  if (const auto* id = stanza.find_attr("id")) {
    reply.set_attr("id", *id);
  }
  if (const auto* from = stanza.find_attr("from")) {
    reply.set_attr("to", *from);
  }
  if (const auto* to = stanza.find_attr("to")) {
    reply.set_attr("from", *to);
  }
  reply.set_attr("type", "error");
  // RFC 6120 §8.3.1: the error stanza MAY include the original payload; messages keep theirs so that a client can
  // tell which message failed even without an id.
  if (reply.name() == "message") {
    for (const auto* child : stanza.children()) {
      if (child->name() != "error") {
        reply.add(*child);
      }
    }
  }
  // RFC 6120 §8.3.2: the <error/> child is qualified by the stanza's content namespace — jabber:server for a
  // stanza from (or to) a remote server, or it would not be read as a stanza error there.
  Element error_element = error.to_element();
  error_element.set_ns(reply.ns());
  reply.add(std::move(error_element));
  return reply;
}

Element make_error_reply(const Element& stanza, std::string condition, std::string text) {
  return make_error_reply(stanza, StanzaError::make(std::move(condition), std::move(text)));
}

bool is_error(const Element& stanza) {
  return stanza.attr("type") == "error";
}

Element make_iq_result(const Element& iq, std::optional<Element> payload) {
  Element reply("iq", iq.ns().empty() ? std::string(ns::client) : iq.ns());
  reply.set_attr("id", std::string(iq.attr("id")));
  if (const auto* from = iq.find_attr("from")) {
    reply.set_attr("to", *from);
  }
  if (const auto* to = iq.find_attr("to")) {
    reply.set_attr("from", *to);
  }
  reply.set_attr("type", "result");
  if (payload) {
    reply.add(std::move(*payload));
  }
  return reply;
}

StanzaError parse_error(const Element& stanza) {
  StanzaError e;
  e.condition.clear();
  const Element* error = stanza.child("error");
  if (error == nullptr) {
    return e;
  }
  for (const auto* c : error->children()) {
    if (c->ns() != ns::stanza_errors) {
      if (!e.application) {
        e.application = *c;
      }
      continue;
    }
    if (c->name() == "text") {
      e.text = c->text();
    } else if (e.condition.empty()) {
      e.condition = c->name();
    }
  }
  auto t = error->attr("type");
  for (auto candidate : {ErrorType::Auth, ErrorType::Cancel, ErrorType::Continue, ErrorType::Modify, ErrorType::Wait}) {
    if (error_type_name(candidate) == t) {
      e.type = candidate;
    }
  }
  e.by = std::string(error->attr("by"));
  return e;
}

} // namespace cg::api
