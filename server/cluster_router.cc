#include "server/cluster_router.h"

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <random>

#include "common/clock.h"
#include "common/log.h"
#include "decode/scheduler.h"
#include "decode/wire.h"
#include "proto/status_convert.h"
#include "service/rpc_node.h"

namespace strata::server {

using decode::FinishReason;
using decode::TokenEvent;
using transport::PeerId;

namespace {

constexpr int64_t kSweepMs = 100;
constexpr int64_t kAdmitRetryMs = 20;
constexpr int64_t kFullBackoffMs = 50;

const char* RoleName(v1::Role role) {
  switch (role) {
    case v1::ROLE_PREFILL:
      return "prefill";
    case v1::ROLE_DECODE:
      return "decode";
    case v1::ROLE_KVCACHE:
      return "KV pool";
    default:
      return "unknown";
  }
}

uint64_t PrefixKey(const std::vector<int32_t>& prompt) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < std::min<size_t>(prompt.size(), 64); ++i) {
    h = (h ^ static_cast<uint32_t>(prompt[i])) * 1099511628211ull;
  }
  return h;
}

}  // namespace

class ClusterRouter::Impl {
 public:
  struct Instance {
    std::string id;
    v1::Role role = v1::ROLE_UNSPECIFIED;
    std::string address;
    PeerId peer = transport::kInvalidPeer;
    v1::Capacity capacity;
    v1::Load load;
    int64_t last_seen_ns = 0;
    int assigned = 0;             // requests on it now
    int64_t assigned_tokens = 0;  // prefill: prompt tokens sent and not answered yet
    int64_t full_until_ns = 0;    // decode: said RESOURCE_EXHAUSTED recently
  };
  enum class Phase { kWaiting, kAdmitting, kPrefilling, kDecoding };
  struct Request {
    decode::GenerateRequest request;
    std::shared_ptr<EventCallback> callback;
    Phase phase = Phase::kWaiting;
    std::string decode_id;
    std::string prefill_id;
    v1::KvLocation destination;
    bool first_token_seen = false;
    std::vector<v1::RequestTokens> early;  // decode tokens that overtook the first token
    int attempts = 0;
    // The id the instances know this request by: a fresh one for every decode admission, so
    // the messages and reservations of an attempt given up on (a lost or slow instance) never
    // meet the next attempt's.
    std::string wire_id;
    int admissions = 0;
    std::string avoid_prefill;  // one that failed it (stopping, or cannot reach decode)
    int64_t deadline_ns = 0;
    int64_t not_before_ns = 0;
  };
  using Delivery = std::pair<std::shared_ptr<EventCallback>, TokenEvent>;

  RouterOptions options;
  std::unique_ptr<service::RpcNode> node;
  mutable std::mutex mu;
  std::map<std::string, Instance> instances;
  std::map<PeerId, std::string> by_peer;
  std::map<std::string, Request> requests;
  std::deque<std::string> waiting;
  std::map<uint64_t, std::string> affinity;  // prompt prefix -> prefill instance id
  // Requests sent to each instance id, ever (kept when the instance is dropped, so the
  // strata_router_requests_total counters never go down).
  std::map<std::string, int64_t> routed;
  StatelessChoice stateless;  // RoutingPolicy::kRoundRobin / kRandom
  bool stopped = false;

  // --- Helpers (mu held).
  void Deliver(std::vector<Delivery>* out, Request& r, TokenEvent ev) {
    out->emplace_back(r.callback, std::move(ev));
  }
  void Finish(std::vector<Delivery>* out, const std::string& id, FinishReason reason,
              Status error) {
    auto it = requests.find(id);
    if (it == requests.end()) return;
    Request& r = it->second;
    TokenEvent ev;
    ev.finish = reason;
    ev.error = std::move(error);
    if (!r.first_token_seen) ev.prompt_tokens = static_cast<int>(r.request.prompt_token_ids.size());
    Deliver(out, r, std::move(ev));
    Release(r, reason != FinishReason::kStop && reason != FinishReason::kLength);
    std::erase(waiting, id);
    requests.erase(it);
  }
  // Lets go of the request's instances; `abort` tells them to stop it.
  void Release(Request& r, bool abort) {
    if (auto* d = Find(r.decode_id)) {
      --d->assigned;
      if (abort) SendAbort(d->peer, r.wire_id);
    }
    if (auto* p = Find(r.prefill_id); p != nullptr && r.phase == Phase::kPrefilling) {
      --p->assigned;
      p->assigned_tokens -= static_cast<int64_t>(r.request.prompt_token_ids.size());
      if (abort) SendAbort(p->peer, r.wire_id);
    }
    r.decode_id.clear();
    r.prefill_id.clear();
  }
  // The request a message from an instance is about, or nullptr (ended, or an old attempt's).
  // A wire id is the request id, then "#N" from the second admission on.
  Request* FindByWire(const std::string& wire_id, std::string* id) {
    for (std::string candidate : {wire_id, wire_id.substr(0, wire_id.rfind('#'))}) {
      auto it = requests.find(candidate);
      if (it != requests.end() && it->second.wire_id == wire_id) {
        *id = candidate;
        return &it->second;
      }
    }
    return nullptr;
  }
  void NewWireId(const std::string& id, Request& r) {
    ++r.admissions;
    r.wire_id = r.admissions == 1 ? id : id + "#" + std::to_string(r.admissions);
  }
  Instance* Find(const std::string& id) {
    auto it = instances.find(id);
    return it == instances.end() ? nullptr : &it->second;
  }
  void SendAbort(PeerId peer, const std::string& id) {
    v1::Envelope e;
    e.mutable_abort()->set_request_id(id);
    (void)node->Send(peer, std::move(e));
  }
  static void Run(std::vector<Delivery>& out) {
    for (auto& [cb, ev] : out) (*cb)(std::move(ev));
    out.clear();
  }

  // Why no request can be served yet (mu held): the role with no instance registered, and where
  // instances register. Empty once there is a prefill and a decode instance.
  std::string MissingRolesLocked() const {
    int prefill = 0, decode = 0;
    for (const auto& [id, in] : instances) {
      prefill += in.role == v1::ROLE_PREFILL ? 1 : 0;
      decode += in.role == v1::ROLE_DECODE ? 1 : 0;
    }
    if (prefill > 0 && decode > 0) return "";
    const char* missing = prefill == 0 && decode == 0 ? "prefill or decode"
                          : prefill == 0              ? "prefill"
                                                      : "decode";
    return std::string("no ") + missing + " instance is registered with the router at " +
           (node ? node->listen_address() : std::string("(not listening)")) + " (" +
           std::to_string(prefill) + " prefill, " + std::to_string(decode) +
           " decode); it serves once it has one of each";
  }

  // The instance's figures from its last heartbeat.
  decode::InstanceStats Describe(const Instance& in) const {
    decode::InstanceStats i;
    i.id = in.id;
    i.role = RoleName(in.role);
    i.kv_blocks_total = static_cast<int64_t>(in.capacity.num_kv_blocks());
    i.kv_blocks_used = static_cast<int64_t>(in.load.num_kv_blocks_used());
    i.running = static_cast<int>(in.load.num_running_requests());
    i.waiting = static_cast<int>(in.load.num_queued_requests());
    i.queued_tokens = static_cast<int64_t>(in.load.num_queued_tokens());
    return i;
  }

  Instance* PickDecode(const Request& r, int64_t now) {
    Instance* best = nullptr;
    double best_score = 0;
    const int64_t need_tokens =
        static_cast<int64_t>(r.request.prompt_token_ids.size()) + r.request.sampling.max_tokens;
    std::vector<Instance*> candidates;
    for (auto& [id, in] : instances) {
      if (in.role != v1::ROLE_DECODE || in.full_until_ns > now) continue;
      const int64_t total = static_cast<int64_t>(in.capacity.num_kv_blocks());
      const int64_t bs = std::max<int64_t>(1, in.capacity.block_size_tokens());
      if ((need_tokens + bs - 1) / bs > total) continue;
      candidates.push_back(&in);
      double score = static_cast<double>(in.load.num_kv_blocks_used()) /
                         static_cast<double>(std::max<int64_t>(1, total)) +
                     0.01 * (in.assigned + static_cast<double>(in.load.num_queued_requests()));
      if (best == nullptr || score < best_score) {
        best = &in;
        best_score = score;
      }
    }
    if (options.routing == RoutingPolicy::kLoad || candidates.empty()) return best;
    return candidates[stateless.Pick(options.routing, StatelessChoice::Role::kDecode,
                                     candidates.size())];
  }
  // `avoid` (one that failed the request) is taken only when it is the only one.
  Instance* PickPrefill(const Request& r, const std::string& avoid) {
    if (options.routing != RoutingPolicy::kLoad) {
      std::vector<Instance*> candidates;
      Instance* avoided = nullptr;
      for (auto& [id, in] : instances) {
        if (in.role != v1::ROLE_PREFILL) continue;
        if (id == avoid) {
          avoided = &in;
        } else {
          candidates.push_back(&in);
        }
      }
      if (candidates.empty()) return avoided;
      return candidates[stateless.Pick(options.routing, StatelessChoice::Role::kPrefill,
                                       candidates.size())];
    }
    Instance* best = nullptr;
    auto aff = affinity.find(PrefixKey(r.request.prompt_token_ids));
    for (auto& [id, in] : instances) {
      if (in.role != v1::ROLE_PREFILL) continue;
      auto better = [&](const Instance& a, const Instance& b) {
        if ((a.id == avoid) != (b.id == avoid)) return b.id == avoid;
        if (a.assigned_tokens != b.assigned_tokens) return a.assigned_tokens < b.assigned_tokens;
        // Cache-aware tie-break: the instance that last ran this prefix.
        return aff != affinity.end() && a.id == aff->second;
      };
      if (best == nullptr || better(in, *best)) best = &in;
    }
    return best;
  }

  // --- Admission (dispatch thread).
  void TryAdmit() {
    std::vector<Delivery> out;
    {
      std::lock_guard lock(mu);
      const int64_t now = MonotonicNanos();
      bool retry_later = false;
      for (auto it = waiting.begin(); it != waiting.end();) {
        Request& r = requests.at(*it);
        if (r.not_before_ns > now) {
          retry_later = true;
          ++it;
          continue;
        }
        Instance* d = PickDecode(r, now);
        if (d == nullptr) {
          retry_later = true;
          break;  // FIFO: nobody overtakes the head
        }
        log::Debug("{}: admitting on decode {} (attempt {})", *it, d->id, r.attempts + 1);
        r.phase = Phase::kAdmitting;
        r.decode_id = d->id;
        ++d->assigned;
        ++routed[d->id];
        ++r.attempts;
        NewWireId(*it, r);
        SendAdmit(*it, r, *d);
        it = waiting.erase(it);
      }
      if (retry_later) node->PostAfter(kAdmitRetryMs, [this] { TryAdmit(); });
    }
    Run(out);
  }

  void SendAdmit(const std::string& id, const Request& r, const Instance& d) {
    v1::Envelope e;
    auto* a = e.mutable_decode_admit();
    a->set_request_id(r.wire_id);
    a->set_num_prompt_tokens(static_cast<uint32_t>(r.request.prompt_token_ids.size()));
    const int64_t bs = std::max<int64_t>(1, d.capacity.block_size_tokens());
    a->set_num_blocks(static_cast<uint32_t>(
        (static_cast<int64_t>(r.request.prompt_token_ids.size()) + bs - 1) / bs));
    a->set_lease_ms(static_cast<uint64_t>(options.kv_lease_ms));
    *a->mutable_sampling() = decode::ToProto(r.request.sampling);
    a->mutable_sampling()->clear_num_prompt_logprobs();  // prefill's job
    for (int32_t t : r.request.prompt_token_ids) a->add_prompt_token_ids(t);
    a->set_deadline_unix_ms(static_cast<uint64_t>(UnixMillisFromMonotonicDeadline(r.deadline_ns)));
    node->Call(d.peer, std::move(e), transport::DeadlineAfterMillis(options.call_timeout_ms),
               [this, id, wire_id = r.wire_id, decode_id = d.id](StatusOr<v1::Envelope> reply) {
                 OnAdmitReply(id, wire_id, decode_id, std::move(reply));
               });
  }

  void OnAdmitReply(const std::string& id, const std::string& wire_id, const std::string& decode_id,
                    StatusOr<v1::Envelope> reply) {
    std::vector<Delivery> out;
    {
      std::lock_guard lock(mu);
      Status st =
          reply.ok() ? proto::FromProto(reply->decode_admit_reply().error()) : reply.status();
      auto it = requests.find(id);
      Instance* d = Find(decode_id);
      if (it == requests.end() || it->second.wire_id != wire_id ||
          it->second.decode_id != decode_id || it->second.phase != Phase::kAdmitting) {
        // Aborted, timed out or moved on meanwhile: give a reservation back.
        if (st.ok() && d != nullptr) SendAbort(d->peer, wire_id);
        return;
      }
      Request& r = it->second;
      if (!st.ok()) {
        if (d != nullptr) --d->assigned;
        r.decode_id.clear();
        if (st.code() == StatusCode::kInvalidArgument) {
          Finish(&out, id, FinishReason::kError, st);
        } else {
          // Full, gone or slow: wait and try again (another instance, if any).
          if (d != nullptr && st.code() == StatusCode::kResourceExhausted) {
            d->full_until_ns = MonotonicNanos() + kFullBackoffMs * 1000000;
          } else if (d != nullptr) {
            log::Warn("{}: decode instance {} did not admit: {}", id, decode_id, st.message());
          }
          r.phase = Phase::kWaiting;
          if (st.code() == StatusCode::kResourceExhausted) --r.attempts;
          if (r.attempts >= options.max_attempts) {
            Finish(&out, id, FinishReason::kError,
                   UnavailableError("no decode instance could take the request: " + st.message()));
          } else {
            r.not_before_ns = MonotonicNanos() + kAdmitRetryMs * 1000000;
            waiting.push_front(id);
            node->PostAfter(kAdmitRetryMs, [this] { TryAdmit(); });
          }
        }
      } else {
        r.destination = std::move(*reply->mutable_decode_admit_reply()->mutable_kv_destination());
        StartPrefill(&out, id, r);
      }
    }
    Run(out);
  }

  void StartPrefill(std::vector<Delivery>* out, const std::string& id, Request& r) {
    Instance* p = PickPrefill(r, r.avoid_prefill);
    Instance* d = Find(r.decode_id);
    if (p == nullptr || d == nullptr) {
      Finish(out, id, FinishReason::kError,
             UnavailableError(p == nullptr ? "no prefill instance is available"
                                           : "the decode instance went away"));
      return;
    }
    log::Debug("{}: prefill on {} for decode {}", id, p->id, d->id);
    r.phase = Phase::kPrefilling;
    r.prefill_id = p->id;
    ++p->assigned;
    ++routed[p->id];
    p->assigned_tokens += static_cast<int64_t>(r.request.prompt_token_ids.size());
    affinity[PrefixKey(r.request.prompt_token_ids)] = p->id;
    if (affinity.size() > 4096) affinity.erase(affinity.begin());
    v1::Envelope e;
    auto* pr = e.mutable_prefill_request();
    pr->set_request_id(r.wire_id);
    for (int32_t t : r.request.prompt_token_ids) pr->add_prompt_token_ids(t);
    *pr->mutable_sampling() = decode::ToProto(r.request.sampling);
    pr->set_decode_instance_id(d->id);
    // The blocks' owner is where the KV goes: an EP rank of the instance other than the one
    // that registered (its rank 0) when the instance is a data-parallel group.
    pr->set_decode_address(r.destination.owner_address().empty() ? d->address
                                                                 : r.destination.owner_address());
    *pr->mutable_kv_destination() = r.destination;
    pr->set_deadline_unix_ms(static_cast<uint64_t>(UnixMillisFromMonotonicDeadline(r.deadline_ns)));
    if (Status st = node->Send(p->peer, std::move(e)); !st.ok()) {
      // The failure callback of that peer restarts it elsewhere.
      log::Warn("{}: cannot send to prefill {}: {}", id, p->id, st.message());
    }
  }

  // --- Messages from instances (dispatch thread).
  void OnRequest(PeerId from, v1::Envelope e) {
    switch (e.body_case()) {
      case v1::Envelope::kRegisterInstance:
        return OnRegister(from, e.call_id(), e.register_instance());
      case v1::Envelope::kHeartbeat:
        return OnHeartbeat(from, e.call_id(), e.heartbeat());
      case v1::Envelope::kFirstToken:
        return OnFirstToken(from, e.first_token());
      case v1::Envelope::kTokenBatch:
        return OnTokenBatch(from, e.token_batch());
      default:
        log::Warn("router: unexpected {} from peer {}", proto::BodyName(e), from);
        if (e.call_id() != 0) {
          (void)node->ReplyError(
              from, e.call_id(),
              InvalidArgumentError("the router does not take " + std::string(proto::BodyName(e))));
        }
    }
  }

  void OnRegister(PeerId from, uint64_t call_id, const v1::RegisterInstance& reg) {
    std::vector<Delivery> out;
    Status st = OkStatus();
    {
      std::lock_guard lock(mu);
      if (reg.instance_id().empty()) {
        st = InvalidArgumentError("instance_id is empty");
      } else if (reg.role() != v1::ROLE_PREFILL && reg.role() != v1::ROLE_DECODE &&
                 reg.role() != v1::ROLE_KVCACHE) {
        st = InvalidArgumentError("only prefill, decode and KV pool instances register");
      } else if (reg.role() == v1::ROLE_KVCACHE) {
        // A pool registers only to report its figures (/metrics): it serves any model.
      } else if (!options.model_name.empty() && reg.model() != options.model_name) {
        st = InvalidArgumentError("this router serves model '" + options.model_name +
                                  "', the instance serves '" + reg.model() + "'");
      } else if (reg.capacity().block_size_tokens() == 0) {
        st = InvalidArgumentError("capacity.block_size_tokens is 0");
      }
      if (st.ok()) {
        if (auto* old = Find(reg.instance_id()); old != nullptr && old->peer != from) {
          // Restarted under the same id: what it had is lost.
          DropInstance(&out, reg.instance_id(), "it registered again (restarted)");
        }
        Instance& in = instances[reg.instance_id()];
        in.id = reg.instance_id();
        in.role = reg.role();
        in.address = reg.address();
        in.peer = from;
        in.capacity = reg.capacity();
        in.load = reg.load();
        in.last_seen_ns = MonotonicNanos();
        by_peer[from] = in.id;
        log::Info("registered {} instance {} at {}", RoleName(reg.role()), in.id, in.address);
      }
    }
    Run(out);
    v1::Envelope reply;
    auto* rr = reply.mutable_register_reply();
    *rr->mutable_error() = proto::ToProto(st);
    rr->set_heartbeat_interval_ms(static_cast<uint64_t>(options.heartbeat_interval_ms));
    rr->set_lease_ms(static_cast<uint64_t>(options.instance_lease_ms));
    (void)node->Reply(from, call_id, std::move(reply));
    if (st.ok()) node->Post([this] { TryAdmit(); });
  }

  void OnHeartbeat(PeerId from, uint64_t call_id, const v1::Heartbeat& hb) {
    bool known;
    {
      std::lock_guard lock(mu);
      Instance* in = Find(hb.instance_id());
      known = in != nullptr && in->peer == from;
      if (known) {
        in->load = hb.load();
        in->last_seen_ns = MonotonicNanos();
      }
    }
    v1::Envelope reply;
    reply.mutable_heartbeat_reply()->set_reregister(!known);
    (void)node->Reply(from, call_id, std::move(reply));
  }

  // Whether `from` is the instance `instance_id` serving a request now (and not one it was
  // moved away from, whose late messages are ignored).
  bool IsFrom(PeerId from, const std::string& instance_id) {
    Instance* in = Find(instance_id);
    return in != nullptr && in->peer == from;
  }

  void OnFirstToken(PeerId from, const v1::FirstToken& ft) {
    std::vector<Delivery> out;
    {
      std::lock_guard lock(mu);
      std::string id;
      Request* found = FindByWire(ft.request_id(), &id);
      if (found == nullptr || found->phase != Phase::kPrefilling ||
          !IsFrom(from, found->prefill_id)) {
        log::Debug("{}: first token ignored (ended, or an earlier attempt's)", ft.request_id());
        return;
      }
      Request& r = *found;
      if (ft.has_error() && ft.error().code() != v1::STATUS_CODE_OK) {
        Status why = proto::FromProto(ft.error());
        const bool instance_trouble =
            why.code() == StatusCode::kCancelled || why.code() == StatusCode::kUnavailable;
        if (instance_trouble && r.attempts < options.max_attempts) {
          // That prefill instance is stopping or cannot reach decode: another one tries.
          r.avoid_prefill = r.prefill_id;
          Readmit(id, r);
        } else {
          Finish(&out, id, FinishReason::kError, why);
        }
      } else {
        if (Instance* p = Find(r.prefill_id)) {
          --p->assigned;
          p->assigned_tokens -= static_cast<int64_t>(r.request.prompt_token_ids.size());
        }
        r.prefill_id.clear();
        r.phase = Phase::kDecoding;
        r.first_token_seen = true;
        TokenEvent ev;
        decode::GeneratedToken t;
        t.token_id = ft.token_id();
        t.logprob = ft.logprob();
        for (const auto& x : ft.top_logprobs().top())
          t.top_logprobs.push_back({x.token_id(), x.logprob()});
        ev.tokens.push_back(std::move(t));
        ev.prompt_tokens = static_cast<int>(ft.num_prompt_tokens());
        ev.cached_tokens = static_cast<int>(ft.num_cached_tokens());
        const v1::RequestTokens& pl = ft.prompt_logprobs();
        for (int i = 0; i < pl.token_ids_size(); ++i) {
          ev.prompt_logprobs.push_back(decode::TokenAt(pl, i));
        }
        Deliver(&out, r, std::move(ev));
        std::vector<v1::RequestTokens> early = std::move(r.early);
        Instance* d = Find(r.decode_id);
        for (const auto& rt : early) {
          if (d == nullptr || !OnRequestTokens(&out, d->peer, rt)) break;
        }
      }
    }
    Run(out);
  }

  // False when the request ended.
  bool OnRequestTokens(std::vector<Delivery>* out, PeerId from, const v1::RequestTokens& rt) {
    std::string id;
    Request* found = FindByWire(rt.request_id(), &id);
    if (found == nullptr || !IsFrom(from, found->decode_id)) return false;
    Request& r = *found;
    if (!r.first_token_seen) {
      r.early.push_back(rt);  // decode overtook prefill's FirstToken message
      return true;
    }
    FinishReason finish = decode::FromProto(rt.finish_reason());
    if (rt.token_ids_size() > 0) {
      TokenEvent ev;
      for (int i = 0; i < rt.token_ids_size(); ++i) ev.tokens.push_back(decode::TokenAt(rt, i));
      const bool done = finish == FinishReason::kStop || finish == FinishReason::kLength;
      if (done) ev.finish = finish;
      Deliver(out, r, std::move(ev));
      if (done) {
        Release(r, false);
        requests.erase(id);
        return false;
      }
    }
    if (finish == FinishReason::kNone) return true;
    Status error = finish == FinishReason::kError ? proto::FromProto(rt.error()) : OkStatus();
    if (finish == FinishReason::kError && error.ok()) error = InternalError("decode failed");
    if (finish == FinishReason::kAbort) {
      // The router's own aborts remove the request first: this one is the instance's (it is
      // shutting down or lost its router connection).
      finish = FinishReason::kError;
      error = UnavailableError("the decode instance stopped the request (shutting down?)");
    }
    Finish(out, id, finish, error);
    return false;
  }

  void OnTokenBatch(PeerId from, const v1::TokenBatch& batch) {
    std::vector<Delivery> out;
    {
      std::lock_guard lock(mu);
      for (const auto& rt : batch.requests()) OnRequestTokens(&out, from, rt);
    }
    Run(out);
  }

  // An instance is gone: requests that had no token yet start again elsewhere, the others fail.
  // By value: callers pass strings owned by the maps this erases from.
  void DropInstance(std::vector<Delivery>* out, std::string instance_id, const std::string& why) {
    auto iit = instances.find(instance_id);
    if (iit == instances.end()) return;
    log::Warn("dropping instance {}: {}", instance_id, why);
    by_peer.erase(iit->second.peer);
    const v1::Role role = iit->second.role;
    instances.erase(iit);
    std::vector<std::string> ids;
    for (auto& [id, r] : requests) {
      if (r.decode_id == instance_id || r.prefill_id == instance_id) ids.push_back(id);
    }
    for (const auto& id : ids) {
      Request& r = requests.at(id);
      const bool no_token = !r.first_token_seen;
      log::Debug("{}: its instance {} went away (phase {}, first token {})", id, instance_id,
                 static_cast<int>(r.phase), r.first_token_seen);
      if (no_token && r.attempts < options.max_attempts) {
        Readmit(id, r);
        continue;
      }
      Finish(out, id, FinishReason::kError,
             UnavailableError("the " + std::string(RoleName(role)) +
                              " instance serving the request failed (" + why + ")"));
    }
  }

  // Starts a request that has no token yet over: what its instances hold for it is given back
  // (the KV reservation too: the next attempt gets a new one, under a new wire id).
  void Readmit(const std::string& id, Request& r) {
    Release(r, /*abort=*/true);
    r.early.clear();  // tokens of the decode instance given up on, if any
    r.phase = Phase::kWaiting;
    waiting.push_front(id);
    node->Post([this] { TryAdmit(); });
  }

  void OnPeerFailure(PeerId peer, const Status& why) {
    std::vector<Delivery> out;
    {
      std::lock_guard lock(mu);
      auto it = by_peer.find(peer);
      if (it != by_peer.end()) DropInstance(&out, it->second, "connection lost: " + why.message());
    }
    Run(out);
  }

  void Sweep() {
    std::vector<Delivery> out;
    {
      std::lock_guard lock(mu);
      if (stopped) return;
      const int64_t now = MonotonicNanos();
      std::vector<std::string> dead;
      for (const auto& [id, in] : instances) {
        if (now - in.last_seen_ns > options.instance_lease_ms * 1000000) dead.push_back(id);
      }
      for (const auto& id : dead) DropInstance(&out, id, "missed its heartbeat lease");
      std::vector<std::string> late;
      for (const auto& [id, r] : requests) {
        if (r.deadline_ns > 0 && now > r.deadline_ns) late.push_back(id);
      }
      for (const auto& id : late) {
        Finish(&out, id, FinishReason::kError,
               DeadlineExceededError("the request ran past its deadline (--request-timeout)"));
      }
      node->PostAfter(kSweepMs, [this] { Sweep(); });
    }
    Run(out);
  }
};

StatusOr<std::unique_ptr<ClusterRouter>> ClusterRouter::Start(
    RouterOptions options, std::unique_ptr<transport::Transport> transport) {
  if (options.vocab_size <= 0 || options.max_model_len <= 0) {
    return InvalidArgumentError("router needs the model's vocabulary size and context length");
  }
  auto impl = std::make_unique<Impl>();
  Impl* raw = impl.get();
  impl->options = std::move(options);
  service::RpcCallbacks callbacks;
  callbacks.on_request = [raw](PeerId from, v1::Envelope e) { raw->OnRequest(from, std::move(e)); };
  callbacks.on_peer_failure = [raw](PeerId peer, const Status& why) {
    raw->OnPeerFailure(peer, why);
  };
  STRATA_ASSIGN_OR_RETURN(impl->node,
                          service::RpcNode::Create(std::move(transport), std::move(callbacks)));
  STRATA_ASSIGN_OR_RETURN(std::string bound, impl->node->Listen(impl->options.listen));
  log::Info("router: instances register at {} (routing policy: {})", bound,
            RoutingPolicyName(impl->options.routing));
  impl->node->PostAfter(kSweepMs, [raw] { raw->Sweep(); });
  return std::unique_ptr<ClusterRouter>(new ClusterRouter(std::move(impl)));
}

ClusterRouter::ClusterRouter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClusterRouter::~ClusterRouter() { Shutdown(); }

std::string ClusterRouter::address() const { return impl_->node->listen_address(); }

Status ClusterRouter::Submit(decode::GenerateRequest request, EventCallback on_event) {
  Impl& m = *impl_;
  STRATA_RETURN_IF_ERROR(
      decode::ValidateGenerateRequest(request, m.options.vocab_size, m.options.max_model_len));
  if (!request.sampling.seed) {
    // Prefill samples the first token, decode the rest: one seed for both.
    thread_local std::mt19937_64 rng{std::random_device{}()};
    request.sampling.seed = rng();
  }
  if (!request.sampling.ignore_eos) {
    for (int32_t eos : m.options.eos_token_ids) request.sampling.stop_token_ids.push_back(eos);
  }
  {
    std::lock_guard lock(m.mu);
    if (m.stopped) return UnavailableError("the server is shutting down");
    if (std::string missing = m.MissingRolesLocked(); !missing.empty()) {
      return UnavailableError(missing + "; retry later");
    }
    if (static_cast<int>(m.waiting.size()) >= m.options.max_waiting) {
      return ResourceExhaustedError("the queue is full (" + std::to_string(m.options.max_waiting) +
                                    " requests waiting for decode capacity); retry later");
    }
    if (m.requests.count(request.request_id)) {
      return InvalidArgumentError("duplicate request id '" + request.request_id + "'");
    }
    Impl::Request r;
    r.deadline_ns = request.deadline_ns > 0
                        ? request.deadline_ns
                        : MonotonicNanos() + m.options.default_deadline_ms * 1000000;
    r.request = std::move(request);
    r.callback = std::make_shared<EventCallback>(std::move(on_event));
    std::string id = r.request.request_id;
    m.requests.emplace(id, std::move(r));
    m.waiting.push_back(id);
  }
  m.node->Post([&m] { m.TryAdmit(); });
  return OkStatus();
}

void ClusterRouter::Abort(const std::string& request_id) {
  Impl& m = *impl_;
  m.node->Post([&m, request_id] {
    std::vector<Impl::Delivery> out;
    {
      std::lock_guard lock(m.mu);
      m.Finish(&out, request_id, FinishReason::kAbort, OkStatus());
    }
    Impl::Run(out);
  });
}

decode::GenerationStats ClusterRouter::Stats() const {
  const Impl& m = *impl_;
  std::lock_guard lock(m.mu);
  decode::GenerationStats s;
  s.num_waiting = static_cast<int>(m.waiting.size());
  s.num_running = static_cast<int>(m.requests.size()) - s.num_waiting;
  s.requests_routed = m.routed;
  for (const auto& [id, in] : m.instances) {
    if (in.load.has_expert_parallel()) {
      const v1::ExpertParallelLoad& ep = in.load.expert_parallel();
      decode::ExpertParallelStats e;
      e.instance_id = id;
      e.ranks = static_cast<int>(ep.ranks());
      e.layers = static_cast<int>(ep.layers());
      e.tokens_received.assign(ep.tokens_received().begin(), ep.tokens_received().end());
      e.requests_per_rank.assign(ep.requests_per_rank().begin(), ep.requests_per_rank().end());
      e.max_mean_load_ratio = ep.max_mean_load_ratio();
      e.moe_rounds = static_cast<int64_t>(ep.moe_rounds());
      e.dispatch_seconds = ep.dispatch_seconds();
      e.combine_seconds = ep.combine_seconds();
      e.wait_seconds = ep.wait_seconds();
      e.overlap_fraction = ep.overlap_fraction();
      e.steps = static_cast<int64_t>(ep.steps());
      e.microbatched_steps = static_cast<int64_t>(ep.microbatched_steps());
      s.expert_parallel.push_back(std::move(e));
    }
    if (in.role == v1::ROLE_KVCACHE) s.kv_pools[id] = in.load.kv_pool();
    if (in.role == v1::ROLE_PREFILL || in.role == v1::ROLE_DECODE) {
      s.instances.push_back(m.Describe(in));
    }
    if (in.role != v1::ROLE_DECODE) continue;
    s.kv_blocks_total += static_cast<int64_t>(in.capacity.num_kv_blocks());
    s.kv_blocks_used += static_cast<int64_t>(in.load.num_kv_blocks_used());
  }
  return s;
}

bool ClusterRouter::Ready() const {
  const Impl& m = *impl_;
  std::lock_guard lock(m.mu);
  return !m.stopped && m.MissingRolesLocked().empty();
}

std::string ClusterRouter::NotReadyReason() const {
  const Impl& m = *impl_;
  std::lock_guard lock(m.mu);
  return m.stopped ? "the router is stopping" : m.MissingRolesLocked();
}

std::vector<InstanceInfo> ClusterRouter::Instances() const {
  const Impl& m = *impl_;
  std::lock_guard lock(m.mu);
  std::vector<InstanceInfo> out;
  for (const auto& [id, in] : m.instances) {
    InstanceInfo i;
    static_cast<decode::InstanceStats&>(i) = m.Describe(in);
    i.address = in.address;
    i.assigned = in.assigned;
    auto routed = m.routed.find(id);
    i.routed = routed == m.routed.end() ? 0 : routed->second;
    out.push_back(std::move(i));
  }
  return out;
}

void ClusterRouter::Shutdown() {
  Impl& m = *impl_;
  if (!m.node) return;
  std::vector<Impl::Delivery> out;
  {
    std::lock_guard lock(m.mu);
    if (m.stopped) return;
    m.stopped = true;
    std::vector<std::string> ids;
    for (const auto& [id, r] : m.requests) ids.push_back(id);
    for (const auto& id : ids) {
      m.Finish(&out, id, FinishReason::kError, UnavailableError("the server is shutting down"));
    }
  }
  Impl::Run(out);
  m.node->Shutdown();
}

}  // namespace strata::server
