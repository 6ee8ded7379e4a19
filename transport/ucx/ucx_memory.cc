#include "transport/ucx/ucx_memory.h"

#include <ucs/debug/log_def.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "common/log.h"
#include "transport/ucx/ucx_transport.h"

namespace strata::transport::ucx {

void RegionTable::Add(uint64_t base, uint64_t length) {
  std::lock_guard<std::mutex> lock(mu_);
  regions_.emplace_back(base, length);
}

void RegionTable::Remove(uint64_t base, uint64_t length) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find(regions_.begin(), regions_.end(), std::make_pair(base, length));
  if (it != regions_.end()) regions_.erase(it);
}

bool RegionTable::Contains(uint64_t address, uint64_t length) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [base, size] : regions_) {
    if (address >= base && length <= size && address - base <= size - length) return true;
  }
  return false;
}

namespace {

// UCX 1.13 aborts the process (ucs_fatal_error) when a CMA copy hits a peer that has died, and
// our shared-memory data endpoints run without UCX error handling (see ucx_transport_impl.h).
// So CMA is left out unless asked for by name: "sm"/"shm" become posix and sysv shared memory,
// and the default ("all") becomes "all but cma". Peer death then fails transfers cleanly.
// The non-empty items of a comma-separated UCX_TLS list.
std::vector<std::string> TlsItems(const std::string& tls) {
  std::vector<std::string> items;
  for (size_t begin = 0; begin <= tls.size();) {
    size_t end = tls.find(',', begin);
    if (end == std::string::npos) end = tls.size();
    if (end > begin) items.push_back(tls.substr(begin, end - begin));
    begin = end + 1;
  }
  return items;
}

std::string WithoutCma(std::string tls) {
  if (tls.empty()) {
    const char* env = std::getenv("UCX_TLS");
    tls = env ? env : "all";
  }
  if (tls == "all") return "^cma";
  if (tls[0] == '^') return tls.find("cma") == std::string::npos ? tls + ",cma" : tls;
  std::string out;
  for (std::string item : TlsItems(tls)) {
    if (item == "sm" || item == "shm") item = "posix,sysv,self";
    out += (out.empty() ? "" : ",") + item;
  }
  return out;
}

// UCX prints its errors and warnings on stdout, where a command's `--json` output goes (e.g.
// "transport 'cma' is not available" on machines without it): they go to Strata's log on
// stderr instead. Fatal messages and debug output (asked for with UCX_LOG_LEVEL) stay UCX's.
ucs_log_func_rc_t ToStrataLog(const char* file, unsigned line, const char* function,
                              ucs_log_level_t level, const ucs_log_component_config_t* component,
                              const char* format, va_list ap) {
  (void)function;
  (void)component;
  if (level == UCS_LOG_LEVEL_FATAL || level > UCS_LOG_LEVEL_INFO) return UCS_LOG_FUNC_RC_CONTINUE;
  char message[1024];
  std::vsnprintf(message, sizeof(message), format, ap);
  if (level == UCS_LOG_LEVEL_ERROR) {
    log::Error("UCX: {} ({}:{})", message, file, line);
  } else if (level == UCS_LOG_LEVEL_WARN) {
    log::Warn("UCX: {} ({}:{})", message, file, line);
  } else {
    log::Info("UCX: {}", message);
  }
  return UCS_LOG_FUNC_RC_STOP;
}

// UCX's tcp transport moves data in segments of 8 KiB (TX) and 64 KiB (RX) by default, so a KV
// transfer of a few MiB costs a system call and a protocol step every 8 KiB. With 512 KiB
// segments KV-pool reads and writes over tcp ran 1.3-1.5x faster at 1-4 MiB (bench/kvpool:
// Get 1 MiB ~1.5 -> 2.2 GB/s, 4 MiB ~3.0 -> 3.8 GB/s on this project's VM), for up to a few MiB
// of buffers per worker. UCT reads these when a worker opens its interfaces, from the
// environment: they are set there unless the user set either (RX must stay >= TX).
void UseLargeTcpSegments() {
  if (std::getenv("UCX_TCP_RX_SEG_SIZE") != nullptr ||
      std::getenv("UCX_TCP_TX_SEG_SIZE") != nullptr) {
    return;
  }
  setenv("UCX_TCP_RX_SEG_SIZE", "512k", 0);
  setenv("UCX_TCP_TX_SEG_SIZE", "512k", 0);
}

// A listener's port must be free again as soon as its process is gone: a restarted router or
// pool listens on the address its peers know, and the connections its predecessor closed leave
// that port in TIME_WAIT for a minute (without SO_REUSEADDR, `serve --disaggregated` saw its
// killed server role fail to bind five times and gave up the cluster). Set unless the user did.
void ReuseListenerAddresses() { setenv("UCX_TCP_CM_REUSEADDR", "y", 0); }

// True when `tls` (a list as UCX_TLS takes it, after WithoutCma) names only transports within
// one host: processes then never connect, since connections start from a socket address through
// UCX's connection manager (tcp, or rdmacm with rc/ud/dc), and every peer stays unreachable.
bool OnlyHostLocal(const std::string& tls) {
  if (tls.empty() || tls[0] == '^' || tls == "all") return false;
  static const std::string kLocal[] = {"posix", "sysv", "xpmem", "cma", "knem", "self"};
  const std::vector<std::string> items = TlsItems(tls);
  return std::all_of(items.begin(), items.end(), [](const std::string& item) {
    return std::find(std::begin(kLocal), std::end(kLocal), item) != std::end(kLocal);
  });
}

}  // namespace

StatusOr<std::shared_ptr<UcxContext>> UcxContext::Create(const std::string& requested_tls) {
  static std::once_flag once;
  std::call_once(once, [] {
    ucs_log_push_handler(ToStrataLog);
    UseLargeTcpSegments();
    ReuseListenerAddresses();
  });
  STRATA_RETURN_IF_ERROR(CheckUcxTransports(requested_tls));
  const std::string tls = WithoutCma(requested_tls);
  ucp_config_t* config = nullptr;
  ucs_status_t status = ucp_config_read(nullptr, nullptr, &config);
  if (status != UCS_OK) {
    return UnavailableError(std::string("ucp_config_read: ") + ucs_status_string(status));
  }
  if (!tls.empty()) {
    status = ucp_config_modify(config, "TLS", tls.c_str());
    if (status != UCS_OK) {
      ucp_config_release(config);
      return InvalidArgumentError("UCX TLS '" + tls + "': " + ucs_status_string(status));
    }
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = UCP_FEATURE_AM | UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
  params.mt_workers_shared = 1;
  std::shared_ptr<UcxContext> context(new UcxContext());
  status = ucp_init(&params, config, &context->context_);
  ucp_config_release(config);
  if (status != UCS_OK) {
    context->context_ = nullptr;
    return UnavailableError(std::string("ucp_init: ") + ucs_status_string(status));
  }
  return context;
}

UcxContext::~UcxContext() {
  if (context_ != nullptr) ucp_cleanup(context_);
}

namespace {

class UcxRegion : public Region {
 public:
  UcxRegion(std::shared_ptr<UcxContext> context, ucp_mem_h memh, void* data, uint64_t size,
            RemoteRegion remote)
      : context_(std::move(context)),
        memh_(memh),
        data_(data),
        size_(size),
        remote_(std::move(remote)) {
    context_->regions().Add(reinterpret_cast<uint64_t>(data_), size_);
  }
  ~UcxRegion() override {
    context_->regions().Remove(reinterpret_cast<uint64_t>(data_), size_);
    ucp_mem_unmap(context_->get(), memh_);
  }
  void* data() const override { return data_; }
  uint64_t size() const override { return size_; }
  const RemoteRegion& remote() const override { return remote_; }

 private:
  std::shared_ptr<UcxContext> context_;
  ucp_mem_h memh_;
  void* data_;
  uint64_t size_;
  RemoteRegion remote_;
};

}  // namespace

namespace {

StatusOr<std::unique_ptr<Region>> MapMemory(std::shared_ptr<UcxContext> context, void* data,
                                            uint64_t bytes, bool allocate) {
  ucp_mem_map_params_t params{};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
  params.address = data;
  params.length = bytes;
  if (allocate) {
    params.field_mask |= UCP_MEM_MAP_PARAM_FIELD_FLAGS;
    params.flags = UCP_MEM_MAP_ALLOCATE;
  }
  ucp_mem_h memh = nullptr;
  ucs_status_t status = ucp_mem_map(context->get(), &params, &memh);
  if (status != UCS_OK) {
    return ResourceExhaustedError(std::string("ucp_mem_map of ") + std::to_string(bytes) +
                                  " bytes: " + ucs_status_string(status));
  }
  if (allocate) {
    ucp_mem_attr_t attr{};
    attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
    status = ucp_mem_query(memh, &attr);
    if (status != UCS_OK || attr.address == nullptr || attr.length < bytes) {
      ucp_mem_unmap(context->get(), memh);
      return InternalError("ucp_mem_query of allocated memory failed");
    }
    data = attr.address;
  }
  void* key_buffer = nullptr;
  size_t key_size = 0;
  status = ucp_rkey_pack(context->get(), memh, &key_buffer, &key_size);
  if (status != UCS_OK) {
    ucp_mem_unmap(context->get(), memh);
    return InternalError(std::string("ucp_rkey_pack: ") + ucs_status_string(status));
  }
  RemoteRegion remote{reinterpret_cast<uint64_t>(data), bytes,
                      std::string(static_cast<const char*>(key_buffer), key_size)};
  ucp_rkey_buffer_release(key_buffer);
  return std::unique_ptr<Region>(
      std::make_unique<UcxRegion>(std::move(context), memh, data, bytes, std::move(remote)));
}

}  // namespace

StatusOr<std::unique_ptr<Region>> RegisterUcxMemory(std::shared_ptr<UcxContext> context, void* data,
                                                    uint64_t bytes) {
  if (data == nullptr || bytes == 0) return InvalidArgumentError("cannot register empty memory");
  return MapMemory(std::move(context), data, bytes, /*allocate=*/false);
}

StatusOr<std::unique_ptr<Region>> AllocateUcxMemory(std::shared_ptr<UcxContext> context,
                                                    uint64_t bytes) {
  if (bytes == 0) return InvalidArgumentError("cannot allocate 0 bytes");
  return MapMemory(std::move(context), nullptr, bytes, /*allocate=*/true);
}

}  // namespace strata::transport::ucx

namespace strata::transport {

Status CheckUcxTransports(const std::string& tls) {
  if (!ucx::OnlyHostLocal(ucx::WithoutCma(tls))) return OkStatus();
  const char* env = std::getenv("UCX_TLS");
  return InvalidArgumentError(
      "UCX transports '" + (tls.empty() && env != nullptr ? std::string(env) : tls) +
      "' are all within one host: Strata's processes connect through a network transport "
      "(UCX's connection manager: tcp, or rdmacm), so none would reach another; add tcp "
      "(e.g. 'sm,tcp': same-host peers still move data over shared memory)");
}

}  // namespace strata::transport
