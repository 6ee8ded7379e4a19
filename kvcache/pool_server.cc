#include "kvcache/pool_server.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "common/log.h"
#include "common/page_memory.h"
#include "kvcache/pool_transfers.h"
#include "proto/status_convert.h"

namespace strata::kvcache {

using transport::PeerId;

// One Put whose blocks are being read: the reserved slots and what came of each block.
struct KvPoolServer::PutOp {
  PeerId peer = 0;
  uint64_t call_id = 0;
  std::vector<BlockHash> hashes;  // reserved ones, in request order
  std::vector<PoolSlot> slots;
  std::vector<bool> failed;  // per block
  Status first_error;
  v1::KvPoolPutReply reply;  // counts of skipped hashes, filled before the reads
};

StatusOr<std::unique_ptr<KvPoolServer>> KvPoolServer::Create(
    std::unique_ptr<transport::Transport> transport, KvPoolServerOptions options) {
  if (transport == nullptr) return InvalidArgumentError("the KV pool needs a transport");
  if (options.default_lease_ms < 1 || options.max_lease_ms < options.default_lease_ms) {
    return InvalidArgumentError("KV pool lease limits: need 1 <= default <= max");
  }
  if (options.default_put_timeout_ms < 1 ||
      options.max_put_timeout_ms < options.default_put_timeout_ms) {
    return InvalidArgumentError("KV pool put timeouts: need 1 <= default <= max");
  }
  std::unique_ptr<KvPoolServer> server(new KvPoolServer(std::move(options)));
  const KvPoolServerOptions& o = server->options_;
  if (!o.transport_memory) {
    STRATA_ASSIGN_OR_RETURN(server->arena_, PoolArena::Create(o.capacity_bytes, o.try_huge_pages));
    server->stats_.page_kind = PageKindName(server->arena_->page_kind());
  } else {
    server->stats_.page_kind = "transport";  // decided at the first Put (the layout)
  }
  server->stats_.capacity_bytes = o.capacity_bytes;
  KvPoolServer* raw = server.get();
  service::RpcCallbacks callbacks;
  callbacks.on_request = [raw](PeerId from, service::Envelope e) {
    raw->OnRequest(from, std::move(e));
  };
  callbacks.on_request_inline = [raw](PeerId from, service::Envelope& e) {
    return raw->OnRequestInline(from, e);
  };
  callbacks.on_peer_failure = [raw](PeerId peer, const Status&) { raw->OnPeerFailure(peer); };
  STRATA_ASSIGN_OR_RETURN(server->node_,
                          service::RpcNode::Create(std::move(transport), std::move(callbacks)));
  {
    std::lock_guard lock(server->mu_);
    server->SyncMetricsLocked();
  }
  return server;
}

KvPoolServer::~KvPoolServer() {
  Shutdown();
  regions_.clear();  // deregistered while the transport still exists
  versions_.reset();
}

StatusOr<std::string> KvPoolServer::Listen(const std::string& address) {
  STRATA_ASSIGN_OR_RETURN(std::string bound, node_->Listen(address));
  log::Info("KV pool {} listening on {} ({} bytes, {} memory)", options_.instance_id, bound,
            options_.capacity_bytes, stats_.page_kind);
  return bound;
}

void KvPoolServer::Shutdown() {
  if (node_ != nullptr) node_->Shutdown();
  stop_prefault_.store(true);
  if (prefault_.joinable()) prefault_.join();
}

void KvPoolServer::StartPrefaultLocked() {
  if (!options_.prefault || prefault_.joinable()) return;
  std::vector<std::pair<uint8_t*, uint64_t>> ranges;
  for (const auto& r : regions_) ranges.emplace_back(static_cast<uint8_t*>(r->data()), r->size());
  prefault_ = std::thread([this, ranges = std::move(ranges)] {
    // Populating only maps pages (writable); it never changes what a Put already wrote, so it
    // runs beside the Puts. In 2 MiB steps: each holds the process's mmap lock, so any mmap or
    // munmap here (a vector outgrowing malloc's heap, UCX's buffers) waits for the step in
    // progress. With 32 MiB steps (~70 ms each on the development VM) the first Put's reply and
    // the Lookups behind it waited 1.8 s; with 2 MiB, 0.2 s.
    constexpr uint64_t kStep = uint64_t{2} << 20;
    for (const auto& [data, size] : ranges) {
      for (uint64_t offset = 0; offset < size; offset += kStep) {
        if (stop_prefault_.load()) return;
        const uint64_t len = std::min<uint64_t>(kStep, size - offset);
        if (!PopulateForWrite(data + offset, len)) {
          log::Warn("KV pool: cannot fault its block memory in past {} bytes ({}); Puts will",
                    prefaulted_bytes_.load(), std::strerror(errno));
          return;
        }
        prefaulted_bytes_.fetch_add(len);
      }
    }
    log::Debug("KV pool: {} bytes of block memory faulted in", prefaulted_bytes_.load());
  });
}

void KvPoolServer::ReplyTo(PeerId peer, uint64_t call_id, service::Envelope reply) {
  if (call_id == 0) return;
  Status st = node_->Reply(peer, call_id, std::move(reply));
  if (!st.ok()) log::Debug("KV pool reply to peer {} lost: {}", peer, st.message());
}

bool KvPoolServer::OnRequestInline(PeerId from, service::Envelope& envelope) {
  const uint64_t call_id = envelope.call_id();
  switch (envelope.body_case()) {
    case v1::Envelope::kKvPoolLookup:
      OnLookup(from, call_id, envelope.kv_pool_lookup());
      return true;
    case v1::Envelope::kKvPoolGet:
      OnGet(from, call_id, envelope.kv_pool_get());
      return true;
    case v1::Envelope::kKvPoolRelease:
      OnRelease(from, call_id, envelope.kv_pool_release());
      return true;
    case v1::Envelope::kKvPoolDirectRead:
      OnDirectRead(from, envelope.kv_pool_direct_read());
      return true;
    case v1::Envelope::kKvPoolPut: {
      {
        std::lock_guard lock(mu_);
        if (index_ == nullptr) return false;  // the first Put: to the dispatch thread
      }
      OnPut(from, call_id, envelope.kv_pool_put());
      return true;
    }
    default:
      return false;
  }
}

void KvPoolServer::OnRequest(PeerId from, service::Envelope envelope) {
  const uint64_t call_id = envelope.call_id();
  switch (envelope.body_case()) {  // (Lookup, Get, Release and later Puts were answered inline)
    case v1::Envelope::kKvPoolPut:
      OnPut(from, call_id, envelope.kv_pool_put());
      return;
    default:
      log::Warn("KV pool: peer {} sent {}, which a pool does not serve", from,
                proto::BodyName(envelope));
      if (call_id != 0) {
        (void)node_->ReplyError(from, call_id,
                                InvalidArgumentError("a KV pool does not serve " +
                                                     std::string(proto::BodyName(envelope))));
      }
  }
}

namespace {

v1::KvPoolLoad ToLoad(const KvPoolStats& s) {
  auto count = [](int64_t n) { return static_cast<uint64_t>(std::max<int64_t>(n, 0)); };
  v1::KvPoolLoad load;
  load.set_capacity_bytes(s.capacity_bytes);
  load.set_used_bytes(s.used_bytes);
  load.set_prefaulted_bytes(s.prefaulted_bytes);
  load.set_held_blocks(count(s.held_blocks));
  load.set_leased_blocks(count(s.leased_blocks));
  load.set_active_leases(count(s.active_leases));
  load.set_hit_blocks(count(s.hit_blocks));
  load.set_miss_blocks(count(s.miss_blocks));
  load.set_bytes_in(s.bytes_in);
  load.set_bytes_out(s.bytes_out);
  load.set_evictions(count(s.evictions));
  load.set_leases_granted(count(s.leases_granted));
  load.set_leases_expired(count(s.leases_expired));
  load.set_failed_blocks(count(s.failed_blocks));
  load.set_direct_read_blocks(count(s.direct_read_blocks));
  return load;
}

Status CheckRequestSize(int num_blocks, int64_t max_blocks) {
  if (num_blocks > max_blocks) {
    return InvalidArgumentError("a KV pool request names " + std::to_string(num_blocks) +
                                " blocks; at most " + std::to_string(max_blocks));
  }
  return OkStatus();
}

}  // namespace

void KvPoolServer::OnLookup(PeerId from, uint64_t call_id, const v1::KvPoolLookup& lookup) {
  if (Status st = CheckRequestSize(lookup.block_hashes_size(), options_.max_blocks_per_request);
      !st.ok()) {
    (void)node_->ReplyError(from, call_id, st);
    return;
  }
  int64_t held = 0;
  {
    std::lock_guard lock(mu_);
    const std::span<const BlockHash> hashes(lookup.block_hashes().data(),
                                            lookup.block_hashes_size());
    if (index_ != nullptr) held = index_->CountHeldPrefix(hashes, /*touch=*/true);
    stats_.hit_blocks += held;
    stats_.miss_blocks += lookup.block_hashes_size() - held;
    SyncMetricsLocked();
  }
  service::Envelope reply;
  reply.mutable_kv_pool_lookup_reply()->set_num_hit_blocks(static_cast<uint32_t>(held));
  ReplyTo(from, call_id, std::move(reply));
}

Status KvPoolServer::AcceptLayoutLocked(const v1::KvLocation& source, int num_blocks) {
  if (source.blocks_size() != num_blocks) {
    return InvalidArgumentError("KV pool Put names " + std::to_string(num_blocks) + " hashes but " +
                                std::to_string(source.blocks_size()) + " source blocks");
  }
  if (source.num_segments() < 1 || source.num_segments() > 65536 || source.segment_bytes() < 1 ||
      source.segment_bytes() > (1ull << 40) || source.block_size_tokens() < 1) {
    return InvalidArgumentError("KV pool Put: bad layout (" +
                                std::to_string(source.num_segments()) + " segments of " +
                                std::to_string(source.segment_bytes()) + " bytes, " +
                                std::to_string(source.block_size_tokens()) + " tokens a block)");
  }
  if (source.segments_in_regions()
          ? source.regions_size() != static_cast<int>(source.num_segments())
          : source.regions_size() < 1) {
    return InvalidArgumentError("KV pool Put: the source names " +
                                std::to_string(source.regions_size()) + " regions for " +
                                std::to_string(source.num_segments()) + " segments");
  }
  Layout layout{source.num_segments(), source.segment_bytes(), source.block_size_tokens()};
  if (layout_.num_segments == 0) {
    if (layout.slot_bytes() > options_.capacity_bytes) {
      return InvalidArgumentError("a KV block of " + std::to_string(layout.slot_bytes()) +
                                  " bytes does not fit in the pool's " +
                                  std::to_string(options_.capacity_bytes) + " bytes");
    }
    const uint64_t num_slots = options_.capacity_bytes / layout.slot_bytes();
    const uint64_t array_bytes = num_slots * layout.segment_bytes;
    std::unique_ptr<PoolIndex> index;
    try {
      index = std::make_unique<PoolIndex>(static_cast<int64_t>(num_slots));
    } catch (const std::exception&) {  // bad_alloc, or length_error past max_size()
      return ResourceExhaustedError("no memory for the index of " + std::to_string(num_slots) +
                                    " KV pool slots of " + std::to_string(layout.slot_bytes()) +
                                    " bytes (a smaller --capacity-bytes?)");
    }
    std::vector<std::unique_ptr<transport::Region>> regions;
    for (uint32_t seg = 0; seg < layout.num_segments && options_.transport_memory; ++seg) {
      auto region = node_->transport().AllocateMemory(array_bytes);
      if (!region.ok()) {
        log::Warn("KV pool: the transport cannot allocate {} bytes ({}); using an arena",
                  array_bytes, region.status().message());
        regions.clear();
        break;
      }
      regions.push_back(std::move(region).value());
    }
    if (!regions.empty()) {
      // Same-host readers may then read held blocks without a lease (slot_versions.h).
      auto versions = SlotVersions::Create(node_->transport(), static_cast<int64_t>(num_slots));
      if (versions.ok()) {
        versions_ = std::move(versions).value();
      } else {
        log::Warn("KV pool: no slot versions ({}); every read takes a lease",
                  versions.status().message());
      }
    }
    if (regions.empty()) {
      if (arena_ == nullptr) {
        STRATA_ASSIGN_OR_RETURN(
            arena_, PoolArena::Create(options_.capacity_bytes, options_.try_huge_pages));
        stats_.page_kind = PageKindName(arena_->page_kind());
      }
      for (uint32_t seg = 0; seg < layout.num_segments; ++seg) {
        auto region =
            node_->transport().RegisterMemory(arena_->data() + seg * array_bytes, array_bytes);
        if (!region.ok()) {
          return region.status().WithContext("registering the pool's arena");
        }
        regions.push_back(std::move(region).value());
      }
    }
    regions_ = std::move(regions);
    layout_ = layout;
    index_ = std::move(index);
    stats_.slot_bytes = layout.slot_bytes();
    log::Info("KV pool layout: {} segments x {} bytes, {} tokens a block; {} slots",
              layout.num_segments, layout.segment_bytes, layout.block_size_tokens,
              options_.capacity_bytes / layout.slot_bytes());
    // Last: while the prefault runs, every mmap or munmap of this process waits for its step
    // (the index's own allocations just above took 1.8 s behind 32 MiB steps here).
    StartPrefaultLocked();
    return OkStatus();
  }
  if (layout.num_segments != layout_.num_segments ||
      layout.segment_bytes != layout_.segment_bytes ||
      layout.block_size_tokens != layout_.block_size_tokens) {
    return InvalidArgumentError(
        "KV layout mismatch: this pool stores blocks of " + std::to_string(layout_.num_segments) +
        " segments x " + std::to_string(layout_.segment_bytes) + " bytes, " +
        std::to_string(layout_.block_size_tokens) + " tokens; the Put has " +
        std::to_string(layout.num_segments) + " x " + std::to_string(layout.segment_bytes) + ", " +
        std::to_string(layout.block_size_tokens) + " (another model or block size?)");
  }
  return OkStatus();
}

void KvPoolServer::OnPut(PeerId from, uint64_t call_id, const v1::KvPoolPut& put) {
  const int n = put.block_hashes_size();
  if (Status st = CheckRequestSize(n, options_.max_blocks_per_request); !st.ok()) {
    (void)node_->ReplyError(from, call_id, st);
    return;
  }
  const int64_t timeout_ms =
      put.timeout_ms() == 0
          ? options_.default_put_timeout_ms
          : std::min<int64_t>(
                static_cast<int64_t>(std::min<uint64_t>(put.timeout_ms(), 1ull << 40)),
                options_.max_put_timeout_ms);
  const transport::Deadline deadline = transport::DeadlineAfterMillis(timeout_ms);
  const v1::KvLocation& source = put.source();
  auto op = std::make_shared<PutOp>();
  op->peer = from;
  op->call_id = call_id;
  BlockTransfers transfers;
  {
    std::lock_guard lock(mu_);
    if (Status st = AcceptLayoutLocked(source, n); !st.ok()) {
      (void)node_->ReplyError(from, call_id, st);
      return;
    }
    std::vector<int> source_block;  // the Put's index of each new block
    for (int i = 0; i < n; ++i) {
      const BlockHash hash = put.block_hashes(i);
      PoolSlot slot = -1;
      const auto outcome = index_->Reserve(hash, &slot);
      if (outcome == PoolIndex::ReserveOutcome::kAlreadyHeld) {
        op->reply.set_num_already_held(op->reply.num_already_held() + 1);
        continue;
      }
      if (outcome == PoolIndex::ReserveOutcome::kNoSpace) {
        op->reply.set_num_no_space(op->reply.num_no_space() + 1);
        continue;
      }
      if (versions_ != nullptr) versions_->Advance(slot);  // before anything writes it
      op->hashes.push_back(hash);
      op->slots.push_back(slot);
      source_block.push_back(i);
    }
    index_->SortPending(op->hashes, op->slots);
    std::vector<BlockMove> moves;  // block = index into op->hashes
    for (size_t block = 0; block < op->hashes.size(); ++block) {
      moves.push_back(BlockMove{static_cast<int>(block),
                                static_cast<uint64_t>(op->slots[block]) * layout_.segment_bytes,
                                &source.blocks(source_block[block])});
    }
    std::vector<const transport::Region*> local_regions;
    for (const auto& region : regions_) local_regions.push_back(region.get());
    auto planned =
        PlanBlockMoves(local_regions, layout_.segment_bytes, moves, source, from, deadline);
    if (!planned.ok()) {
      for (PoolSlot slot : op->slots) index_->Abort(slot);
      SyncMetricsLocked();
      (void)node_->ReplyError(from, call_id, planned.status().WithContext("KV pool Put"));
      return;
    }
    transfers = std::move(planned).value();
    log::Debug("KV pool Put from peer {}: {} new blocks in {} transfers", from, op->hashes.size(),
               transfers.size());
    op->failed.assign(op->hashes.size(), false);
    SyncMetricsLocked();
  }
  if (op->hashes.empty()) {
    service::Envelope reply;
    *reply.mutable_kv_pool_put_reply() = op->reply;
    ReplyTo(from, call_id, std::move(reply));
    return;
  }
  // Outside the lock: after a shutdown, the batch completes on this thread. One batch: over
  // shared memory the transport copies every segment in one go, across its copy threads.
  node_->transport().GetBatch(
      std::move(transfers.transfers),
      [this, op, blocks = std::move(transfers.blocks)](std::vector<Status> statuses) {
        OnPutTransfersDone(op, blocks, statuses);
      });
}

void KvPoolServer::OnPutTransfersDone(const std::shared_ptr<PutOp>& op,
                                      const std::vector<std::vector<int>>& blocks,
                                      const std::vector<Status>& statuses) {
  service::Envelope reply;
  {
    std::lock_guard lock(mu_);
    ForEachFailedBlock(blocks, statuses, [&](int b, const Status& st) {
      op->failed[b] = true;
      if (op->first_error.ok()) op->first_error = st;
    });
    // Every read finished: publish what arrived, the chain's first block most recently used.
    auto* r = reply.mutable_kv_pool_put_reply();
    *r = op->reply;
    for (size_t b = op->hashes.size(); b-- > 0;) {
      if (op->failed[b]) {
        index_->Abort(op->slots[b]);
        ++stats_.failed_blocks;
      } else {
        index_->Publish(op->slots[b]);
        stats_.bytes_in += layout_.slot_bytes();
      }
    }
    for (size_t b = 0; b < op->hashes.size(); ++b) {
      if (!op->failed[b]) r->add_stored_hashes(op->hashes[b]);
    }
    r->set_num_stored(static_cast<uint32_t>(r->stored_hashes_size()));
    r->set_num_failed(static_cast<uint32_t>(op->hashes.size()) - r->num_stored());
    if (!op->first_error.ok()) {
      *r->mutable_error() = proto::ToProto(op->first_error.WithContext(
          "the pool could not read " + std::to_string(r->num_failed()) + " blocks"));
      log::Warn("KV pool: reading {} blocks from peer {} failed: {}", r->num_failed(), op->peer,
                op->first_error.message());
    }
    SyncMetricsLocked();
  }
  ReplyTo(op->peer, op->call_id, std::move(reply));
}

void KvPoolServer::OnGet(PeerId from, uint64_t call_id, const v1::KvPoolGet& get) {
  if (Status st = CheckRequestSize(get.block_hashes_size(), options_.max_blocks_per_request);
      !st.ok()) {
    (void)node_->ReplyError(from, call_id, st);
    return;
  }
  const int64_t lease_ms = get.lease_ms() == 0
                               ? options_.default_lease_ms
                               : static_cast<int64_t>(std::min<uint64_t>(
                                     get.lease_ms(), static_cast<uint64_t>(options_.max_lease_ms)));
  service::Envelope reply;
  auto* r = reply.mutable_kv_pool_get_reply();
  uint64_t lease_id = 0;
  {
    std::lock_guard lock(mu_);
    std::vector<PoolSlot> slots;
    if (index_ != nullptr) {
      const transport::Deadline expiry = transport::DeadlineAfterMillis(lease_ms);
      lease_id = index_->Lease(
          std::span<const BlockHash>(get.block_hashes().data(), get.block_hashes_size()), from,
          expiry, &slots);
      if (lease_id != 0) ScheduleLeaseSweepLocked(expiry);
    }
    v1::KvLocation* loc = r->mutable_location();
    loc->set_owner_instance_id(options_.instance_id);
    loc->set_owner_address(node_->listen_address());
    loc->set_segments_in_regions(true);
    if (lease_id != 0) {
      r->set_lease_id(lease_id);
      for (const auto& region : regions_) {
        auto* m = loc->add_regions();
        m->set_address(region->remote().address);
        m->set_length(region->remote().length);
        m->set_packed_key(region->remote().packed_key);
      }
      loc->set_block_size_tokens(layout_.block_size_tokens);
      loc->set_num_segments(layout_.num_segments);
      loc->set_segment_bytes(layout_.segment_bytes);
      for (PoolSlot slot : slots) {
        auto* ref = loc->add_blocks();
        ref->set_region_index(0);
        ref->set_offset(static_cast<uint64_t>(slot) * layout_.segment_bytes);
        ref->set_length(layout_.slot_bytes());
        ref->set_block_id(static_cast<uint32_t>(slot));
      }
      if (versions_ != nullptr) {
        auto* table = r->mutable_slot_versions();
        table->set_address(versions_->remote().address);
        table->set_length(versions_->remote().length);
        table->set_packed_key(versions_->remote().packed_key);
        for (PoolSlot slot : slots) r->add_versions(versions_->Get(slot));
      }
      ++stats_.leases_granted;
      stats_.bytes_out += slots.size() * layout_.slot_bytes();
    }
    SyncMetricsLocked();
  }
  ReplyTo(from, call_id, std::move(reply));
}

void KvPoolServer::OnRelease(PeerId from, uint64_t call_id, const v1::KvPoolRelease& release) {
  bool released = false;
  {
    std::lock_guard lock(mu_);
    if (index_ != nullptr) released = index_->Release(release.lease_id(), from);
    SyncMetricsLocked();
  }
  if (!released) log::Debug("KV pool: peer {} released unknown lease {}", from, release.lease_id());
  service::Envelope reply;
  reply.mutable_ack();
  ReplyTo(from, call_id, std::move(reply));
}

void KvPoolServer::OnDirectRead(PeerId from, const v1::KvPoolDirectRead& read) {
  if (read.block_hashes_size() > options_.max_blocks_per_request) {
    log::Warn("KV pool: peer {} reported {} blocks read; ignored", from, read.block_hashes_size());
    return;
  }
  std::lock_guard lock(mu_);
  if (index_ == nullptr) return;
  // Recently used, as a Get's blocks are; counted only as far as they are still held.
  const int64_t n = index_->CountHeldPrefix(
      std::span<const BlockHash>(read.block_hashes().data(), read.block_hashes_size()),
      /*touch=*/true);
  stats_.direct_read_blocks += n;
  stats_.bytes_out += static_cast<uint64_t>(n) * layout_.slot_bytes();
  SyncMetricsLocked();
}

void KvPoolServer::ScheduleLeaseSweepLocked(transport::Deadline expiry) {
  if (lease_sweep_at_ <= expiry) return;  // an earlier sweep re-arms for this lease
  lease_sweep_at_ = expiry;
  const auto delay = std::chrono::ceil<std::chrono::milliseconds>(expiry - MonoClock::now());
  node_->PostAfter(std::max<int64_t>(0, delay.count()), [this] { ExpireLeases(); });
}

void KvPoolServer::ExpireLeases() {
  std::lock_guard lock(mu_);
  if (index_ == nullptr) return;
  transport::Deadline next = transport::Deadline::max();
  const int64_t n = index_->ExpireLeases(MonoClock::now(), &next);
  if (n > 0) {
    stats_.leases_expired += n;
    log::Debug("KV pool: {} leases expired", n);
  }
  // Timers that an earlier, sooner lease asked for may still come: harmless sweeps.
  lease_sweep_at_ = transport::Deadline::max();
  if (next != transport::Deadline::max()) ScheduleLeaseSweepLocked(next);
  SyncMetricsLocked();
}

void KvPoolServer::OnPeerFailure(PeerId peer) {
  std::lock_guard lock(mu_);
  if (index_ == nullptr) return;
  const int64_t n = index_->DropLeasesOf(peer);
  if (n > 0) log::Info("KV pool: peer {} failed; dropped its {} leases", peer, n);
  SyncMetricsLocked();
}

KvPoolStats KvPoolServer::Stats() const {
  std::lock_guard lock(mu_);
  return StatsLocked();
}

KvPoolStats KvPoolServer::StatsLocked() const {
  KvPoolStats s = stats_;
  s.prefaulted_bytes = prefaulted_bytes_.load();
  if (index_ != nullptr) {
    const PoolIndexCounts c = index_->counts();
    s.num_slots = c.num_slots;
    s.held_blocks = c.held;
    s.pending_blocks = c.pending;
    s.leased_blocks = c.leased_slots;
    s.active_leases = c.active_leases;
    s.evictions = c.evictions;
    s.used_bytes = static_cast<uint64_t>(c.held + c.pending) * layout_.slot_bytes();
  }
  return s;
}

v1::KvPoolLoad KvPoolServer::Load() const { return ToLoad(Stats()); }

void KvPoolServer::SyncMetricsLocked() {
  if (options_.metrics == nullptr) return;
  if (!exporter_) exporter_ = std::make_unique<KvPoolMetricsExporter>(options_.metrics);
  exporter_->Export(options_.instance_id, ToLoad(StatsLocked()));
}

}  // namespace strata::kvcache
