// XEP-0050: Ad-Hoc Commands, version 1.3.0 (2020-06-09). Serves the commands modules register with
// api::adhoc::add_command (server/api/adhoc.hpp): disco, the <command/> protocol and its sessions; and registers
// the built-in "Server uptime" command the same way.
#include "xep/xep0050_adhoc.hpp"

#include "server/api/disco.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <any>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <random>
#include <unordered_map>

namespace cg::xep::adhoc {

namespace asio = boost::asio;
using api::Element;
using api::IqReply;
using api::IqRequest;
using api::Jid;
using api::StanzaError;
using api::adhoc::Action;
using api::adhoc::Command;
using api::adhoc::CommandRequest;
using api::adhoc::CommandResponse;
using api::adhoc::Note;
using api::adhoc::NoteType;
using api::adhoc::Status;
namespace dataforms = api::dataforms;
using TimePoint = std::chrono::steady_clock::time_point;

// --- payloads ------------------------------------------------------------------------------------------------------

std::variant<Request, StanzaError> Request::parse(const Element& command) {
  Request r;
  // XEP-0050 §4.1: "The "node" attribute uniquely identifies the command. This attribute MUST be present."
  r.node = std::string(command.attr("node"));
  if (r.node.empty()) {
    return StanzaError::make("bad-request", "the <command/> has no 'node'");
  }
  if (const auto* sessionid = command.find_attr("sessionid")) {
    // XEP-0050 §4.1: "The value of this attribute MUST NOT be empty or null".
    if (sessionid->empty()) {
      return api::adhoc::bad_sessionid("the 'sessionid' is empty");
    }
    r.sessionid = *sessionid;
  }
  if (const auto* action = command.find_attr("action")) {
    // XEP-0050 §4.1: "The value of "action" MUST be one of the following" — anything else is an action the
    // responder "does not understand" (§4.4: malformed-action).
    auto parsed = api::adhoc::action_from_string(*action);
    if (!parsed) {
      return api::adhoc::malformed_action("unknown action '" + *action + "'");
    }
    r.action = *parsed;
  }
  // XEP-0050 §4.1: the "status" attribute "SHOULD be set only by the responder. If specified by the requester, the
  // responder MUST ignore it." — it is not read.
  r.lang = std::string(command.attr("xml:lang"));
  if (const Element* x = command.child("x", dataforms::ns)) {
    auto parsed = dataforms::Form::parse(*x);
    if (auto* error = std::get_if<StanzaError>(&parsed)) {
      return api::adhoc::bad_payload(error->text);
    }
    dataforms::Form form = std::move(std::get<dataforms::Form>(parsed));
    // XEP-0050 §3.5.1: "The requester SHOULD NOT use a "jabber:x:data" type other than "submit". Responders SHOULD
    // consider any <x type='cancel'/> to be <x type='submit'/>."
    if (form.type == dataforms::FormType::Cancel) {
      form.type = dataforms::FormType::Submit;
    }
    if (form.type != dataforms::FormType::Submit) {
      return api::adhoc::bad_payload("a requester's form is of type 'submit'");
    }
    r.form = std::move(form);
  }
  return r;
}

Element Request::to_element() const {
  Element el("command", std::string(ns));
  el.set_attr("node", node);
  if (sessionid) {
    el.set_attr("sessionid", *sessionid);
  }
  el.set_attr("action", std::string(api::adhoc::to_string(action)));
  if (!lang.empty()) {
    el.set_attr("xml:lang", lang);
  }
  if (form) {
    el.add(form->to_element());
  }
  return el;
}

std::optional<Response> Response::parse(const Element& command) {
  if (!command.is("command", ns)) {
    return std::nullopt;
  }
  Response r;
  r.node = std::string(command.attr("node"));
  r.sessionid = std::string(command.attr("sessionid"));
  auto status = api::adhoc::status_from_string(command.attr("status"));
  if (r.node.empty() || !status) {
    return std::nullopt;
  }
  r.status = *status;
  r.lang = std::string(command.attr("xml:lang"));
  if (const Element* actions = command.child("actions", ns)) {
    if (actions->has_attr("execute")) {
      r.execute = api::adhoc::action_from_string(actions->attr("execute"));
      if (!r.execute) {
        return std::nullopt;
      }
    }
    for (const auto* a : actions->children()) {
      auto action = api::adhoc::action_from_string(a->name());
      if (!action || a->ns() != ns) {
        return std::nullopt;
      }
      r.actions.push_back(*action);
    }
  }
  for (const auto* n : command.children("note", ns)) {
    auto type = n->has_attr("type") ? api::adhoc::note_type_from_string(n->attr("type")) : NoteType::Info;
    if (!type) {
      return std::nullopt;
    }
    r.notes.push_back({*type, n->text()});
  }
  if (const Element* x = command.child("x", dataforms::ns)) {
    auto form = dataforms::Form::parse(*x);
    if (std::holds_alternative<StanzaError>(form)) {
      return std::nullopt;
    }
    r.form = std::move(std::get<dataforms::Form>(form));
  }
  return r;
}

Element Response::to_element() const {
  Element el("command", std::string(ns));
  el.set_attr("node", node);
  el.set_attr("sessionid", sessionid);
  el.set_attr("status", std::string(api::adhoc::to_string(status)));
  if (!lang.empty()) {
    el.set_attr("xml:lang", lang);
  }
  if (status == Status::Executing) {
    Element& a = el.add_child("actions");
    if (execute) {
      a.set_attr("execute", std::string(api::adhoc::to_string(*execute)));
    }
    for (Action action : actions) {
      a.add_child(std::string(api::adhoc::to_string(action)));
    }
  }
  for (const auto& n : notes) {
    el.add_text_child("note", n.text).set_attr("type", std::string(api::adhoc::to_string(n.type)));
  }
  if (form) {
    el.add(form->to_element());
  }
  return el;
}

namespace {

// --- sessions ------------------------------------------------------------------------------------------------------

// How many ended sessions are remembered (for session-expired rather than bad-sessionid), at most.
constexpr std::size_t kMaxEnded = 10000;

struct Session {
  std::shared_ptr<const Command> command;
  Jid requester; // full JID
  std::string lang;
  std::vector<Action> allowed; // this stage's actions (Prev, Next, Complete)
  Action execute = Action::Complete;
  std::any state;
  TimePoint last;
  bool busy = false; // a stage is running
};

// A stage about to run (the handler's request) or the answer that ends the request at once.
struct Stage {
  std::string id;
  bool fresh = false; // the first stage of a new session
  std::shared_ptr<const Command> command;
  CommandRequest request;
};
struct Canceled {
  std::string id;
};

// XEP-0050 §4.2: the allowed actions of a stage are among prev, next and complete; "execute" "MUST equal one of
// the "action" attribute values" and "SHOULD NOT specify a value that does not match one of the allowed actions".
void normalise_actions(CommandResponse& r) {
  std::vector<Action> allowed;
  for (Action a : {Action::Prev, Action::Next, Action::Complete}) {
    if (std::find(r.actions.begin(), r.actions.end(), a) != r.actions.end()) {
      allowed.push_back(a);
    }
  }
  if (allowed.empty()) {
    allowed.push_back(Action::Complete);
  }
  auto is_allowed = [&](Action a) { return std::find(allowed.begin(), allowed.end(), a) != allowed.end(); };
  if (!r.execute || !is_allowed(*r.execute)) {
    if (is_allowed(Action::Next)) {
      r.execute = Action::Next;
    } else if (is_allowed(Action::Complete)) {
      r.execute = Action::Complete;
    } else {
      r.execute = allowed.front();
    }
  }
  r.actions = std::move(allowed);
}

std::string duration_text(std::chrono::seconds s) {
  auto total = s.count();
  const std::int64_t days = total / 86400;
  const std::int64_t hours = total / 3600 % 24;
  const std::int64_t minutes = total / 60 % 60;
  const std::int64_t seconds = total % 60;
  std::string out;
  auto part = [&](std::int64_t n, const char* unit) {
    if (n == 0 && !(out.empty() && std::string_view(unit) == "second")) {
      return;
    }
    if (!out.empty()) {
      out += ", ";
    }
    out += std::to_string(n) + " " + unit + (n == 1 ? "" : "s");
  };
  part(days, "day");
  part(hours, "hour");
  part(minutes, "minute");
  part(seconds, "second");
  return out;
}

class State {
public:
  State(api::ModuleContext& ctx, Clock clock, std::chrono::seconds timeout, std::size_t max_sessions)
      : ctx_(ctx), clock_(std::move(clock)), timeout_(timeout), max_sessions_(max_sessions), loaded_(clock_()) {}

  api::ModuleContext& ctx() { return ctx_; }
  TimePoint now() const { return clock_(); }
  TimePoint loaded() const { return loaded_; }

  // Finds the session a request continues (or reserves a new one), checks its action, and marks it busy.
  std::variant<Stage, StanzaError, Canceled> begin(Request& r, const Jid& from, std::shared_ptr<const Command> command,
                                                   const std::string& iq_lang) {
    std::lock_guard lock(mutex_);
    const TimePoint now = clock_();
    sweep(now);
    if (!r.sessionid) {
      // XEP-0050 §3.3: "The requester starts a new session for a command by simply sending a <command/> with the
      // 'node' attribute"; the other actions continue a session, for which "This attribute MUST be present".
      if (r.action != Action::Execute) {
        return api::adhoc::bad_sessionid("'" + std::string(api::adhoc::to_string(r.action)) +
                                         "' continues a session: the 'sessionid' is missing");
      }
      Stage stage;
      stage.id = new_id();
      stage.fresh = true;
      stage.command = std::move(command);
      // XEP-0050 §3.7: the locale "on either the <iq/> (RECOMMENDED) or <command/> element".
      std::string lang = r.lang.empty() ? iq_lang : r.lang;
      stage.request = CommandRequest{from, r.node, stage.id, Action::Execute, std::move(r.form), std::move(lang), {}};
      return stage;
    }
    auto it = live_.find(*r.sessionid);
    // XEP-0050 §3.3: a session "SHOULD be valid only between one requester/responder pair" — and for one command.
    if (it == live_.end() || it->second.requester != from || it->second.command->node != r.node) {
      auto ended = ended_.find(*r.sessionid);
      if (it == live_.end() && ended != ended_.end() && ended->second.requester == from) {
        // XEP-0050 §4.4: session-expired — "a sessionid that is no longer active (either because it was completed,
        // canceled, or timed out)".
        return api::adhoc::session_expired("the session has ended");
      }
      return api::adhoc::bad_sessionid("no such session");
    }
    Session& s = it->second;
    if (s.busy) {
      StanzaError e = StanzaError::make("unexpected-request", "the session's previous stage is still running");
      return e;
    }
    // XEP-0050 §4.2: the "execute" attribute "specifies what the action "execute" is equivalent to".
    const Action action = r.action == Action::Execute ? s.execute : r.action;
    if (action == Action::Cancel) {
      // XEP-0050 §3.4.3: cancel "enables the responder to free any resources allocated during the process" — the
      // session and its state go now; "The responder MUST reply with the success of the command".
      end_locked(it, now);
      return Canceled{*r.sessionid};
    }
    if (std::find(s.allowed.begin(), s.allowed.end(), action) == s.allowed.end()) {
      // XEP-0050 §4.4: bad-action — "The responding JID cannot accept the specified action."
      return api::adhoc::bad_action("'" + std::string(api::adhoc::to_string(action)) +
                                    "' is not an allowed action at this stage");
    }
    s.busy = true;
    Stage stage;
    stage.id = it->first;
    stage.command = s.command;
    // XEP-0050 §3.7: "Each execution session ... SHOULD use only one language/locale, and requesters and responders
    // SHOULD assume the first language/locale specified applies."
    stage.request = CommandRequest{from, r.node, it->first, action, std::move(r.form), s.lang, s.state};
    return stage;
  }

  // Records what the stage returned: keeps the session for the next stage, or ends it.
  void finish(const Stage& stage, CommandResponse& response) {
    std::lock_guard lock(mutex_);
    const TimePoint now = clock_();
    auto it = live_.find(stage.id);
    if (response.error) {
      if (it != live_.end()) {
        it->second.busy = false;
      }
      return;
    }
    if (response.status == Status::Executing) {
      normalise_actions(response);
      if (stage.fresh) {
        make_room(stage.request.requester, now);
        Session s;
        s.command = stage.command;
        s.requester = stage.request.requester;
        s.lang = stage.request.lang;
        it = live_.emplace(stage.id, std::move(s)).first;
      } else if (it == live_.end()) {
        // Ended while the stage ran (the requester's stream closed): it stays ended.
        response.error = api::adhoc::session_expired("the session has ended");
        return;
      }
      Session& s = it->second;
      s.allowed = response.actions;
      s.execute = *response.execute;
      s.state = std::move(response.state);
      s.last = now;
      s.busy = false;
      return;
    }
    if (it != live_.end()) {
      end_locked(it, now);
    } else {
      remember_ended(stage.id, stage.request.requester, now);
    }
  }

  // The requester's stream closed: its sessions end (they are bound to its full JID).
  void end_sessions_of(const Jid& full) {
    std::lock_guard lock(mutex_);
    const TimePoint now = clock_();
    for (auto it = live_.begin(); it != live_.end();) {
      if (it->second.requester == full) {
        auto next = std::next(it);
        end_locked(it, now);
        it = next;
      } else {
        ++it;
      }
    }
  }

private:
  struct Ended {
    Jid requester;
    TimePoint at;
  };

  std::string new_id() {
    // XEP-0050 §3.3: "It is the responder's responsibility to ensure that each 'sessionid' value is unique." The
    // counter makes it unique; the random part makes it unguessable (not that a guess helps: sessions are bound to
    // their requester).
    static constexpr char kHex[] = "0123456789abcdef";
    std::uint64_t r = rng_();
    std::string id;
    for (int i = 0; i < 16; ++i) {
      id += kHex[(r >> (i * 4)) & 0xf];
    }
    return id + "-" + std::to_string(++seq_);
  }

  void end_locked(std::unordered_map<std::string, Session>::iterator it, TimePoint now) {
    remember_ended(it->first, it->second.requester, now);
    live_.erase(it);
  }

  void remember_ended(const std::string& id, const Jid& requester, TimePoint now) {
    ended_[id] = Ended{requester, now};
    ended_order_.push_back(id);
    while (ended_order_.size() > kMaxEnded) {
      ended_.erase(ended_order_.front());
      ended_order_.pop_front();
    }
  }

  // Sessions silent for longer than the timeout end; ended ones are forgotten after as long again.
  void sweep(TimePoint now) {
    for (auto it = live_.begin(); it != live_.end();) {
      if (!it->second.busy && now - it->second.last >= timeout_) {
        auto next = std::next(it);
        end_locked(it, now);
        it = next;
      } else {
        ++it;
      }
    }
    while (!ended_order_.empty()) {
      auto e = ended_.find(ended_order_.front());
      if (e != ended_.end() && now - e->second.at < timeout_) {
        break;
      }
      if (e != ended_.end()) {
        ended_.erase(e);
      }
      ended_order_.pop_front();
    }
  }

  // At most max_sessions open sessions per account (or remote JID): the least recently used one ends.
  void make_room(const Jid& requester, TimePoint now) {
    const Jid bare = requester.bare();
    for (;;) {
      std::size_t count = 0;
      auto oldest = live_.end();
      for (auto it = live_.begin(); it != live_.end(); ++it) {
        if (it->second.requester.bare() != bare) {
          continue;
        }
        ++count;
        if (!it->second.busy && (oldest == live_.end() || it->second.last < oldest->second.last)) {
          oldest = it;
        }
      }
      if (count < max_sessions_ || oldest == live_.end()) {
        return;
      }
      end_locked(oldest, now);
    }
  }

  api::ModuleContext& ctx_;
  Clock clock_;
  std::chrono::seconds timeout_;
  std::size_t max_sessions_;
  TimePoint loaded_;

  std::mutex mutex_;
  std::unordered_map<std::string, Session> live_;
  std::unordered_map<std::string, Ended> ended_;
  std::deque<std::string> ended_order_; // oldest first
  std::uint64_t seq_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};
};

// --- the protocol --------------------------------------------------------------------------------------------------

asio::awaitable<CommandResponse> run_stage(std::shared_ptr<State> st, Stage& stage) {
  // The Command (and its handler's captures) lives in `stage` until this returns, whatever unloads meanwhile.
  try {
    CommandResponse response = co_await stage.command->handler(stage.request);
    co_return response;
  } catch (const std::exception& e) {
    st->ctx().log().error("adhoc: command '{}' for {} failed: {}", stage.command->node, stage.request.requester.str(),
                          e.what());
  } catch (...) {
    st->ctx().log().error("adhoc: command '{}' for {} failed", stage.command->node, stage.request.requester.str());
  }
  // XEP-0050 §3.6: "If a command completes but fails, the responder MUST include at least one <note type='error'/>
  // with the <command status='completed'/> it returns."
  co_return CommandResponse::completed().with_note(NoteType::Error, "The command failed (an internal error).");
}

asio::awaitable<IqReply> handle_command(std::shared_ptr<State> st, const IqRequest& req) {
  auto parsed = Request::parse(req.payload);
  if (auto* error = std::get_if<StanzaError>(&parsed)) {
    co_return IqReply::error(std::move(*error));
  }
  Request request = std::move(std::get<Request>(parsed));

  api::adhoc::CommandDirectory directory;
  st->ctx().fire(directory);
  auto command = directory.find(request.node);
  if (!command) {
    // XEP-0050 §4.4: item-not-found — "The responding JID cannot find the requested command node."
    co_return IqReply::error("item-not-found", "no such command");
  }
  if (!command->allowed(req.from)) {
    // XEP-0050 §4.4: forbidden (type cancel) — "The requesting JID is not allowed to execute the command."
    StanzaError e = StanzaError::make("forbidden", "you may not run this command");
    e.type = api::ErrorType::Cancel;
    co_return IqReply::error(std::move(e));
  }

  auto begun = st->begin(request, req.from, std::move(command), std::string(req.stanza.attr("xml:lang")));
  if (auto* error = std::get_if<StanzaError>(&begun)) {
    co_return IqReply::error(std::move(*error));
  }
  if (auto* canceled = std::get_if<Canceled>(&begun)) {
    Response out;
    out.node = request.node;
    out.sessionid = canceled->id;
    out.status = Status::Canceled;
    co_return IqReply::result(out.to_element());
  }
  Stage stage = std::move(std::get<Stage>(begun));
  CommandResponse response = co_await run_stage(st, stage);
  st->finish(stage, response);
  if (response.error) {
    co_return IqReply::error(std::move(*response.error));
  }
  Response out;
  out.node = stage.request.node;
  // XEP-0050 §4.1: the responder "SHOULD initialize (if not provided) or maintain" the sessionid — here always,
  // also for a command that completes at once.
  out.sessionid = stage.id;
  out.status = response.status;
  if (response.status == Status::Executing) {
    out.actions = response.actions;
    out.execute = response.execute;
  }
  out.notes = std::move(response.notes);
  out.form = std::move(response.form);
  out.lang = std::move(response.lang);
  co_return IqReply::result(out.to_element());
}

// Disco on the command list node and on each command node.
api::Flow answer_disco(State& st, api::disco::NodeQuery& q) {
  using Kind = api::disco::NodeQuery::Kind;
  api::adhoc::CommandDirectory directory;
  st.ctx().fire(directory);
  if (q.node == api::adhoc::commands_node) {
    if (q.kind == Kind::Info) {
      // XEP-0050 §7.2: "command-list — The node for a list of commands; valid only for the node
      // "http://jabber.org/protocol/commands"".
      q.identities.push_back({"automation", "command-list", "Commands", ""});
      q.features = {std::string(api::disco::ns_info), std::string(api::disco::ns_items)};
      return api::Flow::Stop;
    }
    // XEP-0050 §2.2: "Each command is a disco item. The node attribute of <item/> identifies the command, and the
    // name attribute is the label for the command." §5: "Responders MUST report their own command nodes only" —
    // every item's jid is the host. "The responder is not required to send the same list of commands to all
    // requesters": only those the requester may run.
    for (const auto& c : directory.commands) {
      if (c->allowed(q.from)) {
        q.items.push_back({q.to.str(), c->node, c->name});
      }
    }
    return api::Flow::Stop;
  }
  auto command = directory.find(q.node);
  if (!command) {
    return api::Flow::Continue;
  }
  if (!command->allowed(q.from)) {
    // XEP-0050 §2.2: "If the command is not available to the requester, the responder SHOULD respond with a 403
    // "Forbidden" error."
    q.error = StanzaError::make("forbidden", "you may not run this command");
    return api::Flow::Stop;
  }
  if (q.kind == Kind::Info) {
    // XEP-0050 §2.2: "A responder MUST at least provide <identity category='automation' type='command-node'/> and
    // <feature var='http://jabber.org/protocol/commands'/>, and SHOULD include <feature var='jabber:x:data'/>."
    q.identities.push_back({"automation", "command-node", command->name, ""});
    q.features = {std::string(ns), std::string(dataforms::ns)};
  }
  return api::Flow::Stop; // disco#items on a command node: none
}

// --- the built-in command ------------------------------------------------------------------------------------------

asio::awaitable<CommandResponse> uptime(std::shared_ptr<State> st, CommandRequest) {
  const auto up = std::chrono::duration_cast<std::chrono::seconds>(st->now() - st->loaded());
  const std::string text = duration_text(up);
  dataforms::Form form;
  form.type = dataforms::FormType::Result;
  form.title = "Server uptime";
  form.add(dataforms::Field::hidden("FORM_TYPE", std::string(uptime_node)));
  form.add(dataforms::Field::make(dataforms::FieldType::TextSingle, "uptime", "Uptime").with_value(text));
  form.add(dataforms::Field::make(dataforms::FieldType::TextSingle, "seconds", "Uptime in seconds")
               .with_value(std::to_string(up.count())));
  const auto& info = st->ctx().server_info();
  co_return CommandResponse::completed()
      .with_form(std::move(form))
      .with_note(NoteType::Info,
                 info.name + " " + info.version + " on " + st->ctx().host() + " has been up for " + text + ".")
      .with_lang("en");
}

// --- the module ----------------------------------------------------------------------------------------------------

class AdhocModule final : public api::Module {
public:
  explicit AdhocModule(Clock clock) : clock_(std::move(clock)) {}

  api::ModuleInfo info() const override {
    return {"adhoc",
            "Ad-hoc commands: serves the commands modules offer (and the server's uptime)",
            {{"XEP-0050", "1.3.0", "complete", "no <message/> announcements of the command list (§2.3)"}},
            {"disco"},
            {api::opt_int("session_timeout", 600, 10, 86400,
                          "Seconds a multi-stage command session stays open without a next stage"),
             api::opt_int("max_sessions", 10, 1, 1000,
                          "Open command sessions per account (or remote JID); a new one ends the least recent")},
            true};
  }

  void load(api::ModuleContext& ctx) override {
    auto st = std::make_shared<State>(ctx, clock_, std::chrono::seconds(ctx.option<std::int64_t>("session_timeout")),
                                      static_cast<std::size_t>(ctx.option<std::int64_t>("max_sessions")));
    // XEP-0050 §2.1: "If supported, the responder includes a <feature/> with the "var" of
    // "http://jabber.org/protocol/commands"."
    ctx.add_feature(std::string(ns));
    ctx.on_iq(api::IqScope::Host, api::IqType::Set, std::string(ns), "command",
              [st](const IqRequest& req) { return handle_command(st, req); });
    ctx.on<api::disco::NodeQuery>([st](api::disco::NodeQuery& q) { return answer_disco(*st, q); });
    ctx.on_session(api::SessionEventKind::Closed, [st](const api::SessionEvent& ev) { st->end_sessions_of(ev.jid); });

    api::adhoc::add_command(ctx, {std::string(uptime_node), "Server uptime", api::adhoc::local_users(ctx.host()),
                                  [st](CommandRequest r) { return uptime(st, std::move(r)); }});
  }

private:
  Clock clock_;
};

} // namespace

std::unique_ptr<api::Module> make_module() {
  return make_module_with_clock([] { return std::chrono::steady_clock::now(); });
}

std::unique_ptr<api::Module> make_module_with_clock(Clock clock) {
  return std::make_unique<AdhocModule>(std::move(clock));
}

} // namespace cg::xep::adhoc
