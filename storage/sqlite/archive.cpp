// The SQLite archive store. Items are rows of the archive table; the rowid is the append order.
//
// A query runs in one read transaction (one snapshot) on a pooled read connection:
//   1. after_id/before_id → rowids, through UNIQUE(store, host, user, id) (an unknown id: NotFound);
//   2. the count of the matching items (filters only, for RSM <count/>): a COUNT over an index range; with a time
//      filter also their lowest and highest rowid;
//   3. the page: the filters plus the rowid range (the after/before bounds, narrowed to that lowest…highest span so
//      a time range that lies late in the archive is not looked for from its start), in rowid order through the
//      index on (store, host, user, rowid) — or (…, with_jid, rowid) with a 'with' filter — reading limit+1 rows to
//      learn whether the page is the last one. A page from the middle of a large archive starts with an index seek.
//   4. first_index: nothing to count when the page touches either end; otherwise a COUNT of the matching items
//      before the page (or total minus those from it, when that side looks shorter).
// With an ids list the items are looked up one by one and paged in memory (archive_util.hpp), like the memory
// driver does.
#include "storage/sqlite/archive.hpp"

#include "storage/archive_util.hpp"

#include <algorithm>
#include <limits>
#include <set>
#include <utility>

namespace cg::storage::sqlite {
namespace {

std::string describe(std::string_view store, std::string_view operation) {
  std::string s = "archive '";
  s += store;
  s += "' ";
  s += operation;
  return s;
}

// Which conditions a statement has. Parameters: ?1 store, ?2 host, ?3 user, ?4 with, ?5 start, ?6 end, ?7 kind,
// ?8 rowid lower bound (exclusive), ?9 rowid upper bound (exclusive), ?10 limit. A fixed number per condition, so
// each shape is one statement text, prepared once per connection.
struct Shape {
  bool with = false, start = false, end = false, kind = false, lo = false, hi = false;
};

Shape filters_of(const ArchiveQuery& q) {
  return Shape{
      .with = q.with.has_value(), .start = q.start.has_value(), .end = q.end.has_value(), .kind = q.kind.has_value()};
}

std::string conditions(const Shape& s) {
  std::string w = "store = ?1 AND host = ?2 AND user = ?3";
  if (s.with)
    w += " AND with_jid = ?4";
  if (s.start)
    w += " AND at >= ?5";
  if (s.end)
    w += " AND at <= ?6";
  if (s.kind)
    w += " AND kind = ?7";
  if (s.lo)
    w += " AND rowid > ?8";
  if (s.hi)
    w += " AND rowid < ?9";
  return w;
}

constexpr const char* kColumns = "rowid, id, at, with_jid, kind, payload"; // as Sql::ArcFind

// The page in rowid order, ascending or descending. INDEXED BY: the planner, without statistics, may prefer the
// index on `at` for a time range and sort its result, which reads the whole range; the rowid order index reads only
// the page.
std::string page_sql(const Shape& s, bool descending) {
  return std::string("SELECT ") + kColumns + " FROM archive INDEXED BY " + (s.with ? "archive_with" : "archive_order") +
         " WHERE " + conditions(s) + " ORDER BY rowid" + (descending ? " DESC" : "") + " LIMIT ?10";
}

// The count of the matching items; with span, also their lowest and highest rowid.
std::string count_sql(const Shape& s, bool span) {
  return std::string("SELECT count(*)") + (span ? ", min(rowid), max(rowid)" : "") + " FROM archive WHERE " +
         conditions(s);
}

std::string delete_sql(const Shape& s) {
  return "DELETE FROM archive WHERE " + conditions(s);
}

void bind_shape(Query& query, const Shape& s, const ArchiveQuery& q, std::string_view store, std::string_view host,
                std::string_view user, std::int64_t lo, std::int64_t hi) {
  query.text(1, store).text(2, host).text(3, user);
  if (s.with)
    query.text(4, *q.with);
  if (s.start)
    query.integer(5, *q.start);
  if (s.end)
    query.integer(6, *q.end);
  if (s.kind)
    query.text(7, *q.kind);
  if (s.lo)
    query.integer(8, lo);
  if (s.hi)
    query.integer(9, hi);
}

// Reads the columns of kColumns (from column 1: column 0 is the rowid).
ArchiveItem read_item(const Query& q) {
  return ArchiveItem{.id = q.column_text(1),
                     .when = q.column_int(2),
                     .with = q.column_text(3),
                     .kind = q.column_text(4),
                     .payload = q.column_blob(5)};
}

// The rowid of the user's item with this id; NotFound if there is none.
std::optional<std::int64_t> rowid_of(Connection& c, std::string_view op, std::string_view store, std::string_view host,
                                     std::string_view user, const std::optional<std::string>& id) {
  if (!id)
    return std::nullopt;
  Query q(c, Sql::ArcRowid, op);
  q.text(1, store).text(2, host).text(3, user).text(4, *id);
  if (!q.step())
    throw StorageError(std::string(op) + ": no item with id '" + *id + "'", StorageError::Kind::NotFound);
  return q.column_int(0);
}

// The user's items among `ids` that pass the filters, with their rowids, in archive order.
std::vector<std::pair<std::int64_t, ArchiveItem>> find_ids(Connection& c, std::string_view op, std::string_view store,
                                                           std::string_view host, std::string_view user,
                                                           const ArchiveQuery& q) {
  std::vector<std::pair<std::int64_t, ArchiveItem>> rows;
  std::set<std::string_view> seen;
  for (const auto& id : q.ids) {
    if (!seen.insert(id).second)
      continue;
    Query f(c, Sql::ArcFind, op);
    f.text(1, store).text(2, host).text(3, user).text(4, id);
    if (!f.step())
      continue;
    ArchiveItem item = read_item(f);
    if (archive::matches(item, q))
      rows.emplace_back(f.column_int(0), std::move(item));
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return rows;
}

void insert(Connection& c, std::string_view op, std::string_view store, std::string_view host, std::string_view user,
            const ArchiveItem& item) {
  Query q(c, Sql::ArcInsert, op);
  q.text(1, store).text(2, host).text(3, user).text(4, item.id).integer(5, item.when).text(6, item.with);
  q.text(7, item.kind).blob(8, item.payload);
  try {
    q.run();
  } catch (const StorageError&) {
    if (q.extended_error() == SQLITE_CONSTRAINT_UNIQUE)
      throw StorageError(std::string(op) + ": an item with id '" + item.id + "' already exists");
    throw;
  }
}

std::size_t item_bytes(std::string_view store, std::string_view host, std::string_view user, const ArchiveItem& item) {
  return store.size() + host.size() + user.size() + item.id.size() + item.with.size() + item.kind.size() +
         item.payload.size() + 64;
}

// The read transaction of a query: one snapshot for its statements; ended (rolled back: it wrote nothing) on exit.
class ReadTransaction {
public:
  ReadTransaction(Connection& c, std::string_view op) : c_(c) { c_.step_simple(Sql::BeginRead, op); }
  ~ReadTransaction() { c_.rollback(); }
  ReadTransaction(const ReadTransaction&) = delete;
  ReadTransaction& operator=(const ReadTransaction&) = delete;

private:
  Connection& c_;
};

class AppendJob final : public WriteJob {
public:
  AppendJob(std::string op, std::string store, std::string host, std::string user, ArchiveItem item,
            ArchiveStore::AppendDone done)
      : WriteJob(std::move(op), item_bytes(store, host, user, item), false), store_(std::move(store)),
        host_(std::move(host)), user_(std::move(user)), item_(std::move(item)), done_(std::move(done)) {}

  void run(Connection& c) override { insert(c, operation(), store_, host_, user_, item_); }

  void finish(std::exception_ptr error) noexcept override {
    if (!done_)
      return;
    try {
      std::string id = error ? std::string() : std::move(item_.id); // before `error` is moved from
      done_(std::move(id), std::move(error));
    } catch (...) {
      // `done` must not throw; the writer goes on whatever it does.
    }
  }

private:
  std::string store_, host_, user_;
  ArchiveItem item_;
  ArchiveStore::AppendDone done_;
};

class SqliteArchive final : public ArchiveStore {
public:
  SqliteArchive(std::shared_ptr<Backend> b, std::string_view store) : b_(std::move(b)), store_(store) {}

  std::string append(std::string_view host, std::string_view user, ArchiveItem item) override {
    if (item.id.empty())
      item.id = archive::new_id();
    const std::string op = describe(store_, "append");
    b_->write(op, item_bytes(store_, host, user, item),
              [&](Connection& c) { insert(c, op, store_, host, user, item); });
    return std::move(item.id);
  }

  void append_async(std::string_view host, std::string_view user, ArchiveItem item, AppendDone done) override {
    if (item.id.empty())
      item.id = archive::new_id();
    b_->submit(std::make_unique<AppendJob>(describe(store_, "append"), store_, std::string(host), std::string(user),
                                           std::move(item), std::move(done)));
  }

  ArchivePage query(std::string_view host, std::string_view user, const ArchiveQuery& q) override {
    const std::string op = describe(store_, "query");
    auto lease = b_->read();
    Connection& c = *lease;
    ReadTransaction txn(c, op);
    const auto after = rowid_of(c, op, store_, host, user, q.after_id);
    const auto before = rowid_of(c, op, store_, host, user, q.before_id);

    ArchivePage page;
    if (!q.ids.empty()) {
      auto rows = find_ids(c, op, store_, host, user, q);
      std::vector<std::int64_t> positions;
      positions.reserve(rows.size());
      for (auto& row : rows)
        positions.push_back(row.first);
      const auto s = archive::slice(positions, after, before, q.limit, q.from_end);
      for (std::size_t i = s.begin; i < s.end; ++i)
        page.items.push_back(std::move(rows[i].second));
      page.complete = s.complete;
      page.total = rows.size();
      page.first_index = s.begin;
      return page;
    }

    // 2. total; with a time range also the span of rowids that hold matching items, which bounds the page's scan
    // (in the common case, time follows append order and the span is tight).
    const Shape filters = filters_of(q);
    const bool timed = filters.start || filters.end;
    std::int64_t lo = after.value_or(std::numeric_limits<std::int64_t>::min());
    std::int64_t hi = before.value_or(std::numeric_limits<std::int64_t>::max());
    {
      Query count(c, c.cached(count_sql(filters, timed), op), op);
      bind_shape(count, filters, q, store_, host, user, 0, 0);
      count.step();
      page.total = static_cast<std::size_t>(count.column_int(0));
      if (timed && page.total > 0) {
        lo = std::max(lo, count.column_int(1) - 1);
        hi = std::min(hi, count.column_int(2) + 1);
      }
    }
    if (page.total == 0 || lo >= hi - 1) {
      page.complete = true; // nothing in the range
      return page;
    }

    // 3. the page: limit + 1 rows tell whether another matching item lies beyond it.
    Shape ranged = filters;
    ranged.lo = ranged.hi = true;
    constexpr auto kMax = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max() - 1);
    const auto fetch = static_cast<std::int64_t>(std::min(q.limit, kMax) + 1);
    std::int64_t first_rowid = 0;
    bool more = false;
    {
      Query rows(c, c.cached(page_sql(ranged, q.from_end), op), op);
      bind_shape(rows, ranged, q, store_, host, user, lo, hi);
      rows.integer(10, fetch);
      while (rows.step()) {
        if (page.items.size() == q.limit) {
          more = true;
          break;
        }
        page.items.push_back(read_item(rows));
        // The page's first item: the first row read, or with from_end (descending) the last.
        if (q.from_end || page.items.size() == 1)
          first_rowid = rows.column_int(0);
      }
    }
    if (q.from_end)
      std::reverse(page.items.begin(), page.items.end());
    page.complete = !more;

    // 4. first_index. Known without counting when the page touches an end of the matching items: forward without
    // after_id, or a complete forward page without before_id, and the mirror cases from the end.
    const std::size_t n = page.items.size();
    if (n == 0 || (!q.from_end && !after) || (q.from_end && !more && !after)) {
      page.first_index = 0;
    } else if ((q.from_end && !before) || (!q.from_end && !more && !before)) {
      page.first_index = page.total - n;
    } else {
      // Count the matching items on the side of the page's first item that is likely the shorter, judging by where
      // its rowid lies between the user's first and last.
      std::int64_t first_row = 0;
      std::int64_t last_row = 0;
      {
        Query span(c, Sql::ArcSpan, op);
        span.text(1, store_).text(2, host).text(3, user);
        span.step();
        first_row = span.column_int(0);
        last_row = span.column_int(1);
      }
      Shape side = filters;
      const bool count_before = first_rowid - first_row <= last_row - first_rowid;
      (count_before ? side.hi : side.lo) = true;
      Query count(c, c.cached(count_sql(side, false), op), op);
      bind_shape(count, side, q, store_, host, user, first_rowid - 1, first_rowid);
      count.step();
      const auto counted = static_cast<std::size_t>(count.column_int(0));
      page.first_index = count_before ? counted : page.total - counted;
    }
    return page;
  }

  std::size_t remove(std::string_view host, std::string_view user, const ArchiveQuery& q) override {
    const std::string op = describe(store_, "remove");
    return b_->write(op, 0, [&](Connection& c) -> std::size_t {
      const auto after = rowid_of(c, op, store_, host, user, q.after_id);
      const auto before = rowid_of(c, op, store_, host, user, q.before_id);
      if (!q.ids.empty()) {
        std::size_t n = 0;
        for (auto& [rowid, item] : find_ids(c, op, store_, host, user, q)) {
          if ((after && rowid <= *after) || (before && rowid >= *before))
            continue;
          Query d(c, Sql::ArcDeleteRow, op);
          d.integer(1, rowid).run();
          n += static_cast<std::size_t>(d.changes());
        }
        return n;
      }
      Shape s = filters_of(q);
      s.lo = after.has_value();
      s.hi = before.has_value();
      Query d(c, c.cached(delete_sql(s), op), op);
      bind_shape(d, s, q, store_, host, user, after.value_or(0), before.value_or(0));
      d.run();
      return static_cast<std::size_t>(d.changes());
    });
  }

  std::size_t remove_older_than(std::string_view host, std::int64_t when) override {
    const std::string op = describe(store_, "remove_older_than");
    return b_->write(op, 0, [&](Connection& c) -> std::size_t {
      Query d(c, Sql::ArcRemoveOlder, op);
      d.text(1, store_).text(2, host).integer(3, when).run();
      return static_cast<std::size_t>(d.changes());
    });
  }

  std::size_t count(std::string_view host, std::string_view user) override {
    const std::string op = describe(store_, "count");
    auto lease = b_->read();
    Query q(*lease, Sql::ArcCount, op);
    q.text(1, store_).text(2, host).text(3, user);
    q.step();
    return static_cast<std::size_t>(q.column_int(0));
  }

private:
  std::shared_ptr<Backend> b_;
  std::string store_;
};

} // namespace

std::shared_ptr<ArchiveStore> make_archive(std::shared_ptr<Backend> backend, std::string_view store) {
  return std::make_shared<SqliteArchive>(std::move(backend), store);
}

void remove_user_archives(Connection& c, std::string_view host, std::string_view user, std::string_view operation) {
  std::vector<std::string> stores;
  {
    Query q(c, Sql::ArcStores, operation);
    while (q.step())
      stores.push_back(q.column_text(0));
  }
  for (const auto& store : stores)
    Query(c, Sql::ArcRemoveUser, operation).text(1, store).text(2, host).text(3, user).run();
}

std::vector<std::string> archive_statements(const ArchiveQuery& q) {
  const Shape filters = filters_of(q);
  Shape ranged = filters;
  ranged.lo = ranged.hi = true;
  Shape below = filters;
  below.hi = true;
  Shape above = filters;
  above.lo = true;
  Shape removed = filters;
  removed.lo = q.after_id.has_value();
  removed.hi = q.before_id.has_value();
  std::vector<std::string> out = {count_sql(filters, filters.start || filters.end), page_sql(ranged, q.from_end),
                                  count_sql(below, false), count_sql(above, false), delete_sql(removed)};
  for (Sql which : {Sql::ArcRowid, Sql::ArcFind, Sql::ArcDeleteRow, Sql::ArcCount, Sql::ArcSpan, Sql::ArcRemoveOlder,
                    Sql::ArcStores, Sql::ArcRemoveUser})
    out.emplace_back(Connection::sql(which));
  return out;
}

} // namespace cg::storage::sqlite
