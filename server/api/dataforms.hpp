// XEP-0004: Data Forms 2.13, with XEP-0122 (Data Forms Validation) 1.0 and XEP-0068 (FORM_TYPE): forms that modules
// send (a search form, an ad-hoc command's next step, a result table) and forms that clients submit.
//
// - parse()/to_element() convert between <x xmlns='jabber:x:data'/> and Form. parse() checks what XEP-0004 itself
//   requires of any form (the form type, field types, 'var' on every field but fixed ones, unique vars, one value in
//   single-valued fields of a declared type, options only in list fields with exactly one value each); a
//   protocol's own rules come with validate().
// - validate() checks a submitted form against the form that defines it: FORM_TYPE, unknown fields, required fields,
//   value syntax per field type (boolean, JIDs, list options) and XEP-0122 datatypes, ranges and regexes.
// Errors are StanzaErrors a handler can return as they are (syntax: bad-request; invalid data: not-acceptable);
// validate() also tells which kind of problem it found, since protocols differ in the condition they want (XEP-0313:
// an unknown field is feature-not-implemented).
#pragma once

#include "server/api/stanza.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cg::api::dataforms {

inline constexpr std::string_view ns = "jabber:x:data";
inline constexpr std::string_view ns_validate = "http://jabber.org/protocol/xdata-validate";

// XEP-0004 §3.1: the form types.
enum class FormType { Form, Submit, Cancel, Result };
// XEP-0004 §3.3: the field types.
enum class FieldType {
  Boolean,
  Fixed,
  Hidden,
  JidMulti,
  JidSingle,
  ListMulti,
  ListSingle,
  TextMulti,
  TextPrivate,
  TextSingle,
};

std::string_view to_string(FormType t);
std::optional<FormType> form_type_from_string(std::string_view s);
std::string_view to_string(FieldType t);
std::optional<FieldType> field_type_from_string(std::string_view s);
// XEP-0004 §3.2: "Fields of type list-multi, jid-multi, text-multi, and hidden MAY contain more than one <value/>
// element; all other field types MUST NOT contain more than one <value/> element."
bool is_multi_valued(FieldType t);
// XEP-0004 §3.3 boolean: "0"/"false" or "1"/"true"; nullopt for anything else.
std::optional<bool> parse_boolean(std::string_view s);

struct Option {
  std::string label;
  std::string value;
  bool operator==(const Option&) const = default;
};

// XEP-0122 <validate/>: the datatype of a field's values and how they are checked.
struct Validation {
  enum class Method { Basic, Open, Range, Regex };
  std::string datatype = "xs:string";
  Method method = Method::Basic;
  std::optional<std::string> min; // Range
  std::optional<std::string> max; // Range
  std::string regex;              // Regex (ECMAScript syntax here; XEP-0122 names XML Schema's)
  // <list-range min='' max=''/>: how many values a multi-valued field may have.
  std::optional<std::size_t> list_min;
  std::optional<std::size_t> list_max;
  bool operator==(const Validation&) const = default;

  static std::variant<Validation, StanzaError> parse(const Element& validate);
  Element to_element() const;
};

struct Field {
  std::string var;
  std::optional<FieldType> type; // absent: text-single (XEP-0004 §3.3); submitted forms often omit it
  std::string label;
  std::string desc;
  bool required = false;
  std::vector<std::string> values;
  std::vector<Option> options;
  std::optional<Validation> validation;
  std::vector<Element> extensions; // other child elements, kept as they are (e.g. XEP-0221 <media/>)
  bool operator==(const Field&) const = default;

  FieldType effective_type() const { return type.value_or(FieldType::TextSingle); }
  // The first value, or nullptr when there is none.
  const std::string* value() const { return values.empty() ? nullptr : &values.front(); }

  static Field make(FieldType type, std::string var, std::string label = {});
  static Field hidden(std::string var, std::string value);
  Field& with_value(std::string value);
  Field& with_values(std::vector<std::string> v);
  Field& with_option(std::string value, std::string label = {});
  Field& with_desc(std::string d);
  Field& with_required(bool r = true);
  Field& with_validation(Validation v);

  static std::variant<Field, StanzaError> parse(const Element& field);
  Element to_element() const;
};

struct Form {
  FormType type = FormType::Form;
  std::string title;
  std::vector<std::string> instructions;
  std::vector<Field> fields;
  // Result forms with several items (XEP-0004 §3.4): the column headers and one field list per row.
  std::vector<Field> reported;
  std::vector<std::vector<Field>> items;
  bool operator==(const Form&) const = default;

  // The field with this var, or nullptr.
  const Field* field(std::string_view var) const;
  Field* field(std::string_view var);
  // The value of the hidden FORM_TYPE field (XEP-0068), or "".
  std::string form_type() const;
  Field& add(Field f);

  // Reads <x xmlns='jabber:x:data'/>.
  static std::variant<Form, StanzaError> parse(const Element& x);
  Element to_element() const;
};

// What validate() found wrong, so that each protocol can pick its condition.
enum class Problem {
  NotSubmit,       // the form is not of type 'submit' (or 'cancel' when allowed)
  WrongFormType,   // FORM_TYPE differs from the definition's (or is missing when required)
  UnknownField,    // a field the definition does not have (only when unknown fields are refused)
  MissingRequired, // a required field is absent or empty
  TooManyValues,   // several values in a single-valued field, or more than <list-range max/> (or fewer than min)
  InvalidValue,    // a value that is not of the field's type or datatype, or not among a closed list's options
};
struct ValidationError {
  Problem problem;
  std::string var; // the field concerned ("" for the form as a whole)
  StanzaError error;
};

struct ValidateOptions {
  // XEP-0004 §3.1, type 'submit': "the form-processing entity MUST ignore any fields that it does not understand"
  // — unless the using protocol says otherwise (XEP-0313 §4.1.5: feature-not-implemented).
  bool allow_unknown_fields = true;
  bool require_form_type = false; // a definition's FORM_TYPE must also be in the submission
  bool allow_cancel = false;      // accept a 'cancel' form (it carries no fields to check)
};

// Checks a submitted form against its definition (the form of type 'form' a module offers). The definition's field
// types govern (a submitted field's 'type' is not trusted). Conditions: NotSubmit, WrongFormType and UnknownField
// get bad-request; MissingRequired, TooManyValues and InvalidValue get not-acceptable (XEP-0004 §4: "If the
// form-processing entity determines that the data provided is not valid, it SHOULD return a "Not Acceptable"
// error"). Callers may map `problem` to a protocol's own condition.
std::optional<ValidationError> validate(const Form& definition, const Form& submitted,
                                        const ValidateOptions& options = {});

// Checks the values of one field against its definition (type, options, XEP-0122 validation); what validate() does
// per field.
std::optional<ValidationError> validate_field(const Field& definition, const std::vector<std::string>& values);

} // namespace cg::api::dataforms
