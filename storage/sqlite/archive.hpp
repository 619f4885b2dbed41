// Internal to the SQLite driver: the archive store (store.hpp ArchiveStore) on the archive table (migration 2).
#pragma once

#include "storage/sqlite/backend.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cg::storage::sqlite {

std::shared_ptr<ArchiveStore> make_archive(std::shared_ptr<Backend> backend, std::string_view store);

// Deletes the user's items in every archive store; runs inside a write job.
void remove_user_archives(Connection& c, std::string_view host, std::string_view user, std::string_view operation);

// The SQL of every statement a query or remove() with these filters runs, and of the other archive statements.
std::vector<std::string> archive_statements(const ArchiveQuery& q);

} // namespace cg::storage::sqlite
