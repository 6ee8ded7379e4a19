// Connections of the UCX transport: addresses, the listener's connection requests, the
// hello/ack handshake and the data endpoint it creates, choice of the bulk path, and closing or
// failing a peer (see the protocol notes in ucx_transport_impl.h).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/log.h"
#include "transport/address.h"
#include "transport/ucx/ucx_transport_impl.h"

namespace strata::transport::ucx {

StatusOr<sockaddr_in> ParseAddress(const std::string& address) {
  STRATA_ASSIGN_OR_RETURN(HostPort split, SplitHostPort(address));
  std::string host = split.host == "localhost" ? "127.0.0.1" : split.host;
  const int port = split.port;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1) return addr;
  // A name (a Kubernetes Service, an /etc/hosts entry): its first IPv4 address. Resolved on the
  // caller's thread (Listen and Connect block it anyway), never on the progress thread.
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0 || found == nullptr) {
    return InvalidArgumentError("cannot resolve the host of '" + address +
                                "' to an IPv4 address: " + gai_strerror(rc == 0 ? EAI_NONAME : rc));
  }
  addr.sin_addr = reinterpret_cast<const sockaddr_in*>(found->ai_addr)->sin_addr;
  freeaddrinfo(found);
  return addr;
}

std::string AdvertisedHost() {
  // A UDP socket "connected" to a routable address (TEST-NET-1, RFC 5737) sends nothing; its
  // local address is the one the default route leaves from.
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "127.0.0.1";
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(9);
  inet_pton(AF_INET, "192.0.2.1", &remote.sin_addr);
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  std::string host = "127.0.0.1";
  if (connect(fd, reinterpret_cast<const sockaddr*>(&remote), sizeof(remote)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0 &&
      local.sin_addr.s_addr != htonl(INADDR_ANY)) {
    char text[INET_ADDRSTRLEN] = {};
    if (inet_ntop(AF_INET, &local.sin_addr, text, sizeof(text)) != nullptr) host = text;
  }
  close(fd);
  return host;
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
  if (peer->mapping_guard) {
    // Waits for readers inside Access(); later ones see the mapping gone.
    std::unique_lock<std::shared_mutex> guard(peer->mapping_guard->mu);
    peer->mapping_guard->alive = false;
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

}  // namespace strata::transport::ucx
