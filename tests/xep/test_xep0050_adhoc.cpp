// XEP-0050: Ad-Hoc Commands 1.3.0 — the spec's examples against the adhoc module on the fake host, with test-only
// commands registered through api::adhoc::add_command like any module's: the spec's one-stage 'list' and
// multi-stage 'config', and commands that are forbidden, throw, or refuse a form.
#include "server/api/adhoc.hpp"
#include "tests/xep/fake_host.hpp"
#include "xep/xep0030_disco.hpp"
#include "xep/xep0050_adhoc.hpp"

#include <catch2/catch.hpp>

#include <any>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

using cg::api::Element;
using cg::api::IqReply;
using cg::api::IqScope;
using cg::api::IqType;
using cg::api::Jid;
using cg::test::canonical;
using cg::test::FakeHost;
using cg::test::parse_stanza;
using cg::test::parse_xml;
namespace api = cg::api;
namespace adhoc = cg::api::adhoc;
namespace dataforms = cg::api::dataforms;
namespace xadhoc = cg::xep::adhoc;
using adhoc::Action;
using adhoc::CommandRequest;
using adhoc::CommandResponse;
using adhoc::NoteType;
using adhoc::Status;
using TimePoint = std::chrono::steady_clock::time_point;

namespace {

constexpr const char* kHost = "responder.example";
constexpr const char* kCommandsNs = "http://jabber.org/protocol/commands";
constexpr const char* kCommandsNode = "http://jabber.org/protocol/commands";
constexpr const char* kInfoNs = "http://jabber.org/protocol/disco#info";
constexpr const char* kItemsNs = "http://jabber.org/protocol/disco#items";

// The spec's requester ('requester@domain') is a remote entity here; the responder is the host.
const Jid kRequester = *Jid::parse("requester@domain/home");
const Jid kLocal = *Jid::parse("juliet@responder.example/balcony");

// --- the spec's examples (XEP-0050 1.3.0, by caption) --------------------------------------------------------------

// "Disco request for items" / "Disco result for items".
constexpr const char* kItemsRequest = R"(
<iq type='get'
    from='requester@domain'
    to='responder@domain'>
  <query xmlns='http://jabber.org/protocol/disco#items'
         node='http://jabber.org/protocol/commands'/>
</iq>)";
constexpr const char* kItemsResult = R"(
<iq type='result'
    to='requester@domain'
    from='responder@domain'>
  <query xmlns='http://jabber.org/protocol/disco#items'
         node='http://jabber.org/protocol/commands'>
    <item jid='responder@domain'
          node='list'
          name='List Service Configurations'/>
    <item jid='responder@domain'
          node='config'
          name='Configure Service'/>
    <item jid='responder@domain'
          node='reset'
          name='Reset Service Configuration'/>
    <item jid='responder@domain'
          node='start'
          name='Start Service'/>
    <item jid='responder@domain'
          node='stop'
          name='Stop Service'/>
    <item jid='responder@domain'
          node='restart'
          name='Restart Service'/>
  </query>
</iq>)";

// "Disco request for command information" / "Disco result for command information".
constexpr const char* kCommandInfoRequest = R"(
<iq type='get'
    from='requester@domain'
    to='responder@domain'>
  <query xmlns='http://jabber.org/protocol/disco#info'
         node='config'/>
</iq>)";
constexpr const char* kCommandInfoResult = R"(
<iq type='result'
    to='requester@domain'
    from='responder@domain'>
  <query xmlns='http://jabber.org/protocol/disco#info'
         node='config'>
    <identity name='Configure Service'
              category='automation'
              type='command-node'/>
    <feature var='http://jabber.org/protocol/commands'/>
    <feature var='jabber:x:data'/>
  </query>
</iq>)";

// "Execute command request" / "Execute command result".
constexpr const char* kExecuteRequest = R"(
<iq type='set' to='responder@domain' id='exec1'>
  <command xmlns='http://jabber.org/protocol/commands'
           node='list'
           action='execute'/>
</iq>)";
constexpr const char* kExecuteResult = R"(
<iq type='result' from='responder@domain' to='requester@domain' id='exec1'>
  <command xmlns='http://jabber.org/protocol/commands'
           sessionid='list:20020923T213616Z-700'
           node='list'
           status='completed'>
    <x xmlns='jabber:x:data' type='result'>
      <title>Available Services</title>
      <reported>
        <field var='service' label='Service'/>
        <field var='runlevel-1' label='Single-User mode'/>
        <field var='runlevel-2' label='Non-Networked Multi-User mode'/>
        <field var='runlevel-3' label='Full Multi-User mode'/>
        <field var='runlevel-5' label='X-Window mode'/>
      </reported>
      <item>
        <field var='service'><value>httpd</value></field>
        <field var='runlevel-1'><value>off</value></field>
        <field var='runlevel-2'><value>off</value></field>
        <field var='runlevel-3'><value>on</value></field>
        <field var='runlevel-5'><value>on</value></field>
      </item>
      <item>
        <field var='service'><value>postgresql</value></field>
        <field var='runlevel-1'><value>off</value></field>
        <field var='runlevel-2'><value>off</value></field>
        <field var='runlevel-3'><value>on</value></field>
        <field var='runlevel-5'><value>on</value></field>
      </item>
      <item>
        <field var='service'><value>jabberd</value></field>
        <field var='runlevel-1'><value>off</value></field>
        <field var='runlevel-2'><value>off</value></field>
        <field var='runlevel-3'><value>on</value></field>
        <field var='runlevel-5'><value>on</value></field>
      </item>
    </x>
  </command>
</iq>)";

// "Execute command request (stage 1)" / "Execute command result (stage 1)".
constexpr const char* kStage1Request = R"(
<iq type='set' to='responder@domain' id='exec1'>
  <command xmlns='http://jabber.org/protocol/commands'
           node='config'
           action='execute'/>
</iq>)";
constexpr const char* kStage1Result = R"(
<iq type='result' from='responder@domain' to='requester@domain' id='exec1'>
  <command xmlns='http://jabber.org/protocol/commands'
           sessionid='config:20020923T213616Z-700'
           node='config'
           status='executing'>
    <actions execute='next'>
      <next/>
    </actions>
    <x xmlns='jabber:x:data' type='form'>
      <title>Configure Service</title>
      <instructions>
        Please select the service to configure.
      </instructions>
      <field var='service' label='Service' type='list-single'>
        <option><value>httpd</value></option>
        <option><value>jabberd</value></option>
        <option><value>postgresql</value></option>
      </field>
    </x>
  </command>
</iq>)";

// "Execute command request (stage 2)" / "Execute command result (stage 2)".
constexpr const char* kStage2Request = R"(
<iq type='set' to='responder@domain' id='exec2'>
  <command xmlns='http://jabber.org/protocol/commands'
           sessionid='config:20020923T213616Z-700'
           node='config'>
    <x xmlns='jabber:x:data' type='submit'>
      <field var='service'>
        <value>httpd</value>
      </field>
    </x>
  </command>
</iq>)";
constexpr const char* kStage2Result = R"(
<iq type='result' from='responder@domain' to='requester@domain' id='exec2'>
  <command xmlns='http://jabber.org/protocol/commands'
           sessionid='config:20020923T213616Z-700'
           node='config'
           status='executing'>
    <actions execute='complete'>
      <prev/>
      <complete/>
    </actions>
    <x xmlns='jabber:x:data' type='form'>
      <title>Configure Service</title>
      <instructions>
        Please select the run modes and state for 'httpd'.
      </instructions>
      <field var='runlevel' label='Run Modes' type='list-multi'>
        <value>3</value>
        <value>5</value>
        <option label='Single-User'><value>1</value></option>
        <option label='Non-Networked Multi-User'><value>2</value></option>
        <option label='Full Multi-User'><value>3</value></option>
        <option label='X-Window'><value>5</value></option>
      </field>
      <field var='state' label='Run State' type='list-single'>
        <value>off</value>
        <option label='Active'><value>off</value></option>
        <option label='Inactive'><value>on</value></option>
      </field>
    </x>
  </command>
</iq>)";

// "Execute command request (stage 3)" / "Execute command result (stage 3)".
constexpr const char* kStage3Request = R"(
<iq type='set' to='responder@domain' id='exec3'>
  <command xmlns='http://jabber.org/protocol/commands'
           sessionid='config:20020923T213616Z-700'
           node='config'>
    <x xmlns='jabber:x:data' type='submit'>
      <field var='mode'>
        <value>3</value>
      </field>
      <field var='state'>
        <value>on</value>
      </field>
    </x>
  </command>
</iq>)";
constexpr const char* kStage3Result = R"(
<iq type='result' from='responder@domain' to='requester@domain' id='exec3'>
  <command xmlns='http://jabber.org/protocol/commands'
           sessionid='config:20020923T213616Z-700'
           node='config'
           status='completed'>
    <note type='info'>Service 'httpd' has been configured.</note>
  </command>
</iq>)";

// "Execute command request (revert from stage 2 to stage 1)" / "... result".
constexpr const char* kRevertRequest = R"(
<iq type='set' to='responder@domain' id='exec2'>
  <command xmlns='http://jabber.org/protocol/commands'
           sessionid='config:20020923T213616Z-700'
           node='config'
           action='prev'/>
</iq>)";
constexpr const char* kRevertResult = R"(
<iq type='result' from='responder@domain' to='requester@domain' id='exec2'>
  <command xmlns='http://jabber.org/protocol/commands'
           sessionid='config:20020923T213616Z-700'
           node='config'
           status='executing'>
    <actions execute='next'>
      <next/>
    </actions>
    <x xmlns='jabber:x:data' type='form'>
      <title>Configure Service</title>
      <instructions>
        Please select the service to configure.
      </instructions>
      <field var='service' label='Service' type='list-single'>
        <value>httpd</value>
        <option><value>httpd</value></option>
        <option><value>jabberd</value></option>
        <option><value>postgresql</value></option>
      </field>
    </x>
  </command>
</iq>)";

// "Execute command request (stage 2; canceling)" / "Execute command result (stage 2; canceled)".
constexpr const char* kCancelRequest = R"(
<iq type='set' to='responder@domain' id='exec3'>
  <command xmlns='http://jabber.org/protocol/commands'
           sessionid='config:20020923T213616Z-700'
           node='config'
           action='cancel'/>
</iq>)";
constexpr const char* kCancelResult = R"(
<iq type='result' from='responder@domain' to='requester@domain' id='exec3'>
  <command xmlns='http://jabber.org/protocol/commands'
           sessionid='config:20020923T213616Z-700'
           node='config'
           status='canceled'/>
</iq>)";

// "Execute command request (with language/locale)".
constexpr const char* kLocaleRequest = R"(
<iq type='set' to='responder@domain' id='exec1' xml:lang='en-us'>
  <command xmlns='http://jabber.org/protocol/commands'
           node='list'
           action='execute'/>
</iq>)";

// --- test commands -------------------------------------------------------------------------------------------------

// The <x/> of a spec example's <command/>, as a Form.
dataforms::Form form_of(const char* example) {
  const Element iq = parse_stanza(example);
  const Element* x = iq.child("command", kCommandsNs)->child("x", dataforms::ns);
  REQUIRE(x != nullptr);
  auto parsed = dataforms::Form::parse(*x);
  REQUIRE(std::holds_alternative<dataforms::Form>(parsed));
  return std::get<dataforms::Form>(parsed);
}

boost::asio::awaitable<CommandResponse> list_command(CommandRequest) {
  co_return CommandResponse::completed().with_form(form_of(kExecuteResult));
}

// The spec's 'config': stage 1 picks a service, stage 2 its run modes; prev goes back with the service remembered.
boost::asio::awaitable<CommandResponse> config_command(CommandRequest req) {
  switch (req.action) {
  case Action::Execute:
    co_return CommandResponse::executing(form_of(kStage1Result), {Action::Next}, Action::Next);
  case Action::Next: {
    const dataforms::Field* service = req.form ? req.form->field("service") : nullptr;
    if (service == nullptr || service->value() == nullptr) {
      co_return CommandResponse::failed(adhoc::bad_payload("pick a service"));
    }
    co_return CommandResponse::executing(form_of(kStage2Result), {Action::Prev, Action::Complete}, Action::Complete)
        .with_state(*service->value());
  }
  case Action::Prev:
    co_return CommandResponse::executing(form_of(kRevertResult), {Action::Next}, Action::Next).with_state(req.state);
  case Action::Complete: {
    const auto* service = std::any_cast<std::string>(&req.state);
    REQUIRE(service != nullptr);
    co_return CommandResponse::completed().with_note(NoteType::Info, "Service '" + *service + "' has been configured.");
  }
  case Action::Cancel:
    break;
  }
  throw std::logic_error("the framework never passes cancel");
}

boost::asio::awaitable<CommandResponse> trivial_command(CommandRequest) {
  co_return CommandResponse::completed().with_note(NoteType::Info, "done");
}

boost::asio::awaitable<CommandResponse> throwing_command(CommandRequest) {
  throw std::runtime_error("database on fire");
  co_return CommandResponse::completed();
}

// What a handler was asked.
struct Seen {
  std::vector<CommandRequest> requests;
};

class TestCommands final : public api::Module {
public:
  explicit TestCommands(std::vector<adhoc::Command> commands) : commands_(std::move(commands)) {}
  api::ModuleInfo info() const override {
    return {"testcommands", "test-only commands", {{"XEP-0050", "1.3.0", "complete", ""}}, {"adhoc"}, {}, true};
  }
  void load(api::ModuleContext& ctx) override {
    for (auto& c : commands_) {
      adhoc::add_command(ctx, c);
    }
  }

private:
  std::vector<adhoc::Command> commands_;
};

adhoc::Command command(std::string node, std::string name, adhoc::CommandHandler handler,
                       adhoc::Permission allowed = adhoc::anyone()) {
  return adhoc::Command{std::move(node), std::move(name), std::move(allowed), std::move(handler)};
}

// The spec's six commands, in the example's order.
std::vector<adhoc::Command> spec_commands() {
  return {command("list", "List Service Configurations", &list_command),
          command("config", "Configure Service", &config_command),
          command("reset", "Reset Service Configuration", &trivial_command),
          command("start", "Start Service", &trivial_command),
          command("stop", "Stop Service", &trivial_command),
          command("restart", "Restart Service", &trivial_command)};
}

// disco + adhoc (with a clock the test moves) + the test's commands, on one host.
struct Fixture {
  explicit Fixture(std::vector<adhoc::Command> commands = spec_commands(), cg::test::OptionOverrides options = {})
      : host(kHost) {
    disco_module = cg::xep::disco::make_module();
    host.load(*disco_module);
    adhoc_module = xadhoc::make_module_with_clock([now = now] { return *now; });
    host.sibling().load(*adhoc_module, options);
    test_module = std::make_unique<TestCommands>(std::move(commands));
    host.sibling().load(*test_module);
  }

  // A spec example's request, sent by `from` to the host.
  Element request(const char* example, const Jid& from = kRequester) const {
    Element iq = parse_stanza(example);
    iq.set_attr("from", from.str());
    iq.set_attr("to", kHost);
    return iq;
  }
  IqReply send(const Element& iq) { return host.call_iq(IqScope::Host, iq); }
  IqReply send(const char* example, const Jid& from = kRequester) { return send(request(example, from)); }
  IqReply send(const std::string& xml, const Jid& from = kRequester) { return send(request(xml.c_str(), from)); }
  // Sends <command/> with these attributes (and child XML) as `from`.
  IqReply command(const std::string& attrs, const std::string& children = "", const Jid& from = kRequester) {
    return send(parse_stanza("<iq type='set' id='c' from='" + from.str() + "' to='" + std::string(kHost) +
                             "'><command xmlns='" + kCommandsNs + "' " + attrs + ">" + children + "</command></iq>"));
  }

  std::shared_ptr<TimePoint> now = std::make_shared<TimePoint>(std::chrono::hours(1000));
  FakeHost host;
  std::unique_ptr<api::Module> disco_module;
  std::unique_ptr<api::Module> adhoc_module;
  std::unique_ptr<api::Module> test_module;
};

// The <command/> of a result, read back (REQUIREs one).
xadhoc::Response response_of(const IqReply& reply) {
  REQUIRE_FALSE(reply.is_error());
  REQUIRE(reply.payload());
  auto r = xadhoc::Response::parse(*reply.payload());
  REQUIRE(r);
  return *r;
}

// The spec example's <command/> with our session id in place of the spec's.
Element expected_command(const char* example, const std::string& sessionid) {
  Element command = *parse_stanza(example).child("command", kCommandsNs);
  command.set_attr("sessionid", sessionid);
  return canonical(command);
}

// The spec example's request with our session id.
Element with_session(Element iq, const std::string& sessionid) {
  iq.child("command", kCommandsNs)->set_attr("sessionid", sessionid);
  return iq;
}

// Condition and XEP-0050 specific condition of an error reply.
std::pair<std::string, std::string> error_of(const IqReply& reply) {
  REQUIRE(reply.is_error());
  const auto& e = reply.error_value();
  std::string specific;
  if (e.application) {
    CHECK(e.application->ns() == kCommandsNs);
    specific = e.application->name();
  }
  return {e.condition, specific};
}

std::vector<std::string> item_nodes(const IqReply& reply) {
  REQUIRE_FALSE(reply.is_error());
  std::vector<std::string> out;
  for (const auto* item : reply.payload()->children("item")) {
    out.emplace_back(item->attr("node"));
  }
  return out;
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------

TEST_CASE("adhoc: the host advertises the commands feature (XEP-0050 §2.1)", "[xep0050][module]") {
  Fixture f;
  // XEP-0050 §2.1: "If supported, the responder includes a <feature/> with the "var" of
  // "http://jabber.org/protocol/commands"."
  const auto features = f.host.features();
  CHECK(std::find(features.begin(), features.end(), kCommandsNs) != features.end());
  IqReply info = f.send("<iq type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
  REQUIRE_FALSE(info.is_error());
  bool found = false;
  for (const auto* feature : info.payload()->children("feature")) {
    found = found || feature->attr("var") == kCommandsNs;
  }
  CHECK(found);
}

TEST_CASE("adhoc: disco#items on the commands node lists the commands (examples 'Disco request/result for items')",
          "[xep0050][module][disco]") {
  std::vector<adhoc::Command> commands = spec_commands();
  commands.push_back(command("secret", "Only for the admin", &trivial_command,
                             [](const Jid& j) { return j.bare_str() == "admin@responder.example"; }));
  Fixture f(std::move(commands));

  IqReply reply = f.send(kItemsRequest);
  REQUIRE_FALSE(reply.is_error());
  // XEP-0050 §5: "Responders MUST report their own command nodes only": every item's jid is the responder (here
  // the host, where the spec's responder is an account).
  Element expected = *parse_stanza(kItemsResult).child("query", kItemsNs);
  for (auto& node : expected.nodes()) {
    if (auto* item = std::get_if<Element>(&node)) {
      item->set_attr("jid", kHost);
    }
  }
  // A remote requester sees neither the admin's command nor the server's uptime (for local accounts).
  CHECK(canonical(*reply.payload()) == canonical(expected));

  // "The responder is not required to send the same list of commands to all requesters": a local account also
  // sees the uptime command, the admin also 'secret'; every item has a name.
  const auto local = item_nodes(f.send(kItemsRequest, kLocal));
  CHECK(std::find(local.begin(), local.end(), std::string(xadhoc::uptime_node)) != local.end());
  CHECK(std::find(local.begin(), local.end(), "secret") == local.end());
  IqReply admin_reply = f.send(kItemsRequest, *Jid::parse("admin@responder.example/desk"));
  const auto admin = item_nodes(admin_reply);
  CHECK(std::find(admin.begin(), admin.end(), "secret") != admin.end());
  for (const auto* item : admin_reply.payload()->children("item")) {
    CHECK_FALSE(item->attr("name").empty());
  }
}

TEST_CASE("adhoc: disco#info on a command node (examples 'Disco request/result for command information')",
          "[xep0050][module][disco]") {
  std::vector<adhoc::Command> commands = spec_commands();
  commands.push_back(command("secret", "Only for the admin", &trivial_command, [](const Jid&) { return false; }));
  Fixture f(std::move(commands));

  IqReply reply = f.send(kCommandInfoRequest);
  REQUIRE_FALSE(reply.is_error());
  // XEP-0050 §2.2: "A responder MUST at least provide <identity category='automation' type='command-node'/> and
  // <feature var='http://jabber.org/protocol/commands'/>, and SHOULD include <feature var='jabber:x:data'/>."
  CHECK(canonical(*reply.payload()) == canonical(*parse_stanza(kCommandInfoResult).child("query", kInfoNs)));

  // "If the command is not available to the requester, the responder SHOULD respond with a 403 "Forbidden" error."
  IqReply forbidden =
      f.send("<iq type='get' id='s'><query xmlns='http://jabber.org/protocol/disco#info' node='secret'/></iq>");
  CHECK(error_of(forbidden).first == "forbidden");
  // A node that is no command stays unknown (XEP-0030 §3.2).
  IqReply unknown =
      f.send("<iq type='get' id='u'><query xmlns='http://jabber.org/protocol/disco#info' node='nosuch'/></iq>");
  CHECK(error_of(unknown).first == "item-not-found");

  // The command list node itself: identity automation/command-list (XEP-0050 §7.2).
  IqReply list = f.send("<iq type='get' id='l'><query xmlns='http://jabber.org/protocol/disco#info' "
                        "node='http://jabber.org/protocol/commands'/></iq>");
  REQUIRE_FALSE(list.is_error());
  const Element* identity = list.payload()->child("identity");
  REQUIRE(identity != nullptr);
  CHECK(identity->attr("category") == "automation");
  CHECK(identity->attr("type") == "command-list");
  CHECK(list.payload()->attr("node") == kCommandsNode);
}

TEST_CASE("adhoc: a one-stage command completes at once, with a session id (examples 'Execute command request/result')",
          "[xep0050][module]") {
  Fixture f;
  IqReply reply = f.send(kExecuteRequest);
  const auto r = response_of(reply);
  // The session id is always given, also when the command completes at once (XEP-0050 §4.1: the responder
  // "SHOULD initialize (if not provided) or maintain this attribute").
  REQUIRE_FALSE(r.sessionid.empty());
  CHECK(canonical(*reply.payload()) == expected_command(kExecuteResult, r.sessionid));

  // "The requester MAY include the "action='execute'", although this is implied." Each session id is unique
  // (XEP-0050 §3.3: "It is the responder's responsibility to ensure that each 'sessionid' value is unique").
  std::set<std::string> ids{r.sessionid};
  for (int i = 0; i < 20; ++i) {
    const auto again = response_of(f.command("node='list'"));
    CHECK(again.status == Status::Completed);
    CHECK(ids.insert(again.sessionid).second);
  }
  // The session ended with the result: continuing it is session-expired (XEP-0050 §4.4).
  CHECK(error_of(f.command("node='list' sessionid='" + r.sessionid + "'")) ==
        std::pair<std::string, std::string>{"not-allowed", "session-expired"});
}

TEST_CASE("adhoc: a multi-stage command — execute, next by default, complete by default, one session id "
          "(examples stage 1 to 3)",
          "[xep0050][module]") {
  Fixture f;
  IqReply stage1 = f.send(kStage1Request);
  const auto r1 = response_of(stage1);
  REQUIRE_FALSE(r1.sessionid.empty());
  CHECK(canonical(*stage1.payload()) == expected_command(kStage1Result, r1.sessionid));

  // The stage 2 request has no action: 'execute', which stage 1's <actions execute='next'/> made 'next'.
  IqReply stage2 = f.send(with_session(f.request(kStage2Request), r1.sessionid));
  CHECK(canonical(*stage2.payload()) == expected_command(kStage2Result, r1.sessionid));

  // Stage 3: 'execute' means 'complete' now.
  IqReply stage3 = f.send(with_session(f.request(kStage3Request), r1.sessionid));
  CHECK(canonical(*stage3.payload()) == expected_command(kStage3Result, r1.sessionid));
  // Completed: the session has ended.
  CHECK(error_of(f.send(with_session(f.request(kStage3Request), r1.sessionid))).second == "session-expired");
}

TEST_CASE("adhoc: prev goes back a stage (examples 'revert from stage 2 to stage 1')", "[xep0050][module]") {
  Fixture f;
  const auto r1 = response_of(f.send(kStage1Request));
  response_of(f.send(with_session(f.request(kStage2Request), r1.sessionid)));
  IqReply revert = f.send(with_session(f.request(kRevertRequest), r1.sessionid));
  CHECK(canonical(*revert.payload()) == expected_command(kRevertResult, r1.sessionid));
  // And on again: the session is still alive, back at stage 1's actions ('prev' is not one of them).
  CHECK(error_of(f.command("node='config' action='prev' sessionid='" + r1.sessionid + "'")).second == "bad-action");
  IqReply stage2 = f.send(with_session(f.request(kStage2Request), r1.sessionid));
  CHECK(canonical(*stage2.payload()) == expected_command(kStage2Result, r1.sessionid));
}

TEST_CASE("adhoc: cancel ends the session with status canceled (examples 'stage 2, canceling/canceled')",
          "[xep0050][module]") {
  Fixture f;
  const auto r1 = response_of(f.send(kStage1Request));
  response_of(f.send(with_session(f.request(kStage2Request), r1.sessionid)));
  // XEP-0050 §3.4.3: "The responder MUST reply with the success of the command".
  IqReply canceled = f.send(with_session(f.request(kCancelRequest), r1.sessionid));
  CHECK(canonical(*canceled.payload()) == expected_command(kCancelResult, r1.sessionid));
  // The session is gone.
  CHECK(error_of(f.send(with_session(f.request(kStage3Request), r1.sessionid))) ==
        std::pair<std::string, std::string>{"not-allowed", "session-expired"});
}

TEST_CASE("adhoc: the errors of XEP-0050 §4.4", "[xep0050][module][errors]") {
  std::vector<adhoc::Command> commands = spec_commands();
  commands.push_back(command("secret", "Only for the admin", &trivial_command, [](const Jid&) { return false; }));
  Fixture f(std::move(commands));
  using E = std::pair<std::string, std::string>;

  // item-not-found: "The responding JID cannot find the requested command node."
  CHECK(error_of(f.command("node='nosuch' action='execute'")) == E{"item-not-found", ""});
  // forbidden (type cancel): "The requesting JID is not allowed to execute the command."
  IqReply forbidden = f.command("node='secret'");
  CHECK(error_of(forbidden) == E{"forbidden", ""});
  CHECK(forbidden.error_value().effective_type() == api::ErrorType::Cancel);
  // §4.1: "The "node" attribute uniquely identifies the command. This attribute MUST be present."
  CHECK(error_of(f.command("action='execute'")).first == "bad-request");
  // malformed-action: "The responding JID does not understand the specified action."
  CHECK(error_of(f.command("node='config' action='jump'")) == E{"bad-request", "malformed-action"});

  const auto r1 = response_of(f.send(kStage1Request));
  const std::string sid = "sessionid='" + r1.sessionid + "'";
  // bad-action: stage 1 allows only 'next'.
  CHECK(error_of(f.command("node='config' action='complete' " + sid)) == E{"bad-request", "bad-action"});
  CHECK(error_of(f.command("node='config' action='prev' " + sid)) == E{"bad-request", "bad-action"});
  // bad-sessionid: a session id never given out, an empty one (§4.1: it "MUST NOT be empty"), another requester's,
  // another command's, or a continuing action without one.
  CHECK(error_of(f.command("node='config' action='next' sessionid='nosuch'")) == E{"bad-request", "bad-sessionid"});
  CHECK(error_of(f.command("node='config' sessionid=''")) == E{"bad-request", "bad-sessionid"});
  CHECK(error_of(f.command("node='config' " + sid, "", *Jid::parse("requester@domain/other"))) ==
        E{"bad-request", "bad-sessionid"});
  CHECK(error_of(f.command("node='list' " + sid)) == E{"bad-request", "bad-sessionid"});
  CHECK(error_of(f.command("node='config' action='next'")) == E{"bad-request", "bad-sessionid"});
  // bad-payload: a form that is no form, or not a submission.
  CHECK(error_of(f.command("node='config' " + sid,
                           "<x xmlns='jabber:x:data' type='submit'><field type='nonsense' var='service'/></x>")) ==
        E{"bad-request", "bad-payload"});
  CHECK(error_of(f.command("node='config' " + sid, "<x xmlns='jabber:x:data' type='result'/>")) ==
        E{"bad-request", "bad-payload"});
  // None of these disturbed the session: it goes on.
  const auto r2 = response_of(f.send(with_session(f.request(kStage2Request), r1.sessionid)));
  CHECK(r2.status == Status::Executing);
}

TEST_CASE("adhoc: a requester's <x type='cancel'/> is read as a submission (XEP-0050 §3.5.1)", "[xep0050][module]") {
  Fixture f;
  const auto r1 = response_of(f.send(kStage1Request));
  Element stage2 = with_session(f.request(kStage2Request), r1.sessionid);
  stage2.child("command", kCommandsNs)->child("x", dataforms::ns)->set_attr("type", "cancel");
  const auto r2 = response_of(f.send(stage2));
  CHECK(r2.status == Status::Executing);
  CHECK(r2.actions == std::vector<Action>{Action::Prev, Action::Complete});
}

TEST_CASE("adhoc: a handler's error answers the IQ and keeps the session at its stage", "[xep0050][module]") {
  Fixture f;
  const auto r1 = response_of(f.send(kStage1Request));
  // Stage 2 without the form: the command refuses with bad-payload.
  CHECK(error_of(f.command("node='config' sessionid='" + r1.sessionid + "'")) ==
        std::pair<std::string, std::string>{"bad-request", "bad-payload"});
  // The requester corrects it; the session is where it was.
  IqReply stage2 = f.send(with_session(f.request(kStage2Request), r1.sessionid));
  CHECK(canonical(*stage2.payload()) == expected_command(kStage2Result, r1.sessionid));
  // An error on the first stage gives no session out.
  std::vector<adhoc::Command> refusing{command("refuse", "Refuses", [](CommandRequest) {
    return []() -> boost::asio::awaitable<CommandResponse> {
      co_return CommandResponse::failed(adhoc::bad_locale("only Klingon"));
    }();
  })};
  Fixture g(std::move(refusing));
  CHECK(error_of(g.command("node='refuse'")) == std::pair<std::string, std::string>{"bad-request", "bad-locale"});
}

TEST_CASE("adhoc: a handler that throws completes the command with an error note (XEP-0050 §3.6)",
          "[xep0050][module]") {
  Fixture f({command("broken", "Broken", &throwing_command)});
  const auto r = response_of(f.command("node='broken' action='execute'"));
  // "If a command completes but fails, the responder MUST include at least one <note type='error'/>".
  CHECK(r.status == Status::Completed);
  CHECK_FALSE(r.sessionid.empty());
  REQUIRE(r.notes.size() == 1);
  CHECK(r.notes[0].type == NoteType::Error);
  // The exception's text stays in the log.
  CHECK(r.notes[0].text.find("database") == std::string::npos);
  bool logged = false;
  for (const auto& line : f.host.logged()) {
    logged = logged || (line.find("broken") != std::string::npos && line.find("database on fire") != std::string::npos);
  }
  CHECK(logged);
}

TEST_CASE("adhoc: sessions expire after modules.adhoc.session_timeout", "[xep0050][module][sessions]") {
  Fixture f(spec_commands(), {{"session_timeout", std::int64_t{60}}});
  const auto r1 = response_of(f.send(kStage1Request));
  *f.now += std::chrono::seconds(59);
  const auto r2 = response_of(f.send(with_session(f.request(kStage2Request), r1.sessionid)));
  CHECK(r2.status == Status::Executing);
  // Each stage restarts the timer; 60 s of silence end the session.
  *f.now += std::chrono::seconds(60);
  CHECK(error_of(f.send(with_session(f.request(kStage3Request), r1.sessionid))) ==
        std::pair<std::string, std::string>{"not-allowed", "session-expired"});
  // Long after, the ended session is forgotten: an unknown session id.
  *f.now += std::chrono::seconds(120);
  CHECK(error_of(f.send(with_session(f.request(kStage3Request), r1.sessionid))).second == "bad-sessionid");
}

TEST_CASE("adhoc: a requester's sessions end when its stream closes", "[xep0050][module][sessions]") {
  Fixture f;
  const auto mine = response_of(f.send(kStage1Request, kLocal));
  const Jid other_resource = *Jid::parse("juliet@responder.example/chamber");
  const auto other = response_of(f.send(kStage1Request, other_resource));
  f.host.fire_session({api::SessionEventKind::Closed, kLocal, ""});
  CHECK(error_of(f.send(with_session(f.request(kStage2Request, kLocal), mine.sessionid))).second == "session-expired");
  // The same account's other resource keeps its own.
  CHECK(response_of(f.send(with_session(f.request(kStage2Request, other_resource), other.sessionid))).status ==
        Status::Executing);
}

TEST_CASE("adhoc: at most modules.adhoc.max_sessions sessions per account — the least recent ends",
          "[xep0050][module][sessions]") {
  Fixture f(spec_commands(), {{"max_sessions", std::int64_t{2}}});
  const auto a = response_of(f.send(kStage1Request));
  *f.now += std::chrono::seconds(1);
  const auto b = response_of(f.send(kStage1Request, *Jid::parse("requester@domain/other")));
  *f.now += std::chrono::seconds(1);
  // Someone else's sessions do not count.
  const auto c = response_of(f.send(kStage1Request, kLocal));
  *f.now += std::chrono::seconds(1);
  const auto d = response_of(f.send(kStage1Request));
  CHECK(error_of(f.send(with_session(f.request(kStage2Request), a.sessionid))).second == "session-expired");
  CHECK(response_of(f.send(with_session(f.request(kStage2Request, *Jid::parse("requester@domain/other")), b.sessionid)))
            .status == Status::Executing);
  CHECK(response_of(f.send(with_session(f.request(kStage2Request, kLocal), c.sessionid))).status == Status::Executing);
  CHECK(response_of(f.send(with_session(f.request(kStage2Request), d.sessionid))).status == Status::Executing);
}

TEST_CASE("adhoc: the handler gets the requester, its language and its form, and answers in its language "
          "(XEP-0050 §3.7)",
          "[xep0050][module]") {
  auto seen = std::make_shared<Seen>();
  Fixture f({command("list", "List", [seen](CommandRequest req) {
    seen->requests.push_back(req);
    return [](std::string lang) -> boost::asio::awaitable<CommandResponse> {
      co_return CommandResponse::executing({}, {Action::Complete}).with_lang(lang);
    }(req.lang);
  })});
  // "The requester SHOULD provide its locale information using the "xml:lang" attribute on either the <iq/>
  // (RECOMMENDED) or <command/> element."
  const auto r1 = response_of(f.send(kLocaleRequest));
  CHECK(r1.lang == "en-us");
  // "requesters and responders SHOULD assume the first language/locale specified applies": a later stage's other
  // language does not change the session's.
  const auto r2 = response_of(f.command("node='list' xml:lang='fr-ca' sessionid='" + r1.sessionid + "'",
                                        "<x xmlns='jabber:x:data' type='submit'><field var='a'><value>1</value>"
                                        "</field></x>"));
  CHECK(r2.lang == "en-us");
  REQUIRE(seen->requests.size() == 2);
  CHECK(seen->requests[0].requester == kRequester);
  CHECK(seen->requests[0].action == Action::Execute);
  CHECK_FALSE(seen->requests[0].form);
  CHECK(seen->requests[1].action == Action::Complete);
  CHECK(seen->requests[1].sessionid == r1.sessionid);
  REQUIRE(seen->requests[1].form);
  CHECK(*seen->requests[1].form->field("a")->value() == "1");
  // Without any xml:lang, none.
  CHECK(response_of(f.command("node='list'")).lang.empty());
}

TEST_CASE("adhoc: the actions a stage names are normalised — execute among them, Complete when none",
          "[xep0050][module]") {
  auto respond = [](std::vector<Action> actions, std::optional<Action> execute) {
    return [actions, execute](CommandRequest) -> boost::asio::awaitable<CommandResponse> {
      co_return CommandResponse::executing({}, actions, execute);
    };
  };
  Fixture f({command("none", "No actions", respond({}, std::nullopt)),
             command("bad-default", "A default not allowed", respond({Action::Prev, Action::Next}, Action::Complete)),
             command("odd", "Execute and cancel named",
                     respond({Action::Execute, Action::Cancel, Action::Complete}, Action::Prev))});
  auto none = response_of(f.command("node='none'"));
  CHECK(none.actions == std::vector<Action>{Action::Complete});
  CHECK(none.execute == Action::Complete);
  auto bad_default = response_of(f.command("node='bad-default'"));
  CHECK(bad_default.actions == std::vector<Action>{Action::Prev, Action::Next});
  CHECK(bad_default.execute == Action::Next);
  auto odd = response_of(f.command("node='odd'"));
  CHECK(odd.actions == std::vector<Action>{Action::Complete});
  CHECK(odd.execute == Action::Complete);
}

TEST_CASE("adhoc: add_command refuses a second command with the same node, and incomplete commands", "[xep0050][api]") {
  Fixture f;
  FakeHost& ctx = f.host.sibling();
  CHECK_THROWS_AS(adhoc::add_command(ctx, command("config", "Again", &trivial_command)), std::logic_error);
  CHECK_THROWS_AS(adhoc::add_command(ctx, command("", "No node", &trivial_command)), std::invalid_argument);
  CHECK_THROWS_AS(adhoc::add_command(ctx, command(kCommandsNode, "The list node", &trivial_command)),
                  std::invalid_argument);
  CHECK_THROWS_AS(adhoc::add_command(ctx, command("x", "", &trivial_command)), std::invalid_argument);
  CHECK_THROWS_AS(adhoc::add_command(ctx, command("x", "No handler", nullptr)), std::invalid_argument);
  CHECK_THROWS_AS(adhoc::add_command(ctx, command("x", "No permission", &trivial_command, nullptr)),
                  std::invalid_argument);
}

TEST_CASE("adhoc: the built-in uptime command, for the host's accounts", "[xep0050][module][uptime]") {
  Fixture f;
  *f.now += std::chrono::seconds(90061); // 1 day, 1 hour, 1 minute, 1 second after the module loaded
  const auto r = response_of(f.command("node='" + std::string(xadhoc::uptime_node) + "' action='execute'", "", kLocal));
  CHECK(r.status == Status::Completed);
  CHECK_FALSE(r.sessionid.empty());
  CHECK(r.lang == "en");
  REQUIRE(r.form);
  CHECK(r.form->type == dataforms::FormType::Result);
  CHECK(r.form->form_type() == xadhoc::uptime_node);
  REQUIRE(r.form->field("seconds") != nullptr);
  CHECK(*r.form->field("seconds")->value() == "90061");
  CHECK(*r.form->field("uptime")->value() == "1 day, 1 hour, 1 minute, 1 second");
  REQUIRE(r.notes.size() == 1);
  CHECK(r.notes[0].type == NoteType::Info);
  CHECK(r.notes[0].text == "ChatGroup 0.0.0-test on responder.example has been up for 1 day, 1 hour, 1 minute, "
                           "1 second.");
  // Plural and zero parts.
  *f.now += std::chrono::seconds(3719); // to 1 day, 2 hours, 3 minutes
  const auto later = response_of(f.command("node='" + std::string(xadhoc::uptime_node) + "'", "", kLocal));
  CHECK(*later.form->field("uptime")->value() == "1 day, 2 hours, 3 minutes");
  // Disco info names it; a remote entity may neither see nor run it.
  IqReply info = f.send("<iq type='get' id='i'><query xmlns='http://jabber.org/protocol/disco#info' node='" +
                            std::string(xadhoc::uptime_node) + "'/></iq>",
                        kLocal);
  REQUIRE_FALSE(info.is_error());
  CHECK(info.payload()->child("identity")->attr("name") == "Server uptime");
  CHECK(error_of(f.command("node='" + std::string(xadhoc::uptime_node) + "'")).first == "forbidden");
}

TEST_CASE("adhoc: Request and Response read and write the spec's <command/> elements", "[xep0050][spec]") {
  // Requests.
  auto stage2 = xadhoc::Request::parse(*parse_stanza(kStage2Request).child("command", kCommandsNs));
  REQUIRE(std::holds_alternative<xadhoc::Request>(stage2));
  const auto& req = std::get<xadhoc::Request>(stage2);
  CHECK(req.node == "config");
  CHECK(req.sessionid == "config:20020923T213616Z-700");
  CHECK(req.action == Action::Execute); // implied
  REQUIRE(req.form);
  CHECK(*req.form->field("service")->value() == "httpd");
  auto cancel = xadhoc::Request::parse(*parse_stanza(kCancelRequest).child("command", kCommandsNs));
  REQUIRE(std::holds_alternative<xadhoc::Request>(cancel));
  CHECK(std::get<xadhoc::Request>(cancel).action == Action::Cancel);
  // XEP-0050 §4.1: a requester's 'status' "MUST" be ignored.
  auto with_status = xadhoc::Request::parse(
      parse_xml("<command xmlns='http://jabber.org/protocol/commands' node='list' status='completed'/>"));
  REQUIRE(std::holds_alternative<xadhoc::Request>(with_status));
  // Responses: every one of the spec's results reads and writes back as it was.
  for (const char* example :
       {kExecuteResult, kStage1Result, kStage2Result, kStage3Result, kRevertResult, kCancelResult}) {
    const Element command = *parse_stanza(example).child("command", kCommandsNs);
    auto r = xadhoc::Response::parse(command);
    REQUIRE(r);
    CHECK(canonical(r->to_element()) == canonical(command));
  }
  auto stage1 = xadhoc::Response::parse(*parse_stanza(kStage1Result).child("command", kCommandsNs));
  CHECK(stage1->status == Status::Executing);
  CHECK(stage1->execute == Action::Next);
  CHECK(stage1->actions == std::vector<Action>{Action::Next});
  // A note without a type is "info" (XEP-0050 §4.3); an unknown status is no response.
  auto note = xadhoc::Response::parse(parse_xml("<command xmlns='http://jabber.org/protocol/commands' node='n' "
                                                "sessionid='s' status='completed'><note>hi</note></command>"));
  REQUIRE(note);
  CHECK(note->notes == std::vector<adhoc::Note>{{NoteType::Info, "hi"}});
  CHECK_FALSE(xadhoc::Response::parse(
      parse_xml("<command xmlns='http://jabber.org/protocol/commands' node='n' status='done'/>")));
}
