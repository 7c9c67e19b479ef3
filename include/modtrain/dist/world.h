// The MPI world of one job: RAII init/finalize, rank and size, local (per-node) rank and size,
// and the few host-side collectives that start-up and error handling need. Works under
// `mpirun -np N` and as a plain process (a world of one). MPI's own types stay out of this header
// (the trainer and everything above it include it): the few files that call MPI directly reach
// the communicators through dist/world_mpi.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace modtrain {

struct MpiHandles;  // dist/world_mpi.h

class World {
 public:
  World();   // MPI_Init_thread (asks for MPI_THREAD_MULTIPLE; see thread_level())
  ~World();  // MPI_Finalize
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // rank among the ranks of this node
  int local_size() const { return local_size_; }  // ranks on this node
  bool is_root() const { return rank_ == 0; }
  int thread_level() const { return thread_level_; }  // what MPI granted (MPI_THREAD_*)
  const MpiHandles& mpi() const { return *mpi_; }     // the communicators (dist/world_mpi.h)
  std::string hostname() const { return hostname_; }
  // How this rank's MPI moves messages, as far as the library shows it (dist/transport.h): the
  // library, and for Open MPI the messaging components it loaded after MPI_Init.
  std::string transport() const;

  void barrier() const;
  // A barrier for long waits (one rank busy for minutes): polls with short sleeps instead of
  // spinning, so the waiting ranks leave the cores to the busy one.
  void barrier_polling() const;
  std::vector<uint64_t> all_gather(uint64_t value) const;  // [size], index = rank
  std::vector<std::string> all_gather(const std::string& value) const;

  // Ends every rank of the job now (MPI_Abort). For errors raised on some ranks only, where the
  // others may be blocked in a collective and would otherwise wait forever.
  [[noreturn]] void abort(int exit_code) const;

 private:
  std::unique_ptr<MpiHandles> mpi_;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1, thread_level_ = 0;
  std::string hostname_;
  bool owns_mpi_ = false;
};

}  // namespace modtrain
