// The NCCL backend: CUDA tensors, one GPU per rank (cuda:<local rank>), rank 0's ncclUniqueId
// broadcast over MPI, collectives on a dedicated communication stream ordered after the caller's
// current CUDA stream with CUDA events, and that stream ordered after the collective when it is
// waited for (so non-default streams and CUDA graphs stay correct); every wait polls against dist.timeout_s and aborts
// the communicator (ncclCommAbort) on a timeout or an asynchronous NCCL error.
// Life cycle: a non-blocking initialisation, polled against the deadline (a rank that never arrives
// is a timeout, not a hang); from it a blocking communicator is split for the collectives (PyTorch
// ProcessGroupNCCL's default: a non-blocking communicator launches every collective from a new
// thread, inside the backward hooks); close() finalizes it (every rank's side quiescent, polled
// under the deadline, aborted on a timeout) before destroying it and only then the stream and
// events; the destructor without close() on an error path aborts. Needs only cudart and NCCL, not a
// CUDA-enabled LibTorch, so it is compiled wherever nccl.h is (CI included); with a CUDA LibTorch
// (MODTRAIN_TORCH_CUDA) it reads LibTorch's current stream. Executed by the [cuda][nccl] tests and
// by scripts/gpu/check.sh's `modtrain train` at -np 1 with dist.backend=nccl.
#ifdef MODTRAIN_HAVE_NCCL

#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "modtrain/core/check.h"
#include "modtrain/core/error.h"
#include "modtrain/core/log.h"
#include "modtrain/core/parallel.h"
#include "modtrain/dist/communicator.h"
#include "modtrain/dist/event_clock.h"
#include "modtrain/dist/transport.h"
#include "modtrain/dist/watchdog.h"
#include "modtrain/dist/world_mpi.h"

#ifdef MODTRAIN_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

#define CUDA_CHECK(call)                                                                               \
  do {                                                                                                 \
    cudaError_t mt_cuda_rc_ = (call);                                                                  \
    if (mt_cuda_rc_ != cudaSuccess)                                                                    \
      throw ::modtrain::Error(std::string(__FILE__) + ":" + std::to_string(__LINE__) +                 \
                                  ": CUDA call failed: " #call ": " + cudaGetErrorString(mt_cuda_rc_), \
                              ::modtrain::kExitRuntime);                                               \
  } while (0)

#define NCCL_CHECK(call)                                                                                \
  do {                                                                                                  \
    ncclResult_t mt_nccl_rc_ = (call);                                                                  \
    if (mt_nccl_rc_ != ncclSuccess && mt_nccl_rc_ != ncclInProgress)                                    \
      throw ::modtrain::Error(std::string(__FILE__) + ":" + std::to_string(__LINE__) +                  \
                                  ": NCCL call failed: " #call ": " + ncclGetErrorString(mt_nccl_rc_) + \
                                  " (set NCCL_DEBUG=INFO for details)",                                 \
                              ::modtrain::kExitRuntime);                                                \
  } while (0)

namespace modtrain {
namespace {

ncclDataType_t nccl_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32: return ncclFloat32;
    case torch::kFloat64: return ncclFloat64;
    case torch::kFloat16: return ncclFloat16;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kInt64: return ncclInt64;
    case torch::kInt32: return ncclInt32;
    case torch::kUInt8:
    case torch::kBool: return ncclUint8;
    default: throw InternalError(std::string("nccl backend: unsupported dtype ") + c10::toString(t.scalar_type()));
  }
}

// The stream LibTorch queues this thread's kernels on (a CUDAStreamGuard or a graph capture may
// have changed it). Without a CUDA LibTorch no CUDA tensor exists: the legacy default stream.
cudaStream_t current_stream(int device) {
#ifdef MODTRAIN_TORCH_CUDA
  return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)).stream();
#else
  (void)device;
  return nullptr;
#endif
}

// The timeline's device clock: CUDA events with timing, from a pool, on a base that moves
// forward so that float milliseconds keep their resolution in long runs (dist/event_clock.h).
struct CudaEventApi {
  using Event = cudaEvent_t;
  int device;
  Event create() {
    cudaEvent_t e = nullptr;
    CUDA_CHECK(cudaSetDevice(device));
    CUDA_CHECK(cudaEventCreate(&e));
    return e;
  }
  void destroy(Event e) { cudaEventDestroy(e); }
  void record(Event e, void* stream) {
    CUDA_CHECK(cudaEventRecord(e, stream ? static_cast<cudaStream_t>(stream) : current_stream(device)));
  }
  bool query(Event e) {
    const cudaError_t state = cudaEventQuery(e);
    if (state == cudaErrorNotReady) return false;
    CUDA_CHECK(state);
    return true;
  }
  void synchronize(Event e) { CUDA_CHECK(cudaEventSynchronize(e)); }
  float elapsed_ms(Event from, Event to) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, from, to));
    return ms;
  }
};
using CudaEventClock = RebasingEventClock<CudaEventApi>;

class NcclCommunicator;

class NcclWork : public Work {
 public:
  NcclWork(NcclCommunicator* owner, cudaEvent_t done, std::string what, double start_us, size_t bytes,
           std::vector<torch::Tensor> keep_alive)
      : owner_(owner),
        done_(done),
        what_(std::move(what)),
        start_us_(start_us),
        bytes_(bytes),
        keep_alive_(std::move(keep_alive)) {}
  ~NcclWork() override;
  void wait() override;
  void wait_on_device() override;

 private:
  NcclCommunicator* owner_;
  cudaEvent_t done_;
  std::string what_;
  double start_us_;
  size_t bytes_;
  std::vector<torch::Tensor> keep_alive_;  // the caching allocator must not reuse them before the collective ends
  bool waited_ = false;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const World& world, const Placement& placement, CommOptions options)
      : options_(options), rank_(world.rank()), size_(world.size()), device_(placement.cuda_index) {
    // A constructor that throws runs no destructor: whatever it created so far (the start-up
    // communicator, the split child, the stream, the event) is released here, aborted rather than
    // finalized, since another rank may be the one that failed (the split child used to leak).
    try {
      initialise(world);
    } catch (...) {
      release_after_failed_start();
      throw;
    }
  }

  // On an error path (an exception unwinding, or an earlier failure): abort, do not wait for ranks
  // that may be gone. Otherwise the clean shutdown that close() does.
  ~NcclCommunicator() override {
    if (comm_) {
      if (aborted_ || std::uncaught_exceptions() > 0) {
        abort_now();
      } else {
        try {
          close();
        } catch (const std::exception& e) {
          log::warn(e.what());
        }
      }
    }
    if (ready_) cudaEventDestroy(ready_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  void close() override {
    if (!comm_) return;
    if (aborted_) {
      abort_now();
      return;
    }
    ncclComm_t comm = comm_;
    comm_ = nullptr;
    const std::string failure = finish(comm, "the NCCL communicator");
    if (!failure.empty()) throw Error(failure, kExitRuntime);
  }

  std::string backend() const override { return "nccl"; }
  std::string transport() const override { return transport_; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  std::unique_ptr<Work> all_reduce_async(torch::Tensor t, ReduceOp op, const std::string& what) override {
    MT_CHECK(t.is_cuda() && t.is_contiguous(), "nccl all_reduce needs a contiguous CUDA tensor");
    return launch("all_reduce of " + what, bytes_of(t), {t}, [&] {
      NCCL_CHECK(ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t),
                               op == ReduceOp::kAvg ? ncclAvg : ncclSum, comm_, stream_));
    });
  }

  void broadcast(torch::Tensor t, int root, const std::string& what) override {
    MT_CHECK(t.is_cuda() && t.is_contiguous(), "nccl broadcast needs a contiguous CUDA tensor");
    launch("broadcast of " + what, bytes_of(t), {t}, [&] {
      NCCL_CHECK(ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t), root, comm_,
                               stream_));
    })->wait();
  }

  torch::Tensor all_gather(const torch::Tensor& input, const std::string& what) override {
    torch::Tensor t = input.to(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(device_))).contiguous();
    std::vector<int64_t> shape = t.sizes().vec();
    shape.insert(shape.begin(), size_);
    torch::Tensor out = torch::empty(shape, t.options());
    launch("all_gather of " + what, bytes_of(out), {out}, [&] {
      NCCL_CHECK(
          ncclAllGather(t.data_ptr(), out.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t), comm_, stream_));
    })->wait();
    return out;
  }

  std::unique_ptr<Work> reduce_scatter_async(torch::Tensor input, torch::Tensor output, ReduceOp op,
                                             const std::string& what) override {
    MT_CHECK(input.is_cuda() && input.is_contiguous() && output.is_cuda() && output.is_contiguous(),
             "nccl reduce_scatter needs contiguous CUDA tensors");
    MT_CHECK(input.numel() == output.numel() * size_ && input.scalar_type() == output.scalar_type(),
             "nccl reduce_scatter of " << what << ": input of " << input.numel() << " elements for chunks of "
                                       << output.numel() << " on " << size_ << " ranks");
    return launch("reduce_scatter of " + what, bytes_of(input), {input, output}, [&] {
      NCCL_CHECK(ncclReduceScatter(input.data_ptr(), output.data_ptr(), static_cast<size_t>(output.numel()),
                                   nccl_type(input), op == ReduceOp::kAvg ? ncclAvg : ncclSum, comm_, stream_));
    });
  }

  std::unique_ptr<Work> all_gather_chunks_async(torch::Tensor t, const std::string& what) override {
    MT_CHECK(t.is_cuda() && t.is_contiguous() && t.numel() % size_ == 0,
             "nccl all_gather_chunks needs a contiguous CUDA tensor of size x k elements");
    const size_t chunk = static_cast<size_t>(t.numel() / size_);
    return launch("all_gather of " + what, bytes_of(t), {t}, [&] {
      // In place: NCCL reads this rank's contribution at its own offset of the output.
      char* base = static_cast<char*>(t.data_ptr());
      NCCL_CHECK(ncclAllGather(base + static_cast<size_t>(rank_) * chunk * t.element_size(), base, chunk, nccl_type(t),
                               comm_, stream_));
    });
  }

  // ZeRO-1's gathers of every bucket in one NCCL group: one launch and one event for all of them.
  std::unique_ptr<Work> all_gather_chunks_group_async(const std::vector<torch::Tensor>& tensors,
                                                      const std::string& what) override {
    for (const auto& t : tensors)
      MT_CHECK(t.is_cuda() && t.is_contiguous() && t.numel() % size_ == 0,
               "nccl all_gather_chunks needs contiguous CUDA tensors of size x k elements");
    size_t bytes = 0;
    for (const auto& t : tensors) bytes += bytes_of(t);
    return launch("all_gather of " + what, bytes, tensors, [&] {
      NCCL_CHECK(ncclGroupStart());
      for (const auto& t : tensors) {
        const size_t chunk = static_cast<size_t>(t.numel() / size_);
        char* base = static_cast<char*>(t.data_ptr());
        NCCL_CHECK(ncclAllGather(base + static_cast<size_t>(rank_) * chunk * t.element_size(), base, chunk,
                                 nccl_type(t), comm_, stream_));
      }
      NCCL_CHECK(ncclGroupEnd());
    });
  }

  void barrier(const std::string& what) override {
    torch::Tensor one =
        torch::ones({1}, torch::TensorOptions().device(torch::kCUDA, static_cast<c10::DeviceIndex>(device_)));
    all_reduce(one, ReduceOp::kSum, "barrier (" + what + ")");
  }

  // Polls `done` against the deadline; on a timeout or an asynchronous NCCL error, aborts.
  void wait_event(cudaEvent_t done, const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options_.timeout_s);
    auto pause = std::chrono::microseconds(5);
    for (int polls = 0;; ++polls) {
      cudaError_t state = cudaEventQuery(done);
      if (state == cudaSuccess) break;
      if (state != cudaErrorNotReady) CUDA_CHECK(state);
      ncclResult_t async = ncclSuccess;
      NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
      if (async != ncclSuccess && async != ncclInProgress) {
        aborted_ = true;
        throw Error(what + " failed: NCCL reports " + std::string(ncclGetErrorString(async)) +
                        " (set NCCL_DEBUG=WARN for details)",
                    kExitRuntime);
      }
      if (std::chrono::steady_clock::now() > deadline) {
        aborted_ = true;
        throw Error("watchdog: " + what + " did not complete within dist.timeout_s = " +
                        std::to_string(static_cast<int>(options_.timeout_s)) +
                        " s; another rank is stalled, has died or is at a different step (see its log)" +
                        watchdog::fired(what, options_.timeout_s),
                    kExitRuntime);
      }
      // Back off instead of spinning on the core: yield for the first polls (a
      // collective that is nearly done), then sleep, doubling up to 100 us (the most a completion
      // is noticed late; a bucket's all-reduce takes milliseconds).
      if (polls < 32) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::microseconds(100));
      }
    }
    // The caller's current stream continues after the collective.
    CUDA_CHECK(cudaStreamWaitEvent(current_stream(device_), done, 0));
  }

  Timeline* timeline() const { return options_.timeline; }
  int device() const { return device_; }

 private:
  void initialise(const World& world) {
    CUDA_CHECK(cudaSetDevice(device_));
    // Which network and paths NCCL chose is written only to its own log. Unless the user asked for
    // that log (NCCL_DEBUG), NCCL logs nothing; so its start-up lines (INIT, NET) go to a file of
    // this process, read back for the start banner once the communicator exists, then removed.
    const char* user_debug = std::getenv("NCCL_DEBUG");
    std::string log_path;
    if (!user_debug && !std::getenv("NCCL_DEBUG_FILE")) {
      log_path =
          (std::filesystem::temp_directory_path() / ("modtrain-nccl-" + std::to_string(::getpid()) + ".log")).string();
      ::setenv("NCCL_DEBUG", "INFO", 1);
      ::setenv("NCCL_DEBUG_SUBSYS", "INIT,NET", 1);
      ::setenv("NCCL_DEBUG_FILE", log_path.c_str(), 1);
    }
    initialise_nccl(world);
    if (!log_path.empty()) {
      std::ifstream in(log_path);
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      transport_ = describe_nccl_transport(text);
      if (transport_.empty()) transport_ = "not named in NCCL's start-up log";
      std::error_code ignored;
      std::filesystem::remove(log_path, ignored);
    } else {
      transport_ = std::string("NCCL_DEBUG") + (user_debug ? "" : "_FILE") + " is set: NCCL's own log names it";
    }
  }

  void initialise_nccl(const World& world) {
    ncclUniqueId id;
    if (rank_ == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    // Bounded broadcast of the id over MPI (a rank that never arrives must not hang start-up).
    MPI_Request request;
    MPI_CHECK(MPI_Ibcast(&id, sizeof id, MPI_BYTE, 0, world.mpi().comm, &request));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options_.timeout_s);
    for (int flag = 0; !flag;) {
      MPI_CHECK(MPI_Test(&request, &flag, MPI_STATUS_IGNORE));
      if (!flag && std::chrono::steady_clock::now() > deadline)
        throw Error(
            "watchdog: NCCL start-up (broadcast of rank 0's ncclUniqueId) did not complete within dist.timeout_s",
            kExitRuntime);
      if (!flag) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    // 1. Non-blocking initialisation, polled, so that a missing rank is a timeout and not a hang.
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    NCCL_CHECK(ncclCommInitRankConfig(&comm_, size_, id, rank_, &config));
    settle(comm_, "NCCL communicator initialisation");
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 18, 0)
    // 2. The blocking communicator for the collectives, split from it. The split runs as a job of
    //    the (non-blocking) parent, so it is polled like the initialisation: until NCCL has
    //    published the new communicator (it may write it only when the split completed) and
    //    both it and the parent report success. Then the parent is closed.
    ncclConfig_t blocking = NCCL_CONFIG_INITIALIZER;
    blocking.blocking = 1;
    NCCL_CHECK(ncclCommSplit(comm_, 0, rank_, &child_, &blocking));
    const auto split_deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options_.timeout_s);
    for (;;) {
      ncclResult_t parent_state = ncclSuccess, child_state = ncclInProgress;
      NCCL_CHECK(ncclCommGetAsyncError(comm_, &parent_state));
      ncclComm_t published = __atomic_load_n(&child_, __ATOMIC_ACQUIRE);
      if (published) NCCL_CHECK(ncclCommGetAsyncError(published, &child_state));
      for (ncclResult_t state : {parent_state, child_state})
        if (state != ncclSuccess && state != ncclInProgress)
          throw Error("NCCL communicator split failed: NCCL reports " + std::string(ncclGetErrorString(state)) +
                          " (set NCCL_DEBUG=INFO for details)",
                      kExitRuntime);
      if (parent_state == ncclSuccess && child_state == ncclSuccess) break;
      if (std::chrono::steady_clock::now() > split_deadline)
        throw Error("watchdog: NCCL communicator split did not complete within dist.timeout_s (is every rank running?)",
                    kExitRuntime);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    ncclComm_t parent = comm_;
    comm_ = child_;
    child_ = nullptr;
    blocking_ = true;
    const std::string failure = finish(parent, "the start-up NCCL communicator");
    if (!failure.empty()) throw Error(failure, kExitRuntime);
#endif
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  }

  void release_after_failed_start() {
    // The parent first: aborting it ends a split still in progress, after which NCCL no longer
    // writes child_; then the child, if the split had published it. (After the split comm_ is
    // the adopted child and child_ is null.)
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    ncclComm_t child = __atomic_load_n(&child_, __ATOMIC_ACQUIRE);
    if (child) ncclCommAbort(child);
    child_ = nullptr;
    if (ready_) cudaEventDestroy(ready_);
    if (stream_) cudaStreamDestroy(stream_);
    ready_ = nullptr;
    stream_ = nullptr;
  }

  static size_t bytes_of(const torch::Tensor& t) { return static_cast<size_t>(t.numel()) * t.element_size(); }

  // `bytes`: what the timeline records for it (the input of a reduce-scatter, the output of a gather).
  template <class Fn>
  std::unique_ptr<Work> launch(const std::string& what, size_t bytes, std::vector<torch::Tensor> buffers,
                               Fn&& enqueue) {
    if (aborted_)
      throw Error(what + " not started: the NCCL communicator was aborted after an earlier failure", kExitRuntime);
    const double start = Timeline::now_us();
    CUDA_CHECK(cudaEventRecord(ready_, current_stream(device_)));  // what the caller's stream has queued ...
    CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));           // ... happens before the collective
    DeviceClock* clock = options_.timeline ? options_.timeline->device_clock() : nullptr;
    const uint64_t device_start = clock ? clock->mark(stream_) : 0;  // when the NCCL stream starts it
    enqueue();
    if (clock) options_.timeline->device_span(what, device_start, clock->mark(stream_), Timeline::kDeviceComm);
    if (!blocking_) settle(comm_, what);
    cudaEvent_t done;
    CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(done, stream_));
    return std::make_unique<NcclWork>(this, done, what, start, bytes, std::move(buffers));
  }

  // Non-blocking communicators may answer ncclInProgress; wait (bounded) until the call settled.
  void settle(ncclComm_t comm, const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options_.timeout_s);
    for (;;) {
      ncclResult_t state = ncclSuccess;
      NCCL_CHECK(ncclCommGetAsyncError(comm, &state));
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) {
        aborted_ = true;
        throw Error(what + " failed: NCCL reports " + std::string(ncclGetErrorString(state)), kExitRuntime);
      }
      if (std::chrono::steady_clock::now() > deadline) {
        aborted_ = true;
        throw Error("watchdog: " + what + " did not settle within dist.timeout_s (is every rank running?)",
                    kExitRuntime);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  // Finalize (flush, then wait until every rank's side is quiescent: an intra-node barrier and
  // device frees run in NCCL's background), bounded by dist.timeout_s, and destroy. On a blocking
  // communicator ncclCommFinalize blocks, so it runs on a helper thread (call_with_deadline). When
  // it does not return in time, the communicator is *not* aborted: NCCL forbids a second call on a
  // communicator while one is in progress on it (ncclCommAbort once raced the finalize still
  // running on the helper). It is left to the process's exit, which follows the error, and the
  // message says so. Returns "" or what went wrong.
  std::string finish(ncclComm_t comm, const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options_.timeout_s);
    auto fail = [&](const std::string& why) {  // only while no other call is in progress on comm
      const ncclResult_t rc = ncclCommAbort(comm);
      return "closing " + what + ": " + why +
             (rc == ncclSuccess ? "; aborted it" : "; aborting it failed too: " + std::string(ncclGetErrorString(rc)));
    };
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
    const std::optional<ncclResult_t> finalized =
        call_with_deadline<ncclResult_t>([comm] { return ncclCommFinalize(comm); }, options_.timeout_s);
    if (!finalized)
      return "closing " + what + ": ncclCommFinalize did not return within dist.timeout_s = " +
             std::to_string(static_cast<int>(options_.timeout_s)) +
             " s (a rank is gone or stalled?); the communicator is left to the process's exit, since NCCL "
             "forbids aborting it while the finalize still runs on it";
    if (*finalized != ncclSuccess && *finalized != ncclInProgress)
      return fail("ncclCommFinalize failed: " + std::string(ncclGetErrorString(*finalized)));
    for (;;) {  // a non-blocking communicator answers ncclInProgress until the teardown completed
      ncclResult_t state = ncclSuccess;
      const ncclResult_t query = ncclCommGetAsyncError(comm, &state);
      if (query != ncclSuccess) return fail("ncclCommGetAsyncError failed: " + std::string(ncclGetErrorString(query)));
      if (state == ncclSuccess) break;
      if (state != ncclInProgress) return fail("NCCL reports " + std::string(ncclGetErrorString(state)));
      if (std::chrono::steady_clock::now() > deadline)
        return fail("the teardown did not complete within dist.timeout_s");
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
#endif
    const ncclResult_t destroyed = ncclCommDestroy(comm);
    if (destroyed != ncclSuccess && destroyed != ncclInProgress)
      return "closing " + what + ": ncclCommDestroy failed: " + ncclGetErrorString(destroyed);
    return "";
  }

  void abort_now() {
    if (!comm_) return;
    const ncclResult_t rc = ncclCommAbort(comm_);
    comm_ = nullptr;
    if (rc != ncclSuccess) log::warn(std::string("ncclCommAbort failed: ") + ncclGetErrorString(rc));
  }

  CommOptions options_;
  int rank_, size_, device_;
  ncclComm_t comm_ = nullptr;
  std::string transport_;       // for the start banner (NCCL's start-up log, read back)
  ncclComm_t child_ = nullptr;  // the split's result until adopted (NCCL publishes it when the split completed)
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  bool aborted_ = false;
  bool blocking_ = false;  // collectives return when launched (no ncclInProgress to settle)
};

NcclWork::~NcclWork() {
  if (!waited_) cudaStreamWaitEvent(current_stream(owner_->device()), done_, 0);
  cudaEventDestroy(done_);
}

void NcclWork::wait() {
  if (waited_) return;
  waited_ = true;
  owner_->wait_event(done_, what_);
  if (owner_->timeline())
    owner_->timeline()->span(what_, start_us_, Timeline::now_us(), 1, "{\"bytes\": " + std::to_string(bytes_) + "}");
}

void NcclWork::wait_on_device() {
  if (!waited_) CUDA_CHECK(cudaStreamWaitEvent(current_stream(owner_->device()), done_, 0));
}

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const World& world, const Placement& placement,
                                                     CommOptions options) {
  return std::make_unique<NcclCommunicator>(world, placement, options);
}

std::unique_ptr<DeviceClock> make_cuda_clock(int device) {
  return std::make_unique<CudaEventClock>(CudaEventApi{device}, nullptr);
}

}  // namespace modtrain

#endif  // MODTRAIN_HAVE_NCCL
