#include "server/api/adhoc.hpp"

#include <array>
#include <stdexcept>
#include <utility>

namespace cg::api::adhoc {

namespace {

constexpr std::array<std::pair<Action, std::string_view>, 5> kActions{{
    {Action::Execute, "execute"},
    {Action::Cancel, "cancel"},
    {Action::Prev, "prev"},
    {Action::Next, "next"},
    {Action::Complete, "complete"},
}};
constexpr std::array<std::pair<Status, std::string_view>, 3> kStatuses{{
    {Status::Executing, "executing"},
    {Status::Completed, "completed"},
    {Status::Canceled, "canceled"},
}};
constexpr std::array<std::pair<NoteType, std::string_view>, 3> kNoteTypes{{
    {NoteType::Info, "info"},
    {NoteType::Warn, "warn"},
    {NoteType::Error, "error"},
}};

template <class E, std::size_t N>
std::string_view name_of(const std::array<std::pair<E, std::string_view>, N>& table, E value) {
  for (const auto& [v, name] : table) {
    if (v == value) {
      return name;
    }
  }
  return {};
}

template <class E, std::size_t N>
std::optional<E> value_of(const std::array<std::pair<E, std::string_view>, N>& table, std::string_view name) {
  for (const auto& [v, n] : table) {
    if (n == name) {
      return v;
    }
  }
  return std::nullopt;
}

StanzaError command_error(std::string condition, const char* specific, std::string text) {
  return StanzaError::make(std::move(condition), Element(specific, std::string(ns)), std::move(text));
}

} // namespace

std::string_view to_string(Action a) {
  return name_of(kActions, a);
}
std::optional<Action> action_from_string(std::string_view s) {
  return value_of(kActions, s);
}
std::string_view to_string(Status s) {
  return name_of(kStatuses, s);
}
std::optional<Status> status_from_string(std::string_view s) {
  return value_of(kStatuses, s);
}
std::string_view to_string(NoteType t) {
  return name_of(kNoteTypes, t);
}
std::optional<NoteType> note_type_from_string(std::string_view s) {
  return value_of(kNoteTypes, s);
}

Permission anyone() {
  return [](const Jid&) { return true; };
}

Permission local_users(std::string host) {
  return [host = std::move(host)](const Jid& requester) { return requester.has_node() && requester.domain() == host; };
}

std::shared_ptr<const Command> CommandDirectory::find(std::string_view node) const {
  for (const auto& c : commands) {
    if (c->node == node) {
      return c;
    }
  }
  return nullptr;
}

void add_command(ModuleContext& ctx, Command command) {
  if (command.node.empty() || command.node == commands_node) {
    throw std::invalid_argument("ad-hoc command: invalid node '" + command.node + "'");
  }
  // XEP-0050 §2.2: every command is a disco item whose "name attribute is the label for the command".
  if (command.name.empty() || !command.allowed || !command.handler) {
    throw std::invalid_argument("ad-hoc command '" + command.node + "': a name, a permission and a handler are needed");
  }
  // XEP-0050 §3.2: "It is the responsibility of the responder implementation to ensure each command's node is
  // unique for their JID."
  CommandDirectory existing;
  ctx.fire(existing);
  if (existing.find(command.node)) {
    throw std::logic_error("two ad-hoc commands with the node '" + command.node + "' on " + ctx.host());
  }
  auto shared = std::make_shared<const Command>(std::move(command));
  ctx.on<CommandDirectory>([shared](CommandDirectory& directory) {
    directory.commands.push_back(shared);
    return Flow::Continue;
  });
}

StanzaError malformed_action(std::string text) {
  return command_error("bad-request", "malformed-action", std::move(text));
}
StanzaError bad_action(std::string text) {
  return command_error("bad-request", "bad-action", std::move(text));
}
StanzaError bad_locale(std::string text) {
  return command_error("bad-request", "bad-locale", std::move(text));
}
StanzaError bad_payload(std::string text) {
  return command_error("bad-request", "bad-payload", std::move(text));
}
StanzaError bad_sessionid(std::string text) {
  return command_error("bad-request", "bad-sessionid", std::move(text));
}
StanzaError session_expired(std::string text) {
  return command_error("not-allowed", "session-expired", std::move(text));
}

} // namespace cg::api::adhoc
