#include "expert_parallel/ep_endpoint.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>
#include <optional>

#include "common/clock.h"
#include "common/hex.h"
#include "common/log.h"
#include "expert_parallel/ep_endpoint_impl.h"

namespace strata::expert_parallel {
namespace {

StatusOr<nlohmann::json> ParseJson(const std::string& payload) {
  nlohmann::json j = nlohmann::json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return DataLossError("EP bootstrap: bad message");
  return j;
}

}  // namespace

StatusOr<std::unique_ptr<EpEndpoint>> EpEndpoint::Build(
    EpOptions o, std::unique_ptr<transport::Transport> transport,
    std::unique_ptr<Collective> collective) {
  if (o.size < 1 || o.rank < 0 || o.rank >= o.size) {
    return InvalidArgumentError("EP: rank " + std::to_string(o.rank) + " outside [0, " +
                                std::to_string(o.size) + ")");
  }
  if (o.num_experts < 1 || o.top_k < 1 || o.top_k > o.num_experts || o.hidden < 1 ||
      o.num_layers < 1) {
    return InvalidArgumentError(
        "EP: need num_layers, num_experts, hidden >= 1 and 1 <= top_k <= "
        "num_experts");
  }
  if (o.max_tokens_per_rank < 1 || o.max_tokens_per_rank > (1 << 20)) {
    return InvalidArgumentError("EP: max tokens per rank must be in [1, 2^20]");
  }
  if (o.num_streams < 1 || o.num_streams > 2) return InvalidArgumentError("EP: 1 or 2 streams");
  if (o.timeout_ms < 1) return InvalidArgumentError("EP: timeout_ms must be >= 1");
  if (o.size > 1 && !transport && !collective) {
    return InvalidArgumentError("EP: size > 1 needs a transport or a collective");
  }
  if (!o.placement) {
    STRATA_ASSIGN_OR_RETURN(
        Placement p, Placement::Uniform(o.num_layers, o.num_experts, o.redundant_experts, o.size));
    o.placement = std::make_shared<const Placement>(std::move(p));
  }
  if (o.placement->num_ranks() != o.size || o.placement->num_experts() != o.num_experts ||
      o.placement->num_layers() != o.num_layers) {
    return InvalidArgumentError(
        "EP: the placement is for " + std::to_string(o.placement->num_ranks()) + " ranks, " +
        std::to_string(o.placement->num_experts()) + " experts, " +
        std::to_string(o.placement->num_layers()) + " layers; the group has " +
        std::to_string(o.size) + ", the model " + std::to_string(o.num_experts) + " and " +
        std::to_string(o.num_layers));
  }
  std::unique_ptr<EpEndpoint> ep(new EpEndpoint());
  ep->options_ = o;
  ep->impl_ = std::make_unique<Impl>();
  Impl& im = *ep->impl_;
  im.opt = o;
  im.shape = {o.size, o.num_experts, o.hidden, o.top_k, o.max_tokens_per_rank, o.dispatch_dtype};
  im.dcap = im.shape.DispatchCapacity();
  im.ccap = im.shape.CombineCapacity();
  im.stream_bytes = 2 * o.size * (im.dcap + im.ccap);
  im.buffer_bytes = im.stream_bytes * o.num_streams;
  im.buffer = static_cast<uint8_t*>(std::aligned_alloc(64, (im.buffer_bytes + 63) & ~size_t{63}));
  if (!im.buffer) return ResourceExhaustedError("EP: cannot allocate the buffers");
  std::memset(im.buffer, 0, im.buffer_bytes);  // fault the pages in now, not on the hot path
  im.arrivals.assign(static_cast<size_t>(o.num_streams) * 2 * o.size, 0);
  im.arrived_bytes.assign(im.arrivals.size(), 0);
  im.puts_pending.assign(static_cast<size_t>(o.num_streams) * 2, 0);
  im.rounds.assign(o.num_streams, 0);
  im.step_messages.resize(o.size);
  im.bye_from.assign(o.size, false);
  im.peers.assign(o.size, transport::kInvalidPeer);
  im.remote.resize(o.size);
  im.placement = o.placement;
  im.ready_version = o.placement->version();
  im.window_load.Reset(o.num_layers, o.num_experts);
  im.total_load.Reset(o.num_layers, o.num_experts);
  im.stats.received.assign(static_cast<size_t>(o.num_layers) * o.size, 0);
  im.stats.received_since_swap = im.stats.received;
  im.stats.placement_version = o.placement->version();
  im.transport = std::move(transport);
  im.collective = std::move(collective);
  if (im.transport) {
    transport::Handlers h;
    Impl* p = &im;
    h.on_message = [p](transport::Message m) { p->OnMessage(std::move(m)); };
    h.on_peer_failure = [p](transport::PeerId peer, const Status& why) {
      p->OnPeerFailure(peer, why);
    };
    STRATA_RETURN_IF_ERROR(im.transport->SetHandlers(std::move(h)));
    STRATA_ASSIGN_OR_RETURN(im.region, im.transport->RegisterMemory(im.buffer, im.buffer_bytes));
  }
  return ep;
}

StatusOr<std::unique_ptr<EpEndpoint>> EpEndpoint::Create(
    EpOptions options, std::unique_ptr<transport::Transport> transport) {
  return Build(std::move(options), std::move(transport), nullptr);
}

StatusOr<std::unique_ptr<EpEndpoint>> EpEndpoint::CreateWithCollective(
    EpOptions options, std::unique_ptr<Collective> collective) {
  if (!collective) return InvalidArgumentError("EP: no collective");
  if (options.num_streams != 1) {
    return InvalidArgumentError("EP: a collective serves one stream (num_streams = 1)");
  }
  return Build(std::move(options), nullptr, std::move(collective));
}

EpEndpoint::~EpEndpoint() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->closing = true;
  }
  if (impl_->prep_thread.joinable()) impl_->prep_thread.join();
  if (impl_->transport) impl_->transport->Shutdown();
  impl_->region.reset();
  std::free(impl_->buffer);
}

void EpEndpoint::Impl::Fail(const Status& why) {
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!failed.ok() || closing) return;
    failed = why;
  }
  log::Warn("EP rank {}: group failed: {}", opt.rank, why.message());
  cv.notify_all();
}

void EpEndpoint::Impl::OnPeerFailure(transport::PeerId peer, const Status& why) {
  int r = -1;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = rank_of.find(peer);
    if (it != rank_of.end()) r = it->second;
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    // After this rank's stop step, a rank that leaves has had everyone's bye (its own may still
    // be on the way): expected, not a failure.
    if (stopping && r >= 0) {
      bye_from[r] = true;
      cv.notify_all();
      return;
    }
  }
  Fail(UnavailableError("EP rank " + std::to_string(r) + " failed: " + why.message()));
}

void EpEndpoint::Impl::OnMessage(transport::Message m) {
  if (m.type == kEpReady && m.payload.size() == sizeof(ReadyMessage)) {
    ReadyMessage r;
    std::memcpy(&r, m.payload.data(), sizeof(r));
    std::lock_guard<std::mutex> lock(mu);
    auto it = rank_of.find(m.peer);
    if (it == rank_of.end() || r.stream >= opt.num_streams || r.phase > 1) return;
    size_t i = ArrivalIndex(r.stream, static_cast<Phase>(r.phase), it->second);
    ++arrivals[i];
    arrived_bytes[i] = r.bytes;
    cv.notify_all();
    return;
  }
  if (m.type == kEpStep && m.payload.size() == sizeof(StepMessage)) {
    StepMessage s;
    std::memcpy(&s, m.payload.data(), sizeof(s));
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = rank_of.find(m.peer);
      if (it == rank_of.end()) return;
      step_messages[it->second].push_back(s);
    }
    cv.notify_all();
    std::lock_guard<std::mutex> lock(listener_mu);
    if (on_peer_step) on_peer_step();
    return;
  }
  if (m.type == kEpBroadcast) {
    broadcasts.Push(std::move(m));
    return;
  }
  if (m.type == kEpBye) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = rank_of.find(m.peer);
    if (it == rank_of.end()) return;
    bye_from[it->second] = true;
    cv.notify_all();
    return;
  }
  if (m.type == kEpAbort) {
    int r = -1;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = rank_of.find(m.peer);
      if (it != rank_of.end()) r = it->second;
    }
    Fail(Status(StatusCode::kAborted, "EP rank " + std::to_string(r) + " aborted: " + m.payload));
    return;
  }
  if (m.type == kEpHello) {  // map the peer now: its data messages may follow at once
    auto j = ParseJson(m.payload);
    if (j.ok() && j->contains("rank") && (*j)["rank"].is_number_integer()) {
      int r = (*j)["rank"].get<int>();
      if (r >= 0 && r < opt.size) {
        std::lock_guard<std::mutex> lock(mu);
        rank_of[m.peer] = r;
        peers[r] = m.peer;
      }
    }
  }
  if (m.type == kEpHello || m.type == kEpTable || m.type == kEpRegion) {
    bootstrap.Push(std::move(m));
  }
}

StatusOr<std::string> EpEndpoint::Listen(const std::string& address) {
  if (!impl_->transport) return FailedPreconditionError("EP: no transport (size 1)");
  STRATA_ASSIGN_OR_RETURN(impl_->listen_address, impl_->transport->Listen(address));
  return impl_->listen_address;
}

Status EpEndpoint::Join(const std::string& leader_address) {
  Impl& im = *impl_;
  const int rank = options_.rank, size = options_.size;
  if (size == 1) return OkStatus();
  const transport::Deadline deadline = transport::DeadlineAfterMillis(options_.timeout_ms);
  auto hello = [&](transport::PeerId peer, const std::string& addr) {
    nlohmann::json j{{"rank", rank}, {"address", addr}};
    return im.transport->Send(peer, kEpHello, j.dump());
  };
  auto connect = [&](int r, const std::string& address) -> StatusOr<transport::PeerId> {
    STRATA_ASSIGN_OR_RETURN(transport::PeerId p, im.transport->Connect(address, deadline));
    std::lock_guard<std::mutex> lock(im.mu);
    im.rank_of[p] = r;
    im.peers[r] = p;
    return p;
  };
  std::vector<std::string> addresses(size);
  std::vector<bool> have_region(size, false);
  have_region[rank] = true;
  int hellos = 0, regions = 0;
  bool have_table = rank == 0;
  auto handle = [&](const transport::Message& m) -> Status {
    STRATA_ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(m.payload));
    if (m.type == kEpHello) {
      ++hellos;
      if (rank == 0 && j.contains("address") && j.contains("rank")) {
        addresses.at(j["rank"].get<int>()) = j["address"].get<std::string>();
      }
    } else if (m.type == kEpTable) {
      addresses = j.at("addresses").get<std::vector<std::string>>();
      if (static_cast<int>(addresses.size()) != size) {
        return DataLossError("EP bootstrap: the table has " + std::to_string(addresses.size()) +
                             " ranks, this rank expects " + std::to_string(size));
      }
      have_table = true;
    } else if (m.type == kEpRegion) {
      int r = j.at("rank").get<int>();
      if (r < 0 || r >= size) return DataLossError("EP bootstrap: bad rank in a region");
      transport::RemoteRegion rr;
      rr.address = j.at("address").get<uint64_t>();
      rr.length = j.at("length").get<uint64_t>();
      std::optional<std::string> key = HexDecode(j.at("key").get<std::string>());
      if (!key) return DataLossError("EP bootstrap: bad hex");
      rr.packed_key = std::move(*key);
      if (rr.length != im.buffer_bytes) {
        return DataLossError("EP bootstrap: rank " + std::to_string(r) + " has a " +
                             std::to_string(rr.length) + "-byte buffer, this rank " +
                             std::to_string(im.buffer_bytes) + ": the ranks disagree on shape");
      }
      im.remote[r] = std::move(rr);
      if (!have_region[r]) ++regions;
      have_region[r] = true;
    }
    return OkStatus();
  };
  auto pump = [&]() -> Status {
    StatusOr<transport::Message> m = im.bootstrap.Pop(deadline);
    if (!m.ok()) {
      Status f = im.FailedStatus();
      return f.ok() ? DeadlineExceededError("EP rank " + std::to_string(rank) +
                                            ": joining the group timed out")
                    : f;
    }
    auto st = handle(*m);
    if (!st.ok()) return st;
    return OkStatus();
  };
  try {
    if (rank == 0) {
      while (hellos < size - 1) STRATA_RETURN_IF_ERROR(pump());
      nlohmann::json t{{"addresses", addresses}};
      for (int r = 1; r < size; ++r) {
        STRATA_RETURN_IF_ERROR(im.transport->Send(im.peers[r], kEpTable, t.dump()));
      }
    } else {
      STRATA_ASSIGN_OR_RETURN(transport::PeerId p0, connect(0, leader_address));
      // Our own listen address travels in the hello (Listen comes before Join).
      STRATA_RETURN_IF_ERROR(hello(p0, im.listen_address));
      while (!have_table) STRATA_RETURN_IF_ERROR(pump());
      for (int r = 1; r < rank; ++r) {
        STRATA_ASSIGN_OR_RETURN(transport::PeerId p, connect(r, addresses[r]));
        STRATA_RETURN_IF_ERROR(hello(p, ""));
      }
      while (hellos < size - 1 - rank) STRATA_RETURN_IF_ERROR(pump());
    }
    const transport::RemoteRegion& mine = im.region->remote();
    nlohmann::json rj{{"rank", rank},
                      {"address", mine.address},
                      {"length", mine.length},
                      {"key", HexEncode(mine.packed_key)}};
    for (int r = 0; r < size; ++r) {
      if (r != rank) STRATA_RETURN_IF_ERROR(im.transport->Send(im.peers[r], kEpRegion, rj.dump()));
    }
    while (regions < size - 1) STRATA_RETURN_IF_ERROR(pump());
  } catch (const nlohmann::json::exception& e) {
    return DataLossError(std::string("EP bootstrap: bad message: ") + e.what());
  }
  return im.FailedStatus();
}

}  // namespace strata::expert_parallel

namespace strata::expert_parallel {

void EpEndpoint::Impl::PutAndNotify(int stream, Phase phase, int dst, size_t local_offset,
                                    size_t remote_offset, uint32_t bytes, uint32_t round) {
  {
    std::lock_guard<std::mutex> lock(mu);
    ++puts_pending[stream * 2 + static_cast<int>(phase)];
  }
  transport::Transfer t;
  t.peer = peers[dst];
  t.local = region.get();
  t.local_offset = local_offset;
  t.remote = remote[dst];
  t.remote_offset = remote_offset;
  t.length = bytes;
  t.deadline = transport::DeadlineAfterMillis(opt.timeout_ms);
  transport::PeerId peer = peers[dst];
  transport->Put(t, [this, stream, phase, dst, bytes, round, peer](Status st) {
    if (st.ok()) {
      ReadyMessage r{static_cast<uint8_t>(stream), static_cast<uint8_t>(phase), 0, bytes, round};
      st = transport->Send(peer, kEpReady,
                           std::string(reinterpret_cast<const char*>(&r), sizeof(r)));
    }
    if (!st.ok()) {
      Fail(Status(st.code(), "EP rank " + std::to_string(opt.rank) + ": sending to rank " +
                                 std::to_string(dst) + " failed: " + st.message()));
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      --puts_pending[stream * 2 + static_cast<int>(phase)];
    }
    cv.notify_all();
  });
}

Status EpEndpoint::Impl::WaitRound(int stream, Phase phase, int64_t round, ComputeGate* gate,
                                   int64_t* wait_ns) {
  if (opt.size == 1) return FailedStatus();  // nothing to wait for: keep the gate
  const int64_t start = MonotonicNanos();
  if (gate) gate->BeginWait();
  const auto deadline = transport::DeadlineAfterMillis(opt.timeout_ms);
  Status result;
  {
    std::unique_lock<std::mutex> lock(mu);
    auto done = [&] {
      if (puts_pending[stream * 2 + static_cast<int>(phase)] != 0) return false;
      for (int r = 0; r < opt.size; ++r) {
        if (r != opt.rank && arrivals[ArrivalIndex(stream, phase, r)] < round + 1) return false;
      }
      return true;
    };
    while (!done()) {
      if (!failed.ok()) break;
      if (cv.wait_until(lock, deadline) == std::cv_status::timeout && !done()) {
        std::string missing;
        for (int r = 0; r < opt.size; ++r) {
          if (r != opt.rank && arrivals[ArrivalIndex(stream, phase, r)] < round + 1) {
            missing += " " + std::to_string(r);
          }
        }
        result = DeadlineExceededError("EP rank " + std::to_string(opt.rank) + ": " +
                                       (phase == Phase::kDispatch ? "dispatch" : "combine") +
                                       " round " + std::to_string(round) + " timed out after " +
                                       std::to_string(opt.timeout_ms) + " ms waiting for rank(s)" +
                                       (missing.empty() ? " (own sends)" : missing));
        break;
      }
    }
    if (result.ok() && !done()) result = failed;
  }
  if (!result.ok()) Fail(result);
  *wait_ns += MonotonicNanos() - start;  // the peers' part, not the wait for the gate after it
  if (gate) gate->EndWait();
  return result;
}

void EpEndpoint::Impl::AddRound(int layer, const int64_t* received, const int64_t* experts,
                                const EpStats& d) {
  std::lock_guard<std::mutex> lock(mu);
  for (int r = 0; r < opt.size; ++r) {
    stats.received[layer * opt.size + r] += received[r];
    stats.received_since_swap[layer * opt.size + r] += received[r];
  }
  for (int e = 0; e < opt.num_experts; ++e) {
    window_load.at(layer, e) += experts[e];
    total_load.at(layer, e) += experts[e];
  }
  stats.rounds += d.rounds;
  stats.dispatch_ns += d.dispatch_ns;
  stats.combine_ns += d.combine_ns;
  stats.wait_ns += d.wait_ns;
  stats.dispatch_bytes += d.dispatch_bytes;
  stats.combine_bytes += d.combine_bytes;
  stats.local_bytes += d.local_bytes;
}

void EpEndpoint::Abort(const Status& why) {
  Impl& im = *impl_;
  if (im.transport) {
    for (int r = 0; r < size(); ++r) {
      if (r != rank() && im.peers[r] != transport::kInvalidPeer) {
        (void)im.transport->Send(im.peers[r], kEpAbort, why.message());
      }
    }
  }
  im.Fail(why);
}

std::shared_ptr<const Placement> EpEndpoint::placement() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->placement;
}

EpStats EpEndpoint::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

void EpEndpoint::ResetStats() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  const uint64_t version = impl_->stats.placement_version;
  impl_->stats = EpStats();
  impl_->stats.received.assign(static_cast<size_t>(options_.num_layers) * options_.size, 0);
  impl_->stats.received_since_swap = impl_->stats.received;
  impl_->stats.placement_version = version;
  impl_->total_load.Reset(options_.num_layers, options_.num_experts);
}

ExpertLoad EpEndpoint::total_load() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->total_load;
}

Status EpEndpoint::status() const { return impl_->FailedStatus(); }

bool EpEndpoint::PeerStepPending() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!impl_->failed.ok() || impl_->stopping) return false;
  for (const auto& q : impl_->step_messages) {
    if (!q.empty()) return true;
  }
  return false;
}

void EpEndpoint::SetStepListener(std::function<void()> on_peer_step) {
  std::lock_guard<std::mutex> lock(impl_->listener_mu);
  impl_->on_peer_step = std::move(on_peer_step);
}

Status EpEndpoint::Broadcast(const std::string& payload) {
  Impl& im = *impl_;
  if (rank() != 0) return FailedPreconditionError("EP: only rank 0 broadcasts");
  if (!im.transport && size() > 1) {
    return FailedPreconditionError("EP: broadcasts need a transport (this group has a collective)");
  }
  for (int r = 1; r < size(); ++r) {
    STRATA_RETURN_IF_ERROR(im.transport->Send(im.peers[r], kEpBroadcast, payload));
  }
  return OkStatus();
}

StatusOr<std::string> EpEndpoint::WaitBroadcast(int64_t timeout_ms) {
  Impl& im = *impl_;
  if (rank() == 0 || !im.transport) return FailedPreconditionError("EP: rank 0 broadcasts");
  const auto deadline = transport::DeadlineAfterMillis(timeout_ms);
  // In slices, so a failed group (a dead rank 0) ends the wait early.
  while (true) {
    STRATA_RETURN_IF_ERROR(im.FailedStatus());
    const auto slice = std::min(deadline, transport::DeadlineAfterMillis(100));
    StatusOr<transport::Message> m = im.broadcasts.Pop(slice);
    if (m.ok()) return std::move(m->payload);
    if (MonoClock::now() >= deadline) {
      return DeadlineExceededError("EP rank " + std::to_string(rank()) +
                                   ": no broadcast from rank 0 within " +
                                   std::to_string(timeout_ms) + " ms");
    }
  }
}

void EpEndpoint::SetExpertPreparer(std::function<Status(const Placement&, int)> preparer) {
  impl_->preparer = std::move(preparer);
}

}  // namespace strata::expert_parallel
