#include "kvcache/pool_client.h"

#include <algorithm>
#include <condition_variable>

#include "common/log.h"
#include "kvcache/pool_transfers.h"
#include "proto/status_convert.h"

namespace strata::kvcache {

using transport::Deadline;
using transport::PeerId;

namespace {

// Waits for a known number of completions (calls or transfers) that each run exactly once.
struct Latch {
  std::mutex mu;
  std::condition_variable cv;
  int left = 0;
  void CountDown() {
    std::lock_guard lock(mu);
    if (--left == 0) cv.notify_all();
  }
  // True when all arrived before `until`.
  bool WaitUntil(Deadline until) {
    std::unique_lock lock(mu);
    return cv.wait_until(lock, until, [this] { return left == 0; });
  }
};

// The completion of every call and transfer is guaranteed by its own deadline; this grace only
// guards against a stuck node or transport.
constexpr auto kCompletionGrace = std::chrono::seconds(5);

int64_t MillisUntil(Deadline deadline) {
  return std::max<int64_t>(
      0,
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - MonoClock::now()).count());
}

Status ErrorOf(const v1::Error& error) {
  return error.code() == v1::STATUS_CODE_OK ? OkStatus() : proto::FromProto(error);
}

}  // namespace

void KvPoolClient::Health::ReportFailure(int s, const Status& why) {
  std::lock_guard lock(mu);
  Shard& shard = shards[s];
  if (shard.reported_bad) return;
  shard.reported_bad = true;
  log::Warn("KV pool {} unavailable ({}); its blocks count as misses until it answers",
            shard.address, why.ToString());
}

void KvPoolClient::Health::ReportSuccess(int s) {
  std::lock_guard lock(mu);
  Shard& shard = shards[s];
  if (!shard.reported_bad) return;
  shard.reported_bad = false;
  log::Info("KV pool {} answers again", shard.address);
}

KvPoolClient::KvPoolClient(service::RpcNode* node, std::vector<std::string> pool_addresses,
                           KvPoolClientOptions options)
    : node_(node),
      options_(std::move(options)),
      ring_(pool_addresses, options_.num_virtual_nodes),
      health_(std::make_shared<Health>()),
      num_shards_(static_cast<int>(pool_addresses.size())) {
  for (auto& a : pool_addresses) health_->shards.push_back(Shard{std::move(a), {}, false});
  if (options_.direct_reads && num_shards_ > 0) {
    direct_ = std::make_unique<PoolDirectReads>(&node_->transport(), num_shards_);
  }
}

KvPoolClient::~KvPoolClient() = default;

std::vector<std::vector<int>> KvPoolClient::Split(std::span<const BlockHash> hashes) const {
  std::vector<std::vector<int>> positions(static_cast<size_t>(num_shards_));
  for (size_t i = 0; i < hashes.size(); ++i) {
    positions[static_cast<size_t>(ring_.ShardOf(hashes[i]))].push_back(static_cast<int>(i));
  }
  return positions;
}

int KvPoolClient::CombinePrefix(const std::vector<std::vector<int>>& positions,
                                const std::vector<int>& held, int total) {
  int prefix = total;
  for (size_t s = 0; s < positions.size(); ++s) {
    const int h = std::clamp(held[s], 0, static_cast<int>(positions[s].size()));
    if (h < static_cast<int>(positions[s].size())) prefix = std::min(prefix, positions[s][h]);
  }
  return prefix;
}

StatusOr<PeerId> KvPoolClient::PeerOf(int s, Deadline deadline) {
  std::string address;
  {
    std::lock_guard lock(health_->mu);
    const Shard& shard = health_->shards[s];
    if (MonoClock::now() < shard.retry_after) {
      return UnavailableError("KV pool " + shard.address + " failed recently; not retried yet");
    }
    address = shard.address;
  }
  const Deadline connect_by =
      std::min(deadline, transport::DeadlineAfterMillis(options_.connect_timeout_ms));
  StatusOr<PeerId> peer = node_->Connect(address, connect_by);
  if (!peer.ok()) {
    {
      std::lock_guard lock(health_->mu);
      health_->shards[s].retry_after =
          transport::DeadlineAfterMillis(options_.reconnect_backoff_ms);
    }
    health_->ReportFailure(s, peer.status());
  }
  return peer;
}

int KvPoolClient::Lookup(std::span<const BlockHash> hashes, Deadline deadline) {
  if (hashes.empty() || num_shards_ == 0) return 0;
  if (node_->OnDispatchThread()) {
    log::Error(
        "KvPoolClient::Lookup on the node's dispatch thread would wait for itself; "
        "counted as a miss");
    return 0;
  }
  const auto positions = Split(hashes);
  auto latch = std::make_shared<Latch>();
  auto held = std::make_shared<std::vector<int>>(positions.size(), 0);
  for (size_t s = 0; s < positions.size(); ++s) {
    if (positions[s].empty()) continue;
    StatusOr<PeerId> peer = PeerOf(static_cast<int>(s), deadline);
    if (!peer.ok()) continue;
    service::Envelope request;
    auto* lookup = request.mutable_kv_pool_lookup();
    for (int p : positions[s]) lookup->add_block_hashes(hashes[p]);
    {
      std::lock_guard lock(latch->mu);
      ++latch->left;
    }
    node_->Call(
        *peer, std::move(request), deadline,
        [latch, held, s, health = health_](StatusOr<service::Envelope> reply) {
          Status st = reply.ok() ? ErrorOf(reply->kv_pool_lookup_reply().error()) : reply.status();
          if (st.ok() && !reply->has_kv_pool_lookup_reply()) {
            st = InternalError("the pool answered a lookup with " +
                               std::string(proto::BodyName(*reply)));
          }
          if (st.ok()) {
            health->ReportSuccess(static_cast<int>(s));
            std::lock_guard lock(latch->mu);
            (*held)[s] = static_cast<int>(reply->kv_pool_lookup_reply().num_hit_blocks());
          } else {
            health->ReportFailure(static_cast<int>(s), st);
          }
          latch->CountDown();
        },
        service::ReplyOn::kTransportThread);
  }
  if (!latch->WaitUntil(std::max(deadline, MonoClock::now()) + kCompletionGrace)) {
    log::Error("KV pool lookups did not complete; counted as misses");
    return 0;
  }
  std::lock_guard lock(latch->mu);
  return CombinePrefix(positions, *held, static_cast<int>(hashes.size()));
}

StatusOr<int> KvPoolClient::Fetch(std::span<const BlockHash> hashes, const RegisteredKv& local,
                                  std::span<const BlockId> local_blocks, Deadline deadline) {
  if (local_blocks.size() < hashes.size()) {
    return InvalidArgumentError("KV pool fetch of " + std::to_string(hashes.size()) +
                                " blocks into " + std::to_string(local_blocks.size()) +
                                " local blocks");
  }
  if (node_->OnDispatchThread()) {
    return FailedPreconditionError(
        "KvPoolClient::Fetch on the node's dispatch thread would wait for itself");
  }
  if (hashes.empty() || num_shards_ == 0) return 0;
  const auto positions = Split(hashes);
  if (direct_ != nullptr && ReadDirectly(hashes, positions, local, local_blocks, deadline)) {
    return static_cast<int>(hashes.size());
  }
  const int64_t lease_ms = std::max(options_.lease_ms, MillisUntil(deadline) + 1000);

  // 1. Lease the held prefix on every shard.
  struct Leased {
    PeerId peer = 0;
    uint64_t lease_id = 0;
    v1::KvPoolGetReply reply;
    const v1::KvLocation& location() const { return reply.location(); }
  };
  auto latch = std::make_shared<Latch>();
  auto leased = std::make_shared<std::vector<Leased>>(positions.size());
  for (size_t s = 0; s < positions.size(); ++s) {
    if (positions[s].empty()) continue;
    StatusOr<PeerId> peer = PeerOf(static_cast<int>(s), deadline);
    if (!peer.ok()) continue;
    service::Envelope request;
    auto* get = request.mutable_kv_pool_get();
    for (int p : positions[s]) get->add_block_hashes(hashes[p]);
    get->set_lease_ms(static_cast<uint64_t>(lease_ms));
    {
      std::lock_guard lock(latch->mu);
      ++latch->left;
    }
    node_->Call(
        *peer, std::move(request), deadline,
        [latch, leased, s, peer = *peer, health = health_](StatusOr<service::Envelope> reply) {
          Status st = reply.ok() ? ErrorOf(reply->kv_pool_get_reply().error()) : reply.status();
          if (st.ok()) {
            health->ReportSuccess(static_cast<int>(s));
            std::lock_guard lock(latch->mu);
            Leased& l = (*leased)[s];
            l.peer = peer;
            l.lease_id = reply->kv_pool_get_reply().lease_id();
            l.reply = std::move(*reply->mutable_kv_pool_get_reply());
          } else {
            health->ReportFailure(static_cast<int>(s), st);
          }
          latch->CountDown();
        },
        service::ReplyOn::kTransportThread);
  }
  const bool answered = latch->WaitUntil(std::max(deadline, MonoClock::now()) + kCompletionGrace);
  std::vector<Leased> leases;
  {
    std::lock_guard lock(latch->mu);
    leases = *leased;  // a late reply still writes into the shared copy, never into this one
  }
  auto release_all = [&] {
    for (const Leased& l : leases) {
      if (l.lease_id == 0) continue;
      service::Envelope release;
      release.mutable_kv_pool_release()->set_lease_id(l.lease_id);
      (void)node_->Send(l.peer, std::move(release));  // a lost release expires
    }
  };
  if (!answered) {
    log::Error("KV pool leases did not complete; counted as misses");
    release_all();
    return 0;
  }
  std::vector<int> held(positions.size(), 0);
  for (size_t s = 0; s < positions.size(); ++s) {
    if (leases[s].lease_id != 0) held[s] = leases[s].location().blocks_size();
  }
  const int prefix = CombinePrefix(positions, held, static_cast<int>(hashes.size()));

  // 2. Read the blocks of the prefix. From pools on this host: copies on this thread, as for
  // blocks read before (and remembered for next time). Otherwise every shard's at once by RMA.
  if (direct_ != nullptr && prefix > 0) {
    std::vector<PoolDirectReads::ShardBlocks> parts;
    for (size_t s = 0; s < positions.size(); ++s) {
      if (leases[s].lease_id == 0) continue;
      PoolDirectReads::ShardBlocks part{static_cast<int>(s), leases[s].peer, {}, {}};
      for (int p : positions[s]) {
        if (p >= prefix) break;
        part.hashes.push_back(hashes[p]);
        part.local_blocks.push_back(local_blocks[p]);
      }
      direct_->Remember(part.shard, part.peer, part.hashes, leases[s].reply, deadline);
      if (!part.hashes.empty()) parts.push_back(std::move(part));
    }
    if (direct_->TryRead(parts, local)) {
      release_all();
      return prefix;
    }
  }
  const int block_size = local.spec().block_size;
  std::vector<const transport::Region*> local_regions;
  for (int seg = 0; seg < local.num_segments(); ++seg) local_regions.push_back(&local.region(seg));
  BlockTransfers transfers;
  for (size_t s = 0; s < positions.size() && prefix > 0; ++s) {
    const v1::KvLocation& loc = leases[s].location();
    std::vector<BlockMove> moves;  // block = index into hashes
    for (size_t i = 0; i < positions[s].size() && static_cast<int>(i) < loc.blocks_size() &&
                       positions[s][i] < prefix;
         ++i) {
      const int p = positions[s][i];
      moves.push_back(BlockMove{p, static_cast<uint64_t>(local_blocks[p]) * local.segment_bytes(),
                                &loc.blocks(static_cast<int>(i))});
    }
    if (moves.empty()) continue;
    if (static_cast<int>(loc.block_size_tokens()) != block_size) {
      release_all();
      return InvalidArgumentError("KV pool " + loc.owner_address() + " holds blocks of " +
                                  std::to_string(loc.block_size_tokens()) +
                                  " tokens; this instance uses " + std::to_string(block_size));
    }
    auto planned =
        PlanBlockMoves(local_regions, local.segment_bytes(), moves, loc, leases[s].peer, deadline);
    if (!planned.ok()) {
      release_all();
      return planned.status().WithContext("KV pool " + loc.owner_address());
    }
    transfers.Append(std::move(planned).value());
  }
  auto reads = std::make_shared<Latch>();
  auto failed = std::make_shared<std::vector<char>>(hashes.size(), 0);
  auto first_error = std::make_shared<Status>();
  reads->left = 1;  // the batch's one completion
  const bool reading = transfers.size() > 0;
  if (reading) {
    node_->transport().GetBatch(
        std::move(transfers.transfers),
        [reads, failed, first_error,
         blocks = std::move(transfers.blocks)](std::vector<Status> statuses) {
          {
            std::lock_guard lock(reads->mu);
            ForEachFailedBlock(blocks, statuses, [&](int b, const Status& st) {
              (*failed)[b] = 1;
              if (first_error->ok()) *first_error = st;
            });
          }
          reads->CountDown();
        });
  }
  const bool read_all =
      !reading || reads->WaitUntil(std::max(deadline, MonoClock::now()) + kCompletionGrace);
  release_all();
  if (!read_all) {
    log::Error("KV pool reads did not complete; counted as misses");
    return 0;
  }
  int read = prefix;
  for (int i = 0; i < prefix; ++i) {
    if ((*failed)[i]) {
      read = i;
      log::Warn("KV pool fetch: reading block {} failed ({}); {} of {} blocks read", i,
                first_error->ToString(), read, prefix);
      break;
    }
  }
  return read;
}

bool KvPoolClient::ReadDirectly(std::span<const BlockHash> hashes,
                                const std::vector<std::vector<int>>& positions,
                                const RegisteredKv& local, std::span<const BlockId> local_blocks,
                                Deadline deadline) {
  std::vector<PoolDirectReads::ShardBlocks> parts;
  for (size_t s = 0; s < positions.size(); ++s) {
    if (positions[s].empty()) continue;
    StatusOr<PeerId> peer = PeerOf(static_cast<int>(s), deadline);
    if (!peer.ok()) return false;
    PoolDirectReads::ShardBlocks part{static_cast<int>(s), *peer, {}, {}};
    for (int p : positions[s]) {
      part.hashes.push_back(hashes[p]);
      part.local_blocks.push_back(local_blocks[p]);
    }
    parts.push_back(std::move(part));
  }
  if (!direct_->TryRead(parts, local)) return false;
  // The pools count the reads and keep the blocks recently used, as after a lease.
  for (PoolDirectReads::ShardBlocks& part : parts) {
    service::Envelope report;
    for (BlockHash h : part.hashes) report.mutable_kv_pool_direct_read()->add_block_hashes(h);
    (void)node_->Send(part.peer, std::move(report));
  }
  return true;
}

void KvPoolClient::Store(std::vector<BlockHash> hashes, const RegisteredKv& local,
                         std::vector<BlockId> local_blocks, Deadline deadline,
                         std::function<void(Status)> done) {
  if (hashes.size() != local_blocks.size()) {
    done(InvalidArgumentError("KV pool store of " + std::to_string(hashes.size()) +
                              " hashes with " + std::to_string(local_blocks.size()) + " blocks"));
    return;
  }
  if (hashes.empty() || num_shards_ == 0) {
    done(OkStatus());
    return;
  }
  const auto positions = Split(hashes);
  struct Join {
    std::mutex mu;
    int left = 0;
    Status first_error;
    std::function<void(Status)> done;
    void Finish(const Status& st) {
      std::function<void(Status)> call;
      Status result;
      {
        std::lock_guard lock(mu);
        if (!st.ok() && first_error.ok()) first_error = st;
        if (--left > 0) return;
        call = std::move(done);
        result = first_error;
      }
      call(result);
    }
  };
  auto join = std::make_shared<Join>();
  join->done = std::move(done);
  for (const auto& p : positions) join->left += p.empty() ? 0 : 1;
  const std::string address = node_->listen_address();
  const Deadline reply_by = deadline + std::chrono::milliseconds(options_.store_reply_grace_ms);
  for (size_t s = 0; s < positions.size(); ++s) {
    if (positions[s].empty()) continue;
    StatusOr<PeerId> peer = PeerOf(static_cast<int>(s), deadline);
    if (!peer.ok()) {
      join->Finish(peer.status());
      continue;
    }
    service::Envelope request;
    auto* put = request.mutable_kv_pool_put();
    std::vector<BlockId> blocks;
    for (int p : positions[s]) {
      put->add_block_hashes(hashes[p]);
      blocks.push_back(local_blocks[p]);
    }
    *put->mutable_source() = local.Describe(blocks, options_.instance_id, address);
    put->set_timeout_ms(static_cast<uint64_t>(std::max<int64_t>(1, MillisUntil(deadline))));
    node_->Call(*peer, std::move(request), reply_by,
                [join, s, health = health_](StatusOr<service::Envelope> reply) {
                  Status st =
                      reply.ok() ? ErrorOf(reply->kv_pool_put_reply().error()) : reply.status();
                  if (reply.ok()) {
                    health->ReportSuccess(static_cast<int>(s));
                  } else {
                    health->ReportFailure(static_cast<int>(s), st);
                  }
                  join->Finish(st);
                });
  }
}

}  // namespace strata::kvcache
