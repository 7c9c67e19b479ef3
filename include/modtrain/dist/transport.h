// Which transport carries each rank's MPI messages, for the start banner. A silent fallback (an
// InfiniBand node without its drivers or a UCX build that found no device, both then running over
// TCP sockets) otherwise shows only as a slow job. Open MPI loads its messaging components as
// shared objects and keeps only the ones it selected after MPI_Init, so the process's own mappings
// name them; other MPI libraries are named by their version string only.
#pragma once

#include <string>
#include <vector>

namespace modtrain {

// "Open MPI v4.1.4: pml ob1, within a node vader, between nodes tcp" from MPI_Get_library_version's
// text and /proc/self/maps. Pure, so it is tested on recorded inputs.
std::string describe_mpi_transport(const std::string& library_version, const std::string& maps);

// NCCL shows its choice only in its own log: the NCCL communicator points NCCL_DEBUG_FILE at a
// file (when the user has not set NCCL_DEBUG) and reads this from it after start-up:
// "network IB (mlx5_0:1/IB), channels via NET/IB/GDRDMA, P2P/IPC". "" when the log names nothing.
std::string describe_nccl_transport(const std::string& nccl_log);

// The banner line from every rank's description (index = rank) and host: one line when all
// agree ("<library> transport: ... (every rank)"), else each distinct transport with its ranks.
// `differs` is set when they disagree.
std::string transport_summary(const std::string& library, const std::vector<std::string>& transports,
                              const std::vector<std::string>& hosts, bool* differs = nullptr);

}  // namespace modtrain
