// XEP-0004: Data Forms 2.13 and XEP-0122: Data Forms Validation 1.0 — the specs' examples parsed and serialised,
// what XEP-0004 forbids in any form, and validation of submitted forms against their definition.
#include "server/api/dataforms.hpp"
#include "server/api/xml.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

using cg::api::Element;
using cg::api::StanzaError;
namespace df = cg::api::dataforms;

namespace {

Element xml(std::string_view text) {
  std::string error;
  auto el = cg::api::parse_xml(text, &error);
  INFO(error);
  REQUIRE(el);
  return *el;
}

// Whitespace-only text removed, attributes sorted: how two trees that mean the same XML compare equal. The children
// of a <field/> are grouped by name (stable: values and options keep their order), since XEP-0004 gives no meaning
// to whether <value/> comes before or after <option/>.
Element canonical(const Element& el) {
  Element out(el.name(), el.ns());
  auto attrs = el.attrs();
  std::sort(attrs.begin(), attrs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (auto& a : attrs) {
    out.set_attr(a.name, a.value);
  }
  for (const auto& node : el.nodes()) {
    if (const auto* text = std::get_if<std::string>(&node)) {
      if (!std::all_of(text->begin(), text->end(), [](char c) { return c == ' ' || c == '\n' || c == '\r'; })) {
        out.add_text(*text);
      }
    } else {
      out.add(canonical(std::get<Element>(node)));
    }
  }
  if (el.name() == "field") {
    std::stable_sort(out.nodes().begin(), out.nodes().end(), [](const auto& a, const auto& b) {
      const auto* x = std::get_if<Element>(&a);
      const auto* y = std::get_if<Element>(&b);
      return x != nullptr && y != nullptr && x->name() < y->name();
    });
  }
  return out;
}

df::Form form(std::string_view text) {
  auto r = df::Form::parse(xml(text));
  if (auto* err = std::get_if<StanzaError>(&r)) {
    FAIL("unexpected error: " << err->text);
  }
  return std::get<df::Form>(r);
}

std::string refused(std::string_view text) {
  auto r = df::Form::parse(xml(text));
  auto* err = std::get_if<StanzaError>(&r);
  REQUIRE(err != nullptr);
  return err->condition;
}

// XEP-0004 Example 2: "Service Returns Bot Creation Form".
constexpr const char* kBotForm = R"(
<x xmlns='jabber:x:data' type='form'>
  <title>Bot Configuration</title>
  <instructions>Fill out this form to configure your new bot!</instructions>
  <field type='hidden' var='FORM_TYPE'><value>jabber:bot</value></field>
  <field type='fixed'><value>Section 1: Bot Info</value></field>
  <field type='text-single' label='The name of your bot' var='botname'/>
  <field type='text-multi' label='Helpful description of your bot' var='description'/>
  <field type='boolean' label='Public bot?' var='public'><required/></field>
  <field type='text-private' label='Password for special access' var='password'/>
  <field type='fixed'><value>Section 2: Features</value></field>
  <field type='list-multi' label='What features will the bot support?' var='features'>
    <option label='Contests'><value>contests</value></option>
    <option label='News'><value>news</value></option>
    <option label='Polls'><value>polls</value></option>
    <option label='Reminders'><value>reminders</value></option>
    <option label='Search'><value>search</value></option>
    <value>news</value>
    <value>search</value>
  </field>
  <field type='fixed'><value>Section 3: Subscriber List</value></field>
  <field type='list-single' label='Maximum number of subscribers' var='maxsubs'>
    <value>20</value>
    <option label='10'><value>10</value></option>
    <option label='20'><value>20</value></option>
    <option label='30'><value>30</value></option>
    <option label='50'><value>50</value></option>
    <option label='100'><value>100</value></option>
    <option label='None'><value>none</value></option>
  </field>
  <field type='fixed'><value>Section 4: Invitations</value></field>
  <field type='jid-multi' label='People to invite' var='invitelist'>
    <desc>Tell all your friends about your new bot!</desc>
  </field>
</x>)";

// XEP-0004 Example 3: "User Submits Bot Creation Form".
constexpr const char* kBotSubmit = R"(
<x xmlns='jabber:x:data' type='submit'>
  <field type='hidden' var='FORM_TYPE'><value>jabber:bot</value></field>
  <field type='text-single' var='botname'><value>The Jabber Google Bot</value></field>
  <field type='text-multi' var='description'>
    <value>This bot enables you to send requests to</value>
    <value>Google and receive the search results right</value>
    <value>in your Jabber client. It&apos; really cool!</value>
    <value>It even supports Google News!</value>
  </field>
  <field type='boolean' var='public'><value>0</value></field>
  <field type='text-private' var='password'><value>v3r0na</value></field>
  <field type='list-multi' var='features'><value>news</value><value>search</value></field>
  <field type='list-single' var='maxsubs'><value>50</value></field>
  <field type='jid-multi' var='invitelist'>
    <value>juliet@capulet.com</value>
    <value>benvolio@montague.net</value>
  </field>
</x>)";

// XEP-0004 Example 8: "Service Returns Search Results" (the search form of Example 7's jabber:iq:search service).
constexpr const char* kSearchResult = R"(
<x type='result' xmlns='jabber:x:data'>
  <field type='hidden' var='FORM_TYPE'><value>jabber:iq:search</value></field>
  <reported>
    <field var='name' label='Name' type='text-single'/>
    <field var='url' label='URL' type='text-single'/>
  </reported>
  <item>
    <field var='name'><value>Comune di Verona - Benvenuti nel sito ufficiale</value></field>
    <field var='url'><value>http://www.comune.verona.it/</value></field>
  </item>
  <item>
    <field var='name'><value>benvenuto!</value></field>
    <field var='url'><value>http://www.hellasverona.it/</value></field>
  </item>
</x>)";

} // namespace

TEST_CASE("XEP-0004 example 2: a form with every field type parses and serialises back unchanged", "[xep0004][spec]") {
  auto f = form(kBotForm);
  CHECK(f.type == df::FormType::Form);
  CHECK(f.title == "Bot Configuration");
  REQUIRE(f.instructions.size() == 1);
  CHECK(f.form_type() == "jabber:bot");
  REQUIRE(f.fields.size() == 12);
  // Fixed fields need no 'var' (XEP-0004 §3.2).
  CHECK(f.fields[1].effective_type() == df::FieldType::Fixed);
  CHECK(f.fields[1].var.empty());
  const df::Field* pub = f.field("public");
  REQUIRE(pub != nullptr);
  CHECK(pub->required);
  CHECK(pub->effective_type() == df::FieldType::Boolean);
  const df::Field* features = f.field("features");
  REQUIRE(features != nullptr);
  CHECK(features->options.size() == 5);
  CHECK(features->options[1] == df::Option{"News", "news"});
  CHECK(features->values == std::vector<std::string>{"news", "search"});
  const df::Field* invite = f.field("invitelist");
  REQUIRE(invite != nullptr);
  CHECK(invite->desc == "Tell all your friends about your new bot!");
  CHECK(canonical(f.to_element()) == canonical(xml(kBotForm)));
}

TEST_CASE("XEP-0004 examples 2-3: the submitted bot form is valid against its definition", "[xep0004][spec]") {
  auto definition = form(kBotForm);
  auto submitted = form(kBotSubmit);
  CHECK(submitted.type == df::FormType::Submit);
  CHECK(submitted.field("description")->values.size() == 4);
  CHECK(submitted.field("description")->values[2] == "in your Jabber client. It' really cool!");
  auto problem = df::validate(definition, submitted);
  INFO((problem ? problem->error.text : ""));
  CHECK_FALSE(problem);
  CHECK(df::parse_boolean(*submitted.field("public")->value()) == false);
  CHECK(canonical(submitted.to_element()) == canonical(xml(kBotSubmit)));
}

TEST_CASE("XEP-0004 example 8: a result with <reported/> and <item/>s", "[xep0004][spec]") {
  auto f = form(kSearchResult);
  CHECK(f.type == df::FormType::Result);
  REQUIRE(f.reported.size() == 2);
  CHECK(f.reported[1].label == "URL");
  REQUIRE(f.items.size() == 2);
  CHECK(f.items[1][1].values == std::vector<std::string>{"http://www.hellasverona.it/"});
  CHECK(canonical(f.to_element()) == canonical(xml(kSearchResult)));
}

TEST_CASE("XEP-0004 §3: what no form may contain is bad-request", "[xep0004]") {
  // The form type is required and one of four.
  CHECK(refused("<x xmlns='jabber:x:data'/>") == "bad-request");
  CHECK(refused("<x xmlns='jabber:x:data' type='draft'/>") == "bad-request");
  // §3.2: a non-fixed field MUST have a 'var' ...
  CHECK(refused("<x xmlns='jabber:x:data' type='form'><field type='text-single'/></x>") == "bad-request");
  CHECK(refused("<x xmlns='jabber:x:data' type='form'><field/></x>") == "bad-request");
  // ... that "uniquely identifies the field in the context of the form".
  CHECK(refused("<x xmlns='jabber:x:data' type='submit'><field var='a'/><field var='a'/></x>") == "bad-request");
  // "all other field types MUST NOT contain more than one <value/> element".
  CHECK(refused("<x xmlns='jabber:x:data' type='form'><field var='a' type='text-single'><value>1</value>"
                "<value>2</value></field></x>") == "bad-request");
  // "If the field is not of type "list-single" or "list-multi", it MUST NOT contain an <option/> element."
  CHECK(refused("<x xmlns='jabber:x:data' type='form'><field var='a' type='text-single'>"
                "<option><value>x</value></option></field></x>") == "bad-request");
  // "The <option/> element MUST contain one and only one <value/> child."
  CHECK(refused("<x xmlns='jabber:x:data' type='form'><field var='a' type='list-single'>"
                "<option label='x'/></field></x>") == "bad-request");
  // "<required/> -- This element, which MUST be empty".
  CHECK(refused("<x xmlns='jabber:x:data' type='form'><field var='a'><required>yes</required></field></x>") ==
        "bad-request");
  // An unknown field type.
  CHECK(refused("<x xmlns='jabber:x:data' type='form'><field var='a' type='text-huge'/></x>") == "bad-request");
  // Multi-valued types and hidden may repeat <value/>; a submitted field without a type is judged later.
  CHECK(form("<x xmlns='jabber:x:data' type='form'><field var='h' type='hidden'><value>1</value><value>2</value>"
             "</field></x>")
            .fields[0]
            .values.size() == 2);
  CHECK(form("<x xmlns='jabber:x:data' type='submit'><field var='a'><value>1</value><value>2</value></field></x>")
            .fields[0]
            .values.size() == 2);
}

TEST_CASE("XEP-0004 validation: required fields, value syntax per type, options, FORM_TYPE and unknown fields",
          "[xep0004]") {
  auto definition = form(kBotForm);
  auto submit = [](std::string fields) {
    return form("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>jabber:bot"
                "</value></field><field var='public'><value>1</value></field>" +
                fields + "</x>");
  };
  auto check = [&](const df::Form& f, df::Problem expected, std::string condition, std::string var) {
    auto problem = df::validate(definition, f);
    REQUIRE(problem);
    CHECK(problem->problem == expected);
    CHECK(problem->error.condition == condition);
    CHECK(problem->var == var);
  };
  CHECK_FALSE(df::validate(definition, submit("")));

  // XEP-0004 §4: data that is not valid → not-acceptable.
  check(form("<x xmlns='jabber:x:data' type='submit'/>"), df::Problem::MissingRequired, "not-acceptable", "public");
  check(form("<x xmlns='jabber:x:data' type='submit'><field var='public'><value>maybe</value></field></x>"),
        df::Problem::InvalidValue, "not-acceptable", "public");
  check(submit("<field var='maxsubs'><value>25</value></field>"), df::Problem::InvalidValue, "not-acceptable",
        "maxsubs");
  check(submit("<field var='features'><value>news</value><value>jokes</value></field>"), df::Problem::InvalidValue,
        "not-acceptable", "features");
  check(submit("<field var='invitelist'><value>juliet@capulet.com</value><value>@bad</value></field>"),
        df::Problem::InvalidValue, "not-acceptable", "invitelist");
  check(submit("<field var='botname'><value>a</value><value>b</value></field>"), df::Problem::TooManyValues,
        "not-acceptable", "botname");
  // The form is a submission, of this FORM_TYPE.
  auto wrong_kind = form("<x xmlns='jabber:x:data' type='result'/>");
  check(wrong_kind, df::Problem::NotSubmit, "bad-request", "");
  check(form("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>jabber:other"
             "</value></field></x>"),
        df::Problem::WrongFormType, "bad-request", "FORM_TYPE");
  // XEP-0004 §3.1: "the form-processing entity MUST ignore any fields that it does not understand" — unless the
  // using protocol refuses them.
  auto extra = submit("<field var='colour'><value>red</value></field>");
  CHECK_FALSE(df::validate(definition, extra));
  df::ValidateOptions strict;
  strict.allow_unknown_fields = false;
  auto problem = df::validate(definition, extra, strict);
  REQUIRE(problem);
  CHECK(problem->problem == df::Problem::UnknownField);
  CHECK(problem->var == "colour");
  // A missing FORM_TYPE passes unless required.
  auto no_type = form("<x xmlns='jabber:x:data' type='submit'><field var='public'><value>true</value></field></x>");
  CHECK_FALSE(df::validate(definition, no_type));
  df::ValidateOptions require;
  require.require_form_type = true;
  CHECK(df::validate(definition, no_type, require)->problem == df::Problem::WrongFormType);
  // Cancel forms carry nothing to check, when the caller accepts them.
  df::ValidateOptions cancel;
  cancel.allow_cancel = true;
  CHECK_FALSE(df::validate(definition, form("<x xmlns='jabber:x:data' type='cancel'/>"), cancel));
}

TEST_CASE("XEP-0122 examples: datatypes, ranges, regexes, open lists and list ranges", "[xep0122][spec]") {
  // XEP-0122 Example 2 ("Validation of a date/time field"), 4 (range), 5 (regex), 7 (open list), 8 (list-range).
  auto definition = form(R"(
<x xmlns='jabber:x:data' type='form'>
  <field var='evt.date' type='text-single' label='Event Date/Time'>
    <validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:dateTime'/>
    <value>2003-10-06T11:22:00-07:00</value>
  </field>
  <field var='evt.rsvp' type='text-single' label='RSVP Date/Time'>
    <validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:dateTime'>
      <range min='2003-10-05T00:00:00-07:00' max='2003-10-24T23:59:59-07:00'/>
    </validate>
  </field>
  <field var='ssn' type='text-single' label='Social Security Number'>
    <desc>This field should be your SSN, including '-' (e.g. 123-12-1234)</desc>
    <validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:string'>
      <regex>([0-9]{3})-([0-9]{2})-([0-9]{4})</regex>
    </validate>
  </field>
  <field var='evt.category' type='list-single' label='Event Category'>
    <validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:string'><open/></validate>
    <option><value>holiday</value></option>
    <option><value>reminder</value></option>
    <option><value>appointment</value></option>
  </field>
  <field var='evt.notify-methods' type='list-multi' label='Notify me by'>
    <validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:string'>
      <basic/>
      <list-range min='1' max='3'/>
    </validate>
    <option><value>sms</value></option>
    <option><value>voice</value></option>
    <option><value>fax</value></option>
    <option><value>email</value></option>
    <option><value>im</value></option>
  </field>
  <field var='age' type='text-single'>
    <validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:integer'>
      <range min='-21' max='21'/>
    </validate>
  </field>
</x>)");
  const df::Field* date = definition.field("evt.date");
  REQUIRE(date->validation);
  CHECK(date->validation->datatype == "xs:dateTime");
  CHECK(date->validation->method == df::Validation::Method::Basic);
  CHECK(definition.field("evt.category")->validation->method == df::Validation::Method::Open);
  CHECK(definition.field("evt.notify-methods")->validation->list_max == 3u);
  CHECK(definition.field("ssn")->validation->method == df::Validation::Method::Regex);

  auto values = [&](std::string var, std::vector<std::string> v) {
    return df::validate_field(*definition.field(var), v);
  };
  CHECK_FALSE(values("evt.date", {"2003-10-06T11:22:00-07:00"}));
  CHECK(values("evt.date", {"next tuesday"})->problem == df::Problem::InvalidValue);
  CHECK_FALSE(values("evt.rsvp", {"2003-10-10T12:00:00Z"}));
  CHECK(values("evt.rsvp", {"2003-11-10T12:00:00Z"})->problem == df::Problem::InvalidValue);
  CHECK_FALSE(values("ssn", {"123-12-1234"}));
  CHECK(values("ssn", {"123121234"})->error.condition == "not-acceptable");
  // <open/>: any value, not only the options.
  CHECK_FALSE(values("evt.category", {"birthday"}));
  // <basic/> list: only the options, and 1 to 3 of them.
  CHECK_FALSE(values("evt.notify-methods", {"sms", "im"}));
  CHECK(values("evt.notify-methods", {"pigeon"})->problem == df::Problem::InvalidValue);
  CHECK(values("evt.notify-methods", {})->problem == df::Problem::TooManyValues);
  CHECK(values("evt.notify-methods", {"sms", "voice", "fax", "im"})->problem == df::Problem::TooManyValues);
  CHECK_FALSE(values("age", {"-21"}));
  CHECK_FALSE(values("age", {"+21"}));
  CHECK(values("age", {"22"})->problem == df::Problem::InvalidValue);
  CHECK(values("age", {"2.5"})->problem == df::Problem::InvalidValue);
  // Round trip: the same <validate/> elements come out (an implicit <basic/> stays implicit).
  auto again = form(cg::api::to_xml(definition.to_element()));
  CHECK(again == definition);
  // XEP-0122 §3.2: at most one validation method.
  CHECK(refused("<x xmlns='jabber:x:data' type='form'><field var='a'><validate "
                "xmlns='http://jabber.org/protocol/xdata-validate'><open/><basic/></validate></field></x>") ==
        "bad-request");
}

TEST_CASE("data forms built in code serialise as XEP-0004 says", "[xep0004]") {
  df::Form f;
  f.type = df::FormType::Result;
  f.title = "Summary";
  f.add(df::Field::hidden("FORM_TYPE", "urn:example:summary"));
  f.add(df::Field::make(df::FieldType::ListSingle, "length", "Length"))
      .with_option("short", "Short")
      .with_option("long", "Long")
      .with_value("short")
      .with_required();
  f.add(df::Field::make(df::FieldType::Boolean, "notify")).with_value("true").with_desc("Notify me");
  CHECK(cg::api::to_xml(f.to_element()) ==
        "<x xmlns='jabber:x:data' type='result'><title>Summary</title>"
        "<field var='FORM_TYPE' type='hidden'><value>urn:example:summary</value></field>"
        "<field var='length' type='list-single' label='Length'><required/><value>short</value>"
        "<option label='Short'><value>short</value></option><option label='Long'><value>long</value></option>"
        "</field>"
        "<field var='notify' type='boolean'><desc>Notify me</desc><value>true</value></field></x>");
  for (auto [text, value] :
       {std::pair{"0", false}, std::pair{"false", false}, std::pair{"1", true}, std::pair{"true", true}}) {
    CHECK(df::parse_boolean(text) == value);
  }
  CHECK_FALSE(df::parse_boolean("yes"));
  CHECK_FALSE(df::parse_boolean("TRUE"));
}
