// Shared by the config unit tests: a schema with the core's sections plus a fake module section, and accessors
// that fail the test with the errors printed when a load did not go the expected way.
#pragma once

#include "server/config/config.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace cg::config::test {

inline std::vector<std::string> default_modules() {
  return {"ping", "disco"};
}

// The core's sections and a "modules.ping" section with an integer and a float option.
inline Schema schema_with_ping() {
  Schema schema;
  for (auto& section : core_sections(default_modules()))
    schema.add(std::move(section));
  schema.add({"modules.ping",
              "XEP-0199: XMPP Ping.",
              {api::opt_int("interval", 300, 10, 3600, "Seconds between pings"),
               api::opt_float("ratio", 0.5, 0.0, 1.0, "A fraction")}});
  return schema;
}

inline std::string describe(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors)
    out += e.str() + "\n";
  return out;
}

// The Config of a load that must succeed (the test fails, listing the errors, otherwise).
inline Config expect_config(const LoadResult& result) {
  if (const auto* errors = std::get_if<std::vector<ConfigError>>(&result)) {
    INFO(describe(*errors));
    FAIL("expected the config to load");
  }
  return std::get<Config>(result);
}

// The errors of a load that must fail.
inline std::vector<ConfigError> expect_errors(const LoadResult& result) {
  REQUIRE(std::holds_alternative<std::vector<ConfigError>>(result));
  return std::get<std::vector<ConfigError>>(result);
}

// Exactly one error, checked field by field.
inline void check_error(const ConfigError& e, const std::string& file, int line, int column, const std::string& key,
                        const std::string& message) {
  INFO(e.str());
  CHECK(e.file == file);
  CHECK(e.line == line);
  CHECK(e.column == column);
  CHECK(e.key == key);
  CHECK(e.message == message);
}

inline void check_single_error(const LoadResult& result, int line, int column, const std::string& key,
                               const std::string& message) {
  auto errors = expect_errors(result);
  INFO(describe(errors));
  REQUIRE(errors.size() == 1);
  check_error(errors[0], "test.toml", line, column, key, message);
}

} // namespace cg::config::test
