// XEP-0004: Data Forms 2.13, XEP-0122: Data Forms Validation 1.0, XEP-0068: FORM_TYPE.
#include "server/api/dataforms.hpp"

#include "server/api/datetime.hpp"
#include "server/api/jid.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <regex>
#include <set>
#include <utility>

namespace cg::api::dataforms {

namespace {

constexpr std::array<std::pair<FormType, std::string_view>, 4> kFormTypes{{
    {FormType::Form, "form"},
    {FormType::Submit, "submit"},
    {FormType::Cancel, "cancel"},
    {FormType::Result, "result"},
}};

constexpr std::array<std::pair<FieldType, std::string_view>, 10> kFieldTypes{{
    {FieldType::Boolean, "boolean"},
    {FieldType::Fixed, "fixed"},
    {FieldType::Hidden, "hidden"},
    {FieldType::JidMulti, "jid-multi"},
    {FieldType::JidSingle, "jid-single"},
    {FieldType::ListMulti, "list-multi"},
    {FieldType::ListSingle, "list-single"},
    {FieldType::TextMulti, "text-multi"},
    {FieldType::TextPrivate, "text-private"},
    {FieldType::TextSingle, "text-single"},
}};

StanzaError bad(std::string text) {
  return StanzaError::make("bad-request", std::move(text));
}

ValidationError problem(Problem p, std::string var, std::string condition, std::string text) {
  return ValidationError{p, std::move(var), StanzaError::make(std::move(condition), std::move(text))};
}

bool is_list(FieldType t) {
  return t == FieldType::ListSingle || t == FieldType::ListMulti;
}

std::string quoted(std::string_view var) {
  return "'" + std::string(var) + "'";
}

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

std::optional<std::size_t> parse_size(std::string_view s) {
  s = trim(s);
  std::size_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

// XML Schema's integer lexical space: an optional sign and digits.
std::optional<long long> parse_integer(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') {
    s.remove_prefix(1);
  }
  long long v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

std::optional<double> parse_decimal(std::string_view s) {
  std::string text(trim(s));
  if (text.empty()) {
    return std::nullopt;
  }
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || std::isnan(v)) {
    return std::nullopt;
  }
  return v;
}

// Integer datatypes of XML Schema with their bounds (XEP-0122 §4 lists the datatypes a form may name).
struct IntegerType {
  std::string_view name;
  long long min;
  long long max;
};
constexpr long long kMax = std::numeric_limits<long long>::max();
constexpr long long kMin = std::numeric_limits<long long>::min();
constexpr std::array<IntegerType, 12> kIntegerTypes{{
    {"xs:integer", kMin, kMax},
    {"xs:long", kMin, kMax},
    {"xs:int", -2147483648LL, 2147483647LL},
    {"xs:short", -32768, 32767},
    {"xs:byte", -128, 127},
    {"xs:nonNegativeInteger", 0, kMax},
    {"xs:positiveInteger", 1, kMax},
    {"xs:nonPositiveInteger", kMin, 0},
    {"xs:negativeInteger", kMin, -1},
    {"xs:unsignedLong", 0, kMax},
    {"xs:unsignedInt", 0, 4294967295LL},
    {"xs:unsignedShort", 0, 65535},
}};

const IntegerType* integer_type(std::string_view datatype) {
  for (const auto& t : kIntegerTypes) {
    if (t.name == datatype) {
      return &t;
    }
  }
  if (datatype == "xs:unsignedByte") {
    static constexpr IntegerType unsigned_byte{"xs:unsignedByte", 0, 255};
    return &unsigned_byte;
  }
  return nullptr;
}

// A value as a number for range comparisons, when the datatype is numeric or a date-time; nullopt otherwise.
std::optional<double> ordinal(std::string_view datatype, std::string_view value) {
  if (integer_type(datatype) != nullptr) {
    if (auto v = parse_integer(value)) {
      return static_cast<double>(*v);
    }
    return std::nullopt;
  }
  if (datatype == "xs:decimal" || datatype == "xs:double" || datatype == "xs:float") {
    return parse_decimal(value);
  }
  if (datatype == "xs:dateTime") {
    if (auto v = parse_datetime(trim(value))) {
      return static_cast<double>(*v);
    }
  }
  return std::nullopt;
}

// Whether `value` is in the lexical space of `datatype` (the XEP-0122 datatypes this server can check; any other
// datatype accepts every value).
bool valid_for_datatype(std::string_view datatype, std::string_view value) {
  if (const IntegerType* t = integer_type(datatype)) {
    auto v = parse_integer(value);
    return v && *v >= t->min && *v <= t->max;
  }
  if (datatype == "xs:decimal" || datatype == "xs:double" || datatype == "xs:float") {
    return parse_decimal(value).has_value();
  }
  if (datatype == "xs:boolean") {
    return parse_boolean(trim(value)).has_value();
  }
  if (datatype == "xs:dateTime") {
    return parse_datetime(trim(value)).has_value();
  }
  if (datatype == "xs:date") {
    // A date is the date part of a DateTime (XEP-0082 §3.1: CCYY-MM-DD).
    return parse_datetime(std::string(trim(value)) + "T00:00:00Z").has_value();
  }
  return true;
}

// A <value/> child's text (an empty <value/> is the empty string).
std::variant<std::vector<std::string>, StanzaError> read_values(const Element& el, std::string_view what) {
  std::vector<std::string> values;
  for (const Element* v : el.children("value", ns)) {
    if (v->element_count() != 0) {
      return bad(std::string(what) + ": a <value/> has child elements");
    }
    values.push_back(v->text());
  }
  return values;
}

std::variant<std::vector<Field>, StanzaError> read_fields(const Element& parent, std::string_view what) {
  std::vector<Field> fields;
  std::set<std::string> vars;
  for (const Element* f : parent.children("field", ns)) {
    auto parsed = Field::parse(*f);
    if (auto* err = std::get_if<StanzaError>(&parsed)) {
      return std::move(*err);
    }
    Field field = std::move(std::get<Field>(parsed));
    // XEP-0004 §3.2: a 'var' "that uniquely identifies the field in the context of the form".
    if (!field.var.empty() && !vars.insert(field.var).second) {
      return bad(std::string(what) + ": two fields named " + quoted(field.var));
    }
    fields.push_back(std::move(field));
  }
  return fields;
}

void write_fields(Element& parent, const std::vector<Field>& fields) {
  for (const auto& f : fields) {
    parent.add(f.to_element());
  }
}

} // namespace

std::string_view to_string(FormType t) {
  for (const auto& [type, name] : kFormTypes) {
    if (type == t) {
      return name;
    }
  }
  return "form";
}

std::optional<FormType> form_type_from_string(std::string_view s) {
  for (const auto& [type, name] : kFormTypes) {
    if (name == s) {
      return type;
    }
  }
  return std::nullopt;
}

std::string_view to_string(FieldType t) {
  for (const auto& [type, name] : kFieldTypes) {
    if (type == t) {
      return name;
    }
  }
  return "text-single";
}

std::optional<FieldType> field_type_from_string(std::string_view s) {
  for (const auto& [type, name] : kFieldTypes) {
    if (name == s) {
      return type;
    }
  }
  return std::nullopt;
}

bool is_multi_valued(FieldType t) {
  return t == FieldType::ListMulti || t == FieldType::JidMulti || t == FieldType::TextMulti || t == FieldType::Hidden;
}

std::optional<bool> parse_boolean(std::string_view s) {
  // XEP-0004 §3.3 (boolean): "the allowable lexical representations for the xs:boolean datatype are the strings
  // "0" and "false" for the concept 'false' and the strings "1" and "true" for the concept 'true'".
  if (s == "1" || s == "true") {
    return true;
  }
  if (s == "0" || s == "false") {
    return false;
  }
  return std::nullopt;
}

// --- XEP-0122 ------------------------------------------------------------------------------------------------------

std::variant<Validation, StanzaError> Validation::parse(const Element& validate) {
  if (!validate.is("validate", ns_validate)) {
    return bad("not a XEP-0122 <validate/>");
  }
  Validation v;
  if (const std::string* dt = validate.find_attr("datatype")) {
    // XEP-0122 §3.1: "the datatype ... MUST be a datatype defined in XML Schema or registered with the XMPP
    // Registrar" — a prefixed name such as xs:integer or x:date.
    if (dt->empty() || dt->find(':') == std::string::npos) {
      return bad("<validate/>: the datatype '" + *dt + "' is not a prefixed datatype name");
    }
    v.datatype = *dt;
  }
  int methods = 0;
  for (const Element* child : validate.children()) {
    if (child->ns() != ns_validate) {
      continue;
    }
    const std::string& name = child->name();
    if (name == "basic") {
      v.method = Method::Basic;
      ++methods;
    } else if (name == "open") {
      v.method = Method::Open;
      ++methods;
    } else if (name == "range") {
      v.method = Method::Range;
      ++methods;
      if (const std::string* min = child->find_attr("min")) {
        v.min = *min;
      }
      if (const std::string* max = child->find_attr("max")) {
        v.max = *max;
      }
    } else if (name == "regex") {
      v.method = Method::Regex;
      v.regex = child->text();
      ++methods;
    } else if (name == "list-range") {
      if (const std::string* min = child->find_attr("min")) {
        v.list_min = parse_size(*min);
        if (!v.list_min) {
          return bad("<list-range/>: 'min' is not a non-negative integer");
        }
      }
      if (const std::string* max = child->find_attr("max")) {
        v.list_max = parse_size(*max);
        if (!v.list_max) {
          return bad("<list-range/>: 'max' is not a non-negative integer");
        }
      }
    }
  }
  // XEP-0122 §3.2: "the <validate/> element MUST contain at most one validation method".
  if (methods > 1) {
    return bad("<validate/> names more than one validation method");
  }
  return v;
}

Element Validation::to_element() const {
  Element el("validate", std::string(ns_validate));
  el.set_attr("datatype", datatype);
  switch (method) {
  case Method::Basic:
    break; // XEP-0122 §3.2: "If no validation method is specified, the default is basic"
  case Method::Open:
    el.add_child("open");
    break;
  case Method::Range: {
    Element& r = el.add_child("range");
    if (min) {
      r.set_attr("min", *min);
    }
    if (max) {
      r.set_attr("max", *max);
    }
    break;
  }
  case Method::Regex:
    el.add_text_child("regex", regex);
    break;
  }
  if (list_min || list_max) {
    Element& lr = el.add_child("list-range");
    if (list_min) {
      lr.set_attr("min", std::to_string(*list_min));
    }
    if (list_max) {
      lr.set_attr("max", std::to_string(*list_max));
    }
  }
  return el;
}

// --- fields --------------------------------------------------------------------------------------------------------

Field Field::make(FieldType type, std::string var, std::string label) {
  Field f;
  f.type = type;
  f.var = std::move(var);
  f.label = std::move(label);
  return f;
}

Field Field::hidden(std::string var, std::string value) {
  Field f = make(FieldType::Hidden, std::move(var));
  f.values.push_back(std::move(value));
  return f;
}

Field& Field::with_value(std::string value) {
  values.push_back(std::move(value));
  return *this;
}

Field& Field::with_values(std::vector<std::string> v) {
  for (auto& value : v) {
    values.push_back(std::move(value));
  }
  return *this;
}

Field& Field::with_option(std::string value, std::string label) {
  options.push_back(Option{std::move(label), std::move(value)});
  return *this;
}

Field& Field::with_desc(std::string d) {
  desc = std::move(d);
  return *this;
}

Field& Field::with_required(bool r) {
  required = r;
  return *this;
}

Field& Field::with_validation(Validation v) {
  validation = std::move(v);
  return *this;
}

std::variant<Field, StanzaError> Field::parse(const Element& el) {
  if (!el.is("field", ns)) {
    return bad("not a data form <field/>");
  }
  Field f;
  f.var = std::string(el.attr("var"));
  f.label = std::string(el.attr("label"));
  if (const std::string* t = el.find_attr("type")) {
    f.type = field_type_from_string(*t);
    if (!f.type) {
      return bad("field " + quoted(f.var) + ": unknown type '" + *t + "'");
    }
  }
  // XEP-0004 §3.2: "If the <field/> element type is anything other than "fixed" ..., it MUST possess a 'var'
  // attribute".
  if (f.var.empty() && f.effective_type() != FieldType::Fixed) {
    return bad("a field of type '" + std::string(to_string(f.effective_type())) + "' without a 'var'");
  }
  const std::string what = "field " + quoted(f.var);
  for (const Element* child : el.children()) {
    if (child->ns() != ns) {
      if (child->is("validate", ns_validate)) {
        auto v = Validation::parse(*child);
        if (auto* err = std::get_if<StanzaError>(&v)) {
          err->text = what + ": " + err->text;
          return std::move(*err);
        }
        f.validation = std::move(std::get<Validation>(v));
      } else {
        f.extensions.push_back(*child);
      }
      continue;
    }
    const std::string& name = child->name();
    if (name == "desc") {
      f.desc = child->text();
    } else if (name == "required") {
      // XEP-0004 §3.2: "<required/> -- This element, which MUST be empty".
      if (!child->nodes().empty()) {
        return bad(what + ": <required/> is not empty");
      }
      f.required = true;
    } else if (name == "option") {
      // "If the field is not of type "list-single" or "list-multi", it MUST NOT contain an <option/> element."
      if (f.type && !is_list(*f.type)) {
        return bad(what + ": <option/> in a field of type '" + std::string(to_string(*f.type)) + "'");
      }
      auto values = read_values(*child, what);
      if (auto* err = std::get_if<StanzaError>(&values)) {
        return std::move(*err);
      }
      auto& v = std::get<std::vector<std::string>>(values);
      // "The <option/> element MUST contain one and only one <value/> child."
      if (v.size() != 1) {
        return bad(what + ": an <option/> without exactly one <value/>");
      }
      Option option{std::string(child->attr("label")), std::move(v.front())};
      // §3.3 note **: "The <option/> elements in list-multi and list-single fields MUST be unique".
      if (std::find(f.options.begin(), f.options.end(), option) != f.options.end()) {
        return bad(what + ": the option '" + option.value + "' appears twice");
      }
      f.options.push_back(std::move(option));
    } else if (name == "value") {
      if (child->element_count() != 0) {
        return bad(what + ": a <value/> has child elements");
      }
      f.values.push_back(child->text());
    }
  }
  // "Fields of type list-multi, jid-multi, text-multi, and hidden MAY contain more than one <value/> element; all
  // other field types MUST NOT contain more than one <value/> element." (Judged only when the type is declared: a
  // submitted field often omits it, and then its definition's type decides; see validate().)
  if (f.type && !is_multi_valued(*f.type) && f.values.size() > 1) {
    return bad(what + ": several values in a field of type '" + std::string(to_string(*f.type)) + "'");
  }
  return f;
}

Element Field::to_element() const {
  Element el("field", std::string(ns));
  if (!var.empty()) {
    el.set_attr("var", var);
  }
  if (type) {
    el.set_attr("type", std::string(to_string(*type)));
  }
  if (!label.empty()) {
    el.set_attr("label", label);
  }
  if (!desc.empty()) {
    el.add_text_child("desc", desc);
  }
  if (required) {
    el.add_child("required");
  }
  for (const auto& v : values) {
    el.add_text_child("value", v);
  }
  for (const auto& o : options) {
    Element& option = el.add_child("option");
    if (!o.label.empty()) {
      option.set_attr("label", o.label);
    }
    option.add_text_child("value", o.value);
  }
  if (validation) {
    el.add(validation->to_element());
  }
  for (const auto& ext : extensions) {
    el.add(ext);
  }
  return el;
}

// --- forms ---------------------------------------------------------------------------------------------------------

const Field* Form::field(std::string_view var) const {
  for (const auto& f : fields) {
    if (f.var == var) {
      return &f;
    }
  }
  return nullptr;
}

Field* Form::field(std::string_view var) {
  for (auto& f : fields) {
    if (f.var == var) {
      return &f;
    }
  }
  return nullptr;
}

std::string Form::form_type() const {
  const Field* f = field("FORM_TYPE");
  // XEP-0068 §2: "If the FORM_TYPE field is not hidden, it MUST be ignored as a context indicator."
  if (f == nullptr || f->effective_type() != FieldType::Hidden || f->values.empty()) {
    return "";
  }
  return f->values.front();
}

Field& Form::add(Field f) {
  fields.push_back(std::move(f));
  return fields.back();
}

std::variant<Form, StanzaError> Form::parse(const Element& x) {
  if (!x.is("x", ns)) {
    return bad("not a data form (<x xmlns='jabber:x:data'/>)");
  }
  Form form;
  // XEP-0004 §3.1: the form's context is given by "the 'type' attribute on the form's root <x/> element" (the
  // schema makes it required).
  auto type = form_type_from_string(x.attr("type"));
  if (!type) {
    return bad("the data form's type '" + std::string(x.attr("type")) + "' is not form, submit, cancel or result");
  }
  form.type = *type;
  form.title = x.child_text("title", ns);
  for (const Element* i : x.children("instructions", ns)) {
    form.instructions.push_back(i->text());
  }
  auto fields = read_fields(x, "form");
  if (auto* err = std::get_if<StanzaError>(&fields)) {
    return std::move(*err);
  }
  form.fields = std::move(std::get<std::vector<Field>>(fields));
  auto reported = x.children("reported", ns);
  // XEP-0004 §3.4: "One and only <reported/> element" in a form with several items.
  if (reported.size() > 1) {
    return bad("more than one <reported/>");
  }
  if (!reported.empty()) {
    auto r = read_fields(*reported.front(), "<reported/>");
    if (auto* err = std::get_if<StanzaError>(&r)) {
      return std::move(*err);
    }
    form.reported = std::move(std::get<std::vector<Field>>(r));
  }
  for (const Element* item : x.children("item", ns)) {
    auto r = read_fields(*item, "<item/>");
    if (auto* err = std::get_if<StanzaError>(&r)) {
      return std::move(*err);
    }
    form.items.push_back(std::move(std::get<std::vector<Field>>(r)));
  }
  return form;
}

Element Form::to_element() const {
  Element x("x", std::string(ns));
  x.set_attr("type", std::string(to_string(type)));
  if (!title.empty()) {
    x.add_text_child("title", title);
  }
  for (const auto& i : instructions) {
    x.add_text_child("instructions", i);
  }
  write_fields(x, fields);
  if (!reported.empty()) {
    write_fields(x.add_child("reported"), reported);
  }
  for (const auto& item : items) {
    write_fields(x.add_child("item"), item);
  }
  return x;
}

// --- validation ----------------------------------------------------------------------------------------------------

std::optional<ValidationError> validate_field(const Field& def, const std::vector<std::string>& values) {
  const FieldType type = def.effective_type();
  const std::string what = "field " + quoted(def.var);
  auto invalid = [&](std::string text) { return problem(Problem::InvalidValue, def.var, "not-acceptable", text); };
  if (!is_multi_valued(type) && values.size() > 1) {
    return problem(Problem::TooManyValues, def.var, "not-acceptable", what + " takes one value");
  }
  if (def.validation) {
    const auto& v = *def.validation;
    if (v.list_min && values.size() < *v.list_min) {
      return problem(Problem::TooManyValues, def.var, "not-acceptable",
                     what + " needs at least " + std::to_string(*v.list_min) + " values");
    }
    if (v.list_max && values.size() > *v.list_max) {
      return problem(Problem::TooManyValues, def.var, "not-acceptable",
                     what + " takes at most " + std::to_string(*v.list_max) + " values");
    }
  }
  const bool open = def.validation && def.validation->method == Validation::Method::Open;
  for (const auto& value : values) {
    switch (type) {
    case FieldType::Boolean:
      if (!parse_boolean(trim(value))) {
        return invalid(what + ": '" + value + "' is not a boolean (0, 1, false, true)");
      }
      break;
    case FieldType::JidSingle:
    case FieldType::JidMulti:
      // XEP-0004 §3.3 note *: "Data provided for fields of type "jid-single" or "jid-multi" MUST contain one or
      // more valid Jabber IDs".
      if (!Jid::parse(trim(value))) {
        return invalid(what + ": '" + value + "' is not a valid JID");
      }
      break;
    case FieldType::ListSingle:
    case FieldType::ListMulti:
      // "A form-submitting entity chooses one or more items from among the options presented by the
      // form-processing entity and MUST NOT insert new options" — unless XEP-0122 <open/> allows any value.
      if (!open &&
          std::none_of(def.options.begin(), def.options.end(), [&](const Option& o) { return o.value == value; })) {
        return invalid(what + ": '" + value + "' is not one of the options");
      }
      break;
    default:
      break;
    }
    if (def.validation) {
      const auto& v = *def.validation;
      if (!valid_for_datatype(v.datatype, value)) {
        return invalid(what + ": '" + value + "' is not of type " + v.datatype);
      }
      if (v.method == Validation::Method::Range) {
        auto x = ordinal(v.datatype, value);
        auto lo = v.min ? ordinal(v.datatype, *v.min) : std::nullopt;
        auto hi = v.max ? ordinal(v.datatype, *v.max) : std::nullopt;
        bool below = false;
        bool above = false;
        if (x) {
          below = lo && *x < *lo;
          above = hi && *x > *hi;
        } else {
          // Non-numeric datatypes compare as strings.
          below = v.min && value < *v.min;
          above = v.max && value > *v.max;
        }
        if (below || above) {
          return invalid(what + ": '" + value + "' is out of range");
        }
      } else if (v.method == Validation::Method::Regex) {
        bool matches = false;
        try {
          matches = std::regex_match(value, std::regex(v.regex, std::regex::ECMAScript));
        } catch (const std::regex_error&) {
          matches = true; // a pattern this server cannot read constrains nothing it can check
        }
        if (!matches) {
          return invalid(what + ": '" + value + "' does not match " + v.regex);
        }
      }
    }
  }
  return std::nullopt;
}

std::optional<ValidationError> validate(const Form& definition, const Form& submitted, const ValidateOptions& options) {
  if (submitted.type == FormType::Cancel && options.allow_cancel) {
    return std::nullopt;
  }
  if (submitted.type != FormType::Submit) {
    return problem(Problem::NotSubmit, "", "bad-request",
                   "the data form is of type '" + std::string(to_string(submitted.type)) + "', not 'submit'");
  }
  const std::string expected = definition.form_type();
  if (!expected.empty()) {
    const Field* ft = submitted.field("FORM_TYPE");
    if (ft == nullptr || ft->values.empty()) {
      if (options.require_form_type) {
        return problem(Problem::WrongFormType, "FORM_TYPE", "bad-request", "FORM_TYPE is missing");
      }
    } else if (ft->values.size() != 1 || ft->values.front() != expected) {
      return problem(Problem::WrongFormType, "FORM_TYPE", "bad-request",
                     "FORM_TYPE is '" + ft->values.front() + "', not '" + expected + "'");
    }
  }
  for (const auto& f : submitted.fields) {
    if (f.var == "FORM_TYPE") {
      continue;
    }
    const Field* def = definition.field(f.var);
    if (def == nullptr || def->effective_type() == FieldType::Fixed) {
      if (options.allow_unknown_fields) {
        continue;
      }
      return problem(Problem::UnknownField, f.var, "bad-request", "unknown field " + quoted(f.var));
    }
    if (auto err = validate_field(*def, f.values)) {
      return err;
    }
  }
  for (const auto& def : definition.fields) {
    if (!def.required) {
      continue;
    }
    const Field* f = submitted.field(def.var);
    const bool empty = f == nullptr || std::all_of(f->values.begin(), f->values.end(),
                                                   [](const std::string& v) { return trim(v).empty(); });
    if (empty) {
      return problem(Problem::MissingRequired, def.var, "not-acceptable",
                     "the required field " + quoted(def.var) + " is missing");
    }
  }
  return std::nullopt;
}

} // namespace cg::api::dataforms
