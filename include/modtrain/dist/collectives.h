// The control plane: small host values (stop and save flags, logged sums, evaluation scores,
// replica checksums, "rank 0 has written" acknowledgements) summed or gathered over ranks. Always
// over MPI, which is initialised on every rank whatever moves the gradients, so every call here is
// legal with either data-plane backend (dist/communicator.h: gradients and parameters, MPI or
// NCCL). Every wait is bounded by dist.timeout_s. One process without MPI gets the local version.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "modtrain/dist/timeline.h"
#include "modtrain/dist/world.h"

namespace modtrain {

class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Collective (every rank calls it with the same `what` in the same order). `what` names the
  // operation in timelines and watchdog errors.
  virtual void sum(std::vector<double>& values, const std::string& what) = 0;  // in place
  // Every rank's vector, any length per rank, indexed by rank.
  virtual std::vector<std::vector<float>> all_gather(const std::vector<float>& values, const std::string& what) = 0;
  virtual std::vector<std::vector<double>> all_gather(const std::vector<double>& values, const std::string& what) = 0;
  // Every rank's text (any length), indexed by rank: decisions rank 0 made, errors, host names.
  virtual std::vector<std::string> all_gather_text(const std::string& text, const std::string& what) = 0;
  // Every rank's values to rank 0 only: indexed by rank there, empty on the other ranks. Sent in
  // messages of at most max_message_values, so no count overflows MPI's int: any total size
  // (evaluation scores: records x labels, past 2^31 values at 10B-post scale). Rank 0 receives
  // what all ranks send; the others hold only their own values.
  virtual std::vector<std::vector<float>> gather_to_root(const std::vector<float>& values, const std::string& what) = 0;
  // Rank 0's values to every rank, in place; every rank passes a vector of the same length.
  virtual void broadcast(std::vector<double>& values, const std::string& what) = 0;
  virtual void barrier(const std::string& what) = 0;
};

// A world of one process (no MPI calls): sums are the values, gathers return the one vector.
std::unique_ptr<Collectives> make_local_collectives();

// Over MPI on a duplicate of the world's communicator (so it never interleaves with the MPI
// data plane's collectives), at any world size including 1. max_message_values: gather_to_root's
// piece size (tests make it small to exercise the pieces).
constexpr size_t kMaxMessageValues = size_t{1} << 28;  // 1 GiB of floats: far below INT32_MAX
std::unique_ptr<Collectives> make_mpi_collectives(const World& world, double timeout_s, Timeline* timeline = nullptr,
                                                  size_t max_message_values = kMaxMessageValues);

}  // namespace modtrain
