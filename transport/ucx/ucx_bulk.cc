// Put/Get of the UCX transport: the RMA path and the active-message path (see ucx_transport.h),
// both the initiator's side and the target's AM handlers.
#include <cstdint>
#include <cstring>
#include <future>
#include <memory>
#include <shared_mutex>

#include "common/log.h"
#include "transport/batch_statuses.h"
#include "transport/ucx/ucx_transport_impl.h"

namespace strata::transport::ucx {
namespace {

// Upper bound of unpacked remote keys cached per peer (descriptors come from our own layers,
// which register few large regions; the bound keeps a confused peer from growing it forever).
constexpr size_t kMaxRemoteKeysPerPeer = 4096;

// A direct copy of at least this many bytes bypasses the caches (non-temporal stores): a copy
// that large would push much of the last-level cache out anyway, and writing it through the
// cache would first read every line of it. Smaller copies go through the cache, where the reader
// (decode's next step, a pool Get soon after) finds them. Measured A/B on the development VM
// (transport bench, sm, 8 in flight into the same destination, as ucx_perftest's put_bw):
// 1 MiB 22-24 -> 38-63 GB/s and 4 MiB 33 -> 55-83 GB/s with the threshold at 8 MiB instead of
// 1 MiB; KV pool Puts into cold slots at 1-4 MiB unchanged within the noise.
constexpr size_t kStreamingCopyBytes = size_t{8} << 20;

Status StatusFromWire(int32_t code, std::string message) {
  if (code == 0) return OkStatus();
  // Codes of common/status.h; anything else from a newer peer is kUnknown.
  const bool known = (code > 0 && code <= static_cast<int>(StatusCode::kUnauthenticated)) ||
                     code == static_cast<int>(StatusCode::kPayloadTooLarge);
  return Status(known ? static_cast<StatusCode>(code) : StatusCode::kUnknown,
                "from peer: " + message);
}

struct OpRequest {
  UcxTransportImpl* impl;
  uint64_t op_id;
};

void OnOpSendDone(void* request, ucs_status_t status, void* user_data) {
  auto* op = static_cast<OpRequest*>(user_data);
  --op->impl->inflight_;
  op->impl->CompleteOp(op->op_id, status == UCS_OK ? OkStatus() : UcsError("transfer", status));
  delete op;
  ucp_request_free(request);
}

void OnOpRecvDone(void* request, ucs_status_t status, size_t, void* user_data) {
  OnOpSendDone(request, status, user_data);
}

struct PutRecv {
  UcxTransportImpl* impl;
  PeerId peer;
  uint64_t op_id;
};

void OnPutDataReceived(void* request, ucs_status_t status, size_t, void* user_data) {
  auto* recv = static_cast<PutRecv*>(user_data);
  --recv->impl->inflight_;
  recv->impl->FinishPutData(recv->peer, recv->op_id, status);
  delete recv;
  ucp_request_free(request);
}

}  // namespace

void UcxTransportImpl::Put(const Transfer& transfer, Completion done) {
  StartTransfer(transfer, std::move(done), /*is_put=*/true);
}

void UcxTransportImpl::Get(const Transfer& transfer, Completion done) {
  StartTransfer(transfer, std::move(done), /*is_put=*/false);
}

void UcxTransportImpl::StartTransfer(const Transfer& transfer, Completion done, bool is_put) {
  Status valid = ValidateTransfer(transfer);
  std::unique_lock<std::mutex> lock(state_mu_);
  if (shut_down_) {
    lock.unlock();
    return done(CancelledError("transport shut down"));
  }
  // Posted under state_mu_ so that Shutdown, which posts its stop after setting shut_down_,
  // always finds this command queued ahead of it.
  Post([this, transfer, done = std::move(done), is_put, valid = std::move(valid)]() mutable {
    StartOnThread(transfer, std::move(done), is_put, std::move(valid));
  });
}

void UcxTransportImpl::PutBatch(std::vector<Transfer> transfers, BatchCompletion done) {
  StartBatch(std::move(transfers), std::move(done), /*is_put=*/true);
}

void UcxTransportImpl::GetBatch(std::vector<Transfer> transfers, BatchCompletion done) {
  StartBatch(std::move(transfers), std::move(done), /*is_put=*/false);
}

void UcxTransportImpl::StartBatch(std::vector<Transfer> transfers, BatchCompletion done,
                                  bool is_put) {
  if (transfers.empty()) return done({});
  std::vector<Status> valid;
  valid.reserve(transfers.size());
  for (const Transfer& transfer : transfers) valid.push_back(ValidateTransfer(transfer));
  std::unique_lock<std::mutex> lock(state_mu_);
  if (shut_down_) {
    lock.unlock();
    return done(std::vector<Status>(transfers.size(), CancelledError("transport shut down")));
  }
  Post([this, transfers = std::move(transfers), done = std::move(done), is_put,
        valid = std::move(valid)]() mutable {
    auto batch = std::make_shared<BatchStatuses>(transfers.size(), std::move(done));
    // Same-host copies are gathered and done together below; the rest start as alone.
    std::vector<CopyPiece> pieces;
    std::vector<size_t> copied;
    uint64_t copy_bytes = 0;
    for (size_t i = 0; i < transfers.size(); ++i) {
      const Transfer& transfer = transfers[i];
      Peer* peer = valid[i].ok() && !stopping_ ? FindPeer(transfer.peer) : nullptr;
      if (peer != nullptr && peer->state == Peer::State::kOpen && peer->same_host && sm_enabled_ &&
          MonoClock::now() <= transfer.deadline) {
        if (void* mapped = DirectAddress(*peer, transfer)) {
          void* local = static_cast<uint8_t*>(transfer.local->data()) + transfer.local_offset;
          pieces.push_back(is_put ? CopyPiece{mapped, local, transfer.length}
                                  : CopyPiece{local, mapped, transfer.length});
          copied.push_back(i);
          copy_bytes += transfer.length;
          continue;
        }
      }
      StartOnThread(
          transfer,
          [batch, i](Status status) {
            if (batch->Record(i, std::move(status))) batch->Report();
          },
          is_put, std::move(valid[i]));
    }
    if (copied.empty()) return;
    copier_->CopyMany(pieces, copy_bytes >= kStreamingCopyBytes);
    // The others' completions run as events, after this command: if the last transfer is one
    // copied here, its report goes the same way.
    bool last = false;
    for (size_t i : copied) last = batch->Record(i, OkStatus()) || last;
    if (last) events_.push_back([batch] { batch->Report(); });
  });
}

void UcxTransportImpl::StartOnThread(const Transfer& transfer, Completion done, bool is_put,
                                     Status valid) {
  if (!valid.ok()) {
    events_.push_back([done = std::move(done), valid] { done(valid); });
    return;
  }
  Peer* peer = FindPeer(transfer.peer);
  if (stopping_ || peer == nullptr || peer->state != Peer::State::kOpen) {
    Status why =
        stopping_ ? CancelledError("transport shut down")
                  : UnavailableError("peer " + std::to_string(transfer.peer) + " is not connected");
    {
      std::lock_guard<std::mutex> lock(state_mu_);
      auto it = peer_status_.find(transfer.peer);
      if (!stopping_ && it != peer_status_.end() && !it->second.ok()) why = it->second;
    }
    events_.push_back([done = std::move(done), why] { done(why); });
    return;
  }
  const uint64_t op_id = next_op_++;
  PendingOp& op = ops_[op_id];
  op.kind = peer->use_rma ? (is_put ? PendingOp::Kind::kRmaPut : PendingOp::Kind::kRmaGet)
                          : (is_put ? PendingOp::Kind::kAmPut : PendingOp::Kind::kAmGet);
  op.peer = transfer.peer;
  op.done = std::move(done);
  op.deadline = transfer.deadline;
  op.local = static_cast<uint8_t*>(transfer.local->data()) + transfer.local_offset;
  op.length = transfer.length;
  if (MonoClock::now() > transfer.deadline) {
    return CompleteOp(op_id, DeadlineExceededError("transfer deadline passed before it started"));
  }
  if (peer->same_host && sm_enabled_ && TryDirectCopy(op_id, *peer, transfer, is_put)) return;
  switch (op.kind) {
    case PendingOp::Kind::kRmaPut:
      return StartRmaPut(op_id, *peer, transfer);
    case PendingOp::Kind::kRmaGet:
      return StartRmaGet(op_id, *peer, transfer);
    case PendingOp::Kind::kAmPut:
      return StartAmPut(op_id, *peer, transfer);
    case PendingOp::Kind::kAmGet:
      return StartAmGet(op_id, *peer, transfer);
  }
}

void UcxTransportImpl::CompleteOp(uint64_t op_id, Status status) {
  auto it = ops_.find(op_id);
  if (it == ops_.end()) return;  // already completed (e.g. failed, then UCX canceled it)
  Completion done = std::move(it->second.done);
  if (it->second.forced) status = *it->second.forced;
  ops_.erase(it);
  events_.push_back([done = std::move(done), status = std::move(status)] { done(status); });
}

StatusOr<ucp_rkey_h> UcxTransportImpl::RemoteKey(Peer& peer, const std::string& packed) {
  auto it = peer.rkeys.find(packed);
  if (it != peer.rkeys.end()) return it->second;
  if (peer.rkeys.size() >= kMaxRemoteKeysPerPeer) {
    return ResourceExhaustedError("too many distinct remote keys for one peer");
  }
  ucp_rkey_h rkey = nullptr;
  const ucs_status_t status = ucp_ep_rkey_unpack(peer.ep, packed.data(), &rkey);
  if (status != UCS_OK) {
    return InvalidArgumentError(std::string("remote key does not unpack: ") +
                                ucs_status_string(status));
  }
  peer.rkeys.emplace(packed, rkey);
  return rkey;
}

void* UcxTransportImpl::DirectAddress(Peer& peer, const Transfer& transfer) {
  auto rkey = RemoteKey(peer, transfer.remote.packed_key);
  if (!rkey.ok()) return nullptr;
  void* mapped = nullptr;
  // UCS_ERR_UNREACHABLE for memory that is not shared (RegisterMemory of user memory). Like
  // RMA, this trusts the descriptor's address and length (ValidateTransfer checked the offsets
  // against them); the mapping outlives the peer, so a dead peer cannot fault this copy.
  if (ucp_rkey_ptr(*rkey, transfer.remote.address + transfer.remote_offset, &mapped) != UCS_OK) {
    return nullptr;
  }
  return mapped;
}

bool UcxTransportImpl::TryDirectCopy(uint64_t op_id, Peer& peer, const Transfer& transfer,
                                     bool is_put) {
  void* mapped = DirectAddress(peer, transfer);
  if (mapped == nullptr) return false;
  uint8_t* local = ops_[op_id].local;
  void* dst = is_put ? mapped : static_cast<void*>(local);
  const void* src = is_put ? static_cast<const void*>(local) : mapped;
  copier_->Copy(dst, src, transfer.length, transfer.length >= kStreamingCopyBytes);
  CompleteOp(op_id, OkStatus());
  return true;
}

namespace {

class UcxRemoteMapping : public RemoteMapping {
 public:
  UcxRemoteMapping(std::shared_ptr<MappingGuard> guard, const uint8_t* base, uint64_t size)
      : guard_(std::move(guard)), base_(base), size_(size) {}
  uint64_t size() const override { return size_; }
  bool Access(const std::function<void(const uint8_t* base)>& read) const override {
    std::shared_lock<std::shared_mutex> lock(guard_->mu);
    if (!guard_->alive) return false;
    read(base_);
    return true;
  }

 private:
  std::shared_ptr<MappingGuard> guard_;
  const uint8_t* base_;
  uint64_t size_;
};

}  // namespace

StatusOr<std::shared_ptr<RemoteMapping>> UcxTransportImpl::MapRemote(PeerId peer_id,
                                                                     const RemoteRegion& remote,
                                                                     Deadline deadline) {
  if (!sm_enabled_) {
    return UnimplementedError("UCX without shared memory (UCX_TLS) cannot map a peer's memory");
  }
  if (remote.packed_key.empty() || remote.length == 0) {
    return InvalidArgumentError("a remote region to map needs a packed key and a length");
  }
  using Result = StatusOr<std::shared_ptr<RemoteMapping>>;
  auto promise = std::make_shared<std::promise<Result>>();
  auto future = promise->get_future();
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (shut_down_) return FailedPreconditionError("transport is shut down");
  }
  Post([this, peer_id, remote, promise] {
    Peer* peer = FindPeer(peer_id);
    if (stopping_ || peer == nullptr || peer->state != Peer::State::kOpen) {
      promise->set_value(UnavailableError("peer " + std::to_string(peer_id) + " is not open"));
      return;
    }
    if (!peer->same_host) {
      promise->set_value(UnimplementedError("peer " + std::to_string(peer_id) +
                                            " is on another host: its memory cannot be mapped"));
      return;
    }
    auto rkey = RemoteKey(*peer, remote.packed_key);
    if (!rkey.ok()) {
      promise->set_value(rkey.status());
      return;
    }
    void* mapped = nullptr;
    if (ucp_rkey_ptr(*rkey, remote.address, &mapped) != UCS_OK) {
      promise->set_value(FailedPreconditionError(
          "the peer's region is not shared memory (RegisterMemory, not AllocateMemory)"));
      return;
    }
    if (!peer->mapping_guard) peer->mapping_guard = std::make_shared<MappingGuard>();
    promise->set_value(std::shared_ptr<RemoteMapping>(std::make_shared<UcxRemoteMapping>(
        peer->mapping_guard, static_cast<const uint8_t*>(mapped), remote.length)));
  });
  if (future.wait_until(deadline) != std::future_status::ready) {
    return DeadlineExceededError("mapping a peer's memory did not finish before the deadline");
  }
  return future.get();
}

void UcxTransportImpl::StartRmaPut(uint64_t op_id, Peer& peer, const Transfer& transfer) {
  auto rkey = RemoteKey(peer, transfer.remote.packed_key);
  if (!rkey.ok()) return CompleteOp(op_id, rkey.status());
  ucp_request_param_t param{};
  void* request = ucp_put_nbx(peer.ep, ops_[op_id].local, transfer.length,
                              transfer.remote.address + transfer.remote_offset, *rkey, &param);
  if (UCS_PTR_IS_ERR(request)) {
    return CompleteOp(op_id, UcsError("ucp_put_nbx", UCS_PTR_STATUS(request)));
  }
  if (UCS_PTR_IS_PTR(request)) ucp_request_free(request);  // released when it completes
  // A put's own completion only frees the source buffer; the flush completes when the data is
  // in place at the target, which is what the Completion promises.
  auto* context = new OpRequest{this, op_id};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = &OnOpSendDone;
  param.user_data = context;
  void* flush = ucp_ep_flush_nbx(peer.ep, &param);
  if (UCS_PTR_IS_PTR(flush)) {
    ++inflight_;
    return;
  }
  delete context;
  const ucs_status_t status = UCS_PTR_STATUS(flush);
  CompleteOp(op_id, status == UCS_OK ? OkStatus() : UcsError("ucp_ep_flush_nbx", status));
}

void UcxTransportImpl::StartRmaGet(uint64_t op_id, Peer& peer, const Transfer& transfer) {
  auto rkey = RemoteKey(peer, transfer.remote.packed_key);
  if (!rkey.ok()) return CompleteOp(op_id, rkey.status());
  auto* context = new OpRequest{this, op_id};
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = &OnOpSendDone;
  param.user_data = context;
  void* request = ucp_get_nbx(peer.ep, ops_[op_id].local, transfer.length,
                              transfer.remote.address + transfer.remote_offset, *rkey, &param);
  if (UCS_PTR_IS_PTR(request)) {
    ++inflight_;
    return;
  }
  delete context;
  const ucs_status_t status = UCS_PTR_STATUS(request);
  CompleteOp(op_id, status == UCS_OK ? OkStatus() : UcsError("ucp_get_nbx", status));
}

void UcxTransportImpl::StartAmPut(uint64_t op_id, Peer& peer, const Transfer& transfer) {
  const BulkHeader header{peer.remote_id,  op_id, transfer.remote.address + transfer.remote_offset,
                          transfer.length, 0,     0};
  // Completes on the target's ack (data in place); a failed send completes it early.
  SendAm(peer.ep, kAmPutData, &header, sizeof(header), ops_[op_id].local, transfer.length,
         std::string(), [this, op_id](Status status) { CompleteOp(op_id, std::move(status)); });
}

void UcxTransportImpl::StartAmGet(uint64_t op_id, Peer& peer, const Transfer& transfer) {
  const BulkHeader header{peer.remote_id,  op_id, transfer.remote.address + transfer.remote_offset,
                          transfer.length, 0,     0};
  SendAm(peer.ep, kAmGetRequest, &header, sizeof(header), nullptr, 0, std::string(),
         [this, op_id](Status status) { CompleteOp(op_id, std::move(status)); });
}

void UcxTransportImpl::SendBulkReply(Peer& peer, unsigned am_id, uint64_t op_id,
                                     const Status& status) {
  const BulkHeader header{peer.remote_id, op_id, 0, 0, static_cast<int32_t>(status.code()), 0};
  SendAm(peer.ep, am_id, &header, sizeof(header), nullptr, 0, status.message(), nullptr);
}

// ---------------------------------------------------------------- target side (AM handlers)

ucs_status_t UcxTransportImpl::HandlePutData(Peer& peer, const BulkHeader& header, void* data,
                                             size_t length, bool rendezvous) {
  if (header.length != length || !context_->regions().Contains(header.address, length)) {
    SendBulkReply(peer, kAmPutAck, header.op_id,
                  InvalidArgumentError("put of " + std::to_string(length) +
                                       " bytes is outside the target's registered regions"));
    return rendezvous ? UCS_ERR_INVALID_PARAM : UCS_OK;
  }
  auto* target = reinterpret_cast<void*>(header.address);
  if (!rendezvous) {
    std::memcpy(target, data, length);
    SendBulkReply(peer, kAmPutAck, header.op_id, OkStatus());
    return UCS_OK;
  }
  // Rendezvous: UCX moves the bytes straight into the registered region (zero-copy where the
  // transport allows), then we acknowledge. The receive starts inside this callback, as UCX
  // allows, so that the data starts moving at once.
  auto* recv = new PutRecv{this, peer.id, header.op_id};
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.recv_am = &OnPutDataReceived;
  param.user_data = recv;
  void* request = ucp_am_recv_data_nbx(worker_, data, target, length, &param);
  if (UCS_PTR_IS_PTR(request)) {
    ++inflight_;
    return UCS_INPROGRESS;
  }
  delete recv;
  const PeerId id = peer.id;
  const uint64_t op_id = header.op_id;
  const ucs_status_t status = UCS_PTR_STATUS(request);
  deferred_.push_back([this, id, op_id, status] { FinishPutData(id, op_id, status); });
  return UCS_INPROGRESS;
}

void UcxTransportImpl::FinishPutData(PeerId id, uint64_t op_id, ucs_status_t status) {
  Peer* peer = FindPeer(id);
  if (!Receives(peer)) return;
  SendBulkReply(*peer, kAmPutAck, op_id,
                status == UCS_OK ? OkStatus() : UcsError("receiving put data", status));
}

ucs_status_t UcxTransportImpl::HandlePutAck(Peer& peer, const BulkHeader& header, void* data,
                                            size_t length, bool rendezvous) {
  auto it = ops_.find(header.op_id);
  if (it == ops_.end() || it->second.peer != peer.id ||
      it->second.kind != PendingOp::Kind::kAmPut) {
    return rendezvous ? UCS_ERR_CANCELED : UCS_OK;  // a late ack of a transfer that timed out
  }
  std::string message =
      rendezvous ? "(error text too long)" : std::string(static_cast<const char*>(data), length);
  CompleteOp(header.op_id, StatusFromWire(header.status, std::move(message)));
  return rendezvous ? UCS_ERR_CANCELED : UCS_OK;
}

ucs_status_t UcxTransportImpl::HandleGetRequest(Peer& peer, const BulkHeader& header) {
  if (header.length == 0 || !context_->regions().Contains(header.address, header.length)) {
    SendBulkReply(peer, kAmGetData, header.op_id,
                  InvalidArgumentError("get of " + std::to_string(header.length) +
                                       " bytes is outside the target's registered regions"));
    return UCS_OK;
  }
  // The bytes go straight from the registered region (the owner keeps it registered while
  // peers may read it, per the Region contract).
  const BulkHeader reply{peer.remote_id, header.op_id, header.address, header.length, 0, 0};
  SendAm(peer.ep, kAmGetData, &reply, sizeof(reply), reinterpret_cast<const void*>(header.address),
         header.length, std::string(), nullptr);
  return UCS_OK;
}

ucs_status_t UcxTransportImpl::HandleGetData(Peer& peer, const BulkHeader& header, void* data,
                                             size_t length, bool rendezvous) {
  const ucs_status_t drop = rendezvous ? UCS_ERR_CANCELED : UCS_OK;
  auto it = ops_.find(header.op_id);
  if (it == ops_.end() || it->second.peer != peer.id ||
      it->second.kind != PendingOp::Kind::kAmGet) {
    return drop;  // a late reply to a transfer that timed out
  }
  if (header.status != 0) {
    std::string message =
        rendezvous ? "(error text too long)" : std::string(static_cast<const char*>(data), length);
    CompleteOp(header.op_id, StatusFromWire(header.status, std::move(message)));
    return drop;
  }
  if (length != it->second.length) {
    CompleteOp(header.op_id,
               DataLossError("get returned " + std::to_string(length) + " bytes, expected " +
                             std::to_string(it->second.length)));
    return drop;
  }
  if (!rendezvous) {
    std::memcpy(it->second.local, data, length);
    CompleteOp(header.op_id, OkStatus());
    return UCS_OK;
  }
  auto* context = new OpRequest{this, header.op_id};
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.recv_am = &OnOpRecvDone;
  param.user_data = context;
  void* request = ucp_am_recv_data_nbx(worker_, data, it->second.local, length, &param);
  if (UCS_PTR_IS_PTR(request)) {
    ++inflight_;
    return UCS_INPROGRESS;
  }
  delete context;
  const ucs_status_t status = UCS_PTR_STATUS(request);
  CompleteOp(header.op_id, status == UCS_OK ? OkStatus() : UcsError("receiving get data", status));
  return UCS_INPROGRESS;
}

}  // namespace strata::transport::ucx
