// The list of every module, one line each in registry.cpp. The same list feeds the config schema
// (modules.enabled and each [modules.<name>] table), the disco features and the generated docs table.
#pragma once

#include "server/api/module.hpp"

#include <vector>

namespace cg::xep {

const std::vector<api::ModuleFactory>& module_registry();

} // namespace cg::xep
