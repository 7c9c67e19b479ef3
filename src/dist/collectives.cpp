// The control plane's two implementations: local (one process) and MPI (any world size).
#include "modtrain/dist/collectives.h"
#include "modtrain/dist/watchdog.h"

#include <mpi.h>

#include <algorithm>
#include <type_traits>

#include "modtrain/core/check.h"
#include "modtrain/core/error.h"
#include "modtrain/dist/world_mpi.h"
#include "mpi_wait.h"

namespace modtrain {
namespace {

class LocalCollectives : public Collectives {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void sum(std::vector<double>&, const std::string&) override {}
  std::vector<std::vector<float>> all_gather(const std::vector<float>& v, const std::string&) override { return {v}; }
  std::vector<std::vector<double>> all_gather(const std::vector<double>& v, const std::string&) override { return {v}; }
  std::vector<std::string> all_gather_text(const std::string& text, const std::string&) override { return {text}; }
  std::vector<std::vector<float>> gather_to_root(const std::vector<float>& v, const std::string&) override {
    return {v};
  }
  void broadcast(std::vector<double>&, const std::string&) override {}
  void barrier(const std::string&) override {}
};

class MpiCollectives : public Collectives {
 public:
  MpiCollectives(const World& world, double timeout_s, Timeline* timeline, size_t max_message_values)
      : rank_(world.rank()),
        size_(world.size()),
        timeout_s_(timeout_s),
        timeline_(timeline),
        max_message_(std::max<size_t>(1, max_message_values)) {
    MPI_CHECK(MPI_Comm_dup(world.mpi().comm, &comm_));
    MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  }
  ~MpiCollectives() override {
    if (!failed_) MPI_Comm_free(&comm_);  // after a timeout the job is being aborted: do not wait
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void sum(std::vector<double>& values, const std::string& what) override {
    if (values.empty()) return;
    MPI_Request request;
    const double start = Timeline::now_us();
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM, comm_,
                             &request));
    wait(&request, "sum of " + what, values.size() * sizeof(double), start);
  }

  std::vector<std::vector<float>> all_gather(const std::vector<float>& values, const std::string& what) override {
    return gather(values, MPI_FLOAT, what);
  }
  std::vector<std::vector<double>> all_gather(const std::vector<double>& values, const std::string& what) override {
    return gather(values, MPI_DOUBLE, what);
  }
  std::vector<std::string> all_gather_text(const std::string& text, const std::string& what) override {
    std::vector<std::string> out;
    for (const auto& bytes : gather(std::vector<char>(text.begin(), text.end()), MPI_CHAR, what))
      out.emplace_back(bytes.begin(), bytes.end());
    return out;
  }

  std::vector<std::vector<float>> gather_to_root(const std::vector<float>& values, const std::string& what) override {
    // Point to point rather than MPI_Gatherv: Gatherv's int counts and displacements cap the total
    // at 2^31 - 1 values (the old all_gather's limit), and only rank 0 needs the values. Each rank's
    // vector travels in pieces of at most max_message_ values; a piece's tag is its number, so the
    // pieces of one rank match in order whatever the transport.
    const double start = Timeline::now_us();
    uint64_t mine = values.size();
    std::vector<uint64_t> lengths(rank_ == 0 ? static_cast<size_t>(size_) : 1);
    MPI_Request request;
    MPI_CHECK(MPI_Igather(&mine, 1, MPI_UINT64_T, lengths.data(), 1, MPI_UINT64_T, 0, comm_, &request));
    wait(&request, "gather to rank 0 of " + what + " (lengths)", sizeof(uint64_t), start);
    // Pieces per rank stay below the smallest MPI_TAG_UB the standard allows (32767).
    const auto piece_of = [&](uint64_t n) { return std::max<uint64_t>(max_message_, (n + 32000) / 32001); };
    std::vector<MPI_Request> requests;
    std::vector<std::vector<float>> out;
    uint64_t bytes = 0;
    const auto post = [&](float* data, uint64_t n, int peer, bool receive) {
      const uint64_t piece = piece_of(n);
      for (uint64_t begin = 0, tag = 0; begin < n; begin += piece, ++tag) {
        const int count = static_cast<int>(std::min(piece, n - begin));
        requests.emplace_back();
        if (receive)
          MPI_CHECK(MPI_Irecv(data + begin, count, MPI_FLOAT, peer, static_cast<int>(tag), comm_, &requests.back()));
        else MPI_CHECK(MPI_Isend(data + begin, count, MPI_FLOAT, 0, static_cast<int>(tag), comm_, &requests.back()));
      }
      bytes += n * sizeof(float);
    };
    if (rank_ == 0) {
      out.resize(static_cast<size_t>(size_));
      out[0] = values;
      for (int r = 1; r < size_; ++r) {
        out[static_cast<size_t>(r)].resize(lengths[static_cast<size_t>(r)]);
        post(out[static_cast<size_t>(r)].data(), lengths[static_cast<size_t>(r)], r, true);
      }
    } else {
      post(const_cast<float*>(values.data()), mine, 0, false);  // MPI_Isend's buffer is const since MPI 3
    }
    for (MPI_Request& r : requests) wait(&r, "gather to rank 0 of " + what, bytes, start, /*span=*/false);
    if (timeline_) span("gather to rank 0 of " + what, bytes, start);
    return out;
  }

  void broadcast(std::vector<double>& values, const std::string& what) override {
    MT_CHECK(values.size() <= static_cast<size_t>(INT32_MAX), "broadcast of " << values.size() << " values");
    MPI_Request request;
    const double start = Timeline::now_us();
    MPI_CHECK(MPI_Ibcast(values.data(), static_cast<int>(values.size()), MPI_DOUBLE, 0, comm_, &request));
    wait(&request, "broadcast of " + what, values.size() * sizeof(double), start);
  }

  void barrier(const std::string& what) override {
    MPI_Request request;
    const double start = Timeline::now_us();
    MPI_CHECK(MPI_Ibarrier(comm_, &request));
    wait(&request, "barrier (" + what + ")", 0, start);
  }

 private:
  template <class T>
  std::vector<std::vector<T>> gather(const std::vector<T>& values, MPI_Datatype type, const std::string& what) {
    static_assert(std::is_arithmetic_v<T>);
    // 1. Every rank's length, 2. the values, concatenated in rank order, then split per rank.
    const double start = Timeline::now_us();
    uint64_t mine = values.size();
    std::vector<uint64_t> lengths(static_cast<size_t>(size_));
    MPI_Request request;
    MPI_CHECK(MPI_Iallgather(&mine, 1, MPI_UINT64_T, lengths.data(), 1, MPI_UINT64_T, comm_, &request));
    wait(&request, "all_gather of " + what + " (lengths)", lengths.size() * sizeof(uint64_t), start);
    std::vector<int> counts(lengths.size()), offsets(lengths.size());
    uint64_t total = 0;
    for (size_t r = 0; r < lengths.size(); ++r) {
      offsets[r] = static_cast<int>(total);
      counts[r] = static_cast<int>(lengths[r]);
      total += lengths[r];
    }
    if (total > static_cast<uint64_t>(INT32_MAX))
      throw Error("all_gather of " + what + ": " + std::to_string(total) +
                      " values are more than one MPI call carries (2^31 - 1); evaluate on a smaller split",
                  kExitRuntime);
    std::vector<T> all(total);
    MPI_CHECK(MPI_Iallgatherv(values.data(), static_cast<int>(values.size()), type, all.data(), counts.data(),
                              offsets.data(), type, comm_, &request));
    wait(&request, "all_gather of " + what, total * sizeof(T), start);
    std::vector<std::vector<T>> out(lengths.size());
    for (size_t r = 0; r < lengths.size(); ++r)
      out[r].assign(all.begin() + offsets[r], all.begin() + offsets[r] + counts[r]);
    return out;
  }

  void wait(MPI_Request* request, const std::string& what, size_t bytes, double start_us, bool record = true) {
    // The bound runs from the operation's start, so a gather of many pieces waits timeout_s in all.
    const double waited = (Timeline::now_us() - start_us) / 1e6;
    if (!detail::mpi_wait_bounded(request, std::max(0.0, timeout_s_ - waited))) {
      failed_ = true;
      throw Error(detail::watchdog_message(what, bytes, timeout_s_) + watchdog::fired(what, timeout_s_), kExitRuntime);
    }
    if (record && timeline_) span(what, bytes, start_us);
  }
  void span(const std::string& what, size_t bytes, double start_us) {
    timeline_->span(what, start_us, Timeline::now_us(), 1, "{\"bytes\": " + std::to_string(bytes) + "}");
  }

  int rank_, size_;
  double timeout_s_;
  Timeline* timeline_;
  size_t max_message_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  bool failed_ = false;
};

}  // namespace

std::unique_ptr<Collectives> make_local_collectives() { return std::make_unique<LocalCollectives>(); }

std::unique_ptr<Collectives> make_mpi_collectives(const World& world, double timeout_s, Timeline* timeline,
                                                  size_t max_message_values) {
  return std::make_unique<MpiCollectives>(world, timeout_s, timeline, max_message_values);
}

}  // namespace modtrain
