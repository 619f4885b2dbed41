// xep/registry.cpp: every module is well-declared and loads on a host.
#include "tests/xep/fake_host.hpp"
#include "xep/registry.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <set>

using cg::api::Module;
using cg::api::ModuleInfo;
using cg::api::OptionType;
using cg::test::FakeHost;

namespace {

std::vector<std::unique_ptr<Module>> all_modules() {
  std::vector<std::unique_ptr<Module>> out;
  for (auto factory : cg::xep::module_registry()) {
    REQUIRE(factory != nullptr);
    auto m = factory();
    REQUIRE(m != nullptr);
    out.push_back(std::move(m));
  }
  return out;
}

// Modules in an order where each comes after its dependencies (the module manager's order).
std::vector<Module*> dependency_order(const std::vector<std::unique_ptr<Module>>& modules) {
  std::vector<Module*> order;
  std::set<std::string> loaded;
  while (order.size() < modules.size()) {
    bool progress = false;
    for (const auto& m : modules) {
      auto info = m->info();
      if (loaded.contains(info.name)) {
        continue;
      }
      if (std::all_of(info.depends.begin(), info.depends.end(), [&](const auto& d) { return loaded.contains(d); })) {
        order.push_back(m.get());
        loaded.insert(info.name);
        progress = true;
      }
    }
    if (!progress) {
      FAIL("the modules' dependencies form a cycle");
    }
  }
  return order;
}

bool valid_key(const std::string& key) {
  return !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

} // namespace

TEST_CASE("registry: the registry lists modules", "[registry]") {
  CHECK_FALSE(cg::xep::module_registry().empty());
  // The modules of this tier, at least.
  std::set<std::string> names;
  for (const auto& m : all_modules()) {
    names.insert(m->info().name);
  }
  for (const char* name : {"disco", "ping", "version", "time"}) {
    CHECK(names.contains(name));
  }
}

TEST_CASE("registry: every module has a unique name, a summary and at least one spec", "[registry]") {
  std::set<std::string> names;
  for (const auto& m : all_modules()) {
    const ModuleInfo info = m->info();
    INFO("module '" << info.name << "'");
    // The name is the [modules.<name>] table of the config file.
    CHECK(valid_key(info.name));
    CHECK(names.insert(info.name).second);
    CHECK_FALSE(info.summary.empty());
    REQUIRE_FALSE(info.specs.empty());
    for (const auto& spec : info.specs) {
      CHECK_FALSE(spec.name.empty());
      CHECK_FALSE(spec.version.empty());
      CHECK((spec.status == "complete" || spec.status == "partial"));
      if (spec.status == "partial") {
        CHECK_FALSE(spec.note.empty()); // what is left out
      }
    }
  }
}

TEST_CASE("registry: dependencies name registered modules and form no cycle", "[registry]") {
  auto modules = all_modules();
  std::set<std::string> names;
  for (const auto& m : modules) {
    names.insert(m->info().name);
  }
  for (const auto& m : modules) {
    const ModuleInfo info = m->info();
    for (const auto& dep : info.depends) {
      INFO("module '" << info.name << "' depends on '" << dep << "'");
      CHECK(names.contains(dep));
      CHECK(dep != info.name);
    }
  }
  CHECK(dependency_order(modules).size() == modules.size());
}

TEST_CASE("registry: every option is declared with a valid default", "[registry]") {
  for (const auto& m : all_modules()) {
    const ModuleInfo info = m->info();
    std::set<std::string> keys;
    for (const auto& spec : info.options) {
      INFO("option modules." << info.name << "." << spec.key);
      CHECK(valid_key(spec.key));
      CHECK(keys.insert(spec.key).second);
      CHECK_FALSE(spec.doc.empty());
      // Of the declared type, within its bounds, one of its choices.
      CHECK(cg::test::check_option(spec, spec.default_value) == "");
      if (spec.type == OptionType::Int || spec.type == OptionType::Float) {
        // Numbers are bounded, so that a typo in the config cannot ask for something absurd.
        REQUIRE(spec.min);
        REQUIRE(spec.max);
        CHECK(*spec.min <= *spec.max);
      } else {
        CHECK_FALSE(spec.min);
        CHECK_FALSE(spec.max);
      }
      if (spec.type != OptionType::String && spec.type != OptionType::StringList) {
        CHECK(spec.choices.empty());
      }
    }
  }
}

TEST_CASE("registry: every module loads on its own host with its defaults", "[registry]") {
  auto modules = all_modules();
  for (const auto& m : modules) {
    const ModuleInfo info = m->info();
    INFO("module '" << info.name << "'");
    FakeHost host("example.com");
    // Its dependencies first, each in its own context.
    for (const auto& dep : info.depends) {
      for (const auto& other : modules) {
        if (other->info().name == dep) {
          host.sibling().load(*other);
        }
      }
    }
    CHECK_NOTHROW(host.load(*m));
  }
}

TEST_CASE("registry: all modules load on one host without claiming the same IQ twice", "[registry]") {
  auto modules = all_modules();
  FakeHost host("example.com");
  for (Module* m : dependency_order(modules)) {
    INFO("module '" << m->info().name << "'");
    // The fake host, like the real one, throws when a second handler claims an IQ.
    CHECK_NOTHROW(host.sibling().load(*m));
  }
  // Every module that registers a feature shows up in the host's disco features, each once.
  auto features = host.features();
  CHECK(std::adjacent_find(features.begin(), features.end()) == features.end());
  for (const char* ns :
       {"http://jabber.org/protocol/disco#info", "urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time"}) {
    CHECK(std::find(features.begin(), features.end(), ns) != features.end());
  }
}

TEST_CASE("registry: the fake host checks option overrides against the declarations", "[registry][fake]") {
  auto modules = all_modules();
  auto ping = std::find_if(modules.begin(), modules.end(), [](const auto& m) { return m->info().name == "ping"; });
  REQUIRE(ping != modules.end());
  {
    FakeHost host;
    CHECK_THROWS_AS(host.load(**ping, {{"no_such_option", true}}), std::invalid_argument);
  }
  {
    FakeHost host;
    CHECK_THROWS_AS(host.load(**ping, {{"idle", std::string("300")}}), std::invalid_argument); // wrong type
  }
  {
    FakeHost host;
    CHECK_THROWS_AS(host.load(**ping, {{"idle", std::int64_t{-1}}}), std::invalid_argument); // below its minimum
  }
  {
    FakeHost host;
    host.load(**ping);
    CHECK_THROWS_AS(host.load(**ping), std::logic_error); // one module per context
    CHECK_THROWS_AS(host.option<bool>("idle"), std::bad_variant_access);
    CHECK_THROWS_AS(host.option_value("undeclared"), std::out_of_range);
    CHECK(host.option<std::int64_t>("idle") == 300);
  }
}
