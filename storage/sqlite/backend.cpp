#include "storage/sqlite/backend.hpp"

#include <algorithm>

namespace cg::storage::sqlite {
namespace {

// The backend whose writer loop runs on this thread, if any: a job submitted from the writer thread itself (from a
// completion callback) must not wait for that thread.
thread_local const Backend* tls_writer_of = nullptr;

} // namespace

std::shared_ptr<Backend> Backend::open(const SqliteOptions& options) {
  auto backend = std::make_shared<Backend>(options);
  backend->start();
  return backend;
}

Backend::Backend(const SqliteOptions& options) : options_(options), writer_(options, Connection::Role::Writer) {}

Backend::~Backend() {
  // The writer thread holds a reference to the backend while it runs, so it has ended (joined or detached) by now.
}

void Backend::start() {
  // The thread keeps the backend alive until its loop ends: stop() may be called on the writer thread itself (a
  // completion callback that destroys the driver), which can only detach it.
  thread_ = std::thread([self = shared_from_this()] { self->loop(); });
}

void Backend::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_)
      return;
    stopping_ = true;
    paused_ = 0;
  }
  work_cv_.notify_all();
  space_cv_.notify_all();
  if (!thread_.joinable())
    return;
  if (tls_writer_of == this)
    thread_.detach(); // it drains the queue and ends after the current callback returns
  else
    thread_.join();
}

void Backend::submit(std::unique_ptr<WriteJob> job) {
  std::unique_lock lock(mutex_);
  const bool on_writer = tls_writer_of == this;
  if (stopping_ || (on_writer && job->waits())) {
    // No writer thread to wait for (stopped), or we are it: a synchronous write queued here would wait for itself.
    // Run it now, on this thread, as a batch of its own.
    lock.unlock();
    std::vector<std::unique_ptr<WriteJob>> batch;
    batch.push_back(std::move(job));
    run_batch(batch);
    return;
  }
  // Backpressure, except on the writer thread (only it could make room).
  if (!on_writer)
    space_cv_.wait(lock, [&] { return queue_.size() < options_.max_pending_writes || stopping_; });
  if (stopping_) {
    lock.unlock();
    std::vector<std::unique_ptr<WriteJob>> batch;
    batch.push_back(std::move(job));
    run_batch(batch);
    return;
  }
  queue_.push_back(std::move(job));
  lock.unlock();
  work_cv_.notify_one();
}

void Backend::loop() {
  tls_writer_of = this;
  std::vector<std::unique_ptr<WriteJob>> batch;
  std::unique_lock lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stopping_ || (!queue_.empty() && paused_ == 0); });
    if (queue_.empty())
      break; // stopping, and everything queued has been committed
    // Every job queued so far, within the batch bounds (at least one, however big).
    std::size_t bytes = 0;
    while (!queue_.empty() && batch.size() < std::max<std::size_t>(options_.max_batch_jobs, 1) &&
           (batch.empty() || bytes + queue_.front()->bytes() <= options_.max_batch_bytes)) {
      bytes += queue_.front()->bytes();
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();
    space_cv_.notify_all();
    run_batch(batch);
    batch.clear(); // the jobs (and whatever their callbacks hold) go here, outside the lock
    lock.lock();
  }
  lock.unlock();
  tls_writer_of = nullptr;
}

void Backend::run_batch(std::vector<std::unique_ptr<WriteJob>>& batch) {
  std::vector<std::exception_ptr> errors(batch.size());
  bool committed = false;
  {
    std::lock_guard lock(conn_mutex_);
    try {
      committed = execute(batch, errors);
    } catch (...) {
      // Not expected (execute reports per job); never leave a job without an answer.
      writer_.rollback();
      for (auto& e : errors)
        e = std::current_exception();
      committed = false;
    }
  }
  // Counted before the jobs complete, so whoever a completion wakes sees the figures.
  jobs_.fetch_add(batch.size(), std::memory_order_relaxed);
  if (committed)
    commits_.fetch_add(1, std::memory_order_relaxed);
  for (std::size_t i = 0; i < batch.size(); ++i)
    batch[i]->finish(std::move(errors[i]));
}

bool Backend::execute(std::vector<std::unique_ptr<WriteJob>>& batch, std::vector<std::exception_ptr>& errors) {
  Connection& c = writer_;
  std::vector<std::size_t> todo(batch.size());
  for (std::size_t i = 0; i < todo.size(); ++i)
    todo[i] = i;
  std::string message;

  while (!todo.empty()) {
    // BEGIN IMMEDIATE takes the write lock up front, waiting in the busy handler (busy_timeout_ms) while another
    // process writes, rather than failing later when a reader would upgrade to a writer.
    if (c.try_step(Sql::Begin, message) != SQLITE_DONE) {
      c.rollback();
      for (auto i : todo)
        errors[i] = c.error(batch[i]->operation(), message);
      return false;
    }

    bool transaction_lost = false;
    for (auto i : todo) {
      try {
        c.step_simple(Sql::Savepoint, batch[i]->operation());
        batch[i]->run(c);
        c.step_simple(Sql::Release, batch[i]->operation());
      } catch (...) {
        errors[i] = std::current_exception();
        // Undo this job alone. Some errors (I/O, disk full, RAISE(ROLLBACK) …) make SQLite roll back the whole
        // transaction: then the jobs before this one are undone too.
        if (c.in_transaction() &&
            (c.try_step(Sql::RollbackTo, message) != SQLITE_DONE || c.try_step(Sql::Release, message) != SQLITE_DONE))
          c.rollback();
        if (!c.in_transaction()) {
          transaction_lost = true;
          break;
        }
      }
    }
    if (transaction_lost) {
      // Run the jobs that have not failed again, in a new transaction.
      std::erase_if(todo, [&](std::size_t i) { return errors[i] != nullptr; });
      continue;
    }

    if (c.try_step(Sql::Commit, message) != SQLITE_DONE) {
      c.rollback();
      for (auto i : todo)
        if (!errors[i])
          errors[i] = c.error(batch[i]->operation(), message);
      return false;
    }
    return true;
  }
  return false;
}

Backend::ReadLease Backend::read() {
  std::unique_lock lock(readers_mutex_);
  for (;;) {
    if (!idle_readers_.empty()) {
      auto c = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return ReadLease(*this, std::move(c));
    }
    if (open_readers_ < std::max<std::size_t>(options_.max_readers, 1)) {
      ++open_readers_;
      lock.unlock();
      try {
        return ReadLease(*this, std::make_unique<Connection>(options_, Connection::Role::Reader));
      } catch (...) {
        lock.lock();
        --open_readers_;
        readers_cv_.notify_one();
        throw;
      }
    }
    readers_cv_.wait(lock);
  }
}

void Backend::release(std::unique_ptr<Connection> c) {
  {
    std::lock_guard lock(readers_mutex_);
    idle_readers_.push_back(std::move(c));
  }
  readers_cv_.notify_one();
}

SqliteStats Backend::stats() {
  SqliteStats s;
  s.commits = commits_.load(std::memory_order_relaxed);
  s.jobs = jobs_.load(std::memory_order_relaxed);
  {
    std::lock_guard lock(mutex_);
    s.pending = queue_.size();
  }
  {
    std::lock_guard lock(readers_mutex_);
    s.readers = open_readers_;
  }
  return s;
}

void Backend::pause() {
  std::lock_guard lock(mutex_);
  ++paused_;
}

void Backend::resume() {
  {
    std::lock_guard lock(mutex_);
    if (paused_ > 0)
      --paused_;
  }
  work_cv_.notify_all();
}

} // namespace cg::storage::sqlite
