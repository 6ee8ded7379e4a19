#include "transport/inproc/inproc_transport.h"

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

namespace strata::transport {
namespace {

class Core;

// The shared state of one transport that peers reach through weak pointers: its dispatch queue,
// its links and its registered regions.
class Core : public std::enable_shared_from_this<Core> {
 public:
  explicit Core(uint64_t instance_id) : instance_id_(instance_id) {}

  uint64_t instance_id() const { return instance_id_; }

  // Queues a callback for the dispatch thread; false once the transport is stopping.
  bool Enqueue(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      if (stopping_) return false;
      queue_.push_back(std::move(task));
    }
    queue_cv_.notify_one();
    return true;
  }

  void RunDispatch() {
    std::unique_lock<std::mutex> lock(queue_mu_);
    for (;;) {
      queue_cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;  // stopping and drained
      auto task = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  // Stops taking tasks; the dispatch thread drains what is queued, then exits.
  void StopQueue() {
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
  }
  bool stopping() const {
    std::lock_guard<std::mutex> lock(queue_mu_);
    return stopping_;
  }

  struct Link {
    std::weak_ptr<Core> remote;
    PeerId remote_peer = kInvalidPeer;  // our id at the remote side
  };

  std::atomic<PeerId> next_peer{1};
  std::mutex links_mu;
  std::unordered_map<PeerId, Link> links;
  std::unordered_map<PeerId, Status> closed;  // why a former peer is gone
  Handlers handlers;                          // fixed before any link exists

  struct RegionEntry {
    uint8_t* data;
    uint64_t size;
  };
  std::shared_mutex regions_mu;  // exclusive to (de)register, shared while copying
  std::unordered_map<uint64_t, RegionEntry> regions;
  std::atomic<uint64_t> next_region{1};

 private:
  const uint64_t instance_id_;
  mutable std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
};

}  // namespace

class InprocFabric {
 public:
  std::mutex mu;
  std::map<std::string, std::weak_ptr<Core>> listeners;
  uint64_t next_port = 1;
  std::atomic<uint64_t> next_instance{1};
};

std::shared_ptr<InprocFabric> NewInprocFabric() { return std::make_shared<InprocFabric>(); }

namespace {

std::string PackKey(uint64_t instance_id, uint64_t region_id) {
  std::string key(16, '\0');
  std::memcpy(key.data(), &instance_id, 8);
  std::memcpy(key.data() + 8, &region_id, 8);
  return key;
}

class InprocRegion : public Region {
 public:
  InprocRegion(std::weak_ptr<Core> core, uint64_t id, void* data, uint64_t size,
               RemoteRegion remote)
      : core_(std::move(core)), id_(id), data_(data), size_(size), remote_(std::move(remote)) {}
  ~InprocRegion() override {
    if (auto core = core_.lock()) {
      std::unique_lock<std::shared_mutex> lock(core->regions_mu);
      core->regions.erase(id_);
    }
  }
  void* data() const override { return data_; }
  uint64_t size() const override { return size_; }
  const RemoteRegion& remote() const override { return remote_; }

 private:
  std::weak_ptr<Core> core_;
  uint64_t id_;
  void* data_;
  uint64_t size_;
  RemoteRegion remote_;
};

class InprocTransport : public Transport {
 public:
  explicit InprocTransport(std::shared_ptr<InprocFabric> fabric)
      : fabric_(std::move(fabric)), core_(std::make_shared<Core>(fabric_->next_instance++)) {
    thread_ = std::thread([core = core_] { core->RunDispatch(); });
  }
  ~InprocTransport() override { Shutdown(); }

  std::string name() const override { return "inproc"; }

  Status SetHandlers(Handlers handlers) override {
    std::lock_guard<std::mutex> lock(core_->links_mu);
    if (started_) return FailedPreconditionError("SetHandlers after Listen/Connect");
    core_->handlers = std::move(handlers);
    return OkStatus();
  }

  StatusOr<std::string> Listen(const std::string& address) override {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return InvalidArgumentError("inproc address must be name:port, got '" + address + "'");
    }
    std::string bound = address;
    {
      std::lock_guard<std::mutex> lock(core_->links_mu);
      if (listening_) return FailedPreconditionError("already listening at " + listen_address_);
      started_ = true;
    }
    {
      std::lock_guard<std::mutex> lock(fabric_->mu);
      if (address.substr(colon + 1) == "0") {
        do {
          bound = address.substr(0, colon) + ":" + std::to_string(fabric_->next_port++);
        } while (fabric_->listeners.count(bound) != 0);
      }
      auto it = fabric_->listeners.find(bound);
      if (it != fabric_->listeners.end() && !it->second.expired()) {
        return InvalidArgumentError("inproc address " + bound + " is in use");
      }
      fabric_->listeners[bound] = core_;
    }
    std::lock_guard<std::mutex> lock(core_->links_mu);
    listening_ = true;
    listen_address_ = bound;
    return bound;
  }

  StatusOr<PeerId> Connect(const std::string& address, Deadline deadline) override {
    if (MonoClock::now() > deadline)
      return DeadlineExceededError("connect deadline already passed");
    if (core_->stopping()) return FailedPreconditionError("transport is shut down");
    std::shared_ptr<Core> remote;
    {
      std::lock_guard<std::mutex> lock(fabric_->mu);
      auto it = fabric_->listeners.find(address);
      if (it != fabric_->listeners.end()) remote = it->second.lock();
    }
    if (remote == nullptr || remote->stopping()) {
      return UnavailableError("no inproc listener at " + address);
    }
    {
      std::lock_guard<std::mutex> lock(core_->links_mu);
      started_ = true;
    }
    const PeerId local_id = core_->next_peer++;
    const PeerId remote_id = remote->next_peer++;
    {
      std::lock_guard<std::mutex> lock(core_->links_mu);
      core_->links[local_id] = Core::Link{remote, remote_id};
    }
    {
      std::lock_guard<std::mutex> lock(remote->links_mu);
      remote->links[remote_id] = Core::Link{core_, local_id};
    }
    std::weak_ptr<Core> weak_remote = remote;
    remote->Enqueue([weak_remote, remote_id] {
      auto core = weak_remote.lock();
      if (core && core->handlers.on_peer_connected) {
        core->handlers.on_peer_connected(remote_id, "inproc-peer");
      }
    });
    return local_id;
  }

  Status Send(PeerId peer, MessageType type, std::string payload) override {
    if (type >= kFirstReservedMessageType) {
      return InvalidArgumentError("message type " + std::to_string(type) + " is reserved");
    }
    STRATA_ASSIGN_OR_RETURN(Core::Link link, FindLink(peer));
    auto remote = link.remote.lock();
    if (remote == nullptr) return UnavailableError("peer " + std::to_string(peer) + " is gone");
    std::weak_ptr<Core> weak_remote = remote;
    const bool queued = remote->Enqueue(
        [weak_remote, message = Message{link.remote_peer, type, std::move(payload)}]() mutable {
          auto core = weak_remote.lock();
          if (core == nullptr || !core->handlers.on_message) return;
          {
            std::lock_guard<std::mutex> lock(core->links_mu);
            // Messages still queued when the link closed are dropped, as on a real network.
            if (core->links.count(message.peer) == 0) return;
          }
          core->handlers.on_message(std::move(message));
        });
    if (!queued) return UnavailableError("peer " + std::to_string(peer) + " is shutting down");
    return OkStatus();
  }

  StatusOr<std::unique_ptr<Region>> RegisterMemory(void* data, uint64_t bytes) override {
    if (data == nullptr || bytes == 0) return InvalidArgumentError("cannot register empty memory");
    const uint64_t id = core_->next_region++;
    {
      std::unique_lock<std::shared_mutex> lock(core_->regions_mu);
      core_->regions[id] = Core::RegionEntry{static_cast<uint8_t*>(data), bytes};
    }
    RemoteRegion remote{reinterpret_cast<uint64_t>(data), bytes, PackKey(core_->instance_id(), id)};
    return std::unique_ptr<Region>(
        std::make_unique<InprocRegion>(core_, id, data, bytes, std::move(remote)));
  }

  void Put(const Transfer& transfer, Completion done) override {
    StartCopy(transfer, /*to_remote=*/true, std::move(done));
  }
  void Get(const Transfer& transfer, Completion done) override {
    StartCopy(transfer, /*to_remote=*/false, std::move(done));
  }

  Status Disconnect(PeerId peer) override {
    Core::Link link;
    {
      std::lock_guard<std::mutex> lock(core_->links_mu);
      auto it = core_->links.find(peer);
      if (it == core_->links.end()) {
        return NotFoundError("no peer " + std::to_string(peer));
      }
      link = it->second;
      core_->links.erase(it);
      core_->closed[peer] = CancelledError("this side disconnected peer " + std::to_string(peer));
    }
    NotifyRemoteClosed(link);
    return OkStatus();
  }

  void Shutdown() override {
    std::unordered_map<PeerId, Core::Link> links;
    {
      std::lock_guard<std::mutex> lock(core_->links_mu);
      if (shut_down_) return;
      shut_down_ = true;
      links.swap(core_->links);
      for (const auto& [id, link] : links) {
        core_->closed[id] = CancelledError("transport shut down");
      }
    }
    {
      std::lock_guard<std::mutex> lock(fabric_->mu);
      auto it = fabric_->listeners.find(listen_address_);
      if (it != fabric_->listeners.end() && it->second.lock() == core_) {
        fabric_->listeners.erase(it);
      }
    }
    for (const auto& [id, link] : links) NotifyRemoteClosed(link);
    // Queued transfers see their peer closed and complete with kCancelled; then the thread ends.
    core_->StopQueue();
    if (thread_.joinable()) thread_.join();
  }

 private:
  StatusOr<Core::Link> FindLink(PeerId peer) {
    std::lock_guard<std::mutex> lock(core_->links_mu);
    auto it = core_->links.find(peer);
    if (it != core_->links.end()) return it->second;
    auto closed = core_->closed.find(peer);
    if (closed != core_->closed.end()) return closed->second;
    return UnavailableError("no peer " + std::to_string(peer));
  }

  void NotifyRemoteClosed(const Core::Link& link) {
    auto remote = link.remote.lock();
    if (remote == nullptr) return;
    const PeerId remote_peer = link.remote_peer;
    {
      std::lock_guard<std::mutex> lock(remote->links_mu);
      if (remote->links.erase(remote_peer) == 0) return;  // it closed first
      remote->closed[remote_peer] = UnavailableError("peer closed the connection");
    }
    std::weak_ptr<Core> weak_remote = remote;
    remote->Enqueue([weak_remote, remote_peer] {
      auto core = weak_remote.lock();
      if (core && core->handlers.on_peer_failure) {
        core->handlers.on_peer_failure(remote_peer, UnavailableError("peer closed the connection"));
      }
    });
  }

  void StartCopy(const Transfer& transfer, bool to_remote, Completion done) {
    auto task = [this, transfer, to_remote, done] { done(Copy(transfer, to_remote)); };
    if (!core_->Enqueue(std::move(task))) done(CancelledError("transport shut down"));
  }

  // Runs on the dispatch thread.
  Status Copy(const Transfer& transfer, bool to_remote) {
    STRATA_RETURN_IF_ERROR(ValidateTransfer(transfer));
    if (MonoClock::now() > transfer.deadline) {
      return DeadlineExceededError("transfer deadline passed before it started");
    }
    STRATA_ASSIGN_OR_RETURN(Core::Link link, FindLink(transfer.peer));
    auto remote = link.remote.lock();
    if (remote == nullptr) return UnavailableError("peer is gone");
    if (transfer.remote.packed_key.size() != 16) {
      return InvalidArgumentError("not an inproc region key");
    }
    uint64_t instance_id = 0;
    uint64_t region_id = 0;
    std::memcpy(&instance_id, transfer.remote.packed_key.data(), 8);
    std::memcpy(&region_id, transfer.remote.packed_key.data() + 8, 8);
    if (instance_id != remote->instance_id()) {
      return InvalidArgumentError("remote region does not belong to peer " +
                                  std::to_string(transfer.peer));
    }
    std::shared_lock<std::shared_mutex> lock(remote->regions_mu);
    auto it = remote->regions.find(region_id);
    if (it == remote->regions.end()) {
      return InvalidArgumentError("remote region is not registered (any more)");
    }
    const Core::RegionEntry& entry = it->second;
    const uint64_t start = transfer.remote.address + transfer.remote_offset;
    const uint64_t base = reinterpret_cast<uint64_t>(entry.data);
    if (start < base || start + transfer.length > base + entry.size) {
      return InvalidArgumentError("remote range is outside the registered region");
    }
    uint8_t* remote_bytes = entry.data + (start - base);
    uint8_t* local_bytes = static_cast<uint8_t*>(transfer.local->data()) + transfer.local_offset;
    if (to_remote) {
      std::memcpy(remote_bytes, local_bytes, transfer.length);
    } else {
      std::memcpy(local_bytes, remote_bytes, transfer.length);
    }
    return OkStatus();
  }

  std::shared_ptr<InprocFabric> fabric_;
  std::shared_ptr<Core> core_;
  std::thread thread_;
  bool started_ = false;    // guarded by core_->links_mu
  bool listening_ = false;  // guarded by core_->links_mu
  bool shut_down_ = false;  // guarded by core_->links_mu
  std::string listen_address_;
};

}  // namespace

std::unique_ptr<Transport> NewInprocTransport(std::shared_ptr<InprocFabric> fabric) {
  return std::make_unique<InprocTransport>(std::move(fabric));
}

}  // namespace strata::transport
