// The option declarations (server/api/options.hpp), Schema, Config's accessors and ConfigError::str().
#include "tests/unit/config/helpers.hpp"

#include <stdexcept>

using namespace cg;
using namespace cg::config;

TEST_CASE("opt_* build typed specs", "[config][options]") {
  auto b = api::opt_bool("require_encryption", true, "doc b");
  CHECK(b.key == "require_encryption");
  CHECK(b.type == api::OptionType::Bool);
  CHECK(std::get<bool>(b.default_value) == true);
  CHECK(b.doc == "doc b");
  CHECK_FALSE(b.min);
  CHECK_FALSE(b.max);
  CHECK(b.choices.empty());

  auto i = api::opt_int("port", 5222, 0, 65535, "doc i");
  CHECK(i.key == "port");
  CHECK(i.type == api::OptionType::Int);
  CHECK(std::get<std::int64_t>(i.default_value) == 5222);
  REQUIRE(i.min);
  REQUIRE(i.max);
  CHECK(*i.min == 0);
  CHECK(*i.max == 65535);
  CHECK(i.doc == "doc i");

  auto f = api::opt_float("ratio", 0.25, -1.5, 2.5, "doc f");
  CHECK(f.type == api::OptionType::Float);
  CHECK(std::get<double>(f.default_value) == 0.25);
  REQUIRE(f.min);
  REQUIRE(f.max);
  CHECK(*f.min == -1.5);
  CHECK(*f.max == 2.5);
  CHECK(f.doc == "doc f");

  auto s = api::opt_string("level", "info", "doc s", {"info", "debug"});
  CHECK(s.key == "level");
  CHECK(s.type == api::OptionType::String);
  CHECK(std::get<std::string>(s.default_value) == "info");
  CHECK(s.choices == std::vector<std::string>{"info", "debug"});
  CHECK(s.doc == "doc s");
  CHECK(api::opt_string("file", "", "d").choices.empty());

  auto l = api::opt_list("hosts", {"a", "b"}, "doc l", {"a", "b", "c"});
  CHECK(l.type == api::OptionType::StringList);
  CHECK(std::get<std::vector<std::string>>(l.default_value) == std::vector<std::string>{"a", "b"});
  CHECK(l.choices == std::vector<std::string>{"a", "b", "c"});
  CHECK(l.doc == "doc l");
  CHECK(api::opt_list("x", {}, "d").choices.empty());
}

TEST_CASE("type_name names each option type", "[config][options]") {
  CHECK(api::type_name(api::OptionType::Bool) == "boolean");
  CHECK(api::type_name(api::OptionType::Int) == "integer");
  CHECK(api::type_name(api::OptionType::Float) == "float");
  CHECK(api::type_name(api::OptionType::String) == "string");
  CHECK(api::type_name(api::OptionType::StringList) == "array of strings");
}

TEST_CASE("Schema keeps sections in order and finds them by exact name", "[config][schema]") {
  Schema schema;
  schema.add({"b", "B", {api::opt_bool("x", false, "")}});
  schema.add({"a", "A", {}});
  REQUIRE(schema.sections().size() == 2);
  CHECK(schema.sections()[0].name == "b");
  CHECK(schema.sections()[1].name == "a");
  REQUIRE(schema.find("a") != nullptr);
  CHECK(schema.find("a")->doc == "A");
  CHECK(schema.find("b")->options.size() == 1);
  CHECK(schema.find("B") == nullptr);
  CHECK(schema.find("c") == nullptr);
}

TEST_CASE("Schema rejects declarations that could never load back", "[config][schema]") {
  Schema schema;
  schema.add({"s", "", {api::opt_int("n", 1, 0, 5, "")}});
  CHECK_THROWS_AS(schema.add({"s", "", {}}), std::invalid_argument); // the same section twice
  CHECK_THROWS_AS(schema.add({"", "", {}}), std::invalid_argument);
  CHECK_THROWS_AS(schema.add({"t", "", {api::opt_int("n", 1, 0, 5, ""), api::opt_bool("n", true, "")}}),
                  std::invalid_argument); // the same key twice
  CHECK_THROWS_AS(schema.add({"t", "", {api::opt_int("n", 9, 0, 5, "")}}), std::invalid_argument);
  CHECK_THROWS_AS(schema.add({"t", "", {api::opt_float("n", -0.5, 0.0, 1.0, "")}}), std::invalid_argument);
  CHECK_THROWS_AS(schema.add({"t", "", {api::opt_string("n", "x", "", {"a", "b"})}}), std::invalid_argument);
  CHECK_THROWS_AS(schema.add({"t", "", {api::opt_list("n", {"a", "x"}, "", {"a", "b"})}}), std::invalid_argument);
  api::OptionSpec mistyped = api::opt_int("n", 1, 0, 5, "");
  mistyped.default_value = std::string("1");
  CHECK_THROWS_AS(schema.add({"t", "", {mistyped}}), std::invalid_argument);
  CHECK(schema.sections().size() == 1); // nothing rejected was added
  CHECK_NOTHROW(schema.add({"t", "", {api::opt_int("n", 5, 0, 5, ""), api::opt_string("m", "b", "", {"a", "b"})}}));
  CHECK(schema.sections().size() == 2);
}

TEST_CASE("defaults() holds every declared option and marks none as set", "[config][defaults]") {
  auto schema = test::schema_with_ping();
  Config c = defaults(schema);
  CHECK(c.source() == "(defaults)");
  CHECK(c.get_list("server", "hosts") == std::vector<std::string>{"localhost"});
  CHECK(c.get_string("server", "data_dir") == "data");
  CHECK(c.get_int("server", "threads") == 0);
  CHECK(c.get_string("log", "level") == "info");
  CHECK(c.get_string("tls", "min_version") == "1.2");
  CHECK(c.get_int("c2s", "port") == 5222);
  CHECK(c.get_bool("c2s", "require_encryption") == true);
  CHECK(c.get_string("c2s", "resource_conflict") == "kick_old");
  CHECK(c.get_bool("auth", "allow_insecure_plain") == false);
  CHECK(c.get_list("auth", "mechanisms").front() == "SCRAM-SHA-512-PLUS");
  CHECK(c.get_string("storage", "synchronous") == "full");
  CHECK(c.get_list("modules", "enabled") == test::default_modules());
  CHECK(c.get_int("modules.ping", "interval") == 300);
  CHECK(c.get_float("modules.ping", "ratio") == 0.5);
  for (const auto& section : schema.sections()) {
    CHECK(c.section(section.name).size() == section.options.size());
    for (const auto& spec : section.options) {
      INFO(section.name << "." << spec.key);
      CHECK(c.get(section.name, spec.key) == spec.default_value);
      CHECK_FALSE(c.is_set(section.name, spec.key));
    }
  }
}

TEST_CASE("Config getters: out_of_range for undeclared options, bad_variant_access for the wrong type",
          "[config][defaults]") {
  Config c = defaults(test::schema_with_ping());
  CHECK_THROWS_AS(c.get("c2s", "nope"), std::out_of_range);
  CHECK_THROWS_AS(c.get("nope", "port"), std::out_of_range);
  CHECK_THROWS_AS(c.get_int("C2S", "port"), std::out_of_range); // case-sensitive
  CHECK_THROWS_AS(c.get_int("c2s", "Port"), std::out_of_range);
  CHECK_THROWS_AS(c.is_set("c2s", "nope"), std::out_of_range);
  CHECK_THROWS_AS(c.get_string("c2s", "port"), std::bad_variant_access);
  CHECK_THROWS_AS(c.get_int("modules.ping", "ratio"), std::bad_variant_access);
  CHECK_THROWS_AS(c.get_bool("server", "hosts"), std::bad_variant_access);
  CHECK(c.section("modules.nothing").empty()); // an undeclared section has no values
}

TEST_CASE("Config::set records whether the file set a value", "[config][defaults]") {
  Config c;
  c.set("s", "k", std::int64_t{1}, false);
  CHECK(c.get_int("s", "k") == 1);
  CHECK_FALSE(c.is_set("s", "k"));
  c.set("s", "k", std::int64_t{2}, true);
  CHECK(c.get_int("s", "k") == 2);
  CHECK(c.is_set("s", "k"));
  c.set("s", "k", std::int64_t{3}, true);
  CHECK(c.is_set("s", "k"));
  c.set("s", "k", std::int64_t{4}, false);
  CHECK(c.get_int("s", "k") == 4);
  CHECK_FALSE(c.is_set("s", "k"));
  CHECK(c.section("s").size() == 1);
  c.set_source("x.toml");
  CHECK(c.source() == "x.toml");
}

TEST_CASE("ConfigError::str formats file, position and key, leaving out unknown parts", "[config][errors]") {
  CHECK(ConfigError{"c.toml", 3, 7, "c2s.port", "must be between 0 and 65535, found 70000"}.str() ==
        "c.toml:3:7: key 'c2s.port': must be between 0 and 65535, found 70000");
  CHECK(ConfigError{"c.toml", 0, 0, "c2s.port", "m"}.str() == "c.toml: key 'c2s.port': m");
  CHECK(ConfigError{"c.toml", 12, 1, "", "unknown section 'foo'"}.str() == "c.toml:12:1: unknown section 'foo'");
  CHECK(ConfigError{"/etc/c.toml", 0, 0, "", "cannot read file: No such file or directory"}.str() ==
        "/etc/c.toml: cannot read file: No such file or directory");
  CHECK(ConfigError{"c.toml", 4, 0, "a.b", "m"}.str() == "c.toml:4: key 'a.b': m");
}
