// Internals of the UCX transport, shared by ucx_transport.cc (lifecycle, connections, messages)
// and ucx_bulk.cc (Put/Get). Everything below `progress thread only` is touched by the progress
// thread alone; the rest is guarded as marked.
#pragma once

#include <ucp/api/ucp.h>

#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "transport/ucx/ucx_memory.h"
#include "transport/ucx/ucx_transport.h"

namespace strata::transport::ucx {

// Active message ids of the wire protocol (both sides run this same code).
enum AmId : unsigned {
  kAmHello = 1,       // client -> server after ep creation: HelloHeader
  kAmHelloAck = 2,    // server -> client: HelloHeader (echoes client_peer)
  kAmMessage = 3,     // Send: MessageHeader + payload
  kAmPutData = 4,     // AM-path Put: BulkHeader + bytes to store at address
  kAmPutAck = 5,      // BulkHeader (status) + error message
  kAmGetRequest = 6,  // AM-path Get: BulkHeader, no data
  kAmGetData = 7,     // BulkHeader (status) + bytes, or the error message
};

inline constexpr uint64_t kProtocolMagic = 0x5354524154415631ull;  // "STRATAV1"

struct HelloHeader {
  uint64_t magic;
  uint64_t client_peer;  // the client's PeerId for this connection
};

struct MessageHeader {
  uint64_t seq;  // per-connection, per-direction sequence: the receiver restores send order
  uint32_t type;
  uint32_t reserved;
};

struct BulkHeader {
  uint64_t op_id;
  uint64_t address;
  uint64_t length;
  int32_t status;  // StatusCode of the result (acks, GetData)
  uint32_t reserved;
};

class UcxTransportImpl;

// user_data of an endpoint's error handler.
struct EpArg {
  UcxTransportImpl* impl;
  uint64_t peer;
};

struct Peer {
  enum class State { kConnecting, kAccepted, kOpen, kClosed };
  PeerId id = kInvalidPeer;
  State state = State::kConnecting;
  ucp_ep_h ep = nullptr;
  std::unique_ptr<EpArg> ep_arg;
  bool use_rma = false;
  std::string remote_address;
  uint64_t send_seq = 0;
  uint64_t recv_seq = 0;
  std::map<uint64_t, Message> reorder;  // arrived ahead of recv_seq (rendezvous finishing late)
  std::unordered_map<std::string, ucp_rkey_h> rkeys;  // unpacked remote keys by packed bytes
  Deadline connect_deadline{};
  std::shared_ptr<std::promise<StatusOr<PeerId>>> connect_waiter;  // client side, until open
};

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
  void Put(const Transfer& transfer, Completion done) override;
  void Get(const Transfer& transfer, Completion done) override;
  Status Disconnect(PeerId peer) override;
  void Shutdown() override;
  StatusOr<std::string> BulkPath(PeerId peer) override;

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
  void RunEvents();
  void CheckDeadlines();
  int NextTimeoutMs() const;

  // Progress thread only.
  Peer* FindPeer(PeerId id);
  Peer* PeerOfEp(ucp_ep_h ep);
  PeerId NewPeer(ucp_ep_h ep, Peer::State state);
  void OpenPeer(Peer& peer);
  void FailPeer(PeerId id, const Status& for_ops, std::optional<Status> notify);
  void SetPeerStatus(PeerId id, const Status& status);
  void SendMessageNow(PeerId id, MessageType type, std::string payload);
  void DeliverInOrder(Peer& peer, uint64_t seq, Message message);
  // Sends an AM with `header` and either `borrowed` bytes (which must stay valid until the send
  // completes: registered regions) or `owned` ones. `on_error` runs on a failed send.
  void SendAm(Peer& peer, unsigned id, const void* header, size_t header_length,
              const void* borrowed, size_t borrowed_length, std::string owned,
              std::function<void(Status)> on_error);
  bool ChooseRma(ucp_ep_h ep) const;
  void StartTransfer(const Transfer& transfer, Completion done, bool is_put);

 public:  // for the C callbacks of ucx_bulk.cc / ucx_transport.cc
  void CompleteOp(uint64_t op_id, Status status);
  void FinishPutData(PeerId peer, uint64_t op_id, ucs_status_t status);
  void FinishMessage(PeerId peer, uint64_t seq, Message message, ucs_status_t status);

 private:
  StatusOr<ucp_rkey_h> RemoteKey(Peer& peer, const std::string& packed);
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
  void StartRmaPut(uint64_t op_id, Peer& peer, const Transfer& transfer);
  void StartRmaGet(uint64_t op_id, Peer& peer, const Transfer& transfer);
  void StartAmPut(uint64_t op_id, Peer& peer, const Transfer& transfer);
  void StartAmGet(uint64_t op_id, Peer& peer, const Transfer& transfer);

  const UcxOptions options_;
  std::shared_ptr<UcxContext> context_;
  ucp_worker_h worker_ = nullptr;
  int epoll_fd_ = -1;
  std::thread thread_;

  std::mutex command_mu_;
  std::vector<std::function<void()>> commands_;  // guarded by command_mu_
  std::atomic<bool> has_commands_{false};

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
