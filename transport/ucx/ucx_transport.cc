#include "transport/ucx/ucx_transport.h"

// Creation, start-up and the public calls of the UCX transport (the internals are listed in
// ucx_transport_impl.h).
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "common/log.h"
#include "transport/ucx/ucx_transport_impl.h"

namespace strata::transport {

std::string_view BulkModeName(UcxOptions::BulkMode mode) {
  switch (mode) {
    case UcxOptions::BulkMode::kAuto:
      return "auto";
    case UcxOptions::BulkMode::kRma:
      return "rma";
    case UcxOptions::BulkMode::kActiveMessage:
      return "am";
  }
  return "auto";
}

StatusOr<UcxOptions::BulkMode> ParseBulkMode(std::string_view name) {
  if (name == "auto") return UcxOptions::BulkMode::kAuto;
  if (name == "rma") return UcxOptions::BulkMode::kRma;
  if (name == "am") return UcxOptions::BulkMode::kActiveMessage;
  return InvalidArgumentError("bulk mode must be auto, rma or am, not '" + std::string(name) + "'");
}

StatusOr<std::unique_ptr<UcxTransport>> UcxTransport::Create(const UcxOptions& options) {
  STRATA_ASSIGN_OR_RETURN(auto context, ucx::UcxContext::Create(options.tls));
  auto transport = std::make_unique<ucx::UcxTransportImpl>(options, std::move(context));
  STRATA_RETURN_IF_ERROR(transport->Start());
  return std::unique_ptr<UcxTransport>(std::move(transport));
}

namespace ucx {

UcxTransportImpl::UcxTransportImpl(const UcxOptions& options, std::shared_ptr<UcxContext> context)
    : options_(options), context_(std::move(context)) {}

UcxTransportImpl::~UcxTransportImpl() {
  Shutdown();
  if (worker_ != nullptr) ucp_worker_destroy(worker_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

Status UcxTransportImpl::Start() {
  ucp_worker_params_t params{};
  params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  params.thread_mode = UCS_THREAD_MODE_SINGLE;
  ucs_status_t status = ucp_worker_create(context_->get(), &params, &worker_);
  if (status != UCS_OK) return UcsError("ucp_worker_create", status);
  ucp_worker_attr_t attr{};
  attr.field_mask = UCP_WORKER_ATTR_FIELD_ADDRESS;
  status = ucp_worker_query(worker_, &attr);
  if (status != UCS_OK) return UcsError("ucp_worker_query", status);
  worker_address_.assign(reinterpret_cast<const char*>(attr.address), attr.address_length);
  host_id_ = ComputeHostId();
  sm_enabled_ = TlsHasSharedMemory(options_.tls);
  int helpers = 0;
  if (sm_enabled_) {
    helpers = options_.copy_helpers >= 0 ? options_.copy_helpers : DefaultCopyHelpers();
  }
  copier_ = std::make_unique<ParallelCopier>(helpers);
  ucp_worker_release_address(worker_, attr.address);
  int event_fd = -1;
  status = ucp_worker_get_efd(worker_, &event_fd);
  if (status != UCS_OK) return UcsError("ucp_worker_get_efd", status);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return InternalError("epoll_create1 failed");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = event_fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, event_fd, &event) != 0) {
    return InternalError("epoll_ctl on the UCX event fd failed");
  }
  for (unsigned id = kAmHello; id <= kAmBye; ++id) {
    ucp_am_handler_param_t handler{};
    handler.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_FLAGS |
                         UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG;
    handler.id = id;
    handler.flags = UCP_AM_FLAG_WHOLE_MSG;
    handler.cb = AmHandlerFor(id);
    handler.arg = this;
    status = ucp_worker_set_am_recv_handler(worker_, &handler);
    if (status != UCS_OK) return UcsError("ucp_worker_set_am_recv_handler", status);
  }
  thread_ = std::thread([this] { Loop(); });
  return OkStatus();
}

std::string UcxTransportImpl::name() const {
  return "ucx(" + (options_.tls.empty() ? std::string("default") : options_.tls) + ", bulk " +
         std::string(BulkModeName(options_.bulk_mode)) + ")";
}

Status UcxTransportImpl::SetHandlers(Handlers handlers) {
  std::lock_guard<std::mutex> lock(state_mu_);
  if (started_) return FailedPreconditionError("SetHandlers after Listen/Connect");
  handlers_ = std::move(handlers);
  return OkStatus();
}

// ---------------------------------------------------------------- public calls

StatusOr<std::string> UcxTransportImpl::Listen(const std::string& address) {
  STRATA_ASSIGN_OR_RETURN(sockaddr_in addr, ParseAddress(address));
  auto result = std::make_shared<std::promise<StatusOr<std::string>>>();
  auto future = result->get_future();
  std::unique_lock<std::mutex> lock(state_mu_);
  if (shut_down_) return FailedPreconditionError("transport is shut down");
  started_ = true;
  Post([this, addr, result] {
    if (stopping_) {
      result->set_value(CancelledError("transport shut down"));
      return;
    }
    if (listener_ != nullptr) {
      result->set_value(FailedPreconditionError("already listening"));
      return;
    }
    ucp_listener_params_t params{};
    params.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
    params.sockaddr.addr = reinterpret_cast<const sockaddr*>(&addr);
    params.sockaddr.addrlen = sizeof(addr);
    params.conn_handler.cb = &UcxTransportImpl::OnConnRequest;
    params.conn_handler.arg = this;
    ucs_status_t status = ucp_listener_create(worker_, &params, &listener_);
    if (status != UCS_OK) {
      listener_ = nullptr;
      result->set_value(UcsError("ucp_listener_create", status));
      return;
    }
    ucp_listener_attr_t attr{};
    attr.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
    status = ucp_listener_query(listener_, &attr);
    if (status != UCS_OK) {
      result->set_value(UcsError("ucp_listener_query", status));
      return;
    }
    result->set_value(FormatAddress(attr.sockaddr));
  });
  lock.unlock();
  if (future.wait_for(std::chrono::milliseconds(options_.setup_timeout_ms)) !=
      std::future_status::ready) {
    return DeadlineExceededError("UCX progress thread did not create the listener in time");
  }
  StatusOr<std::string> bound = future.get();
  if (!bound.ok() || addr.sin_addr.s_addr != htonl(INADDR_ANY)) return bound;
  // Bound to every interface: peers are told an address they can reach, not 0.0.0.0 (it is
  // what instances register and put in their KV descriptors).
  return AdvertisedHost() + bound->substr(bound->rfind(':'));
}

StatusOr<PeerId> UcxTransportImpl::Connect(const std::string& address, Deadline deadline) {
  STRATA_ASSIGN_OR_RETURN(sockaddr_in addr, ParseAddress(address));
  auto waiter = std::make_shared<std::promise<StatusOr<PeerId>>>();
  auto future = waiter->get_future();
  std::unique_lock<std::mutex> lock(state_mu_);
  if (shut_down_) return FailedPreconditionError("transport is shut down");
  started_ = true;
  Post([this, addr, address, deadline, waiter] {
    if (stopping_) {
      waiter->set_value(CancelledError("transport shut down"));
      return;
    }
    const PeerId id = NewPeer(nullptr, Peer::State::kConnecting);
    Peer& peer = peers_[id];
    peer.remote_address = address;
    peer.connect_deadline = deadline;
    peer.connect_waiter = waiter;
    peer.ep_arg = std::make_unique<EpArg>(EpArg{this, id});
    SetPeerStatus(id, UnavailableError("peer " + std::to_string(id) + " is still connecting"));
    ucp_ep_params_t params{};
    params.field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR |
                        UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
    params.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER;
    params.sockaddr.addr = reinterpret_cast<const sockaddr*>(&addr);
    params.sockaddr.addrlen = sizeof(addr);
    params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    params.err_handler.cb = &UcxTransportImpl::OnEpError;
    params.err_handler.arg = peer.ep_arg.get();
    ucp_ep_h ep = nullptr;
    const ucs_status_t status = ucp_ep_create(worker_, &params, &ep);
    if (status != UCS_OK) {
      FailPeer(id, UcsError("ucp_ep_create", status), std::nullopt);
      return;
    }
    peer.bootstrap_ep = ep;
    ep_peers_[ep] = id;
    const HelloHeader hello{kProtocolMagic, id, kInvalidPeer, host_id_};
    SendAm(ep, kAmHello, &hello, sizeof(hello), nullptr, 0, worker_address_,
           [this, id](Status status) {
             deferred_.push_back([this, id, status] {
               FailPeer(id, UnavailableError("connection handshake failed: " + status.message()),
                        std::nullopt);
             });
           });
  });
  lock.unlock();
  // The progress thread enforces the deadline; the grace only guards against a stuck thread.
  if (future.wait_until(std::max(deadline, MonoClock::now()) + std::chrono::seconds(5)) !=
      std::future_status::ready) {
    return InternalError("UCX progress thread did not finish connecting to " + address);
  }
  return future.get();
}

Status UcxTransportImpl::Send(PeerId peer, MessageType type, std::string payload) {
  if (type >= kFirstReservedMessageType) {
    return InvalidArgumentError("message type " + std::to_string(type) + " is reserved");
  }
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (shut_down_) return UnavailableError("transport is shut down");
    auto it = peer_status_.find(peer);
    if (it == peer_status_.end()) return UnavailableError("no peer " + std::to_string(peer));
    if (!it->second.ok()) return it->second;
    // Posted under state_mu_: see StartTransfer.
    Post([this, peer, type, payload = std::move(payload)]() mutable {
      SendMessageNow(peer, type, std::move(payload));
    });
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<Region>> UcxTransportImpl::RegisterMemory(void* data, uint64_t bytes) {
  return RegisterUcxMemory(context_, data, bytes);
}

StatusOr<std::unique_ptr<Region>> UcxTransportImpl::AllocateMemory(uint64_t bytes) {
  return AllocateUcxMemory(context_, bytes);
}

Status UcxTransportImpl::Disconnect(PeerId peer) {
  std::lock_guard<std::mutex> lock(state_mu_);
  auto it = peer_status_.find(peer);
  if (it == peer_status_.end() || !it->second.ok()) {
    return NotFoundError("no open peer " + std::to_string(peer));
  }
  const Status cause = CancelledError("this side disconnected peer " + std::to_string(peer));
  it->second = cause;
  peer_uses_rma_.erase(peer);
  Post([this, peer, cause] { ClosePeer(peer, cause); });
  return OkStatus();
}

void UcxTransportImpl::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (shut_down_) return;
    shut_down_ = true;
    for (auto& [id, status] : peer_status_) {
      if (status.ok()) status = CancelledError("transport shut down");
    }
    if (!thread_.joinable()) return;
    Post([this] {
      std::vector<PeerId> ids;
      for (const auto& [id, peer] : peers_) ids.push_back(id);
      for (PeerId id : ids) ClosePeer(id, CancelledError("transport shut down"));
      if (listener_ != nullptr) {
        ucp_listener_destroy(listener_);
        listener_ = nullptr;
      }
      stopping_ = true;
    });
  }
  thread_.join();
  // Commands queued before shut_down_ was set but after the loop's last look: with stopping_
  // set they only complete their callers (kCancelled). This thread now owns the worker.
  RunCommandsAndDeferred();
  RunEvents();
}

StatusOr<std::string> UcxTransportImpl::BulkPath(PeerId peer) {
  std::lock_guard<std::mutex> lock(state_mu_);
  auto it = peer_status_.find(peer);
  if (it == peer_status_.end()) return UnavailableError("no peer " + std::to_string(peer));
  if (!it->second.ok()) return it->second;
  return std::string(peer_uses_rma_[peer] ? "rma" : "am");
}

}  // namespace ucx
}  // namespace strata::transport
