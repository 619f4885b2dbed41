// XEP-0050: Ad-Hoc Commands 1.3.0 — the module that serves the commands other modules register through
// server/api/adhoc.hpp (api::adhoc::add_command), and one of its own, "Server uptime".
//
// - Disco (through api::disco::NodeQuery): the host advertises 'http://jabber.org/protocol/commands'; disco#items
//   on that node lists the commands the requester may run; disco#info on a command node answers the
//   automation/command-node identity.
// - <iq type='set'><command xmlns='http://jabber.org/protocol/commands'/></iq> to the host runs a stage of a
//   command. Sessions are kept in memory, bound to the requester's full JID and to the command's node, ended by
//   completion, cancel, modules.adhoc.session_timeout of silence, the requester's stream closing, or
//   modules.adhoc.max_sessions newer sessions of the same account.
#pragma once

#include "server/api/adhoc.hpp"
#include "server/api/dataforms.hpp"
#include "server/api/module.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace cg::xep::adhoc {

inline constexpr std::string_view ns = api::adhoc::ns;
// The built-in command: the server's uptime, for the host's own accounts.
inline constexpr std::string_view uptime_node = "http://chatgroup.im/commands#uptime";

// A <command/> a requester sends.
struct Request {
  std::string node;
  std::optional<std::string> sessionid;
  api::adhoc::Action action = api::adhoc::Action::Execute; // 'action' absent: execute (XEP-0050 §4.1)
  std::string lang;                                        // the <command/>'s xml:lang
  std::optional<api::dataforms::Form> form;                // a submitted form ('cancel' read as 'submit')

  // Reads it; what cannot be read gets XEP-0050 §4.4's error (bad-request, with malformed-action, bad-sessionid or
  // bad-payload where one applies).
  static std::variant<Request, api::StanzaError> parse(const api::Element& command);
  api::Element to_element() const;
};

// A <command/> a responder sends.
struct Response {
  std::string node;
  std::string sessionid;
  api::adhoc::Status status = api::adhoc::Status::Completed;
  std::vector<api::adhoc::Action> actions; // Executing: <actions/>'s children (prev, next, complete)
  std::optional<api::adhoc::Action> execute;
  std::vector<api::adhoc::Note> notes;
  std::optional<api::dataforms::Form> form;
  std::string lang;

  // nullopt when it is not a well-formed response (no node or status, an unknown status, action or note type).
  static std::optional<Response> parse(const api::Element& command);
  api::Element to_element() const;
};

// The module's notion of time (sessions expire, uptime counts); tests pass their own clock.
using Clock = std::function<std::chrono::steady_clock::time_point()>;

std::unique_ptr<api::Module> make_module();
std::unique_ptr<api::Module> make_module_with_clock(Clock clock);

} // namespace cg::xep::adhoc
