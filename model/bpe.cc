#include "model/bpe.h"

#include <queue>

#include "model/tokenizer_unicode.h"

namespace strata::model::tok {
namespace {

std::string OptionalString(const nlohmann::json& spec, const char* name) {
  auto it = spec.find(name);
  if (it == spec.end() || !it->is_string()) return std::string();
  return it->get<std::string>();
}

}  // namespace

StatusOr<std::unique_ptr<BpeModel>> BpeModel::Create(const nlohmann::json& spec, BpeTables tables) {
  auto model = std::unique_ptr<BpeModel>(new BpeModel());
  model->vocab_.Reserve(tables.vocab.size());
  int32_t max_id = -1;
  for (auto& [token, id64] : tables.vocab) {
    if (id64 < 0 || id64 >= INT32_MAX) {
      return InvalidArgumentError("model BPE: vocab entry \"" + token + "\" has no valid id");
    }
    int32_t id = static_cast<int32_t>(id64);
    max_id = std::max(max_id, id);
    model->vocab_.Set(std::move(token), id);  // a later duplicate wins, as in JSON
  }
  tables.vocab = {};
  if (max_id >= 0 && static_cast<size_t>(max_id) >= 4 * model->vocab_.size() + 1024) {
    return InvalidArgumentError("model BPE: vocab ids are too sparse (max id " +
                                std::to_string(max_id) + ")");
  }
  model->id_to_key_.assign(static_cast<size_t>(max_id + 1), -1);
  model->char_ids_.assign(0x800, -1);
  for (size_t k = 0; k < model->vocab_.size(); ++k) {
    const std::string& token = model->vocab_.key(k);
    int32_t id = *model->vocab_.Find(token);
    if (model->id_to_key_[id] < 0) model->id_to_key_[id] = static_cast<int32_t>(k);
    size_t pos = 0;
    if (!token.empty() && ValidUtf8SequenceLength(token, 0) == token.size()) {
      char32_t cp = NextCodePoint(token, pos);
      if (cp < 0x800) model->char_ids_[cp] = id;
    }
  }

  if (auto dropout = spec.find("dropout");
      dropout != spec.end() && dropout->is_number() && dropout->get<double>() > 0.0) {
    return InvalidArgumentError("model BPE: dropout > 0 makes encoding random; not supported");
  }
  model->continuing_subword_prefix_ = OptionalString(spec, "continuing_subword_prefix");
  model->end_of_word_suffix_ = OptionalString(spec, "end_of_word_suffix");
  model->fuse_unk_ = spec.value("fuse_unk", false);
  model->byte_fallback_ = spec.value("byte_fallback", false);
  model->ignore_merges_ = spec.value("ignore_merges", false);
  std::string unk = OptionalString(spec, "unk_token");
  if (!unk.empty()) {
    auto id = model->TokenToId(unk);
    if (!id) return InvalidArgumentError("model BPE: unk_token \"" + unk + "\" is not in vocab");
    model->unk_id_ = *id;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto id = model->TokenToId(name);
    model->byte_fallback_ids_[b] = id ? *id : -1;
  }

  const size_t prefix_len = model->continuing_subword_prefix_.size();
  model->merges_.Reserve(tables.merges.size());
  std::string merged;
  for (size_t rank = 0; rank < tables.merges.size(); ++rank) {
    std::string_view a = tables.merges.first(rank), b = tables.merges.second(rank);
    auto a_id = model->TokenToId(a);
    auto b_id = model->TokenToId(b);
    merged.assign(a);
    merged.append(std::string_view(b).substr(std::min(prefix_len, b.size())));
    auto new_id = model->TokenToId(merged);
    if (!a_id || !b_id || !new_id) {
      return InvalidArgumentError("model BPE: merge " + std::to_string(rank) + " (\"" +
                                  std::string(a) + "\", \"" + std::string(b) +
                                  "\") uses a token that is not in vocab");
    }
    // A later duplicate of a pair overwrites the earlier rank, as HF's map does.
    model->merges_.Set(PairKey(*a_id, *b_id), {static_cast<int32_t>(rank), *new_id});
  }
  return model;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  return vocab_.Find(token);
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_key_.size() || id_to_key_[id] < 0) {
    return nullptr;
  }
  return &vocab_.key(static_cast<size_t>(id_to_key_[id]));
}

void BpeModel::Encode(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto id = TokenToId(word)) {
      out.push_back(*id);
      return;
    }
  }
  if (word.size() > kMaxCachedWordBytes) {
    EncodeUncached(word, out);
    return;
  }
  CacheShard& shard = cache_[StringHash{}(word) % kNumShards];
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.map.find(word);
    if (it != shard.map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t first = out.size();
  EncodeUncached(word, out);
  std::vector<int32_t> ids(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
  std::lock_guard<std::mutex> lock(shard.mu);
  if (shard.map.size() >= kMaxEntriesPerShard) shard.map.clear();
  shard.map.emplace(std::string(word), std::move(ids));
}

void BpeModel::EncodeUncached(std::string_view word, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t id) {
    int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, true});
  };

  // Initial symbols: one per character (with prefix / suffix), unknown characters handled as
  // Hugging Face does: byte fallback, else the unk token (fused when asked), else dropped.
  bool pending_unk = false;
  std::string piece;
  size_t pos = 0;
  while (pos < word.size()) {
    size_t start = pos;
    NextCodePoint(word, pos);
    std::string_view ch = word.substr(start, pos - start);
    std::optional<int32_t> id;
    bool decorated = (start > 0 && !continuing_subword_prefix_.empty()) ||
                     (pos == word.size() && !end_of_word_suffix_.empty());
    if (decorated) {
      piece.clear();
      if (start > 0) piece.append(continuing_subword_prefix_);
      piece.append(ch);
      if (pos == word.size()) piece.append(end_of_word_suffix_);
      id = TokenToId(piece);
    } else if (pos - start <= 2) {
      size_t at = start;
      char32_t cp = NextCodePoint(word, at);
      if (char_ids_[cp] >= 0) id = char_ids_[cp];
    } else {
      id = TokenToId(ch);
    }
    if (id) {
      if (pending_unk) add(*unk_id_);
      pending_unk = false;
      add(*id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : ch) all = all && byte_fallback_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        if (pending_unk) add(*unk_id_);
        pending_unk = false;
        for (char c : ch) add(byte_fallback_ids_[static_cast<uint8_t>(c)]);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk && !fuse_unk_) add(*unk_id_);
      pending_unk = true;
    }
  }
  if (pending_unk) add(*unk_id_);
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto consider = [&](int32_t left) {
    int32_t right = symbols[left].next;
    if (right < 0) return;
    if (const FlatPairMap::Value* m = merges_.Find(PairKey(symbols[left].id, symbols[right].id))) {
      queue.push({m->rank, left, m->new_id});
    }
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);

  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    const FlatPairMap::Value* m = merges_.Find(PairKey(left.id, right.id));
    if (m == nullptr || m->new_id != top.new_id) continue;  // stale
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

}  // namespace strata::model::tok
