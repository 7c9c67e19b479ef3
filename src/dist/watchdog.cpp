#include "modtrain/dist/watchdog.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "modtrain/dist/device.h"
#include "modtrain/dist/world_mpi.h"
#include "modtrain/io/files.h"

namespace modtrain::watchdog {
namespace {

constexpr int kTag = 7301;

struct State {
  bool armed = false;
  MPI_Comm comm = MPI_COMM_NULL;  // a duplicate of the world's: a roll call meets no pending collective
  int rank = 0, size = 1;
  std::vector<std::string> hosts;
  std::string run_dir;
  std::atomic<int64_t> step{-1};
  std::mutex mutex;
  bool fired = false;
};

State& state() {
  static State s;  // lives until exit: a watchdog may fire while the process unwinds
  return s;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The rank's own record; best effort (the run directory may be the thing that hangs).
std::string write_record(State& s, const std::string& what, double timeout_s) {
  if (s.run_dir.empty()) return "";
  const std::filesystem::path dir = std::filesystem::path(s.run_dir) / "hangs";
  char name[32];
  std::snprintf(name, sizeof name, "rank-%05d.txt", s.rank);
  const int64_t step = s.step.load();
  const std::string text =
      "rank " + std::to_string(s.rank) + " of " + std::to_string(s.size) + " on host " +
      (s.hosts.empty() ? std::string("?") : s.hosts[s.rank]) + ", pid " + std::to_string(::getpid()) +
      "\nstep: " + (step < 0 ? "before the first" : std::to_string(step)) + "\nwaiting in: " + what +
      "\nfor: " + std::to_string(static_cast<int>(timeout_s)) + " s (dist.timeout_s)\nat: " + utc_now() + "\n";
  try {
    std::filesystem::create_directories(dir);
    io::write_file_atomic((dir / name).string(), text);
  } catch (const std::exception&) {
    return "";
  }
  return (dir / name).string();
}

}  // namespace

void arm(const World& world, std::vector<std::string> hosts, const std::string& run_dir) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.armed) return;
  s.rank = world.rank();
  s.size = world.size();
  s.hosts = std::move(hosts);
  s.run_dir = run_dir;
  if (world.size() > 1) {
    if (MPI_Comm_dup(world.mpi().comm, &s.comm) != MPI_SUCCESS) return;
    MPI_Comm_set_errhandler(s.comm, MPI_ERRORS_RETURN);
  }
  s.armed = true;
}

void set_step(int64_t step) { state().step.store(step); }

std::string roll_call_summary(const std::vector<bool>& answered, const std::vector<std::string>& hosts) {
  std::vector<size_t> silent, heard;
  for (size_t r = 0; r < answered.size(); ++r) (answered[r] ? heard : silent).push_back(r);
  if (silent.empty())
    return "every rank answered: all of them wait (a rank that called the collectives in another order, or an "
           "operation that is slow rather than stuck: see each rank's operation)";
  return ranks_on_hosts(silent, hosts) + " did not answer (dead, hung or cut off)" +
         (heard.empty() ? std::string() : "; " + ranks_on_hosts(heard, hosts) + " did");
}

std::string fired(const std::string& what, double timeout_s) {
  State& s = state();
  std::unique_lock<std::mutex> lock(s.mutex);
  if (!s.armed || s.fired) return "";
  s.fired = true;
  const std::string record = write_record(s, what, timeout_s);
  const std::string where = record.empty() ? "" : "; each rank's operation and step: " + s.run_dir + "/hangs/";
  if (s.comm == MPI_COMM_NULL) return where;
  const double wait_s = std::clamp(timeout_s / 4, 2.0, 30.0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_s);
  if (s.rank != 0) {
    // Answer, then wait for rank 0 to have heard everyone (its "done"), so that this rank's exit
    // (an MPI_Abort that ends the job) does not cut rank 0's roll call short. Bounded: rank 0 may
    // be the dead one, or fire up to a step later.
    int me = s.rank, done_flag = 0;
    MPI_Request requests[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    const auto until = deadline + std::chrono::duration<double>(wait_s + 5.0);
    if (MPI_Isend(&me, 1, MPI_INT, 0, kTag, s.comm, &requests[0]) == MPI_SUCCESS &&
        MPI_Irecv(&done_flag, 1, MPI_INT, 0, kTag + 1, s.comm, &requests[1]) == MPI_SUCCESS) {
      int done = 0;
      while (!done && std::chrono::steady_clock::now() < until) {
        if (MPI_Testall(2, requests, &done, MPI_STATUSES_IGNORE) != MPI_SUCCESS) break;
        if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    return record.empty() ? "" : "; this rank's operation and step: " + record;
  }
  std::vector<bool> answered(static_cast<size_t>(s.size), false);
  answered[0] = true;
  int heard = 1;
  while (heard < s.size && std::chrono::steady_clock::now() < deadline) {
    int flag = 0;
    MPI_Status status;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kTag, s.comm, &flag, &status) != MPI_SUCCESS) break;
    if (!flag) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    int from = -1;
    if (MPI_Recv(&from, 1, MPI_INT, status.MPI_SOURCE, kTag, s.comm, MPI_STATUS_IGNORE) != MPI_SUCCESS) break;
    if (from >= 0 && from < s.size && !answered[static_cast<size_t>(from)])
      answered[static_cast<size_t>(from)] = true, ++heard;
  }
  // "done" to every rank that answered (they wait for it before exiting); not waited for long.
  std::vector<MPI_Request> acks;
  int done_flag = 1;
  for (int r = 1; r < s.size; ++r)
    if (answered[static_cast<size_t>(r)]) {
      acks.emplace_back(MPI_REQUEST_NULL);
      if (MPI_Isend(&done_flag, 1, MPI_INT, r, kTag + 1, s.comm, &acks.back()) != MPI_SUCCESS) acks.pop_back();
    }
  const auto acks_until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (int all = acks.empty(); !all && std::chrono::steady_clock::now() < acks_until;) {
    if (MPI_Testall(static_cast<int>(acks.size()), acks.data(), &all, MPI_STATUSES_IGNORE) != MPI_SUCCESS) break;
    if (!all) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  char waited[32];
  std::snprintf(waited, sizeof waited, "%.0f s", wait_s);
  return "; roll call (" + std::string(waited) + "): " + roll_call_summary(answered, s.hosts) + where;
}

}  // namespace modtrain::watchdog
