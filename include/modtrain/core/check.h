// Check macros: one per library, each throwing a typed modtrain error that carries file:line.
// MT_CHECK guards modtrain's own invariants; MPI_CHECK wraps MPI calls. (NCCL_CHECK and
// CUDA_CHECK live in the NCCL communicator, the only code that calls those libraries.)
#pragma once

#include <sstream>
#include <string>

#include "modtrain/core/error.h"

namespace modtrain::detail {
[[noreturn]] void throw_check_failure(const char* file, int line, const char* expr, const std::string& message);
[[noreturn]] void throw_mpi_failure(const char* file, int line, const char* call, int code);
}  // namespace modtrain::detail

// MT_CHECK(cond, "what" << detail): throws InternalError("file:line: check `cond` failed: what").
#define MT_CHECK(cond, msg)                                                                   \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::ostringstream mt_check_os_;                                                        \
      mt_check_os_ << msg;                                                                    \
      ::modtrain::detail::throw_check_failure(__FILE__, __LINE__, #cond, mt_check_os_.str()); \
    }                                                                                         \
  } while (0)

// MPI_CHECK(MPI_Allreduce(...)): throws InternalError with the MPI error string and file:line.
#define MPI_CHECK(call)                                                             \
  do {                                                                              \
    int mt_mpi_rc_ = (call);                                                        \
    if (mt_mpi_rc_ != 0 /* MPI_SUCCESS */) {                                        \
      ::modtrain::detail::throw_mpi_failure(__FILE__, __LINE__, #call, mt_mpi_rc_); \
    }                                                                               \
  } while (0)
