#include "expert_parallel/nccl_collective.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <thread>
#include <vector>

#include "common/clock.h"

namespace strata::expert_parallel {
namespace {

Status CudaError(cudaError_t e, const char* what) {
  return UnavailableError(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}
Status NcclError(ncclResult_t r, const char* what) {
  return UnavailableError(std::string("NCCL ") + what + ": " + ncclGetErrorString(r));
}

#define STRATA_CUDA_OK(expr, what)                                   \
  do {                                                               \
    cudaError_t strata_e_ = (expr);                                  \
    if (strata_e_ != cudaSuccess) return CudaError(strata_e_, what); \
  } while (0)
#define STRATA_NCCL_OK(expr, what)                                   \
  do {                                                               \
    ncclResult_t strata_r_ = (expr);                                 \
    if (strata_r_ != ncclSuccess) return NcclError(strata_r_, what); \
  } while (0)

class NcclCollective final : public Collective {
 public:
  ~NcclCollective() override {
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
    for (void* p : {d_send_, d_recv_, d_sizes_}) {
      if (p) cudaFree(p);
    }
    if (h_sizes_) cudaFreeHost(h_sizes_);
  }

  Status Init(const NcclCollectiveOptions& o) {
    o_ = o;
    STRATA_CUDA_OK(cudaSetDevice(o.device), "cudaSetDevice");
    STRATA_CUDA_OK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "stream");
    const size_t bytes = o.max_slot_bytes * o.size;
    STRATA_CUDA_OK(cudaMalloc(&d_send_, bytes), "cudaMalloc");
    STRATA_CUDA_OK(cudaMalloc(&d_recv_, bytes), "cudaMalloc");
    STRATA_CUDA_OK(cudaMalloc(&d_sizes_, 2 * o.size * sizeof(uint64_t)), "cudaMalloc");
    STRATA_CUDA_OK(cudaMallocHost(&h_sizes_, 2 * o.size * sizeof(uint64_t)), "cudaMallocHost");
    ncclUniqueId id;
    if (o.unique_id.empty()) {
      if (o.size != 1) return InvalidArgumentError("NCCL: size > 1 needs rank 0's unique id");
      STRATA_NCCL_OK(ncclGetUniqueId(&id), "ncclGetUniqueId");
    } else {
      if (o.unique_id.size() != sizeof(id.internal)) {
        return InvalidArgumentError("NCCL: the unique id must be 128 bytes");
      }
      std::memcpy(id.internal, o.unique_id.data(), sizeof(id.internal));
    }
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // non-blocking: init and collectives can be bounded by our deadline
    // A non-blocking init returns ncclInProgress; WaitComm polls it to ready (or the deadline).
    ncclResult_t r = ncclCommInitRankConfig(&comm_, o.size, id, o.rank, &config);
    if (r != ncclSuccess && r != ncclInProgress) return NcclError(r, "init");
    return WaitComm();
  }

  Status AllToAll(const uint8_t* send, uint8_t* recv, size_t slot_bytes, const size_t* send_bytes,
                  size_t* recv_bytes, ComputeGate* gate, int64_t* wait_ns) override {
    if (broken_) return UnavailableError("NCCL communicator aborted earlier");
    if (slot_bytes > o_.max_slot_bytes) return InvalidArgumentError("NCCL: slot over capacity");
    const int n = o_.size;
    uint64_t* hs = static_cast<uint64_t*>(h_sizes_);
    for (int i = 0; i < n; ++i) hs[i] = send_bytes[i];
    auto* ds = static_cast<uint64_t*>(d_sizes_);
    STRATA_CUDA_OK(cudaMemcpyAsync(ds, hs, n * sizeof(uint64_t), cudaMemcpyHostToDevice, stream_),
                   "copy");
    STRATA_NCCL_OK(ncclGroupStart(), "group");
    for (int p = 0; p < n; ++p) {
      STRATA_NCCL_OK(ncclSend(ds + p, 1, ncclUint64, p, comm_, stream_), "send sizes");
      STRATA_NCCL_OK(ncclRecv(ds + n + p, 1, ncclUint64, p, comm_, stream_), "recv sizes");
    }
    STRATA_RETURN_IF_ERROR(EndGroup());
    STRATA_CUDA_OK(
        cudaMemcpyAsync(hs + n, ds + n, n * sizeof(uint64_t), cudaMemcpyDeviceToHost, stream_),
        "copy");
    STRATA_RETURN_IF_ERROR(Wait(gate, wait_ns));
    auto* dsend = static_cast<uint8_t*>(d_send_);
    auto* drecv = static_cast<uint8_t*>(d_recv_);
    for (int p = 0; p < n; ++p) {
      recv_bytes[p] = hs[n + p];
      if (recv_bytes[p] > slot_bytes) return DataLossError("NCCL: a peer sent over capacity");
      if (send_bytes[p] > 0) {
        STRATA_CUDA_OK(cudaMemcpyAsync(dsend + p * slot_bytes, send + p * slot_bytes, send_bytes[p],
                                       cudaMemcpyHostToDevice, stream_),
                       "copy");
      }
    }
    STRATA_NCCL_OK(ncclGroupStart(), "group");
    for (int p = 0; p < n; ++p) {
      if (send_bytes[p] > 0) {
        STRATA_NCCL_OK(
            ncclSend(dsend + p * slot_bytes, send_bytes[p], ncclUint8, p, comm_, stream_), "send");
      }
      if (recv_bytes[p] > 0) {
        STRATA_NCCL_OK(
            ncclRecv(drecv + p * slot_bytes, recv_bytes[p], ncclUint8, p, comm_, stream_), "recv");
      }
    }
    STRATA_RETURN_IF_ERROR(EndGroup());
    for (int p = 0; p < n; ++p) {
      if (recv_bytes[p] > 0) {
        STRATA_CUDA_OK(cudaMemcpyAsync(recv + p * slot_bytes, drecv + p * slot_bytes, recv_bytes[p],
                                       cudaMemcpyDeviceToHost, stream_),
                       "copy");
      }
    }
    return Wait(gate, wait_ns);
  }

 private:
  Status EndGroup() {
    ncclResult_t r = ncclGroupEnd();
    if (r != ncclSuccess && r != ncclInProgress) return NcclError(r, "ncclGroupEnd");
    return WaitComm();
  }

  // Non-blocking communicator: poll its state until it is ready, or abort at the deadline.
  Status WaitComm() {
    const int64_t deadline = MonotonicNanos() + o_.timeout_ms * 1000000;
    while (true) {
      ncclResult_t state;
      STRATA_NCCL_OK(ncclCommGetAsyncError(comm_, &state), "async error");
      if (state == ncclSuccess) return OkStatus();
      if (state != ncclInProgress) return Abort(NcclError(state, "communicator"));
      if (MonotonicNanos() > deadline) return Abort(DeadlineExceededError("NCCL: timed out"));
      std::this_thread::yield();
    }
  }

  Status Wait(ComputeGate* gate, int64_t* wait_ns) {
    const int64_t start = MonotonicNanos();
    const int64_t deadline = start + o_.timeout_ms * 1000000;
    if (gate) gate->BeginWait();
    Status st;
    while (true) {
      cudaError_t e = cudaStreamQuery(stream_);
      if (e == cudaSuccess) break;
      if (e != cudaErrorNotReady) {
        st = CudaError(e, "stream");
        break;
      }
      ncclResult_t state;
      if (ncclCommGetAsyncError(comm_, &state) == ncclSuccess && state != ncclSuccess &&
          state != ncclInProgress) {
        st = Abort(NcclError(state, "peer"));
        break;
      }
      if (MonotonicNanos() > deadline) {
        st = Abort(DeadlineExceededError("NCCL all-to-all timed out after " +
                                         std::to_string(o_.timeout_ms) + " ms"));
        break;
      }
      std::this_thread::yield();
    }
    *wait_ns += MonotonicNanos() - start;
    if (gate) gate->EndWait();
    return st;
  }

  Status Abort(Status why) {
    broken_ = true;
    ncclCommAbort(comm_);
    comm_ = nullptr;
    return why;
  }

  NcclCollectiveOptions o_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* d_send_ = nullptr;
  void* d_recv_ = nullptr;
  void* d_sizes_ = nullptr;
  void* h_sizes_ = nullptr;
  bool broken_ = false;
};

}  // namespace

int CudaDeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

StatusOr<std::string> NewNcclUniqueId() {
  ncclUniqueId id;
  STRATA_NCCL_OK(ncclGetUniqueId(&id), "ncclGetUniqueId");
  return std::string(id.internal, sizeof(id.internal));
}

StatusOr<std::unique_ptr<Collective>> CreateNcclCollective(const NcclCollectiveOptions& o) {
  if (CudaDeviceCount() == 0) return UnavailableError("NCCL: no CUDA device");
  if (o.size < 1 || o.rank < 0 || o.rank >= o.size || o.max_slot_bytes == 0) {
    return InvalidArgumentError("NCCL: bad rank/size/slot bytes");
  }
  auto c = std::make_unique<NcclCollective>();
  STRATA_RETURN_IF_ERROR(c->Init(o));
  return std::unique_ptr<Collective>(std::move(c));
}

}  // namespace strata::expert_parallel
