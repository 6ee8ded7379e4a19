#include "decode/wire.h"

#include "decode/instance_config.h"

namespace strata::decode {

v1::SamplingParams ToProto(const SamplingParams& p) {
  v1::SamplingParams o;
  o.set_temperature(p.temperature);
  o.set_top_p(p.top_p);
  o.set_top_k(p.top_k < 0 ? 0 : p.top_k);
  o.set_min_p(p.min_p);
  o.set_presence_penalty(p.presence_penalty);
  o.set_frequency_penalty(p.frequency_penalty);
  o.set_repetition_penalty(p.repetition_penalty);
  if (p.seed) o.set_seed(*p.seed);
  o.set_max_tokens(static_cast<uint32_t>(std::max(0, p.max_tokens)));
  for (int32_t id : p.stop_token_ids) o.add_stop_token_ids(id);
  o.set_ignore_eos(p.ignore_eos);
  o.set_logprobs(p.num_top_logprobs >= 0);
  o.set_num_top_logprobs(static_cast<uint32_t>(std::max(0, p.num_top_logprobs)));
  if (p.num_prompt_logprobs >= 0) {
    o.set_num_prompt_logprobs(static_cast<uint32_t>(p.num_prompt_logprobs));
  }
  return o;
}

SamplingParams FromProto(const v1::SamplingParams& p) {
  SamplingParams o;
  o.temperature = p.temperature();
  o.top_p = p.top_p() == 0.0f ? 1.0f : p.top_p();
  o.top_k = p.top_k() == 0 ? -1 : p.top_k();
  o.min_p = p.min_p();
  o.presence_penalty = p.presence_penalty();
  o.frequency_penalty = p.frequency_penalty();
  o.repetition_penalty = p.repetition_penalty() == 0.0f ? 1.0f : p.repetition_penalty();
  if (p.has_seed()) o.seed = p.seed();
  o.max_tokens = static_cast<int>(std::min<uint32_t>(p.max_tokens(), 1u << 30));
  o.stop_token_ids.assign(p.stop_token_ids().begin(), p.stop_token_ids().end());
  o.ignore_eos = p.ignore_eos();
  o.num_top_logprobs =
      p.logprobs() ? static_cast<int>(std::min<uint32_t>(p.num_top_logprobs(), 1024)) : -1;
  o.num_prompt_logprobs =
      p.has_num_prompt_logprobs()
          ? static_cast<int>(std::min<uint32_t>(p.num_prompt_logprobs(), 1u << 30))
          : -1;
  return o;
}

v1::FinishReason ToProto(FinishReason r) {
  switch (r) {
    case FinishReason::kNone:
      return v1::FINISH_REASON_UNSPECIFIED;
    case FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kAbort:
      return v1::FINISH_REASON_ABORT;
    case FinishReason::kError:
      return v1::FINISH_REASON_ERROR;
  }
  return v1::FINISH_REASON_ERROR;
}

FinishReason FromProto(v1::FinishReason r) {
  switch (r) {
    case v1::FINISH_REASON_UNSPECIFIED:
      return FinishReason::kNone;
    case v1::FINISH_REASON_STOP:
      return FinishReason::kStop;
    case v1::FINISH_REASON_LENGTH:
      return FinishReason::kLength;
    case v1::FINISH_REASON_ABORT:
      return FinishReason::kAbort;
    default:
      return FinishReason::kError;
  }
}

void AppendToken(const GeneratedToken& t, v1::RequestTokens* out) {
  out->add_token_ids(t.token_id);
  out->add_logprobs(t.logprob);
  auto* top = out->add_top_logprobs();
  for (const auto& e : t.top_logprobs) {
    auto* x = top->add_top();
    x->set_token_id(e.token_id);
    x->set_logprob(e.logprob);
  }
}

GeneratedToken TokenAt(const v1::RequestTokens& in, int i) {
  GeneratedToken t;
  t.token_id = in.token_ids(i);
  if (i < in.logprobs_size()) t.logprob = in.logprobs(i);
  if (i < in.top_logprobs_size()) {
    for (const auto& e : in.top_logprobs(i).top())
      t.top_logprobs.push_back({e.token_id(), e.logprob()});
  }
  return t;
}

v1::RegisterInstance DescribeInstance(const InstanceConfig& config, v1::Role role,
                                      const std::string& address, int32_t num_kv_blocks,
                                      int block_size) {
  v1::RegisterInstance inst;
  inst.set_instance_id(config.instance_id);
  inst.set_role(role);
  inst.set_address(address);
  inst.set_model(config.model_name);
  auto* cap = inst.mutable_capacity();
  cap->set_num_kv_blocks(static_cast<uint64_t>(num_kv_blocks));
  cap->set_block_size_tokens(static_cast<uint32_t>(block_size));
  cap->set_max_running_requests(static_cast<uint32_t>(config.scheduler.max_num_seqs));
  cap->set_max_batch_tokens(static_cast<uint32_t>(config.scheduler.max_num_batched_tokens));
  cap->set_max_context_tokens(static_cast<uint32_t>(config.scheduler.max_model_len));
  return inst;
}

}  // namespace strata::decode
