#include "expert_parallel/nccl_collective.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
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

// One NCCL communicator driven on one stream (owned or the caller's): initialization, grouped
// rounds and every wait bounded by the timeout; past it the communicator is aborted.
class NcclComm {
 public:
  ~NcclComm() {
    if (comm_) ncclCommDestroy(comm_);
    if (own_stream_ && stream_) cudaStreamDestroy(stream_);
  }

  // stream null: a stream of its own.
  Status Init(const NcclCollectiveOptions& o, cudaStream_t stream) {
    o_ = o;
    STRATA_CUDA_OK(cudaSetDevice(o.device), "cudaSetDevice");
    if (stream == nullptr) {
      STRATA_CUDA_OK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "stream");
      own_stream_ = true;
    } else {
      stream_ = stream;
    }
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

  const NcclCollectiveOptions& options() const { return o_; }
  cudaStream_t stream() const { return stream_; }
  Status CheckUsable() const {
    return broken_ ? UnavailableError("NCCL communicator aborted earlier") : OkStatus();
  }

  // One grouped round: for each rank p, send[p] (send_count[p] elements) and recv[p]
  // (recv_count[p]); zero counts are skipped.
  template <typename T>
  Status Round(ncclDataType_t type, T* const* send, const size_t* send_count, T* const* recv,
               const size_t* recv_count) {
    bool peers = false;
    for (int p = 0; p < o_.size; ++p) {
      if (p == o_.rank && o_.self_copy) {
        if (send_count[p] != recv_count[p]) {
          return InternalError("NCCL: this rank's own slot sends and receives different sizes");
        }
        if (send_count[p] > 0) {
          STRATA_CUDA_OK(cudaMemcpyAsync(recv[p], send[p], send_count[p] * sizeof(T),
                                         cudaMemcpyDeviceToDevice, stream_),
                         "copy (own slot)");
        }
        continue;
      }
      peers = peers || send_count[p] > 0 || recv_count[p] > 0;
    }
    if (!peers) return OkStatus();
    STRATA_NCCL_OK(ncclGroupStart(), "group");
    for (int p = 0; p < o_.size; ++p) {
      if (p == o_.rank && o_.self_copy) continue;
      if (send_count[p] > 0) {
        STRATA_NCCL_OK(ncclSend(send[p], send_count[p], type, p, comm_, stream_), "send");
      }
      if (recv_count[p] > 0) {
        STRATA_NCCL_OK(ncclRecv(recv[p], recv_count[p], type, p, comm_, stream_), "recv");
      }
    }
    ncclResult_t r = ncclGroupEnd();
    if (r != ncclSuccess && r != ncclInProgress) return NcclError(r, "ncclGroupEnd");
    return WaitComm();
  }

  // Polls the stream until its work is done; past the deadline, or when a peer failed, aborts.
  // Releases `gate` (optional) while waiting and adds the wait to *wait_ns (optional).
  Status WaitStream(ComputeGate* gate, int64_t* wait_ns) {
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
    if (wait_ns) *wait_ns += MonotonicNanos() - start;
    if (gate) gate->EndWait();
    return st;
  }

 private:
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

  Status Abort(Status why) {
    broken_ = true;
    ncclCommAbort(comm_);
    comm_ = nullptr;
    return why;
  }

  NcclCollectiveOptions o_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  bool own_stream_ = false;
  bool broken_ = false;
};

// Per-rank pointers into a [size][slot_bytes] buffer.
std::vector<uint8_t*> Slots(uint8_t* base, int size, size_t slot_bytes) {
  std::vector<uint8_t*> out(size);
  for (int p = 0; p < size; ++p) out[p] = base + p * slot_bytes;
  return out;
}

class NcclCollective final : public Collective {
 public:
  ~NcclCollective() override {
    comm_.reset();
    for (void* p : {d_send_, d_recv_, d_sizes_}) {
      if (p) cudaFree(p);
    }
    if (h_sizes_) cudaFreeHost(h_sizes_);
  }

  Status Init(const NcclCollectiveOptions& o) {
    STRATA_CUDA_OK(cudaSetDevice(o.device), "cudaSetDevice");
    const size_t bytes = o.max_slot_bytes * o.size;
    STRATA_CUDA_OK(cudaMalloc(&d_send_, bytes), "cudaMalloc");
    STRATA_CUDA_OK(cudaMalloc(&d_recv_, bytes), "cudaMalloc");
    STRATA_CUDA_OK(cudaMalloc(&d_sizes_, 2 * o.size * sizeof(uint64_t)), "cudaMalloc");
    STRATA_CUDA_OK(cudaMallocHost(&h_sizes_, 2 * o.size * sizeof(uint64_t)), "cudaMallocHost");
    comm_ = std::make_unique<NcclComm>();
    return comm_->Init(o, nullptr);
  }

  Status AllToAll(const uint8_t* send, uint8_t* recv, size_t slot_bytes, const size_t* send_bytes,
                  size_t* recv_bytes, ComputeGate* gate, int64_t* wait_ns) override {
    STRATA_RETURN_IF_ERROR(comm_->CheckUsable());
    if (slot_bytes > comm_->options().max_slot_bytes) {
      return InvalidArgumentError("NCCL: slot over capacity");
    }
    const int n = comm_->options().size;
    const int me = comm_->options().rank;
    const bool self_copy = comm_->options().self_copy;
    if (self_copy) {  // this rank's own slot never leaves the host
      if (send_bytes[me] > slot_bytes) return InvalidArgumentError("NCCL: slot over capacity");
      std::memcpy(recv + me * slot_bytes, send + me * slot_bytes, send_bytes[me]);
      recv_bytes[me] = send_bytes[me];
      if (n == 1) return OkStatus();
    }
    cudaStream_t stream = comm_->stream();
    uint64_t* hs = static_cast<uint64_t*>(h_sizes_);
    for (int i = 0; i < n; ++i) hs[i] = send_bytes[i];
    auto* ds = static_cast<uint64_t*>(d_sizes_);
    STRATA_CUDA_OK(cudaMemcpyAsync(ds, hs, n * sizeof(uint64_t), cudaMemcpyHostToDevice, stream),
                   "copy");
    const std::vector<size_t> ones(n, 1);
    std::vector<uint64_t*> size_send(n), size_recv(n);
    for (int p = 0; p < n; ++p) {
      size_send[p] = ds + p;
      size_recv[p] = ds + n + p;
    }
    STRATA_RETURN_IF_ERROR(
        comm_->Round(ncclUint64, size_send.data(), ones.data(), size_recv.data(), ones.data()));
    STRATA_CUDA_OK(
        cudaMemcpyAsync(hs + n, ds + n, n * sizeof(uint64_t), cudaMemcpyDeviceToHost, stream),
        "copy");
    STRATA_RETURN_IF_ERROR(comm_->WaitStream(gate, wait_ns));
    auto* dsend = static_cast<uint8_t*>(d_send_);
    auto* drecv = static_cast<uint8_t*>(d_recv_);
    std::vector<size_t> peer_send(send_bytes, send_bytes + n);
    for (int p = 0; p < n; ++p) {
      if (p == me && self_copy) {
        peer_send[p] = 0;
        continue;
      }
      recv_bytes[p] = hs[n + p];
      if (recv_bytes[p] > slot_bytes) return DataLossError("NCCL: a peer sent over capacity");
      if (send_bytes[p] > 0) {
        STRATA_CUDA_OK(cudaMemcpyAsync(dsend + p * slot_bytes, send + p * slot_bytes, send_bytes[p],
                                       cudaMemcpyHostToDevice, stream),
                       "copy");
      }
    }
    std::vector<size_t> peer_recv(recv_bytes, recv_bytes + n);
    if (self_copy) peer_recv[me] = 0;
    auto send_slots = Slots(dsend, n, slot_bytes), recv_slots = Slots(drecv, n, slot_bytes);
    STRATA_RETURN_IF_ERROR(comm_->Round(ncclUint8, send_slots.data(), peer_send.data(),
                                        recv_slots.data(), peer_recv.data()));
    for (int p = 0; p < n; ++p) {
      if (peer_recv[p] > 0) {
        STRATA_CUDA_OK(cudaMemcpyAsync(recv + p * slot_bytes, drecv + p * slot_bytes, recv_bytes[p],
                                       cudaMemcpyDeviceToHost, stream),
                       "copy");
      }
    }
    return comm_->WaitStream(gate, wait_ns);
  }

 private:
  std::unique_ptr<NcclComm> comm_;
  void* d_send_ = nullptr;
  void* d_recv_ = nullptr;
  void* d_sizes_ = nullptr;
  void* h_sizes_ = nullptr;
};

class DeviceExchange final : public NcclDeviceExchange {
 public:
  ~DeviceExchange() override {
    comm_.reset();
    if (d_recv_sizes_) cudaFree(d_recv_sizes_);
    if (h_recv_sizes_) cudaFreeHost(h_recv_sizes_);
  }

  Status Init(const NcclCollectiveOptions& o, cudaStream_t stream) {
    STRATA_CUDA_OK(cudaSetDevice(o.device), "cudaSetDevice");
    STRATA_CUDA_OK(cudaMalloc(&d_recv_sizes_, o.size * sizeof(uint64_t)), "cudaMalloc");
    STRATA_CUDA_OK(cudaMallocHost(&h_recv_sizes_, o.size * sizeof(uint64_t)), "cudaMallocHost");
    comm_ = std::make_unique<NcclComm>();
    return comm_->Init(o, stream);
  }

  Status ExchangeSizes(const uint64_t* d_send_bytes, size_t* recv_bytes) override {
    STRATA_RETURN_IF_ERROR(comm_->CheckUsable());
    const int n = comm_->options().size;
    const std::vector<size_t> ones(n, 1);
    std::vector<uint64_t*> send(n), recv(n);
    for (int p = 0; p < n; ++p) {
      send[p] = const_cast<uint64_t*>(d_send_bytes + p);  // NCCL only reads a send buffer
      recv[p] = d_recv_sizes_ + p;
    }
    STRATA_RETURN_IF_ERROR(
        comm_->Round(ncclUint64, send.data(), ones.data(), recv.data(), ones.data()));
    STRATA_CUDA_OK(cudaMemcpyAsync(h_recv_sizes_, d_recv_sizes_, n * sizeof(uint64_t),
                                   cudaMemcpyDeviceToHost, comm_->stream()),
                   "copy");
    STRATA_RETURN_IF_ERROR(comm_->WaitStream(nullptr, nullptr));
    for (int p = 0; p < n; ++p) recv_bytes[p] = h_recv_sizes_[p];
    return OkStatus();
  }

  Status Exchange(const void* send, void* recv, size_t slot_bytes, const size_t* send_bytes,
                  const size_t* recv_bytes) override {
    STRATA_RETURN_IF_ERROR(comm_->CheckUsable());
    const int n = comm_->options().size;
    if (slot_bytes > comm_->options().max_slot_bytes) {
      return InvalidArgumentError("NCCL: slot over capacity");
    }
    for (int p = 0; p < n; ++p) {
      if (send_bytes[p] > slot_bytes || recv_bytes[p] > slot_bytes) {
        return InvalidArgumentError(
            "NCCL: " + std::to_string(std::max(send_bytes[p], recv_bytes[p])) + " bytes for rank " +
            std::to_string(p) + " over the slot's " + std::to_string(slot_bytes));
      }
    }
    auto send_slots = Slots(static_cast<uint8_t*>(const_cast<void*>(send)), n, slot_bytes);
    auto recv_slots = Slots(static_cast<uint8_t*>(recv), n, slot_bytes);
    return comm_->Round(ncclUint8, send_slots.data(), send_bytes, recv_slots.data(), recv_bytes);
  }

  Status Synchronize() override { return comm_->WaitStream(nullptr, nullptr); }

 private:
  std::unique_ptr<NcclComm> comm_;
  uint64_t* d_recv_sizes_ = nullptr;
  uint64_t* h_recv_sizes_ = nullptr;
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

StatusOr<std::unique_ptr<NcclDeviceExchange>> CreateNcclDeviceExchange(
    const NcclCollectiveOptions& o, void* stream) {
  if (CudaDeviceCount() == 0) return UnavailableError("NCCL: no CUDA device");
  if (o.size < 1 || o.rank < 0 || o.rank >= o.size || o.max_slot_bytes == 0 || stream == nullptr) {
    return InvalidArgumentError("NCCL: bad rank/size/slot bytes/stream");
  }
  auto x = std::make_unique<DeviceExchange>();
  STRATA_RETURN_IF_ERROR(x->Init(o, static_cast<cudaStream_t>(stream)));
  return std::unique_ptr<NcclDeviceExchange>(std::move(x));
}

}  // namespace strata::expert_parallel
