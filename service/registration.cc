#include "service/registration.h"

#include "common/clock.h"
#include "common/log.h"
#include "proto/status_convert.h"

namespace strata::service {

Registration::Registration(RpcNode* node, RegistrationOptions options,
                           std::function<v1::Load()> load)
    : node_(node), options_(std::move(options)), load_(std::move(load)) {
  paused_ = options_.paused;
  thread_ = std::thread([this] { Loop(); });
}

void Registration::Resume() {
  {
    std::lock_guard lock(mu_);
    paused_ = false;
  }
  cv_.notify_all();
}

Registration::~Registration() { Stop(); }

void Registration::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Registration::Sleep(int64_t ms) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stop_; });
}

bool Registration::WaitRegistered(Deadline deadline) {
  std::unique_lock lock(mu_);
  return cv_.wait_until(lock, deadline, [this] { return registered() || stop_; }) && registered();
}

void Registration::Loop() {
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return stop_ || !paused_; });
    if (stop_) return;
  }
  const std::string& id = options_.instance.instance_id();
  const Stopwatch since_start;  // for options_.quiet_start_ms
  bool ever_registered = false;
  bool said_waiting = false;
  bool warned = false;
  // `unreachable`: no connection (the router may not be up yet); else the router answered no
  // (a wrong model, say), which is worth a warning at once.
  auto report = [&](bool unreachable, std::string_view what, std::string_view why) {
    if (warned) return;
    if (unreachable && !ever_registered && since_start.ElapsedMillis() < options_.quiet_start_ms) {
      if (!said_waiting) {
        log::Info("waiting for the router at {} ({}: {})", options_.router_address, what, why);
        said_waiting = true;
      }
      return;
    }
    log::Warn("{} at {}: {} (retrying)", what, options_.router_address, why);
    warned = true;
  };
  while (true) {
    router_peer_.store(transport::kInvalidPeer);
    // Register.
    auto peer = node_->Connect(options_.router_address,
                               transport::DeadlineAfterMillis(options_.call_timeout_ms));
    uint64_t interval_ms = 500;
    if (peer.ok()) {
      Envelope request;
      *request.mutable_register_instance() = options_.instance;
      *request.mutable_register_instance()->mutable_load() = load_();
      auto reply = node_->CallAndWait(*peer, std::move(request),
                                      transport::DeadlineAfterMillis(options_.call_timeout_ms));
      Status st = reply.ok() ? proto::FromProto(reply->register_reply().error()) : reply.status();
      if (st.ok()) {
        interval_ms = std::max<uint64_t>(50, reply->register_reply().heartbeat_interval_ms());
        {
          std::lock_guard lock(mu_);
          router_peer_.store(*peer);
        }
        cv_.notify_all();
        log::Info("registered with the router at {} as {}", options_.router_address, id);
        ever_registered = true;
        warned = false;
      } else {
        report(!reply.ok(), "cannot register with the router", st.message());
      }
    } else {
      report(true, "cannot reach the router", peer.status().message());
    }
    if (!registered()) {
      if (!Sleep(options_.retry_ms)) return;
      continue;
    }
    // Heartbeat until something goes wrong.
    uint64_t sequence = 0;
    while (Sleep(static_cast<int64_t>(interval_ms))) {
      Envelope hb;
      hb.mutable_heartbeat()->set_instance_id(id);
      hb.mutable_heartbeat()->set_sequence(++sequence);
      *hb.mutable_heartbeat()->mutable_load() = load_();
      auto reply = node_->CallAndWait(router_peer_.load(), std::move(hb),
                                      transport::DeadlineAfterMillis(options_.call_timeout_ms));
      if (!reply.ok()) {
        log::Warn("heartbeat to the router failed: {}; registering again",
                  reply.status().message());
        break;
      }
      if (reply->heartbeat_reply().reregister()) {
        log::Info("the router does not know {} any more; registering again", id);
        break;
      }
    }
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
  }
}

}  // namespace strata::service
