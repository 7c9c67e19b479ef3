#include "modtrain/dist/world.h"

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include "modtrain/core/check.h"
#include "modtrain/core/log.h"
#include "modtrain/dist/transport.h"
#include "modtrain/dist/world_mpi.h"

namespace modtrain {

World::World() : mpi_(std::make_unique<MpiHandles>()) {
  int initialized = 0;
  MPI_CHECK(MPI_Initialized(&initialized));
  if (!initialized) {
    MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &thread_level_));
    owns_mpi_ = true;
  } else {
    MPI_CHECK(MPI_Query_thread(&thread_level_));
  }
  // Errors come back as return codes (turned into exceptions by MPI_CHECK), not as aborts
  // deep inside the library, so that the failing rank can say what it was doing.
  MPI_CHECK(MPI_Comm_set_errhandler(mpi_->comm, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(mpi_->comm, &rank_));
  MPI_CHECK(MPI_Comm_size(mpi_->comm, &size_));
  MPI_CHECK(MPI_Comm_split_type(mpi_->comm, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &mpi_->node));
  MPI_CHECK(MPI_Comm_rank(mpi_->node, &local_rank_));
  MPI_CHECK(MPI_Comm_size(mpi_->node, &local_size_));
  char name[MPI_MAX_PROCESSOR_NAME] = {0};
  int length = 0;
  MPI_CHECK(MPI_Get_processor_name(name, &length));
  hostname_.assign(name, static_cast<size_t>(length));
  log::set_rank(rank_, size_);
}

World::~World() {
  if (mpi_->node != MPI_COMM_NULL) MPI_Comm_free(&mpi_->node);
  if (owns_mpi_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
}

std::string World::transport() const {
  char version[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
  int length = 0;
  MPI_CHECK(MPI_Get_library_version(version, &length));
  std::string maps;
  if (std::ifstream in{"/proc/self/maps"}) maps.assign(std::istreambuf_iterator<char>(in), {});
  return describe_mpi_transport(std::string(version, static_cast<size_t>(length)), maps);
}

void World::barrier() const { MPI_CHECK(MPI_Barrier(mpi_->comm)); }

void World::barrier_polling() const {
  if (size_ == 1) return;
  MPI_Request request;
  MPI_CHECK(MPI_Ibarrier(mpi_->comm, &request));
  for (int done = 0;;) {
    MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
    if (done) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::vector<uint64_t> World::all_gather(uint64_t value) const {
  std::vector<uint64_t> out(static_cast<size_t>(size_));
  MPI_CHECK(MPI_Allgather(&value, 1, MPI_UINT64_T, out.data(), 1, MPI_UINT64_T, mpi_->comm));
  return out;
}

std::vector<std::string> World::all_gather(const std::string& value) const {
  std::vector<uint64_t> lengths = all_gather(static_cast<uint64_t>(value.size()));
  std::vector<int> counts(lengths.size()), displs(lengths.size());
  int total = 0;
  for (size_t r = 0; r < lengths.size(); ++r) {
    counts[r] = static_cast<int>(lengths[r]);
    displs[r] = total;
    total += counts[r];
  }
  std::vector<char> buffer(static_cast<size_t>(total) + 1);
  MPI_CHECK(MPI_Allgatherv(value.data(), static_cast<int>(value.size()), MPI_CHAR, buffer.data(), counts.data(),
                           displs.data(), MPI_CHAR, mpi_->comm));
  std::vector<std::string> out;
  for (size_t r = 0; r < lengths.size(); ++r) out.emplace_back(buffer.data() + displs[r], lengths[r]);
  return out;
}

void World::abort(int exit_code) const {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
}

}  // namespace modtrain
