// storage_bench: how fast the SQLite driver archives and answers archive queries.
//
//   storage_bench [--dir DIR] [--seconds S] [--items N]
//
// Appends: N appenders (1, 8, 64), each with one append_async in flight at a time (as N sessions each waiting for
// the acknowledgement of its message), for S seconds; then one thread submitting without waiting (a burst). With
// synchronous=FULL every commit is an fsync, so what one appender gets is the fsync rate, and group commit is what
// lets more appenders get more. Queries: latency of typical MAM pages on an archive of N items.
#include "storage/sqlite/sqlite_driver.hpp"
#include "storage/store.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace cg::storage;
using Clock = std::chrono::steady_clock;

namespace {

double ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

ArchiveItem message(std::int64_t n, int contact) {
  return ArchiveItem{.id = "",
                     .when = 1'700'000'000'000'000 + n * 1'000'000,
                     .with = "contact" + std::to_string(contact) + "@example.net",
                     .kind = "chat",
                     .payload = "<message xmlns='jabber:client' type='chat' id='m" + std::to_string(n) +
                                "'><body>Hello, this is message number " + std::to_string(n) +
                                " of the benchmark.</body></message>"};
}

// One append_async in flight per appender, for `seconds`; report=false: a warm-up (the WAL file grows to its working
// size, which costs extra syncs of the file's metadata the first time).
void bench_appenders(Driver& d, int appenders, double seconds, bool report = true) {
  auto mam = d.archive("mam");
  const auto before = sqlite_stats(d);
  std::atomic<bool> stop{false};
  std::mutex latencies_mutex;
  std::vector<double> latencies;
  std::atomic<long> total{0};
  std::latch ready(appenders + 1);
  std::vector<std::thread> threads;
  for (int a = 0; a < appenders; ++a) {
    threads.emplace_back([&, a] {
      std::mutex m;
      std::condition_variable cv;
      bool done = false;
      bool failed = false;
      std::vector<double> mine;
      const std::string user = "user" + std::to_string(a);
      ready.arrive_and_wait();
      for (std::int64_t n = 0; !stop.load(std::memory_order_relaxed); ++n) {
        const auto t0 = Clock::now();
        done = false;
        mam->append_async("example.org", user, message(n, a % 10), [&](std::string, std::exception_ptr error) {
          std::lock_guard lock(m);
          done = true;
          failed = error != nullptr;
          cv.notify_one();
        });
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return done; });
        if (failed) {
          std::fprintf(stderr, "append failed\n");
          std::exit(1);
        }
        mine.push_back(ms(Clock::now() - t0));
      }
      total += static_cast<long>(mine.size());
      std::lock_guard lock(latencies_mutex);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  }
  ready.arrive_and_wait();
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); // the measuring period, not synchronisation
  stop = true;
  for (auto& t : threads)
    t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto after = sqlite_stats(d);
  const auto commits = after.commits - before.commits;
  if (!report)
    return;
  std::printf("%3d appender%s %9.0f appends/s  %7.0f commits/s  %6.1f appends/commit  ack latency p50 %6.2f ms  "
              "p99 %6.2f ms\n",
              appenders, appenders == 1 ? " " : "s", static_cast<double>(total) / elapsed,
              static_cast<double>(commits) / elapsed,
              commits ? static_cast<double>(after.jobs - before.jobs) / static_cast<double>(commits) : 0.0,
              percentile(latencies, 0.5), percentile(latencies, 0.99));
}

// One thread submitting append_async without waiting: the writer's throughput with full batches.
void bench_burst(Driver& d, long items) {
  auto mam = d.archive("mam");
  const auto before = sqlite_stats(d);
  std::mutex m;
  std::condition_variable cv;
  long done = 0;
  const auto t0 = Clock::now();
  for (long n = 0; n < items; ++n)
    mam->append_async("example.org", "burst", message(n, static_cast<int>(n % 10)),
                      [&](std::string, std::exception_ptr) {
                        std::lock_guard lock(m);
                        if (++done == items)
                          cv.notify_one();
                      });
  std::unique_lock lock(m);
  cv.wait(lock, [&] { return done == items; });
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto after = sqlite_stats(d);
  std::printf("burst      %9.0f appends/s  %7llu commits for %ld appends\n", static_cast<double>(items) / elapsed,
              static_cast<unsigned long long>(after.commits - before.commits), items);
}

void bench_queries(Driver& d, long items) {
  auto mam = d.archive("mam");
  // Fill one user's archive (and a neighbour's, so the user is not alone in the table).
  std::vector<std::string> ids(static_cast<std::size_t>(items));
  std::mutex m;
  std::condition_variable cv;
  long done = 0;
  const auto t0 = Clock::now();
  for (long n = 0; n < items; ++n)
    mam->append_async("example.org", "alice", message(n, static_cast<int>(n % 10)),
                      [&, n](std::string id, std::exception_ptr) {
                        std::lock_guard lock(m);
                        ids[static_cast<std::size_t>(n)] = std::move(id);
                        if (++done == items)
                          cv.notify_one();
                      });
  {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return done == items; });
  }
  std::printf("\nquery latency on an archive of %ld items (filled in %.1f s)\n", items,
              std::chrono::duration<double>(Clock::now() - t0).count());

  const auto mid = static_cast<std::size_t>(items / 2);
  auto run = [&](const char* name, ArchiveQuery q) {
    std::vector<double> v;
    ArchivePage page;
    for (int i = 0; i < 200; ++i) {
      const auto s = Clock::now();
      page = mam->query("example.org", "alice", q);
      v.push_back(ms(Clock::now() - s));
    }
    std::printf("  %-44s p50 %7.3f ms  p99 %7.3f ms  (%zu items of %zu)\n", name, percentile(v, 0.5),
                percentile(v, 0.99), page.items.size(), page.total);
  };
  ArchiveQuery q;
  q.limit = 50;
  run("first page of 50", q);
  q.after_id = ids[mid];
  run("page of 50 after the middle item", q);
  q = {};
  q.limit = 50;
  q.from_end = true;
  run("last page of 50 (from_end)", q);
  q.before_id = ids[mid];
  run("page of 50 before the middle item (from_end)", q);
  q = {};
  q.limit = 50;
  q.with = "contact3@example.net";
  q.after_id = ids[mid];
  run("with one contact, after the middle item", q);
  q = {};
  q.limit = 50;
  q.start = message(static_cast<std::int64_t>(mid), 0).when;
  q.end = *q.start + 3600LL * 1'000'000;
  run("one hour from the middle", q);
  q = {};
  q.limit = 0;
  run("count only (limit 0)", q);
  q = {};
  q.ids = {ids[10], ids[mid], ids[static_cast<std::size_t>(items - 1)]};
  run("3 ids", q);
}

} // namespace

int main(int argc, char** argv) {
  std::string dir;
  double seconds = 3;
  long items = 100000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    if (arg == "--dir")
      dir = argv[i + 1];
    else if (arg == "--seconds")
      seconds = std::atof(argv[i + 1]);
    else if (arg == "--items")
      items = std::atol(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: storage_bench [--dir DIR] [--seconds S] [--items N]\n");
      return 2;
    }
  }
  bool remove_dir = false;
  if (dir.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cg-storage-bench-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = tmpl;
    remove_dir = true;
  }
  const std::string path = (std::filesystem::path(dir) / "bench.db").string();
  std::printf("SQLite archive benchmark: %s, synchronous=FULL\n\n", path.c_str());
  {
    auto d = open_sqlite({.path = path, .synchronous_full = true});
    bench_appenders(*d, 8, 1, false);
    for (int appenders : {1, 8, 64})
      bench_appenders(*d, appenders, seconds);
    bench_burst(*d, 50000);
  }
  {
    std::filesystem::remove(path);
    std::filesystem::remove(path + "-wal");
    std::filesystem::remove(path + "-shm");
    auto d = open_sqlite({.path = path, .synchronous_full = true});
    bench_queries(*d, items);
  }
  if (remove_dir)
    std::filesystem::remove_all(dir);
  return 0;
}
