// example_toml(): valid TOML, loads back to exactly the defaults, deterministic, documented.
#include "tests/unit/config/helpers.hpp"

#include <cmath>
#include <limits>

using namespace cg;
using namespace cg::config;
using test::expect_config;

namespace {

const char* const header = "# ChatGroup configuration — every option with its default. Generated from the option "
                           "declarations by `chatgroupd --print-example-config`; do not edit by hand.\n";

// The core's sections plus a module section with every option type, and defaults that need escaping.
Schema full_schema() {
  Schema schema;
  for (auto& section : core_sections(test::default_modules()))
    schema.add(std::move(section));
  schema.add({"modules.fake",
              "A fake module with \"every\" option type\nand a doc that has a newline.",
              {
                  api::opt_bool("on", true, "A boolean"),
                  api::opt_bool("off", false, "Another boolean"),
                  api::opt_int("count", -42, -100, 100, "An integer"),
                  api::opt_int("big", 9007199254740993, 0, 4611686018427387904, "A large integer"),
                  api::opt_float("ratio", 0.1, 0.0, 1.0, "A float that has no exact binary form"),
                  api::opt_float("whole", 5.0, -10.0, 10.0, "A whole float"),
                  api::opt_float("huge", 1e300, 0.0, 1.7e308, "A huge float"),
                  api::opt_float("tiny", -2.5e-9, -1.0, 1.0, "A tiny float"),
                  api::opt_float("unbounded", std::numeric_limits<double>::infinity(),
                                 -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(),
                                 "Infinity is a TOML float too"),
                  api::opt_string("quoted", "say \"hi\" \\ C:\\path\\", "Quotes and backslashes"),
                  api::opt_string("unicode", "caf\u00e9 \u2603 \U0001F600 \u65e5\u672c", "Non-ASCII text"),
                  api::opt_string("controls", std::string("tab\tnl\ncr\rbs\bff\fnul") + '\0' + "\x01\x1f\x7f",
                                  "Control characters, NUL included"),
                  api::opt_string("empty", "", "An empty string"),
                  api::opt_string("choice", "b'c", "A choice with a quote", {"a", "b'c"}),
                  api::opt_list("list", {"x\"y", "a\\b", "\u00fc", ""}, "A list with \"escapes\""),
                  api::opt_list("empty_list", {}, "An empty list"),
                  api::opt_list("chosen", {"one"}, "A list with choices", {"one", "two"}),
              }});
  schema.add({"modules.nothing", "A module without options.", {}});
  return schema;
}

} // namespace

TEST_CASE("example_toml starts with the header and loads back to exactly the defaults", "[config][example]") {
  for (const Schema& schema : {test::schema_with_ping(), full_schema()}) {
    const std::string text = example_toml(schema);
    INFO(text);
    CHECK(text.rfind(header, 0) == 0);
    Config c = expect_config(load_string(text, "example.toml", schema));
    std::size_t checked = 0;
    for (const auto& section : schema.sections()) {
      for (const auto& spec : section.options) {
        INFO(section.name << "." << spec.key);
        const auto& value = c.get(section.name, spec.key);
        CHECK(value == spec.default_value);
        if (const auto* d = std::get_if<double>(&value)) // == above; also the exact bits (sign of zero, etc.)
          CHECK(std::signbit(*d) == std::signbit(std::get<double>(spec.default_value)));
        CHECK(c.is_set(section.name, spec.key)); // every option is written active, not commented out
        ++checked;
      }
    }
    CHECK(checked >= 38); // the loop ran over every option (the core has 36)
  }
}

TEST_CASE("example_toml writes the escaped strings as TOML text", "[config][example]") {
  const std::string text = example_toml(full_schema());
  CHECK(text.find("quoted = \"say \\\"hi\\\" \\\\ C:\\\\path\\\\\"\n") != std::string::npos);
  CHECK(text.find("controls = \"tab\\tnl\\ncr\\rbs\\bff\\fnul\\u0000\\u0001\\u001F\\u007F\"\n") != std::string::npos);
  CHECK(text.find("unicode = \"caf\u00e9 \u2603 \U0001F600 \u65e5\u672c\"\n") != std::string::npos);
  CHECK(text.find("list = [\"x\\\"y\", \"a\\\\b\", \"\u00fc\", \"\"]\n") != std::string::npos);
  CHECK(text.find("empty_list = []\n") != std::string::npos);
  CHECK(text.find("ratio = 0.1\n") != std::string::npos);
  CHECK(text.find("whole = 5.0\n") != std::string::npos);
  CHECK(text.find("count = -42\n") != std::string::npos);
  CHECK(text.find("on = true\n") != std::string::npos);
  CHECK(text.find("off = false\n") != std::string::npos);
  CHECK(text.find("unbounded = inf\n") != std::string::npos);
  // The section doc's newline does not break out of the comment.
  CHECK(text.find("\n# A fake module with \"every\" option type and a doc that has a newline.\n[modules.fake]\n") !=
        std::string::npos);
  CHECK(text.find("\n# A module without options.\n[modules.nothing]\n") != std::string::npos);
}

TEST_CASE("example_toml documents each option: doc, type, bounds, choices", "[config][example]") {
  const std::string text = example_toml(test::schema_with_ping());
  CHECK(text.find("\n\n# Client connections (RFC 6120).\n[c2s]\n# Addresses to listen on; use [\"0.0.0.0\", \"::\"] to "
                  "accept connections from other machines (array of strings)\naddresses = [\"127.0.0.1\"]\n"
                  "# STARTTLS port; 0 = off (integer, 0..65535)\nport = 5222\n") != std::string::npos);
  CHECK(text.find(
            "\n# Lowest level written (string; one of: trace, debug, info, warn, error, off)\nlevel = \"info\"\n") !=
        std::string::npos);
  CHECK(text.find("\n# Refuse to authenticate clients that have not negotiated TLS (boolean)\n"
                  "require_encryption = true\n") != std::string::npos);
  CHECK(text.find("\n# A fraction (float, 0.0..1.0)\nratio = 0.5\n") != std::string::npos);
  CHECK(text.find("\n# Modules to load on every host (array of strings)\nenabled = [\"ping\", \"disco\"]\n") !=
        std::string::npos);
  CHECK(text.find("mechanisms = [\"SCRAM-SHA-512-PLUS\", \"SCRAM-SHA-256-PLUS\", \"SCRAM-SHA-1-PLUS\", "
                  "\"SCRAM-SHA-512\", \"SCRAM-SHA-256\", \"SCRAM-SHA-1\", \"PLAIN\"]\n") != std::string::npos);
  CHECK(text.find("(array of strings; one of: SCRAM-SHA-512-PLUS, SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS, "
                  "SCRAM-SHA-512, SCRAM-SHA-256, SCRAM-SHA-1, PLAIN)\n") != std::string::npos);
}

TEST_CASE("example_toml is deterministic and in schema order", "[config][example]") {
  const auto schema = full_schema();
  const std::string text = example_toml(schema);
  CHECK(example_toml(full_schema()) == text);
  std::size_t last = 0;
  for (const auto& section : schema.sections()) {
    INFO(section.name);
    auto at = text.find("\n[" + section.name + "]\n");
    REQUIRE(at != std::string::npos);
    CHECK(at > last);
    last = at;
    for (const auto& spec : section.options) { // options in declaration order, inside their section
      auto key_at = text.find("\n" + spec.key + " = ", last);
      INFO(spec.key);
      REQUIRE(key_at != std::string::npos);
      CHECK(key_at > last);
      last = key_at;
    }
  }
  // Each option is one comment line and one value line after the section's blank line, comment and header.
  std::size_t lines = 0;
  for (char ch : text)
    lines += ch == '\n';
  std::size_t expected = 1;
  for (const auto& section : schema.sections())
    expected += 3 + 2 * section.options.size();
  CHECK(lines == expected);
}
