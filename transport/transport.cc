#include "transport/transport.h"

#include <cstdlib>
#include <memory>
#include <string>

#include "transport/batch_statuses.h"

namespace strata::transport {

Status ValidateTransfer(const Transfer& transfer) {
  if (transfer.peer == kInvalidPeer) return InvalidArgumentError("transfer names no peer");
  if (transfer.local == nullptr) return InvalidArgumentError("transfer has no local region");
  if (transfer.length == 0) return InvalidArgumentError("transfer of 0 bytes");
  const uint64_t local_size = transfer.local->size();
  if (transfer.local_offset > local_size || transfer.length > local_size - transfer.local_offset) {
    return InvalidArgumentError("local range [" + std::to_string(transfer.local_offset) + ", +" +
                                std::to_string(transfer.length) + ") is outside the region of " +
                                std::to_string(local_size) + " bytes");
  }
  const uint64_t remote_size = transfer.remote.length;
  if (transfer.remote_offset > remote_size ||
      transfer.length > remote_size - transfer.remote_offset) {
    return InvalidArgumentError("remote range [" + std::to_string(transfer.remote_offset) + ", +" +
                                std::to_string(transfer.length) +
                                ") is outside the remote region of " + std::to_string(remote_size) +
                                " bytes");
  }
  if (transfer.remote.packed_key.empty()) {
    return InvalidArgumentError("remote region has no packed key");
  }
  return OkStatus();
}

namespace {

// Heap memory plus its registration; the registration goes first.
class OwnedRegion : public Region {
 public:
  OwnedRegion(void* memory, std::unique_ptr<Region> registered)
      : memory_(memory), registered_(std::move(registered)) {}
  ~OwnedRegion() override {
    registered_.reset();
    std::free(memory_);
  }
  void* data() const override { return registered_->data(); }
  uint64_t size() const override { return registered_->size(); }
  const RemoteRegion& remote() const override { return registered_->remote(); }

 private:
  void* memory_;
  std::unique_ptr<Region> registered_;
};

// A batch's transfers started one by one; the last completion reports them all.
void StartEach(Transport& transport, std::vector<Transfer> transfers, BatchCompletion done,
               bool is_put) {
  if (transfers.empty()) return done({});
  auto batch = std::make_shared<BatchStatuses>(transfers.size(), std::move(done));
  for (size_t i = 0; i < transfers.size(); ++i) {
    Completion one = [batch, i](Status status) {
      if (batch->Record(i, std::move(status))) batch->Report();
    };
    if (is_put) {
      transport.Put(transfers[i], std::move(one));
    } else {
      transport.Get(transfers[i], std::move(one));
    }
  }
}

}  // namespace

void Transport::PutBatch(std::vector<Transfer> transfers, BatchCompletion done) {
  StartEach(*this, std::move(transfers), std::move(done), /*is_put=*/true);
}

void Transport::GetBatch(std::vector<Transfer> transfers, BatchCompletion done) {
  StartEach(*this, std::move(transfers), std::move(done), /*is_put=*/false);
}

StatusOr<std::shared_ptr<RemoteMapping>> Transport::MapRemote(PeerId, const RemoteRegion&,
                                                              Deadline) {
  return UnimplementedError(name() + " cannot map a peer's memory");
}

StatusOr<std::unique_ptr<Region>> Transport::AllocateMemory(uint64_t bytes) {
  constexpr uint64_t kPage = 4096;
  if (bytes == 0) return InvalidArgumentError("cannot allocate 0 bytes");
  if (bytes > (uint64_t{1} << 48)) {
    return InvalidArgumentError("cannot allocate " + std::to_string(bytes) + " bytes");
  }
  void* memory = std::aligned_alloc(kPage, (bytes + kPage - 1) / kPage * kPage);
  if (memory == nullptr) {
    return ResourceExhaustedError("allocating " + std::to_string(bytes) + " bytes failed");
  }
  auto registered = RegisterMemory(memory, bytes);
  if (!registered.ok()) {
    std::free(memory);
    return registered.status();
  }
  return std::unique_ptr<Region>(std::make_unique<OwnedRegion>(memory, std::move(*registered)));
}

}  // namespace strata::transport
