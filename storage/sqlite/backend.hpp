// Internal to the SQLite driver: the connections behind a driver and every store handle it gives out.
//
// Writes: one writer thread owns the write connection. Callers enqueue jobs; the writer takes every job queued so
// far (up to max_batch_jobs / max_batch_bytes), runs them in one BEGIN IMMEDIATE … COMMIT — each job inside its own
// SAVEPOINT, so a job that fails is rolled back alone and the others still commit — and only after COMMIT returned
// (with synchronous=FULL: after the WAL was synced) completes each job: a synchronous caller wakes up with its
// result or its error, an asynchronous one has its callback called on the writer thread (so callbacks must be short:
// post the result elsewhere; the next batch waits for them). A full queue (max_pending_writes) blocks the caller:
// backpressure, not unbounded memory.
//
// Reads: a small pool of read connections (up to max_readers, opened on demand), each used by one thread at a time.
// In WAL mode they read beside the writer, so a read never waits for a commit; a read that starts after a write was
// reported complete sees it.
#pragma once

#include "storage/sqlite/connection.hpp"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace cg::storage::sqlite {

// One write, queued for the writer.
class WriteJob {
public:
  // operation: names the write in errors ("keyval 'accounts' set"). bytes: its size, to bound a batch. waits: a
  // caller blocks until it completes (a synchronous write).
  WriteJob(std::string operation, std::size_t bytes, bool waits)
      : operation_(std::move(operation)), bytes_(bytes), waits_(waits) {}
  virtual ~WriteJob() = default;
  WriteJob(const WriteJob&) = delete;
  WriteJob& operator=(const WriteJob&) = delete;

  // Does the write on the writer's connection, inside a transaction and a savepoint; throws on failure. May run
  // again in a later transaction when another job's failure rolled back the whole one (SQLite does that after some
  // errors), so it must not depend on having run before.
  virtual void run(Connection& c) = 0;
  // Called once, after the commit (error == nullptr) or with the job's error; must not throw. The error is moved
  // in: the writer keeps no copy.
  virtual void finish(std::exception_ptr error) noexcept = 0;

  const std::string& operation() const { return operation_; }
  std::size_t bytes() const { return bytes_; }
  bool waits() const { return waits_; }

private:
  std::string operation_;
  std::size_t bytes_;
  bool waits_;
};

class Backend : public std::enable_shared_from_this<Backend> {
public:
  // Opens the write connection (creating and migrating the file) and starts the writer thread.
  static std::shared_ptr<Backend> open(const SqliteOptions& options);
  explicit Backend(const SqliteOptions& options); // use open()
  ~Backend();
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  const SqliteOptions& options() const { return options_; }

  // Queues a write and returns (after waiting for room in the queue when it is full).
  void submit(std::unique_ptr<WriteJob> job);

  // Runs f(Connection&) in the writer's next batch; returns its result once committed, or throws its error.
  template <typename F>
  auto write(std::string_view operation, std::size_t bytes, F&& f) -> std::invoke_result_t<F&, Connection&>;

  // A read connection, for the lease's lifetime.
  class ReadLease {
  public:
    ReadLease(Backend& backend, std::unique_ptr<Connection> c) : backend_(backend), c_(std::move(c)) {}
    ~ReadLease() { backend_.release(std::move(c_)); }
    ReadLease(const ReadLease&) = delete;
    ReadLease& operator=(const ReadLease&) = delete;
    Connection& operator*() const { return *c_; }
    Connection* operator->() const { return c_.get(); }

  private:
    Backend& backend_;
    std::unique_ptr<Connection> c_;
  };
  ReadLease read();

  // Commits everything queued, then ends the writer thread (the driver's destructor). Writes submitted afterwards
  // (through store handles that outlive the driver) run on the caller's thread, one transaction each.
  void stop();

  SqliteStats stats();
  // Tests: while paused, the writer starts no new batch.
  void pause();
  void resume();

private:
  class CallJob;

  void start();
  void loop();
  // Runs the jobs as one batch on the write connection, then completes them.
  void run_batch(std::vector<std::unique_ptr<WriteJob>>& batch);
  // Returns whether the transaction committed; errors[i] receives job i's error.
  bool execute(std::vector<std::unique_ptr<WriteJob>>& batch, std::vector<std::exception_ptr>& errors);
  void release(std::unique_ptr<Connection> c);

  const SqliteOptions options_;

  // The write connection: used by whoever holds conn_mutex_ — the writer thread, or a caller after stop().
  std::mutex conn_mutex_;
  Connection writer_;

  // The queue.
  std::mutex mutex_;
  std::condition_variable work_cv_;  // the writer: jobs arrived, or stop
  std::condition_variable space_cv_; // submitters: room in the queue
  std::deque<std::unique_ptr<WriteJob>> queue_;
  std::size_t paused_ = 0;
  bool stopping_ = false;
  std::thread thread_;

  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::uint64_t> jobs_{0};

  // The read pool.
  std::mutex readers_mutex_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<Connection>> idle_readers_;
  std::size_t open_readers_ = 0;
};

// A synchronous write: runs a function, then hands the error (if any) to the waiting caller and wakes it. The writer
// keeps no reference to the error once the caller is woken, so the caller alone owns (and frees) the exception.
class Backend::CallJob final : public WriteJob {
public:
  struct Waiter {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    std::exception_ptr error;

    // Returns once finished; throws the job's error.
    void wait() {
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return done; });
      if (error)
        std::rethrow_exception(std::move(error));
    }
  };

  CallJob(std::string_view operation, std::size_t bytes, std::function<void(Connection&)> fn, Waiter& waiter)
      : WriteJob(std::string(operation), bytes, true), fn_(std::move(fn)), waiter_(waiter) {}
  void run(Connection& c) override { fn_(c); }
  void finish(std::exception_ptr error) noexcept override {
    // Notified under the lock: once it is released the caller may return and destroy the waiter.
    std::lock_guard lock(waiter_.mutex);
    waiter_.error = std::move(error);
    waiter_.done = true;
    waiter_.cv.notify_one();
  }

private:
  std::function<void(Connection&)> fn_;
  Waiter& waiter_;
};

template <typename F>
auto Backend::write(std::string_view operation, std::size_t bytes, F&& f) -> std::invoke_result_t<F&, Connection&> {
  using R = std::invoke_result_t<F&, Connection&>;
  // The job refers to f, to the result and to the waiter here: this frame waits until the job is finished.
  CallJob::Waiter waiter;
  if constexpr (std::is_void_v<R>) {
    submit(std::make_unique<CallJob>(
        operation, bytes, [&f](Connection& c) { f(c); }, waiter));
    waiter.wait();
  } else {
    std::optional<R> result;
    submit(std::make_unique<CallJob>(
        operation, bytes, [&f, &result](Connection& c) { result = f(c); }, waiter));
    waiter.wait();
    return std::move(*result);
  }
}

} // namespace cg::storage::sqlite
