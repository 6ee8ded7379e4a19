// The stream communicator of an EpEndpoint: dispatch and combine over the registered buffers
// (see ep_endpoint.h for the data path). Scratch space is sized once for the worst case, so
// the steady state allocates nothing (Dispatched::rows is the caller's and keeps its capacity).
#include <algorithm>
#include <cstring>

#include "common/clock.h"
#include "expert_parallel/ep_endpoint_impl.h"

namespace strata::expert_parallel {
namespace {

constexpr size_t kCombineHeaderBytes = (sizeof(CombineHeader) + 7) & ~size_t{7};

class EpCommunicator final : public Communicator {
 public:
  EpCommunicator(EpEndpoint* ep, int stream, ComputeGate* gate)
      : ep_(ep), im_(ep->impl()), stream_(stream), gate_(gate), round_(im_.rounds[stream]) {
    const auto& o = im_.opt;
    const size_t choices = static_cast<size_t>(o.max_tokens_per_rank) * o.top_k;
    dest_of_choice_.reserve(choices);
    entry_choice_.reserve(choices);
    combine_rows_.reserve(choices * o.hidden);
    rows_to_.resize(o.size);
    entries_to_.resize(o.size);
    entry_begin_.resize(o.size + 1);
    row_cursor_.resize(o.size);
    entry_cursor_.resize(o.size);
    last_token_.resize(o.size);
    cur_row_.resize(o.size);
    views_.resize(o.size);
    send_bytes_.resize(o.size);
    recv_bytes_.resize(o.size);
    combine_send_bytes_.resize(o.size);
    combine_recv_bytes_.resize(o.size);
    recv_entries_.resize(o.size);
    hist_.resize(o.num_experts);
    expert_rows_.resize(o.num_experts + 1);
    received_.resize(o.size);
    experts_.resize(o.num_experts);
    const size_t max_rows = choices * o.size;
    row_src_.reserve(max_rows);
    row_entry_.reserve(max_rows);
    qrow_.resize(im_.shape.RowBytes());
  }

  int rank() const override { return im_.opt.rank; }
  int size() const override { return im_.opt.size; }
  int num_experts() const override { return im_.opt.num_experts; }

  Status Dispatch(const DispatchInput& in, Dispatched* out) override {
    const int64_t start = MonotonicNanos();
    delta_ = EpStats();
    STRATA_RETURN_IF_ERROR(im_.FailedStatus());
    STRATA_RETURN_IF_ERROR(Validate(in));
    const EpOptions& o = im_.opt;
    const WireShape& shape = im_.shape;
    const int size = o.size, me = o.rank, k = in.top_k;
    const int64_t T = in.num_tokens, H = in.hidden_size;
    placement_ = ep_->placement();
    const Placement& pl = *placement_;
    layer_ = in.layer;
    num_tokens_ = T;

    // Pass 1: destination of every choice; rows (one per token and destination) and entries.
    dest_of_choice_.resize(T * k);
    std::fill(rows_to_.begin(), rows_to_.end(), 0);
    std::fill(entries_to_.begin(), entries_to_.end(), 0);
    std::fill(last_token_.begin(), last_token_.end(), -1);
    std::fill(hist_.begin(), hist_.end(), 0);
    for (int64_t t = 0; t < T; ++t) {
      for (int j = 0; j < k; ++j) {
        const int32_t e = in.expert_ids[t * k + j];
        const int d = pl.RankOfSlot(pl.SlotFor(in.layer, e, me, t));
        dest_of_choice_[t * k + j] = d;
        ++entries_to_[d];
        ++hist_[e];
        if (last_token_[d] != t) {
          last_token_[d] = t;
          ++rows_to_[d];
        }
      }
    }
    entry_begin_[0] = 0;
    for (int d = 0; d < size; ++d) entry_begin_[d + 1] = entry_begin_[d] + entries_to_[d];
    entry_choice_.resize(T * k);
    for (int d = 0; d < size; ++d) {
      // Over a transport the own share is packed straight into the receive slot; a collective
      // moves it like any other.
      uint8_t* base = d == me && !im_.collective ? im_.At(stream_, Impl::kDispatchRecv, me)
                                                 : im_.At(stream_, Impl::kDispatchSend, d);
      views_[d] = LayoutDispatch(shape, base, rows_to_[d], entries_to_[d]);
      DispatchHeader* h = views_[d].header;
      *h = DispatchHeader();
      h->layer = static_cast<uint32_t>(in.layer);
      h->round = round_;
      h->placement_version = pl.version();
      h->source_rank = static_cast<uint32_t>(me);
      h->dtype = static_cast<uint32_t>(shape.dtype);
      h->num_rows = static_cast<uint32_t>(rows_to_[d]);
      h->num_entries = static_cast<uint32_t>(entries_to_[d]);
      std::copy(entries_to_.begin(), entries_to_.end(), views_[d].rank_entries);
      std::copy(hist_.begin(), hist_.end(), views_[d].expert_counts);
      send_bytes_[d] = shape.DispatchBytes(rows_to_[d], entries_to_[d]);
      row_cursor_[d] = 0;
      entry_cursor_[d] = 0;
      last_token_[d] = -1;
    }
    // Pass 2: encode each token once, copy it to each destination that needs it.
    const size_t row_bytes = shape.RowBytes();
    for (int64_t t = 0; t < T; ++t) {
      float scale = 0.0f;
      bool encoded = false;
      for (int j = 0; j < k; ++j) {
        const int64_t c = t * k + j;
        const int d = dest_of_choice_[c];
        if (last_token_[d] != t) {
          if (!encoded) {
            EncodeRow(shape.dtype, in.hidden + t * H, H, qrow_.data(), &scale);
            encoded = true;
          }
          last_token_[d] = t;
          cur_row_[d] = row_cursor_[d]++;
          std::memcpy(views_[d].rows + cur_row_[d] * row_bytes, qrow_.data(), row_bytes);
          if (views_[d].scales) views_[d].scales[cur_row_[d]] = scale;
        }
        const int32_t i = entry_cursor_[d]++;
        views_[d].entries[2 * i] = cur_row_[d];
        views_[d].entries[2 * i + 1] = in.expert_ids[c];
        entry_choice_[entry_begin_[d] + i] = static_cast<int32_t>(c);
      }
    }
    for (int d = 0; d < size; ++d) {
      if (d == me) {
        delta_.local_bytes += send_bytes_[d];
        continue;
      }
      if (!im_.collective) {
        im_.PutAndNotify(stream_, Phase::kDispatch, d, im_.Offset(stream_, Impl::kDispatchSend, d),
                         im_.Offset(stream_, Impl::kDispatchRecv, me),
                         static_cast<uint32_t>(send_bytes_[d]), static_cast<uint32_t>(round_));
      }
      delta_.dispatch_bytes += send_bytes_[d];
    }
    Status st = im_.collective
                    ? im_.collective->AllToAll(im_.At(stream_, Impl::kDispatchSend, 0),
                                               im_.At(stream_, Impl::kDispatchRecv, 0), im_.dcap,
                                               send_bytes_.data(), recv_bytes_.data(), gate_,
                                               &delta_.wait_ns)
                    : im_.WaitRound(stream_, Phase::kDispatch, round_, gate_, &delta_.wait_ns);
    if (st.ok()) st = Unpack(in, out);
    delta_.dispatch_ns = MonotonicNanos() - start;
    if (!st.ok()) ep_->Abort(st);
    return st;
  }

  Status Combine(const DispatchInput& in, const Dispatched& dispatched, const float* expert_out,
                 float* combined) override {
    const int64_t start = MonotonicNanos();
    STRATA_RETURN_IF_ERROR(im_.FailedStatus());
    const EpOptions& o = im_.opt;
    const int size = o.size, me = o.rank;
    const int64_t H = o.hidden;
    if (in.num_tokens != num_tokens_ || in.layer != layer_ ||
        dispatched.num_rows() != static_cast<int64_t>(row_src_.size())) {
      Status st = FailedPreconditionError("EP combine: not the batch of the last dispatch");
      ep_->Abort(st);
      return st;
    }
    for (int s = 0; s < size; ++s) {
      uint8_t* base = s == me && !im_.collective ? im_.At(stream_, Impl::kCombineRecv, me)
                                                 : im_.At(stream_, Impl::kCombineSend, s);
      auto* h = reinterpret_cast<CombineHeader*>(base);
      *h = CombineHeader();
      h->layer = static_cast<uint32_t>(layer_);
      h->round = round_;
      h->source_rank = static_cast<uint32_t>(me);
      h->num_entries = static_cast<uint32_t>(recv_entries_[s]);
    }
    const int64_t rows = static_cast<int64_t>(row_src_.size());
    for (int64_t r = 0; r < rows; ++r) {
      const int s = row_src_[r];
      uint8_t* base = s == me && !im_.collective ? im_.At(stream_, Impl::kCombineRecv, me)
                                                 : im_.At(stream_, Impl::kCombineSend, s);
      EncodeRow(WireDType::kBf16, expert_out + r * H, H,
                base + kCombineHeaderBytes + static_cast<size_t>(row_entry_[r]) * H * sizeof(bf16),
                nullptr);
    }
    for (int s = 0; s < size; ++s) {
      const size_t bytes = im_.shape.CombineBytes(recv_entries_[s]);
      combine_send_bytes_[s] = bytes;
      if (s == me) {
        delta_.local_bytes += bytes;
        continue;
      }
      if (!im_.collective) {
        im_.PutAndNotify(stream_, Phase::kCombine, s, im_.Offset(stream_, Impl::kCombineSend, s),
                         im_.Offset(stream_, Impl::kCombineRecv, me), static_cast<uint32_t>(bytes),
                         static_cast<uint32_t>(round_));
      }
      delta_.combine_bytes += bytes;
    }
    Status st = im_.collective
                    ? im_.collective->AllToAll(im_.At(stream_, Impl::kCombineSend, 0),
                                               im_.At(stream_, Impl::kCombineRecv, 0), im_.ccap,
                                               combine_send_bytes_.data(),
                                               combine_recv_bytes_.data(), gate_, &delta_.wait_ns)
                    : im_.WaitRound(stream_, Phase::kCombine, round_, gate_, &delta_.wait_ns);
    if (st.ok()) st = Gather(in, combined);
    if (!st.ok()) {
      ep_->Abort(st);
      return st;
    }
    ++round_;
    delta_.rounds = 1;
    delta_.combine_ns = MonotonicNanos() - start;
    im_.AddRound(layer_, received_.data(), experts_.data(), delta_);
    return OkStatus();
  }

 private:
  Status Validate(const DispatchInput& in) {
    const EpOptions& o = im_.opt;
    Status st;
    if (in.top_k != o.top_k || in.hidden_size != o.hidden) {
      st = InvalidArgumentError("EP dispatch: top_k " + std::to_string(in.top_k) + " / hidden " +
                                std::to_string(in.hidden_size) + ", the group was built for " +
                                std::to_string(o.top_k) + " / " + std::to_string(o.hidden));
    } else if (in.layer < 0 || in.layer >= o.num_layers) {
      st = InvalidArgumentError("EP dispatch: layer " + std::to_string(in.layer) + " outside [0, " +
                                std::to_string(o.num_layers) + ")");
    } else if (in.num_tokens < 0 || in.num_tokens > o.max_tokens_per_rank) {
      st = ResourceExhaustedError("EP dispatch: " + std::to_string(in.num_tokens) +
                                  " tokens in one MoE call; the group takes at most " +
                                  std::to_string(o.max_tokens_per_rank) + " per rank");
    } else {
      for (int64_t i = 0; i < in.num_tokens * in.top_k; ++i) {
        const int32_t e = in.expert_ids[i];
        if (e < 0 || e >= o.num_experts) {
          st = InvalidArgumentError("expert id " + std::to_string(e) + " out of range [0, " +
                                    std::to_string(o.num_experts) + ")");
          break;
        }
      }
    }
    if (!st.ok()) ep_->Abort(st);
    return st;
  }

  Status Unpack(const DispatchInput& in, Dispatched* out) {
    const EpOptions& o = im_.opt;
    const WireShape& shape = im_.shape;
    const int size = o.size, me = o.rank;
    const int64_t H = in.hidden_size;
    {
      std::lock_guard<std::mutex> lock(im_.mu);
      for (int s = 0; s < size; ++s) {
        recv_bytes_[s] = s == me
                             ? send_bytes_[me]
                             : im_.arrived_bytes[im_.ArrivalIndex(stream_, Phase::kDispatch, s)];
      }
    }
    std::fill(received_.begin(), received_.end(), 0);
    std::fill(experts_.begin(), experts_.end(), 0);
    std::fill(expert_rows_.begin(), expert_rows_.end(), 0);
    for (int s = 0; s < size; ++s) {
      if (recv_bytes_[s] > im_.dcap) return DataLossError("EP dispatch message over capacity");
      auto v = ParseDispatch(shape, im_.At(stream_, Impl::kDispatchRecv, s), recv_bytes_[s]);
      if (!v.ok()) return v.status();
      const DispatchHeader& h = *v->header;
      if (h.layer != static_cast<uint32_t>(in.layer) || h.round != round_ ||
          h.source_rank != static_cast<uint32_t>(s) ||
          h.placement_version != placement_->version()) {
        return DataLossError("EP rank " + std::to_string(me) + ": rank " + std::to_string(s) +
                             " sent layer " + std::to_string(h.layer) + " round " +
                             std::to_string(h.round) + " placement " +
                             std::to_string(h.placement_version) + ", expected layer " +
                             std::to_string(in.layer) + " round " + std::to_string(round_) +
                             " placement " + std::to_string(placement_->version()));
      }
      views_[s] = *v;
      recv_entries_[s] = h.num_entries;
      for (int r = 0; r < size; ++r) received_[r] += v->rank_entries[r];
      for (int e = 0; e < o.num_experts; ++e) experts_[e] += v->expert_counts[e];
      for (uint32_t i = 0; i < h.num_entries; ++i) ++expert_rows_[v->entries[2 * i + 1] + 1];
    }
    for (int e = 0; e < o.num_experts; ++e) expert_rows_[e + 1] += expert_rows_[e];
    const int64_t total = expert_rows_[o.num_experts];
    out->groups.clear();
    for (int e = 0; e < o.num_experts; ++e) {
      const int64_t n = expert_rows_[e + 1] - expert_rows_[e];
      if (n > 0) out->groups.push_back({e, expert_rows_[e], n});
    }
    out->rows.resize(total * H);
    out->row_of_choice.clear();
    row_src_.resize(total);
    row_entry_.resize(total);
    const size_t row_bytes = shape.RowBytes();
    for (int s = 0; s < size; ++s) {  // rows of an expert: by source rank, then entry order
      const DispatchView& v = views_[s];
      for (int32_t i = 0; i < recv_entries_[s]; ++i) {
        const int32_t row = v.entries[2 * i], e = v.entries[2 * i + 1];
        const int64_t r = expert_rows_[e]++;
        DecodeRow(shape.dtype, v.rows + row * row_bytes, v.scales ? v.scales[row] : 0.0f, H,
                  out->rows.data() + r * H);
        row_src_[r] = s;
        row_entry_[r] = i;
      }
    }
    return OkStatus();
  }

  Status Gather(const DispatchInput& in, float* combined) {
    const EpOptions& o = im_.opt;
    const int size = o.size, me = o.rank, k = o.top_k;
    const int64_t H = o.hidden, T = num_tokens_;
    combine_rows_.resize(T * k * H);
    for (int d = 0; d < size; ++d) {
      size_t bytes;
      if (im_.collective) {
        bytes = combine_recv_bytes_[d];
      } else if (d == me) {
        bytes = im_.shape.CombineBytes(recv_entries_[me]);
      } else {
        std::lock_guard<std::mutex> lock(im_.mu);
        bytes = im_.arrived_bytes[im_.ArrivalIndex(stream_, Phase::kCombine, d)];
      }
      if (bytes > im_.ccap) return DataLossError("EP combine message over capacity");
      const uint8_t* base = im_.At(stream_, Impl::kCombineRecv, d);
      auto h = ParseCombine(im_.shape, base, bytes);
      if (!h.ok()) return h.status();
      if ((*h)->num_entries != static_cast<uint32_t>(entries_to_[d]) || (*h)->round != round_ ||
          (*h)->layer != static_cast<uint32_t>(layer_)) {
        return DataLossError("EP rank " + std::to_string(me) + ": combine from rank " +
                             std::to_string(d) + " has " + std::to_string((*h)->num_entries) +
                             " entries of layer " + std::to_string((*h)->layer) + " round " +
                             std::to_string((*h)->round) + ", expected " +
                             std::to_string(entries_to_[d]));
      }
      const bf16* rows = reinterpret_cast<const bf16*>(base + kCombineHeaderBytes);
      for (int32_t i = 0; i < entries_to_[d]; ++i) {
        const int32_t c = entry_choice_[entry_begin_[d] + i];
        DecodeRow(WireDType::kBf16, reinterpret_cast<const uint8_t*>(rows + i * H), 0.0f, H,
                  combine_rows_.data() + static_cast<int64_t>(c) * H);
      }
    }
    // Each token: its choices' outputs summed in top-k order, whatever rank computed them.
    for (int64_t t = 0; t < T; ++t) {
      float* y = combined + t * H;
      std::fill(y, y + H, 0.0f);
      for (int j = 0; j < k; ++j) {
        const float w = in.weights[t * k + j];
        const float* x = combine_rows_.data() + (t * k + j) * H;
        for (int64_t i = 0; i < H; ++i) y[i] += w * x[i];
      }
    }
    return OkStatus();
  }

  using Impl = EpEndpoint::Impl;
  EpEndpoint* ep_;
  Impl& im_;
  const int stream_;
  ComputeGate* gate_;
  uint64_t& round_;  // the stream's round counter lives in the endpoint
  std::shared_ptr<const Placement> placement_;
  int layer_ = -1;
  int64_t num_tokens_ = 0;
  EpStats delta_;
  // Send side.
  std::vector<int32_t> dest_of_choice_, rows_to_, entries_to_, entry_begin_, entry_choice_;
  std::vector<int32_t> row_cursor_, entry_cursor_, cur_row_, hist_;
  std::vector<int64_t> last_token_;
  std::vector<DispatchView> views_;
  std::vector<size_t> send_bytes_, recv_bytes_, combine_send_bytes_, combine_recv_bytes_;
  std::vector<uint8_t> qrow_;
  // Receive side.
  std::vector<int32_t> recv_entries_;
  std::vector<int64_t> expert_rows_, received_, experts_;
  std::vector<int32_t> row_src_, row_entry_;
  std::vector<float> combine_rows_;
};

}  // namespace

std::unique_ptr<Communicator> EpEndpoint::NewCommunicator(int stream, ComputeGate* gate) {
  if (stream < 0 || stream >= options_.num_streams) return nullptr;
  return std::make_unique<EpCommunicator>(this, stream, gate);
}

}  // namespace strata::expert_parallel
