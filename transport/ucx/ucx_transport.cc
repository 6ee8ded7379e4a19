#include "transport/ucx/ucx_transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

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
namespace {

// How long Shutdown lets endpoint closes finish before tearing the worker down regardless.
constexpr int64_t kCloseGraceMs = 2000;
// The longest the progress thread sleeps without looking at deadlines.
constexpr int kMaxSleepMs = 50;

StatusOr<sockaddr_in> ParseAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return InvalidArgumentError("address must be host:port, got '" + address + "'");
  }
  std::string host = address.substr(0, colon);
  const std::string port_text = address.substr(colon + 1);
  if (host == "localhost") host = "127.0.0.1";
  char* end = nullptr;
  const long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port < 0 || port > 65535) {
    return InvalidArgumentError("bad port in address '" + address + "'");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return InvalidArgumentError("host of '" + address + "' is not an IPv4 address");
  }
  return addr;
}

std::string FormatAddress(const sockaddr_storage& storage) {
  if (storage.ss_family != AF_INET) return "?";
  const auto& addr = reinterpret_cast<const sockaddr_in&>(storage);
  char host[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &addr.sin_addr, host, sizeof(host));
  return std::string(host) + ":" + std::to_string(ntohs(addr.sin_port));
}

// Equal on two processes that can share memory: same kernel boot, IPC and PID namespaces (the
// last two differ between containers of one host, where sm would fail).
uint64_t ComputeHostId() {
  std::string identity;
  if (FILE* file = std::fopen("/proc/sys/kernel/random/boot_id", "r")) {
    char buffer[128] = {};
    if (std::fgets(buffer, sizeof(buffer), file) != nullptr) identity += buffer;
    std::fclose(file);
  }
  for (const char* ns : {"/proc/self/ns/ipc", "/proc/self/ns/pid"}) {
    char target[128] = {};
    const ssize_t n = readlink(ns, target, sizeof(target) - 1);
    if (n > 0) identity.append(target, static_cast<size_t>(n));
  }
  uint64_t hash = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : identity) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

// Whether a UCX_TLS value enables some shared-memory transport (UCX's default is "all").
bool TlsHasSharedMemory(std::string tls) {
  if (tls.empty()) {
    const char* env = std::getenv("UCX_TLS");
    tls = env == nullptr ? "all" : env;
  }
  size_t start = 0;
  while (start <= tls.size()) {
    size_t end = tls.find(',', start);
    if (end == std::string::npos) end = tls.size();
    std::string name = tls.substr(start, end - start);
    if (!name.empty() && name[0] == '^') return false;  // an exclusion list; be conservative
    for (const char* sm : {"all", "sm", "shm", "posix", "sysv", "cma", "knem", "xpmem"}) {
      if (name == sm) return true;
    }
    start = end + 1;
  }
  return false;
}

Status UcsError(const char* what, ucs_status_t status) {
  return UnavailableError(std::string(what) + ": " + ucs_status_string(status));
}

struct SendContext {
  UcxTransportImpl* impl;
  std::string header;
  std::string payload;
  std::function<void(Status)> on_error;
};

void OnSendDone(void* request, ucs_status_t status, void* user_data) {
  auto* context = static_cast<SendContext*>(user_data);
  --context->impl->inflight_;
  if (status != UCS_OK && context->on_error) context->on_error(UcsError("am send", status));
  delete context;
  ucp_request_free(request);
}

// UCX does not tell a handler which AM id it serves, so each id gets its own trampoline.
template <unsigned kId>
ucs_status_t OnAm(void* arg, const void* header, size_t header_length, void* data, size_t length,
                  const ucp_am_recv_param_t* param) {
  return static_cast<UcxTransportImpl*>(arg)->HandleAm(kId, header, header_length, data, length,
                                                       param);
}

constexpr ucp_am_recv_callback_t kAmHandlers[] = {
    &OnAm<kAmHello>,  &OnAm<kAmHelloAck>,   &OnAm<kAmMessage>, &OnAm<kAmPutData>,
    &OnAm<kAmPutAck>, &OnAm<kAmGetRequest>, &OnAm<kAmGetData>, &OnAm<kAmBye>};

}  // namespace

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
    handler.cb = kAmHandlers[id - kAmHello];
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

void UcxTransportImpl::Post(std::function<void()> command) {
  {
    std::lock_guard<std::mutex> lock(command_mu_);
    commands_.push_back(std::move(command));
    has_commands_.store(true, std::memory_order_release);
  }
  ucp_worker_signal(worker_);
}

// ---------------------------------------------------------------- progress loop

void UcxTransportImpl::Loop() {
  int64_t last_activity_ns = MonotonicNanos();
  int64_t stop_started_ns = 0;
  for (;;) {
    bool active = RunCommandsAndDeferred();
    while (ucp_worker_progress(worker_) != 0) active = true;
    active |= RunCommandsAndDeferred();
    CheckDeadlines();
    RunEvents();
    // Endpoint closes in flight (force closes normally finish at once).
    for (auto it = closing_.begin(); it != closing_.end();) {
      if (ucp_request_check_status(*it) != UCS_INPROGRESS) {
        ucp_request_free(*it);
        it = closing_.erase(it);
      } else {
        ++it;
      }
    }
    if (closing_.empty()) retired_ep_args_.clear();
    if (stopping_) {
      // Let UCX finish canceling the closed endpoints' requests (some complete only on later
      // progress calls), bounded by the grace period.
      const int64_t now_ns = MonotonicNanos();
      if (stop_started_ns == 0) stop_started_ns = now_ns;
      if (active) last_activity_ns = now_ns;
      const bool quiet = closing_.empty() && now_ns - last_activity_ns > 20 * 1000000;
      if (quiet || now_ns - stop_started_ns > kCloseGraceMs * 1000000) break;
      continue;
    }
    const int64_t now_ns = MonotonicNanos();
    if (active) {
      last_activity_ns = now_ns;
      continue;
    }
    if (now_ns - last_activity_ns < options_.spin_us * 1000 || inflight_ > 0) continue;
    const ucs_status_t armed = ucp_worker_arm(worker_);
    if (armed == UCS_ERR_BUSY || inflight_ > 0) continue;
    if (has_commands_.load(std::memory_order_acquire)) continue;
    epoll_event event;
    epoll_wait(epoll_fd_, &event, 1, NextTimeoutMs());
  }
  RunEvents();
}

bool UcxTransportImpl::RunCommandsAndDeferred() {
  bool ran = false;
  for (;;) {
    std::vector<std::function<void()>> commands;
    if (has_commands_.load(std::memory_order_acquire)) {
      std::lock_guard<std::mutex> lock(command_mu_);
      commands.swap(commands_);
      has_commands_.store(false, std::memory_order_release);
    }
    std::vector<std::function<void()>> deferred;
    deferred.swap(deferred_);
    if (commands.empty() && deferred.empty()) return ran;
    ran = true;
    for (auto& task : deferred) task();
    for (auto& command : commands) command();
  }
}

void UcxTransportImpl::RunEvents() {
  while (!events_.empty()) {
    std::vector<std::function<void()>> events;
    events.swap(events_);
    for (auto& event : events) event();
  }
}

int UcxTransportImpl::NextTimeoutMs() const {
  Deadline next = MonoClock::now() + std::chrono::milliseconds(kMaxSleepMs);
  for (const auto& [id, op] : ops_) next = std::min(next, op.deadline);
  for (const auto& [id, peer] : peers_) {
    if (Connecting(peer)) next = std::min(next, peer.connect_deadline);
  }
  const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - MonoClock::now());
  return static_cast<int>(std::clamp<int64_t>(wait.count(), 0, kMaxSleepMs));
}

void UcxTransportImpl::CheckDeadlines() {
  const Deadline now = MonoClock::now();
  std::vector<uint64_t> expired;
  for (const auto& [id, op] : ops_) {
    if (op.deadline < now) expired.push_back(id);
  }
  for (uint64_t id : expired) {
    auto it = ops_.find(id);
    if (it == ops_.end()) continue;  // completed by an earlier failure in this loop
    const PeerId peer = it->second.peer;
    it->second.forced =
        DeadlineExceededError("transfer to peer " + std::to_string(peer) + " missed its deadline");
    // Closing the endpoint is what makes UCX drop the buffers of the late transfer.
    FailPeer(peer,
             UnavailableError("connection closed: a transfer to this peer missed its deadline"),
             UnavailableError("connection closed: a transfer to this peer missed its deadline"));
    if (ops_.count(id) != 0) CompleteOp(id, *ops_[id].forced);
  }
  std::vector<PeerId> late;
  for (const auto& [id, peer] : peers_) {
    if (Connecting(peer) && peer.connect_deadline < now) late.push_back(id);
  }
  for (PeerId id : late) {
    FailPeer(id, DeadlineExceededError("connect deadline passed"), std::nullopt);
  }
}

// ---------------------------------------------------------------- peers

Peer* UcxTransportImpl::FindPeer(PeerId id) {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : &it->second;
}

Peer* UcxTransportImpl::PeerOfEp(ucp_ep_h ep) {
  auto it = ep_peers_.find(ep);
  return it == ep_peers_.end() ? nullptr : FindPeer(it->second);
}

PeerId UcxTransportImpl::NewPeer(ucp_ep_h ep, Peer::State state) {
  const PeerId id = next_peer_++;
  Peer& peer = peers_[id];
  peer.id = id;
  peer.state = state;
  peer.ep = ep;
  if (ep != nullptr) ep_peers_[ep] = id;
  return id;
}

void UcxTransportImpl::SetPeerStatus(PeerId id, const Status& status) {
  std::lock_guard<std::mutex> lock(state_mu_);
  peer_status_[id] = status;
}

bool UcxTransportImpl::ChooseRma(ucp_ep_h ep) const {
  switch (options_.bulk_mode) {
    case UcxOptions::BulkMode::kRma:
      return true;
    case UcxOptions::BulkMode::kActiveMessage:
      return false;
    case UcxOptions::BulkMode::kAuto:
      break;
  }
  // UCX 1.13's ucp_ep_query cannot name an endpoint's transports, but ucp_ep_print_info lists
  // its lanes ("lane[2]: 3:cma/memory.0 ... rma_bw#0 ..."). RMA is chosen when a lane that
  // serves RMA runs on an RDMA-capable transport. Not tcp (emulated, ~50x slower than AM), and,
  // as measured here, not sm either: on user memory (ucp_mem_map without ALLOCATE) UCX 1.13
  // moved RMA over sysv/cma at ~16 MB/s (remote-progress-driven emulation) where AM rendezvous
  // over sm reached ~1.9 GB/s on the same loaded machine. Force kRma to use it anyway.
  char* text = nullptr;
  size_t size = 0;
  FILE* stream = open_memstream(&text, &size);
  if (stream == nullptr) return false;
  ucp_ep_print_info(ep, stream);
  fclose(stream);
  bool native = false;
  std::string info(text, size);
  free(text);
  size_t start = 0;
  while (start < info.size()) {
    size_t end = info.find('\n', start);
    if (end == std::string::npos) end = info.size();
    const std::string line = info.substr(start, end - start);
    start = end + 1;
    if (line.find("lane[") == std::string::npos || line.find("rma") == std::string::npos) continue;
    bool software = false;
    for (const char* name : {"tcp/", "cma/", "posix/", "sysv/", "xpmem/", "knem/", "self/"}) {
      if (line.find(name) != std::string::npos) software = true;
    }
    if (!software) native = true;
  }
  log::Debug("ucx endpoint lanes:\n{}", info);
  return native;
}

Status UcxTransportImpl::OpenPeer(Peer& peer, const void* worker_address, size_t length) {
  if (length == 0 || length > 64 * 1024) {
    return DataLossError("peer sent a worker address of " + std::to_string(length) + " bytes");
  }
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
  params.address = static_cast<const ucp_address_t*>(worker_address);
  if (peer.same_host && sm_enabled_) {
    // Lets UCX pick sm lanes (see ucx_transport_impl.h); the bootstrap endpoint watches the peer.
    params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
  } else {
    params.field_mask |= UCP_EP_PARAM_FIELD_ERR_HANDLER;
    params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    params.err_handler.cb = &UcxTransportImpl::OnEpError;
    params.err_handler.arg = peer.ep_arg.get();
  }
  ucp_ep_h ep = nullptr;
  const ucs_status_t status = ucp_ep_create(worker_, &params, &ep);
  if (status != UCS_OK) return UcsError("creating the data endpoint", status);
  peer.ep = ep;
  ep_peers_[ep] = peer.id;
  peer.state = Peer::State::kWiring;
  // The flush completes once the endpoint's lanes are connected.
  struct Wiring {
    UcxTransportImpl* impl;
    PeerId peer;
  };
  auto* wiring = new Wiring{this, peer.id};
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = [](void* request, ucs_status_t status, void* user_data) {
    auto* wiring = static_cast<Wiring*>(user_data);
    --wiring->impl->inflight_;
    wiring->impl->FinishOpen(wiring->peer, status);
    delete wiring;
    ucp_request_free(request);
  };
  param.user_data = wiring;
  void* request = ucp_ep_flush_nbx(ep, &param);
  if (UCS_PTR_IS_PTR(request)) {
    ++inflight_;
  } else {
    delete wiring;
    const PeerId id = peer.id;
    const ucs_status_t status = UCS_PTR_STATUS(request);
    deferred_.push_back([this, id, status] { FinishOpen(id, status); });
  }
  return OkStatus();
}

void UcxTransportImpl::FinishOpen(PeerId id, ucs_status_t status) {
  Peer* peer = FindPeer(id);
  if (peer == nullptr || peer->state != Peer::State::kWiring) return;
  if (status != UCS_OK) {
    const Status why = UcsError("connecting the data endpoint", status);
    deferred_.push_back([this, id, why] { FailPeer(id, why, std::nullopt); });
    return;
  }
  peer->state = Peer::State::kOpen;
  peer->use_rma = ChooseRma(peer->ep);
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    peer_status_[id] = OkStatus();
    peer_uses_rma_[id] = peer->use_rma;
  }
  if (peer->inbound) {
    const HelloHeader ack{kProtocolMagic, peer->remote_id, peer->id, host_id_};
    SendAm(peer->bootstrap_ep, kAmHelloAck, &ack, sizeof(ack), nullptr, 0, worker_address_,
           nullptr);
    std::function<void(PeerId, const std::string&)> callback;
    {
      std::lock_guard<std::mutex> lock(state_mu_);
      callback = handlers_.on_peer_connected;
    }
    if (callback) {
      events_.push_back([callback, id, address = peer->remote_address] { callback(id, address); });
    }
  } else if (peer->connect_waiter) {
    peer->connect_waiter->set_value(id);
    peer->connect_waiter.reset();
  }
}

void UcxTransportImpl::FailPeer(PeerId id, const Status& for_ops, std::optional<Status> notify) {
  Peer* peer = FindPeer(id);
  if (peer == nullptr || peer->state == Peer::State::kClosed) return;
  const bool was_open = peer->state == Peer::State::kOpen;
  peer->state = Peer::State::kClosed;
  SetPeerStatus(id, notify.has_value() ? UnavailableError("peer " + std::to_string(id) +
                                                          " failed: " + notify->message())
                                       : for_ops);
  if (peer->connect_waiter) {
    peer->connect_waiter->set_value(for_ops);
    peer->connect_waiter.reset();
  }
  std::vector<uint64_t> op_ids;
  for (auto& [op_id, op] : ops_) {
    if (op.peer != id) continue;
    if (!op.forced) op.forced = for_ops;
    op_ids.push_back(op_id);
  }
  for (auto& [packed, rkey] : peer->rkeys) ucp_rkey_destroy(rkey);
  peer->rkeys.clear();
  peer->reorder.clear();
  for (ucp_ep_h* ep : {&peer->ep, &peer->bootstrap_ep}) {
    if (*ep == nullptr) continue;
    ep_peers_.erase(*ep);
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    param.flags = UCP_EP_CLOSE_FLAG_FORCE;
    // Outstanding requests of the endpoint complete (canceled) inside this call.
    void* request = ucp_ep_close_nbx(*ep, &param);
    if (UCS_PTR_IS_PTR(request)) closing_.push_back(request);
    *ep = nullptr;
  }
  if (peer->ep_arg) retired_ep_args_.push_back(std::move(peer->ep_arg));
  for (uint64_t op_id : op_ids) {
    auto it = ops_.find(op_id);
    if (it != ops_.end()) CompleteOp(op_id, *it->second.forced);
  }
  if (notify.has_value() && was_open) {
    std::function<void(PeerId, const Status&)> callback;
    {
      std::lock_guard<std::mutex> lock(state_mu_);
      callback = handlers_.on_peer_failure;
    }
    if (callback) events_.push_back([callback, id, why = *notify] { callback(id, why); });
  }
  peers_.erase(id);
}

void UcxTransportImpl::ClosePeer(PeerId id, const Status& for_ops) {
  Peer* peer = FindPeer(id);
  if (peer == nullptr) return;
  if (peer->bootstrap_ep != nullptr && peer->remote_id != kInvalidPeer) {
    const ByeHeader bye{peer->remote_id};
    SendAm(peer->bootstrap_ep, kAmBye, &bye, sizeof(bye), nullptr, 0, std::string(), nullptr);
    // Give the bye a moment to reach the socket before the force close drops what is queued.
    for (int i = 0; i < 16 && ucp_worker_progress(worker_) != 0; ++i) {
    }
  }
  FailPeer(id, for_ops, std::nullopt);
}

void UcxTransportImpl::OnEpError(void* arg, ucp_ep_h, ucs_status_t status) {
  auto* ep_arg = static_cast<EpArg*>(arg);
  UcxTransportImpl* impl = ep_arg->impl;
  const PeerId peer = ep_arg->peer;
  const Status why = UcsError("endpoint failed", status);
  impl->deferred_.push_back([impl, peer, why] {
    impl->FailPeer(
        peer, UnavailableError("peer " + std::to_string(peer) + " failed: " + why.message()), why);
  });
}

void UcxTransportImpl::OnConnRequest(ucp_conn_request_h request, void* arg) {
  auto* impl = static_cast<UcxTransportImpl*>(arg);
  if (impl->stopping_) {
    ucp_listener_reject(impl->listener_, request);
    return;
  }
  ucp_conn_request_attr_t attr{};
  attr.field_mask = UCP_CONN_REQUEST_ATTR_FIELD_CLIENT_ADDR;
  std::string remote = "?";
  if (ucp_conn_request_query(request, &attr) == UCS_OK) remote = FormatAddress(attr.client_address);

  const PeerId id = impl->NewPeer(nullptr, Peer::State::kAccepted);
  Peer& peer = impl->peers_[id];
  peer.remote_address = remote;
  peer.inbound = true;
  peer.connect_deadline = DeadlineAfterMillis(impl->options_.setup_timeout_ms);
  peer.ep_arg = std::make_unique<EpArg>(EpArg{impl, id});
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER;
  params.conn_request = request;
  params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  params.err_handler.cb = &UcxTransportImpl::OnEpError;
  params.err_handler.arg = peer.ep_arg.get();
  ucp_ep_h ep = nullptr;
  const ucs_status_t status = ucp_ep_create(impl->worker_, &params, &ep);
  if (status != UCS_OK) {
    log::Warn("ucx: accepting a connection from {} failed: {}", remote, ucs_status_string(status));
    impl->peers_.erase(id);
    return;
  }
  peer.bootstrap_ep = ep;
  impl->ep_peers_[ep] = id;
  // The peer becomes usable (and reported) when its hello arrives.
  impl->SetPeerStatus(id, UnavailableError("peer " + std::to_string(id) + " is not ready yet"));
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
  return future.get();
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

void UcxTransportImpl::SendAm(ucp_ep_h ep, unsigned id, const void* header, size_t header_length,
                              const void* borrowed, size_t borrowed_length, std::string owned,
                              std::function<void(Status)> on_error) {
  auto* context =
      new SendContext{this, std::string(static_cast<const char*>(header), header_length),
                      std::move(owned), std::move(on_error)};
  const void* buffer = borrowed != nullptr ? borrowed : context->payload.data();
  const size_t length = borrowed != nullptr ? borrowed_length : context->payload.size();
  ucp_request_param_t param{};
  param.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = UCP_AM_SEND_FLAG_REPLY;
  param.cb.send = &OnSendDone;
  param.user_data = context;
  void* request = ucp_am_send_nbx(ep, id, context->header.data(), context->header.size(), buffer,
                                  length, &param);
  if (UCS_PTR_IS_PTR(request)) {  // OnSendDone frees the context
    ++inflight_;
    return;
  }
  const ucs_status_t status = UCS_PTR_STATUS(request);
  if (status != UCS_OK && context->on_error) {
    deferred_.push_back([on_error = std::move(context->on_error), status] {
      on_error(UcsError("am send", status));
    });
  }
  delete context;
}

void UcxTransportImpl::SendMessageNow(PeerId id, MessageType type, std::string payload) {
  Peer* peer = FindPeer(id);
  if (peer == nullptr || peer->state != Peer::State::kOpen) return;  // failure already reported
  if (payload.size() > options_.max_message_bytes) {
    log::Warn("ucx: dropping a message of {} bytes to peer {} (limit {})", payload.size(), id,
              options_.max_message_bytes);
    return;
  }
  const MessageHeader header{peer->remote_id, peer->send_seq++, type, 0};
  SendAm(peer->ep, kAmMessage, &header, sizeof(header), nullptr, 0, std::move(payload),
         [this, id](Status status) {
           deferred_.push_back([this, id, status] {
             FailPeer(id, UnavailableError("send to peer failed: " + status.message()), status);
           });
         });
}

void UcxTransportImpl::DeliverInOrder(Peer& peer, uint64_t seq, Message message) {
  if (seq != peer.recv_seq) {
    peer.reorder.emplace(seq, std::move(message));
    return;
  }
  std::function<void(Message)> callback;
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    callback = handlers_.on_message;
  }
  auto deliver = [&](Message m) {
    if (callback)
      events_.push_back([callback, m = std::move(m)]() mutable { callback(std::move(m)); });
  };
  deliver(std::move(message));
  ++peer.recv_seq;
  for (auto it = peer.reorder.find(peer.recv_seq); it != peer.reorder.end();
       it = peer.reorder.find(peer.recv_seq)) {
    deliver(std::move(it->second));
    peer.reorder.erase(it);
    ++peer.recv_seq;
  }
}

void UcxTransportImpl::ProtocolError(Peer& peer, const std::string& what) {
  const PeerId id = peer.id;
  log::Warn("ucx: protocol error from peer {} ({}): {}", id, peer.remote_address, what);
  const Status why = DataLossError("protocol error from peer: " + what);
  deferred_.push_back([this, id, why] { FailPeer(id, why, why); });
}

ucs_status_t UcxTransportImpl::HandleAm(unsigned id, const void* header, size_t header_length,
                                        void* data, size_t length,
                                        const ucp_am_recv_param_t* param) {
  const bool rendezvous = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
  // Returning an error for a rendezvous AM drops its data (and fails the sender's send).
  const ucs_status_t drop = rendezvous ? UCS_ERR_CANCELED : UCS_OK;
  if (stopping_) return drop;
  if (id == kAmHello || id == kAmHelloAck)
    return HandleHello(id, header, header_length, data, length, rendezvous, param);
  // Everything else names its receiver's peer id in the header's first 8 bytes.
  uint64_t dest_peer = kInvalidPeer;
  if (header_length >= sizeof(dest_peer)) std::memcpy(&dest_peer, header, sizeof(dest_peer));
  Peer* peer = FindPeer(dest_peer);
  if (peer == nullptr ||
      (peer->state != Peer::State::kOpen && peer->state != Peer::State::kWiring)) {
    return drop;  // closed meanwhile
  }
  if (id == kAmBye) {
    const PeerId gone = peer->id;
    deferred_.push_back([this, gone] {
      const Status why = UnavailableError("peer closed the connection");
      FailPeer(gone, why, why);
    });
    return drop;
  }
  if (id == kAmMessage) {
    MessageHeader message;
    if (header_length != sizeof(message)) {
      ProtocolError(*peer, "message header of " + std::to_string(header_length) + " bytes");
      return drop;
    }
    std::memcpy(&message, header, sizeof(message));
    return HandleMessage(*peer, message, data, length, rendezvous);
  }
  BulkHeader bulk;
  if (header_length != sizeof(bulk)) {
    ProtocolError(*peer, "bulk header of " + std::to_string(header_length) + " bytes");
    return drop;
  }
  std::memcpy(&bulk, header, sizeof(bulk));
  switch (id) {
    case kAmPutData:
      return HandlePutData(*peer, bulk, data, length, rendezvous);
    case kAmPutAck:
      return HandlePutAck(*peer, bulk, data, length, rendezvous);
    case kAmGetRequest:
      return HandleGetRequest(*peer, bulk);
    case kAmGetData:
      return HandleGetData(*peer, bulk, data, length, rendezvous);
    default:
      ProtocolError(*peer, "unknown active message id " + std::to_string(id));
  }
  return drop;
}

ucs_status_t UcxTransportImpl::HandleHello(unsigned id, const void* header, size_t header_length,
                                           void* data, size_t length, bool rendezvous,
                                           const ucp_am_recv_param_t* param) {
  const ucs_status_t drop = rendezvous ? UCS_ERR_CANCELED : UCS_OK;
  HelloHeader hello;
  if (header_length != sizeof(hello)) return drop;
  std::memcpy(&hello, header, sizeof(hello));
  // The server knows the connection only by its bootstrap endpoint; the client by its id.
  Peer* peer = nullptr;
  if (id == kAmHello) {
    if ((param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) != 0) peer = PeerOfEp(param->reply_ep);
  } else {
    peer = FindPeer(hello.client_peer);
  }
  if (peer == nullptr || peer->state == Peer::State::kClosed) return drop;
  if (hello.magic != kProtocolMagic || rendezvous) {
    ProtocolError(*peer, "not a strata transport handshake");
    return drop;
  }
  const Peer::State expected = id == kAmHello ? Peer::State::kAccepted : Peer::State::kConnecting;
  if (peer->state != expected) {
    ProtocolError(*peer, "unexpected handshake message");
    return drop;
  }
  peer->remote_id = id == kAmHello ? hello.client_peer : hello.server_peer;
  peer->same_host = hello.host_id == host_id_;
  Status opened = OpenPeer(*peer, data, length);
  if (!opened.ok()) {
    const PeerId failed = peer->id;
    deferred_.push_back([this, failed, opened] { FailPeer(failed, opened, std::nullopt); });
    return drop;
  }
  return UCS_OK;
}

namespace {

struct MessageRecv {
  UcxTransportImpl* impl;
  PeerId peer;
  uint64_t seq;
  Message message;
};

void OnMessageReceived(void* request, ucs_status_t status, size_t, void* user_data) {
  auto* recv = static_cast<MessageRecv*>(user_data);
  --recv->impl->inflight_;
  recv->impl->FinishMessage(recv->peer, recv->seq, std::move(recv->message), status);
  delete recv;
  ucp_request_free(request);
}

}  // namespace

ucs_status_t UcxTransportImpl::HandleMessage(Peer& peer, const MessageHeader& header, void* data,
                                             size_t length, bool rendezvous) {
  if (length > options_.max_message_bytes) {
    const PeerId id = peer.id;
    const Status why = PayloadTooLargeError("peer sent a message of " + std::to_string(length) +
                                            " bytes, over the limit of " +
                                            std::to_string(options_.max_message_bytes));
    deferred_.push_back([this, id, why] { FailPeer(id, why, why); });
    return rendezvous ? UCS_ERR_CANCELED : UCS_OK;
  }
  if (header.seq < peer.recv_seq || peer.reorder.count(header.seq) != 0) {
    ProtocolError(peer, "duplicate message sequence " + std::to_string(header.seq));
    return rendezvous ? UCS_ERR_CANCELED : UCS_OK;
  }
  Message message{peer.id, header.type, std::string()};
  if (!rendezvous) {
    message.payload.assign(static_cast<const char*>(data), length);
    DeliverInOrder(peer, header.seq, std::move(message));
    return UCS_OK;
  }
  // Rendezvous: receive into the message's own buffer; it is delivered in sequence order when
  // complete (later eager messages wait in the reorder map meanwhile).
  message.payload.resize(length);
  auto* recv = new MessageRecv{this, peer.id, header.seq, std::move(message)};
  deferred_.push_back([this, recv, data] {
    Peer* peer = FindPeer(recv->peer);
    if (!Receives(peer)) {
      ucp_am_data_release(worker_, data);
      delete recv;
      return;
    }
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    param.cb.recv_am = &OnMessageReceived;
    param.user_data = recv;
    void* request = ucp_am_recv_data_nbx(worker_, data, recv->message.payload.data(),
                                         recv->message.payload.size(), &param);
    if (UCS_PTR_IS_PTR(request)) {
      ++inflight_;
      return;
    }
    FinishMessage(recv->peer, recv->seq, std::move(recv->message), UCS_PTR_STATUS(request));
    delete recv;
  });
  return UCS_INPROGRESS;
}

void UcxTransportImpl::FinishMessage(PeerId id, uint64_t seq, Message message,
                                     ucs_status_t status) {
  Peer* peer = FindPeer(id);
  if (!Receives(peer)) return;
  if (status != UCS_OK) {
    const Status why = UcsError("receiving a message", status);
    deferred_.push_back([this, id, why] { FailPeer(id, why, why); });
    return;
  }
  DeliverInOrder(*peer, seq, std::move(message));
}

StatusOr<std::unique_ptr<Region>> UcxTransportImpl::RegisterMemory(void* data, uint64_t bytes) {
  return RegisterUcxMemory(context_, data, bytes);
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
