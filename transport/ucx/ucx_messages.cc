// Messages of the UCX transport: the active-message send path shared by every AM (SendAm),
// Send's ordered delivery, and the dispatch of incoming AMs to their handlers.
#include <cstring>

#include "common/log.h"
#include "transport/ucx/ucx_transport_impl.h"

namespace strata::transport::ucx {
namespace {

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

ucp_am_recv_callback_t AmHandlerFor(unsigned id) { return kAmHandlers[id - kAmHello]; }

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
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.recv_am = &OnMessageReceived;
  param.user_data = recv;
  void* request = ucp_am_recv_data_nbx(worker_, data, recv->message.payload.data(),
                                       recv->message.payload.size(), &param);
  if (UCS_PTR_IS_PTR(request)) {
    ++inflight_;
    return UCS_INPROGRESS;
  }
  const ucs_status_t status = UCS_PTR_STATUS(request);
  deferred_.push_back([this, recv, status] {
    FinishMessage(recv->peer, recv->seq, std::move(recv->message), status);
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

}  // namespace strata::transport::ucx
