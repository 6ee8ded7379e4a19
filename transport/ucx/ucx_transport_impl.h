// Internals of the UCX transport, shared by its translation units:
//   ucx_transport.cc   creation, start-up and the public calls (Listen, Connect, Send, ...)
//   ucx_progress.cc    the progress thread: command queue, event loop, deadlines
//   ucx_connection.cc  addresses, handshake, data endpoints, closing and failing peers
//   ucx_messages.cc    the AM send path, Send's ordered delivery, dispatch of incoming AMs
//   ucx_bulk.cc        Put/Get (RMA and AM paths), initiator and target sides
// Everything below `progress thread only` is touched by the progress thread alone; the rest is
// guarded as marked.
#pragma once

#include <netinet/in.h>
#include <ucp/api/ucp.h>

#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/parallel_copy.h"
#include "transport/ucx/ucx_memory.h"
#include "transport/ucx/ucx_transport.h"

namespace strata::transport::ucx {

// Active message ids of the wire protocol (both sides run this same code).
// A connection is two endpoint pairs. The bootstrap endpoint comes from the sockaddr connection
// manager (ucp_listener / UCP_EP_PARAMS_FLAGS_CLIENT_SERVER); in UCX 1.13 such endpoints never
// use shared memory, so the hello/ack exchange worker addresses and each side then creates a
// data endpoint from the other's worker address, on which UCX may pick any transport (sm, cma,
// rc, ...). All traffic after the handshake uses the data endpoints; the bootstrap ones stay open
// because their tcp connection reports a dead peer at once. Every header names the receiver's
// own PeerId for the sender (learned in the handshake), so receivers never depend on which of
// their endpoints UCX delivered on.
//
// UCX 1.13's shared-memory transports (sysv/posix/cma) do not support
// UCP_ERR_HANDLING_MODE_PEER, so an endpoint that asks for it never uses them. Between two
// processes of one host (same boot id, IPC and PID namespaces, exchanged in the hello) with sm
// enabled, the data endpoint is therefore created with UCP_ERR_HANDLING_MODE_NONE and gets the
// sm lanes (cma RMA, sysv AM); peer death is still detected at once by the bootstrap endpoint's
// tcp connection (PEER mode), whose failure force-closes both. Elsewhere the data endpoint uses
// PEER mode itself.
enum AmId : unsigned {
  kAmHello = 1,       // client -> server on the bootstrap ep: HelloHeader + client worker address
  kAmHelloAck = 2,    // server -> client: HelloHeader + server worker address
  kAmMessage = 3,     // Send: MessageHeader + payload
  kAmPutData = 4,     // AM-path Put: BulkHeader + bytes to store at address
  kAmPutAck = 5,      // BulkHeader (status) + error message
  kAmGetRequest = 6,  // AM-path Get: BulkHeader, no data
  kAmGetData = 7,     // BulkHeader (status) + bytes, or the error message
  kAmBye = 8,         // ByeHeader: this side closes the connection (Disconnect, Shutdown)
};

struct ByeHeader {
  uint64_t dest_peer;
};

inline constexpr uint64_t kProtocolMagic = 0x5354524154415631ull;  // "STRATAV1"

struct HelloHeader {
  uint64_t magic;
  uint64_t client_peer;  // the client's PeerId for this connection
  uint64_t server_peer;  // the server's (in the ack)
  uint64_t host_id;      // hash of boot id + IPC/PID namespaces: equal means sm can work
};

struct MessageHeader {
  uint64_t dest_peer;  // the receiver's PeerId for the sender
  uint64_t seq;        // per-connection, per-direction sequence: the receiver restores send order
  uint32_t type;
  uint32_t reserved;
};

struct BulkHeader {
  uint64_t dest_peer;
  uint64_t op_id;
  uint64_t address;
  uint64_t length;
  int32_t status;  // StatusCode of the result (acks, GetData)
  uint32_t reserved;
};

class UcxTransportImpl;

inline Status UcsError(const char* what, ucs_status_t status) {
  return UnavailableError(std::string(what) + ": " + ucs_status_string(status));
}

// "host:port" (an IPv4 address, or a name resolved to one; "localhost" is 127.0.0.1) ->
// sockaddr; kInvalidArgument otherwise.
StatusOr<sockaddr_in> ParseAddress(const std::string& address);
// "host:port" of an IPv4 sockaddr, "?" for other families.
std::string FormatAddress(const sockaddr_storage& storage);
// The IPv4 address other hosts reach this one at, for a listener bound to 0.0.0.0: the source
// address of this host's default route, else 127.0.0.1.
std::string AdvertisedHost();
// Equal on two processes that can share memory (see HelloHeader::host_id).
uint64_t ComputeHostId();
// Whether a UCX_TLS value (empty: the environment's, else UCX's default) enables shared memory.
bool TlsHasSharedMemory(std::string tls);
// The receive callback registered for AM id `id` (kAmHello..kAmBye); arg is the transport.
ucp_am_recv_callback_t AmHandlerFor(unsigned id);

// user_data of an endpoint's error handler.
struct EpArg {
  UcxTransportImpl* impl;
  uint64_t peer;
};

// What keeps a peer's mappings (MapRemote) readable: readers hold `mu` shared while they copy;
// FailPeer takes it exclusively and clears `alive` before it destroys the remote keys, which
// unmaps the memory.
struct MappingGuard {
  std::shared_mutex mu;
  bool alive = true;
};

struct Peer {
  // kConnecting (client) / kAccepted (server): bootstrap endpoint only, before the hello.
  // kWiring: data endpoint created, waiting for UCX to finish its wireup (its lanes decide the
  // bulk path); messages from the peer are already accepted. kOpen: usable by the user.
  enum class State { kConnecting, kAccepted, kWiring, kOpen, kClosed };
  PeerId id = kInvalidPeer;
  State state = State::kConnecting;
  PeerId remote_id = kInvalidPeer;  // what the peer calls us: dest_peer of what we send
  ucp_ep_h bootstrap_ep = nullptr;  // from the sockaddr connection manager
  ucp_ep_h ep = nullptr;            // data endpoint, from the peer's worker address
  std::unique_ptr<EpArg> ep_arg;    // error-handler argument of both endpoints
  bool use_rma = false;
  std::string remote_address;
  bool inbound = false;  // accepted by our listener
  bool same_host = false;
  uint64_t send_seq = 0;
  uint64_t recv_seq = 0;
  std::map<uint64_t, Message> reorder;  // arrived ahead of recv_seq (rendezvous finishing late)
  std::unordered_map<std::string, ucp_rkey_h> rkeys;  // unpacked remote keys by packed bytes
  std::shared_ptr<MappingGuard> mapping_guard;        // made by the first MapRemote
  Deadline connect_deadline{};
  std::shared_ptr<std::promise<StatusOr<PeerId>>> connect_waiter;  // client side, until open
};

// Whether AMs from the peer are processed (they may arrive while our data endpoint is wiring).
inline bool Receives(const Peer* peer) {
  return peer != nullptr &&
         (peer->state == Peer::State::kOpen || peer->state == Peer::State::kWiring);
}
inline bool Connecting(const Peer& peer) {
  return peer.state == Peer::State::kConnecting || peer.state == Peer::State::kAccepted ||
         peer.state == Peer::State::kWiring;
}

struct PendingOp {
  enum class Kind { kRmaPut, kRmaGet, kAmPut, kAmGet };
  Kind kind;
  PeerId peer;
  Completion done;
  Deadline deadline;
  uint8_t* local = nullptr;  // AM Get destination
  uint64_t length = 0;
  std::optional<Status> forced;  // result decided by a failure, whatever UCX reports later
};

class UcxTransportImpl : public UcxTransport {
 public:
  UcxTransportImpl(const UcxOptions& options, std::shared_ptr<UcxContext> context);
  ~UcxTransportImpl() override;
  Status Start();

  std::string name() const override;
  Status SetHandlers(Handlers handlers) override;
  StatusOr<std::string> Listen(const std::string& address) override;
  StatusOr<PeerId> Connect(const std::string& address, Deadline deadline) override;
  Status Send(PeerId peer, MessageType type, std::string payload) override;
  StatusOr<std::unique_ptr<Region>> RegisterMemory(void* data, uint64_t bytes) override;
  StatusOr<std::unique_ptr<Region>> AllocateMemory(uint64_t bytes) override;
  void Put(const Transfer& transfer, Completion done) override;
  void Get(const Transfer& transfer, Completion done) override;
  void PutBatch(std::vector<Transfer> transfers, BatchCompletion done) override;
  void GetBatch(std::vector<Transfer> transfers, BatchCompletion done) override;
  Status Disconnect(PeerId peer) override;
  void Shutdown() override;
  StatusOr<std::string> BulkPath(PeerId peer) override;
  StatusOr<std::shared_ptr<RemoteMapping>> MapRemote(PeerId peer, const RemoteRegion& remote,
                                                     Deadline deadline) override;

  // --- UCX callbacks (progress thread, inside ucp_worker_progress) ---
  ucs_status_t HandleAm(unsigned id, const void* header, size_t header_length, void* data,
                        size_t length, const ucp_am_recv_param_t* param);
  static void OnEpError(void* arg, ucp_ep_h ep, ucs_status_t status);
  static void OnConnRequest(ucp_conn_request_h request, void* arg);

 private:
  // Queues `command` for the progress thread and wakes it.
  void Post(std::function<void()> command);
  void Loop();
  bool RunCommandsAndDeferred();  // true when anything ran
  bool RunEvents();               // true when any ran
  void CheckDeadlines();
  int NextTimeoutMs() const;

  // Progress thread only.
  Peer* FindPeer(PeerId id);
  Peer* PeerOfEp(ucp_ep_h ep);
  PeerId NewPeer(ucp_ep_h ep, Peer::State state);
  // Creates the data endpoint from the peer's worker address and flushes it; FinishOpen runs
  // when the wireup is done.
  Status OpenPeer(Peer& peer, const void* worker_address, size_t length);

 public:  // for the flush callback
  void FinishOpen(PeerId id, ucs_status_t status);
  // UCX requests with a callback still to come. While any is outstanding the progress thread
  // polls instead of sleeping: tcp sends advance only on progress calls, and its event fd does
  // not wake us for socket writability.
  int64_t inflight_ = 0;

 private:
  void FailPeer(PeerId id, const Status& for_ops, std::optional<Status> notify);
  // Tells the peer (best effort, on the bootstrap endpoint) and closes it: a force close alone
  // is not reported to the other side in UCX 1.13 until its keepalive notices.
  void ClosePeer(PeerId id, const Status& for_ops);
  void SetPeerStatus(PeerId id, const Status& status);
  void SendMessageNow(PeerId id, MessageType type, std::string payload);
  void DeliverInOrder(Peer& peer, uint64_t seq, Message message);
  // Sends an AM with `header` and either `borrowed` bytes (which must stay valid until the send
  // completes: registered regions) or `owned` ones. `on_error` runs on a failed send.
  void SendAm(ucp_ep_h ep, unsigned id, const void* header, size_t header_length,
              const void* borrowed, size_t borrowed_length, std::string owned,
              std::function<void(Status)> on_error);
  bool ChooseRma(ucp_ep_h ep) const;
  void StartTransfer(const Transfer& transfer, Completion done, bool is_put);
  void StartBatch(std::vector<Transfer> transfers, BatchCompletion done, bool is_put);
  // The progress thread's part of a Put/Get whose arguments were checked (`valid`).
  void StartOnThread(const Transfer& transfer, Completion done, bool is_put, Status valid);

 public:  // for the C callbacks of ucx_bulk.cc / ucx_transport.cc
  void CompleteOp(uint64_t op_id, Status status);
  void FinishPutData(PeerId peer, uint64_t op_id, ucs_status_t status);
  void FinishMessage(PeerId peer, uint64_t seq, Message message, ucs_status_t status);

 private:
  StatusOr<ucp_rkey_h> RemoteKey(Peer& peer, const std::string& packed);
  ucs_status_t HandleHello(unsigned id, const void* header, size_t header_length, void* data,
                           size_t length, bool rendezvous, const ucp_am_recv_param_t* param);
  ucs_status_t HandleMessage(Peer& peer, const MessageHeader& header, void* data, size_t length,
                             bool rendezvous);
  ucs_status_t HandlePutData(Peer& peer, const BulkHeader& header, void* data, size_t length,
                             bool rendezvous);
  ucs_status_t HandleGetRequest(Peer& peer, const BulkHeader& header);
  ucs_status_t HandleGetData(Peer& peer, const BulkHeader& header, void* data, size_t length,
                             bool rendezvous);
  ucs_status_t HandlePutAck(Peer& peer, const BulkHeader& header, void* data, size_t length,
                            bool rendezvous);
  void ProtocolError(Peer& peer, const std::string& what);
  void SendBulkReply(Peer& peer, unsigned am_id, uint64_t op_id, const Status& status);
  // Same-host peers: when the remote region is shared memory that this process can map
  // (ucp_rkey_ptr), the transfer is one memcpy here. False when it is not (the caller goes on
  // with the peer's bulk path).
  bool TryDirectCopy(uint64_t op_id, Peer& peer, const Transfer& transfer, bool is_put);
  // The peer's memory that `transfer` names, mapped here; nullptr where it cannot be.
  void* DirectAddress(Peer& peer, const Transfer& transfer);
  void StartRmaPut(uint64_t op_id, Peer& peer, const Transfer& transfer);
  void StartRmaGet(uint64_t op_id, Peer& peer, const Transfer& transfer);
  void StartAmPut(uint64_t op_id, Peer& peer, const Transfer& transfer);
  void StartAmGet(uint64_t op_id, Peer& peer, const Transfer& transfer);

  const UcxOptions options_;
  std::shared_ptr<UcxContext> context_;
  ucp_worker_h worker_ = nullptr;
  std::string worker_address_;  // ours, sent in the handshake
  uint64_t host_id_ = 0;
  bool sm_enabled_ = false;  // the configured UCX_TLS includes shared-memory transports
  std::unique_ptr<ParallelCopier> copier_;  // direct copies (TryDirectCopy); made by Start
  int epoll_fd_ = -1;
  std::thread thread_;

  std::mutex command_mu_;
  std::vector<std::function<void()>> commands_;  // guarded by command_mu_
  std::atomic<bool> has_commands_{false};
  std::atomic<bool> sleeping_{false};  // the progress thread is (about to be) in epoll_wait

  std::mutex state_mu_;  // guards the fields down to the next blank line
  Handlers handlers_;
  bool started_ = false;
  bool shut_down_ = false;
  std::unordered_map<PeerId, Status> peer_status_;  // OK while open; why otherwise
  std::unordered_map<PeerId, bool> peer_uses_rma_;

  // --- progress thread only ---
  bool stopping_ = false;
  ucp_listener_h listener_ = nullptr;
  PeerId next_peer_ = 1;
  uint64_t next_op_ = 1;
  std::unordered_map<PeerId, Peer> peers_;
  std::unordered_map<ucp_ep_h, PeerId> ep_peers_;
  std::unordered_map<uint64_t, PendingOp> ops_;
  std::vector<std::function<void()>> deferred_;  // UCX calls not allowed inside its callbacks
  std::vector<std::function<void()>> events_;    // user callbacks, run outside UCX callbacks
  std::vector<void*> closing_;                   // ucp_ep_close_nbx requests in flight
  std::vector<std::unique_ptr<EpArg>> retired_ep_args_;
};

}  // namespace strata::transport::ucx
