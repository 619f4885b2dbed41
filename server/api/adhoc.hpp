// XEP-0050: Ad-Hoc Commands 1.3.0 — how any module offers a command on its host. The "adhoc" module
// (xep/xep0050_adhoc.cpp) serves every command registered here: it lists them in disco (the node
// 'http://jabber.org/protocol/commands'), answers disco#info on each command node, runs the <command/> protocol
// (sessions bound to the requester's full JID, allowed actions, cancel, expiry, the XEP's errors) and calls the
// command's handler once per stage with what the requester sent.
//
// A module registers its commands from load() and lists "adhoc" in ModuleInfo::depends (so that the server that
// loads it also serves them):
//
//   void load(api::ModuleContext& ctx) override {
//     namespace adhoc = api::adhoc;
//     adhoc::add_command(ctx, {.node = "urn:example:commands#hello",
//                              .name = "Say hello",
//                              .allowed = adhoc::local_users(ctx.host()),
//                              .handler = &hello});
//   }
//   asio::awaitable<adhoc::CommandResponse> hello(adhoc::CommandRequest req) {
//     if (req.action == adhoc::Action::Execute) {           // stage 1: ask
//       dataforms::Form form;
//       form.add(dataforms::Field::make(dataforms::FieldType::TextSingle, "name", "Your name").with_required());
//       co_return adhoc::CommandResponse::executing(std::move(form), {adhoc::Action::Complete});
//     }
//     const auto* name = req.form ? req.form->field("name") : nullptr; // stage 2: the submitted form
//     if (name == nullptr || name->value() == nullptr) {
//       co_return adhoc::CommandResponse::failed(adhoc::bad_payload("the form has no name"));
//     }
//     co_return adhoc::CommandResponse::completed().with_note(adhoc::NoteType::Info, "Hello, " + *name->value());
//   }
//
// What the framework guarantees a handler (and what it does itself):
// - The handler runs only for a requester `allowed` accepts (checked at every stage; others get forbidden and do
//   not see the command in disco), and only with an action the previous stage allowed. 'execute' on a later stage
//   arrives as the action the previous stage named as its default (CommandResponse::execute).
// - Action::Cancel never reaches the handler: the framework ends the session (its state is destroyed) and answers
//   status='canceled'.
// - Every response carries the session id, also for one-stage commands; a session lives while its stages return
//   Status::Executing, at most modules.adhoc.session_timeout between two stages.
// - An exception from the handler completes the command with a note of type 'error' (XEP-0050 §3.6) and is logged;
//   CommandResponse::failed(error) answers the IQ with an error instead and keeps the session at its stage (e.g.
//   bad_payload() for a form that does not validate, so that the requester can submit it again).
// - The handler is a coroutine on an I/O thread; it may co_await (storage through run_blocking, send_iq, …). The
//   Command (and so a lambda handler's captures) lives until the call returns, also when the module unloads.
#pragma once

#include "server/api/dataforms.hpp"
#include "server/api/jid.hpp"
#include "server/api/module.hpp"
#include "server/api/stanza.hpp"

#include <boost/asio/awaitable.hpp>

#include <any>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cg::api::adhoc {

inline constexpr std::string_view ns = "http://jabber.org/protocol/commands";
// XEP-0050 §2.2: "the fixed node 'http://jabber.org/protocol/commands'" under which every command is an item.
inline constexpr std::string_view commands_node = "http://jabber.org/protocol/commands";

// XEP-0050 §4.1: the values of <command action=''/> (Execute when absent).
enum class Action { Execute, Cancel, Prev, Next, Complete };
// XEP-0050 §4.1: the values of <command status=''/>.
enum class Status { Executing, Completed, Canceled };
// XEP-0050 §4.3: the values of <note type=''/> (Info when absent).
enum class NoteType { Info, Warn, Error };

std::string_view to_string(Action a);
std::optional<Action> action_from_string(std::string_view s);
std::string_view to_string(Status s);
std::optional<Status> status_from_string(std::string_view s);
std::string_view to_string(NoteType t);
std::optional<NoteType> note_type_from_string(std::string_view s);

struct Note {
  NoteType type = NoteType::Info;
  std::string text;
  bool operator==(const Note&) const = default;
};

// One stage of a command, as the handler sees it.
struct CommandRequest {
  Jid requester; // full JID of a local client, or a remote entity
  std::string node;
  std::string sessionid;
  // Execute on the first stage. Later: Next, Prev or Complete — one the previous stage allowed ('execute' replaced
  // by the previous stage's default). Never Cancel.
  Action action = Action::Execute;
  // The submitted data form, if the requester sent one (XEP-0050 §3.5.1: <x type='cancel'/> is read as 'submit').
  // Check it against the form you sent with dataforms::validate().
  std::optional<dataforms::Form> form;
  // The session's xml:lang: the first one the requester gave (on the <command/>, else on the <iq/>), "" if none.
  std::string lang;
  // What the previous stage returned in CommandResponse::state (empty on the first stage). A copy: the session
  // keeps its own until this stage succeeds.
  std::any state;
};

struct CommandResponse {
  Status status = Status::Completed;
  // Status::Executing: the actions the requester may take next, among Prev, Next and Complete (Cancel is always
  // allowed). Empty: Complete only.
  std::vector<Action> actions;
  // Status::Executing: what 'execute' means for the next stage (<actions execute=''/>). Default: Next if allowed,
  // else Complete if allowed, else the first allowed action.
  std::optional<Action> execute;
  std::vector<Note> notes;
  std::optional<dataforms::Form> form; // a form to fill in (type 'form'), or results (type 'result')
  // Status::Executing: kept by the framework and handed to the next stage in CommandRequest::state.
  std::any state;
  // The language of the response's text (<command xml:lang=''/>), "" to leave it unsaid.
  std::string lang;
  // Set: the IQ is answered with this error, and the session (if the request continued one) stays at its stage.
  std::optional<StanzaError> error;

  static CommandResponse completed() { return {}; }
  static CommandResponse executing(dataforms::Form form, std::vector<Action> actions,
                                   std::optional<Action> execute = std::nullopt) {
    CommandResponse r;
    r.status = Status::Executing;
    r.form = std::move(form);
    r.actions = std::move(actions);
    r.execute = execute;
    return r;
  }
  static CommandResponse failed(StanzaError e) {
    CommandResponse r;
    r.error = std::move(e);
    return r;
  }
  CommandResponse& with_note(NoteType type, std::string text) {
    notes.push_back({type, std::move(text)});
    return *this;
  }
  CommandResponse& with_form(dataforms::Form f) {
    form = std::move(f);
    return *this;
  }
  CommandResponse& with_state(std::any s) {
    state = std::move(s);
    return *this;
  }
  CommandResponse& with_lang(std::string l) {
    lang = std::move(l);
    return *this;
  }
};

using CommandHandler = std::function<asio::awaitable<CommandResponse>(CommandRequest)>;
// Whether a requester (full JID, or a remote entity) may see and run a command.
using Permission = std::function<bool(const Jid& requester)>;

struct Command {
  std::string node; // unique on the host; XEP-0050 §3.2: the disco item's node and <command node=''/>
  std::string name; // the label clients show (the disco item's and identity's name)
  Permission allowed;
  CommandHandler handler;
};

// Permissions.
Permission anyone();
// Accounts of `host` (a JID with a localpart at that domain), whatever their resource.
Permission local_users(std::string host);

// Registers `command` on ctx's host; undone when the module unloads. Throws std::invalid_argument for an empty
// node, name, permission or handler (or the node 'http://jabber.org/protocol/commands'), std::logic_error when a
// module of the host registered the node already.
void add_command(ModuleContext& ctx, Command command);

// What add_command() registers: the adhoc module fires a CommandDirectory (ModuleContext::fire) to collect the
// host's commands, and each registration appends its own (and returns Flow::Continue). Modules need not use it.
struct CommandDirectory {
  std::vector<std::shared_ptr<const Command>> commands;
  // The command with this node, or null.
  std::shared_ptr<const Command> find(std::string_view node) const;
};

// XEP-0050 §4.4's errors: the general condition with the specific one in the commands namespace.
StanzaError malformed_action(std::string text = {}); // bad-request: an action the responder does not understand
StanzaError bad_action(std::string text = {});       // bad-request: an action not allowed at this stage
StanzaError bad_locale(std::string text = {});       // bad-request: a language the command cannot use
StanzaError bad_payload(std::string text = {});      // bad-request: e.g. the form lacks a required field
StanzaError bad_sessionid(std::string text = {});    // bad-request: no such session
StanzaError session_expired(std::string text = {});  // not-allowed: the session ended (completed, canceled, timed out)

} // namespace cg::api::adhoc
