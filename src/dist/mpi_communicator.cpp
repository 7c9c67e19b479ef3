// The MPI backend: CPU tensors, non-blocking MPI collectives issued in order on one communication
// thread (so they progress while backward computes), each polled against dist.timeout_s.
#include <mpi.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "modtrain/core/check.h"
#include "modtrain/core/error.h"
#include "modtrain/core/fault.h"
#include "modtrain/dist/communicator.h"
#include "modtrain/dist/watchdog.h"
#include "modtrain/dist/world_mpi.h"
#include "mpi_wait.h"

namespace modtrain {
namespace {

// bf16 has no MPI type: it travels as 16-bit words, summed by bf16_sum (a user-defined operation:
// each pair added in fp32 and rounded to the nearest bf16, as NCCL's bf16 reduction does per hop).
// Chosen over summing in fp32 because the point of bf16 reduction is half the bytes on the wire;
// an fp32 sum of bf16 values would send fp32.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const c10::BFloat16*>(in);
  auto* b = static_cast<c10::BFloat16*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = c10::BFloat16(static_cast<float>(a[i]) + static_cast<float>(b[i]));
}

MPI_Datatype mpi_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kBFloat16: return MPI_UINT16_T;
    case torch::kFloat32: return MPI_FLOAT;
    case torch::kFloat64: return MPI_DOUBLE;
    case torch::kInt64: return MPI_INT64_T;
    case torch::kInt32: return MPI_INT32_T;
    case torch::kUInt8:
    case torch::kBool: return MPI_UINT8_T;
    default: throw InternalError(std::string("mpi backend: unsupported dtype ") + c10::toString(t.scalar_type()));
  }
}

struct Task {
  std::string what;
  size_t bytes = 0;
  std::function<void(MPI_Request*)> start;  // issues the non-blocking collective
  std::function<void()> finish;             // runs after completion (e.g. /= size for avg)
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  std::string error;
};

class MpiWork : public Work {
 public:
  explicit MpiWork(std::shared_ptr<Task> task) : task_(std::move(task)) {}
  void wait() override {
    std::unique_lock<std::mutex> lock(task_->mutex);
    task_->cv.wait(lock, [&] { return task_->done; });
    if (!task_->error.empty()) throw Error(task_->error, kExitRuntime);
  }

 private:
  std::shared_ptr<Task> task_;
};

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(const World& world, CommOptions options)
      : options_(options), rank_(world.rank()), size_(world.size()) {
    MPI_CHECK(MPI_Comm_dup(world.mpi().comm, &comm_));
    MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    threaded_ = world.thread_level() >= MPI_THREAD_MULTIPLE;
    MPI_CHECK(MPI_Op_create(&bf16_sum, /*commute=*/1, &bf16_sum_));
    if (threaded_) worker_ = std::thread([this] { run(); });
  }

  ~MpiCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    if (!failed_) {
      MPI_Op_free(&bf16_sum_);
      MPI_Comm_free(&comm_);
    }
  }

  std::string backend() const override { return "mpi"; }

  // kAvg after the MPI sum: integers divide with truncation, as ncclAvg does (div_ alone would
  // refuse to write a true quotient into an integer tensor).
  void divide_by_world(torch::Tensor& t) const {
    if (t.is_floating_point()) t.div_(size_);
    else t.div_(size_, "trunc");
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  MPI_Op sum_op(const torch::Tensor& t) const { return t.scalar_type() == torch::kBFloat16 ? bf16_sum_ : MPI_SUM; }

  std::unique_ptr<Work> all_reduce_async(torch::Tensor t, ReduceOp op, const std::string& what) override {
    MT_CHECK(t.device().is_cpu() && t.is_contiguous(), "mpi all_reduce needs a contiguous CPU tensor");
    auto task = std::make_shared<Task>();
    task->what = "all_reduce of " + what;
    task->bytes = static_cast<size_t>(t.numel()) * t.element_size();
    task->start = [this, t](MPI_Request* request) mutable {
      // a test of the checks above this layer: the last rank's contribution is left out
      if (fault::corrupt("all-reduce") && size_ > 1 && rank_ == size_ - 1) t.zero_();
      MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), sum_op(t), comm_,
                               request));
    };
    if (op == ReduceOp::kAvg) task->finish = [this, t]() mutable { divide_by_world(t); };
    return submit(task);
  }

  void broadcast(torch::Tensor t, int root, const std::string& what) override {
    MT_CHECK(t.device().is_cpu() && t.is_contiguous(), "mpi broadcast needs a contiguous CPU tensor");
    auto task = std::make_shared<Task>();
    task->what = "broadcast of " + what;
    task->bytes = static_cast<size_t>(t.numel()) * t.element_size();
    task->start = [this, t, root](MPI_Request* request) {
      MPI_CHECK(MPI_Ibcast(t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), root, comm_, request));
    };
    submit(task)->wait();
  }

  torch::Tensor all_gather(const torch::Tensor& input, const std::string& what) override {
    torch::Tensor t = input.to(torch::kCPU).contiguous();
    std::vector<int64_t> shape = t.sizes().vec();
    shape.insert(shape.begin(), size_);
    torch::Tensor out = torch::empty(shape, t.options());
    auto task = std::make_shared<Task>();
    task->what = "all_gather of " + what;
    task->bytes = static_cast<size_t>(out.numel()) * out.element_size();
    task->start = [this, t, out](MPI_Request* request) {
      MPI_CHECK(MPI_Iallgather(t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), out.data_ptr(),
                               static_cast<int>(t.numel()), mpi_type(t), comm_, request));
    };
    submit(task)->wait();
    return out;
  }

  std::unique_ptr<Work> reduce_scatter_async(torch::Tensor input, torch::Tensor output, ReduceOp op,
                                             const std::string& what) override {
    MT_CHECK(input.device().is_cpu() && input.is_contiguous() && output.device().is_cpu() && output.is_contiguous(),
             "mpi reduce_scatter needs contiguous CPU tensors");
    MT_CHECK(input.numel() == output.numel() * size_ && input.scalar_type() == output.scalar_type(),
             "mpi reduce_scatter of " << what << ": input of " << input.numel() << " " << input.scalar_type()
                                      << " elements for chunks of " << output.numel() << " " << output.scalar_type()
                                      << " on " << size_ << " ranks");
    auto task = std::make_shared<Task>();
    task->what = "reduce_scatter of " + what;
    task->bytes = static_cast<size_t>(input.numel()) * input.element_size();
    task->start = [this, input, output](MPI_Request* request) {
      MPI_CHECK(MPI_Ireduce_scatter_block(input.data_ptr(), output.data_ptr(), static_cast<int>(output.numel()),
                                          mpi_type(input), sum_op(input), comm_, request));
    };
    if (op == ReduceOp::kAvg) task->finish = [this, output]() mutable { divide_by_world(output); };
    return submit(task);
  }

  std::unique_ptr<Work> all_gather_chunks_async(torch::Tensor t, const std::string& what) override {
    MT_CHECK(t.device().is_cpu() && t.is_contiguous() && t.numel() % size_ == 0,
             "mpi all_gather_chunks needs a contiguous CPU tensor of size x k elements");
    auto task = std::make_shared<Task>();
    task->what = "all_gather of " + what;
    task->bytes = static_cast<size_t>(t.numel()) * t.element_size();
    task->start = [this, t](MPI_Request* request) {
      MPI_CHECK(MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, t.data_ptr(), static_cast<int>(t.numel() / size_),
                               mpi_type(t), comm_, request));
    };
    return submit(task);
  }

  void barrier(const std::string& what) override {
    auto task = std::make_shared<Task>();
    task->what = "barrier (" + what + ")";
    task->start = [this](MPI_Request* request) { MPI_CHECK(MPI_Ibarrier(comm_, request)); };
    submit(task)->wait();
  }

 private:
  std::unique_ptr<Work> submit(std::shared_ptr<Task> task) {
    if (!threaded_) {
      execute(*task);  // MPI without thread support: run on the caller's thread
    } else {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        queue_.push_back(task);
      }
      cv_.notify_all();
    }
    return std::make_unique<MpiWork>(task);
  }

  void run() {
    for (;;) {
      std::shared_ptr<Task> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = queue_.front();
        queue_.pop_front();
      }
      execute(*task);
    }
  }

  // Issues the collective and polls it to completion or to the deadline (the watchdog).
  void execute(Task& task) {
    std::string error;
    if (failed_) {
      error = task.what + " not started: an earlier collective failed";
    } else {
      const double start = Timeline::now_us();
      try {
        MPI_Request request = MPI_REQUEST_NULL;
        task.start(&request);
        if (!detail::mpi_wait_bounded(&request, options_.timeout_s)) {
          failed_ = true;
          error = detail::watchdog_message(task.what, task.bytes, options_.timeout_s) +
                  watchdog::fired(task.what, options_.timeout_s);
        }
        if (error.empty() && task.finish) task.finish();
      } catch (const std::exception& e) {
        failed_ = true;
        error = task.what + " failed: " + e.what();
      }
      if (options_.timeline)
        options_.timeline->span(task.what, start, Timeline::now_us(), 1,
                                "{\"bytes\": " + std::to_string(task.bytes) + "}");
    }
    {
      std::lock_guard<std::mutex> lock(task.mutex);
      task.done = true;
      task.error = error;
    }
    task.cv.notify_all();
  }

  CommOptions options_;
  int rank_, size_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Op bf16_sum_ = MPI_OP_NULL;
  bool threaded_ = false;
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Task>> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const World& world, CommOptions options) {
  return std::make_unique<MpiCommunicator>(world, options);
}

}  // namespace modtrain
