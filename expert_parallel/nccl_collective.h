// NCCL all-to-all for EP dispatch/combine (compiled when STRATA_WITH_CUDA): each round's host
// slots are copied into pre-allocated device buffers, their sizes exchanged and then the data,
// both as grouped ncclSend/ncclRecv (ncclGroupStart/End) with every other rank (the rank's own
// slot is copied directly, or through NCCL too with self_copy off), and
// copied back. The routing metadata travels inside the messages; only the byte counts need the
// extra (8-byte) exchange, since NCCL receives must know their size.
//
// Every wait polls the stream against a deadline; past it the communicator is aborted
// (ncclCommAbort) and the call fails with kDeadlineExceeded -- a dead peer never hangs a rank.
// Thread-safety: one call at a time (the endpoint serializes the streams' rounds per
// collective: give each microbatch stream its own NcclCollective, or use num_streams = 1).
//
// NcclDeviceExchange is the same all-to-all for a forward that keeps its tokens on the GPU:
// buffers are device memory in the same slot layout, and the work is enqueued on the caller's
// stream, so a microbatch's exchange runs while another stream computes.
#pragma once

#include <memory>
#include <string>

#include "expert_parallel/collective.h"

namespace strata::expert_parallel {

struct NcclCollectiveOptions {
  int rank = 0;
  int size = 1;
  int device = 0;
  size_t max_slot_bytes = 0;  // the endpoint's largest slot (dispatch or combine capacity)
  int64_t timeout_ms = 30000;
  // This rank's own slot is copied directly (host memcpy for the host-staged collective, a
  // device copy for the device exchange) instead of through NCCL, whose send-to-self costs tens
  // of microseconds per round. false: through NCCL like every other slot (tests use it to run
  // the NCCL path on one GPU).
  bool self_copy = true;
  // 128 bytes of ncclUniqueId from rank 0 (ncclGetUniqueId), carried out of band; empty with
  // size 1 (made here).
  std::string unique_id;
};

// kUnavailable when there is no CUDA device or NCCL fails to initialize.
StatusOr<std::unique_ptr<Collective>> CreateNcclCollective(const NcclCollectiveOptions& options);
class NcclDeviceExchange {
 public:
  virtual ~NcclDeviceExchange() = default;
  // Dispatch knows its byte counts only on the device (routing ran there). Enqueues the
  // exchange of d_send_bytes (device, uint64[size]: bytes for each rank) after the work already
  // on the stream, then waits on the host (at most the timeout) for the peers' counts, which
  // NCCL receives need, and writes them to recv_bytes (host, [size]).
  virtual Status ExchangeSizes(const uint64_t* d_send_bytes, size_t* recv_bytes) = 0;
  // Enqueues the data: send_bytes[p] bytes of send slot p to rank p, recv_bytes[q] bytes from
  // rank q into recv slot q (send/recv: device, [size][slot_bytes]). Returns without waiting.
  // Combine sends back what dispatch received, so it calls this alone with the two swapped.
  virtual Status Exchange(const void* send, void* recv, size_t slot_bytes, const size_t* send_bytes,
                          const size_t* recv_bytes) = 0;
  // Waits (at most the timeout) for everything enqueued on the stream.
  virtual Status Synchronize() = 0;
};

// One exchange per stream (cudaStream_t `stream`, which must outlive it): give each microbatch
// stream its own. kUnavailable when there is no CUDA device or NCCL fails to initialize.
StatusOr<std::unique_ptr<NcclDeviceExchange>> CreateNcclDeviceExchange(
    const NcclCollectiveOptions& options, void* stream);

// A fresh ncclUniqueId for rank 0 to hand to the others.
StatusOr<std::string> NewNcclUniqueId();
// Number of CUDA devices (0 without a GPU or a driver).
int CudaDeviceCount();

}  // namespace strata::expert_parallel
