#include "agent/delay/delayline_bpf.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "agent/bpf/verifier_log.h"
#include "common/fd.h"
#include "delayline.skel.h"

namespace nq::delay {

// The ABI header is shared with clang -target bpf: pin the layout.
static_assert(sizeof(nq_dl_dir) == 40 && offsetof(nq_dl_dir, tap_ifindex) == 8 &&
              offsetof(nq_dl_dir, corrupt_corr) == 36);
static_assert(sizeof(nq_dl_state) == 88 && offsetof(nq_dl_state, veth_ifindex) == 80);
static_assert(sizeof(nq_dl_stats) == 56);
static_assert(NQ_DL_DIRS == 2 && NQ_IDX_EGRESS == 0 && NQ_IDX_INGRESS == 1);

namespace {

// Debian's UAPI headers are 6.1's, which predate TCX (6.6 numbers them so);
// libbpf 1.1's bpf_link_create() passes the attach type through.
constexpr int kBpfTcxIngress = 46;
constexpr int kBpfTcxEgress = 47;

constexpr size_t kVerifierLogSize = 4u << 20;

struct SkelDeleter {
  void operator()(delayline* skel) const noexcept { delayline__destroy(skel); }
};
using SkelPtr = std::unique_ptr<delayline, SkelDeleter>;

template <class Key>
Key lpm_key(const net::Prefix& p) {
  Key k{};
  k.prefixlen = p.len;
  std::memcpy(k.addr, p.addr.data(), sizeof(k.addr));
  return k;
}

size_t index(Direction d) {
  return static_cast<size_t>(d);
}

}  // namespace

struct DelaylineProgram::Impl {
  SkelPtr skel;
  // Declared after the skeleton: destroyed first, so links close before
  // the programs they hold. By direction.
  std::array<UniqueFd, NQ_DL_DIRS> tap_links;
  std::array<UniqueFd, NQ_DL_DIRS> veth_links;
};

DelaylineProgram::DelaylineProgram(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DelaylineProgram::DelaylineProgram(DelaylineProgram&&) noexcept = default;
DelaylineProgram& DelaylineProgram::operator=(DelaylineProgram&&) noexcept = default;
DelaylineProgram::~DelaylineProgram() {
  if (impl_) detach();
}

Result<DelaylineProgram> DelaylineProgram::load(const Options& options) {
  if (options.l2_header_len > 64)
    return Error::invalid_argument("l2_header_len", std::to_string(options.l2_header_len) +
                                                        " bytes is not a link-layer header");
  if (options.stale_after <= std::chrono::nanoseconds(0))
    return Error::invalid_argument("stale_after", "must be positive");
  bpf::VerifierLog log(kVerifierLogSize);
  bpf_object_open_opts opts{};
  opts.sz = sizeof(opts);
  log.attach(opts);
  auto impl = std::make_unique<Impl>();
  impl->skel.reset(delayline__open_opts(&opts));
  if (!impl->skel) return Error::from_errno(errno, "open delayline BPF object");
  impl->skel->rodata->l2_hdr_len = options.l2_header_len;
  impl->skel->rodata->stale_ns = static_cast<__u64>(options.stale_after.count());
  if (int rc = delayline__load(impl->skel.get()); rc != 0)
    return log.annotate(Error::from_errno(-rc, "load delayline BPF object"));
  // The heartbeat is a plain store only while libbpf has .bss mmapped
  // (kernels with BPF_F_MMAPABLE arrays, 5.5+).
  if (!impl->skel->bss)
    return Error::failed_precondition("delayline: the kernel cannot mmap BPF global data");
  return DelaylineProgram(std::move(impl));
}

Status DelaylineProgram::set_rules(const net::CompiledRules& rules) {
  if (attached()) return Error::failed_precondition("delayline rules are set before attach");
  const auto update = [](bpf_map* m, const void* key, const void* value,
                         const std::string& what) -> Status {
    if (bpf_map_update_elem(bpf_map__fd(m), key, value, BPF_ANY) != 0)
      return Error::from_errno(errno, what);
    return ok();
  };
  auto& maps = impl_->skel->maps;
  bpf_map* tries[net::kNumTries] = {maps.nq_remote4, maps.nq_remote6, maps.nq_local4,
                                    maps.nq_local6};
  for (size_t t = 0; t < net::kNumTries; ++t) {
    const bool v4 = t == static_cast<size_t>(net::Trie::kRemote4) ||
                    t == static_cast<size_t>(net::Trie::kLocal4);
    for (const auto& [prefix, mask] : rules.tries[t]) {
      const auto k4 = lpm_key<nq_lpm4_key>(prefix);
      const auto k6 = lpm_key<nq_lpm6_key>(prefix);
      NQ_TRY(update(tries[t], v4 ? static_cast<const void*>(&k4) : &k6, &mask,
                    "write delayline LPM entry"));
    }
  }
  for (uint32_t slot = 0; slot < net::kMaxRules; ++slot) {
    if (!rules.rules[slot]) continue;
    NQ_TRY(update(maps.nq_rules, &slot, &*rules.rules[slot],
                  "write delayline rule slot " + std::to_string(slot)));
  }
  const uint32_t zero = 0;
  return update(maps.nq_config, &zero, &rules.config, "write delayline config");
}

void DelaylineProgram::configure(Direction d, const DirectionConfig& config) {
  nq_dl_dir& dir = impl_->skel->bss->dl_state.dir[index(d)];
  dir.loss = config.loss;
  dir.loss_corr = config.loss_correlation;
  dir.duplicate = config.duplicate;
  dir.duplicate_corr = config.duplicate_correlation;
  dir.corrupt = config.corrupt;
  dir.corrupt_corr = config.corrupt_correlation;
  dir.redirect = config.redirect ? 1 : 0;
}

void DelaylineProgram::beat(Direction d, uint64_t monotonic_ns) noexcept {
  // One aligned 64-bit store: the program never sees half a timestamp.
  std::atomic_ref<__u64>(impl_->skel->bss->dl_state.dir[index(d)].heartbeat_ns)
      .store(monotonic_ns, std::memory_order_relaxed);
}

Status DelaylineProgram::attach(int veth_ifindex, int egress_tap_ifindex, int ingress_tap_ifindex) {
  if (attached()) return Error::failed_precondition("delayline program is already attached");
  if (veth_ifindex <= 0 || (egress_tap_ifindex <= 0 && ingress_tap_ifindex <= 0))
    return Error::invalid_argument("ifindex", "the interface and a TAP need ifindexes");
  auto& st = impl_->skel->bss->dl_state;
  st.veth_ifindex = static_cast<__u32>(veth_ifindex);
  const auto link = [](bpf_program* prog, int ifindex, int type,
                       const char* what) -> Result<UniqueFd> {
    const int fd = bpf_link_create(bpf_program__fd(prog), ifindex,
                                   static_cast<bpf_attach_type>(type), nullptr);
    if (fd < 0) {
      const int err = errno;
      // A kernel without TCX (< 6.6) rejects the attach type.
      if (err == EINVAL)
        return Error::failed_precondition(std::string("delayline needs TCX links (kernel 6.6+): ") +
                                          what + " link on ifindex " + std::to_string(ifindex) +
                                          " was refused with EINVAL");
      return Error::from_errno(
          err, std::string("TCX ") + what + " link on ifindex " + std::to_string(ifindex));
    }
    return UniqueFd(fd);
  };
  const int taps[NQ_DL_DIRS] = {egress_tap_ifindex, ingress_tap_ifindex};
  bpf_program* const hooks[NQ_DL_DIRS] = {impl_->skel->progs.dl_egress,
                                          impl_->skel->progs.dl_ingress};
  const int hook_types[NQ_DL_DIRS] = {kBpfTcxEgress, kBpfTcxIngress};
  const char* const hook_names[NQ_DL_DIRS] = {"egress", "ingress"};
  const auto attach_all = [&]() -> Status {
    for (size_t d = 0; d < NQ_DL_DIRS; ++d) {
      if (taps[d] <= 0) continue;
      NQ_ASSIGN_OR_RETURN(impl_->tap_links[d], link(impl_->skel->progs.dl_tap_ingress, taps[d],
                                                    kBpfTcxIngress, "TAP ingress"));
      // The TAP ifindex turns the direction on: set before its hook's link
      // exists (and after the TAP's, so the way back is there first).
      st.dir[d].tap_ifindex = static_cast<__u32>(taps[d]);
    }
    for (size_t d = 0; d < NQ_DL_DIRS; ++d) {
      if (taps[d] <= 0) continue;
      NQ_ASSIGN_OR_RETURN(impl_->veth_links[d],
                          link(hooks[d], veth_ifindex, hook_types[d], hook_names[d]));
    }
    return ok();
  };
  if (Status s = attach_all(); !s.ok()) {
    detach();
    return s;
  }
  return ok();
}

void DelaylineProgram::detach_interface() noexcept {
  for (UniqueFd& l : impl_->veth_links) l.reset();
}

void DelaylineProgram::detach() noexcept {
  detach_interface();
  for (UniqueFd& l : impl_->tap_links) l.reset();
}

bool DelaylineProgram::attached() const noexcept {
  for (size_t d = 0; d < NQ_DL_DIRS; ++d)
    if (impl_->veth_links[d].valid() || impl_->tap_links[d].valid()) return true;
  return false;
}

Result<nq_dl_stats> DelaylineProgram::stats(Direction d) const {
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return Error::from_errno(-ncpus, "count possible CPUs");
  std::vector<nq_dl_stats> per_cpu(static_cast<size_t>(ncpus));
  const uint32_t key = static_cast<uint32_t>(index(d));
  if (bpf_map_lookup_elem(bpf_map__fd(impl_->skel->maps.dl_stats), &key, per_cpu.data()) != 0)
    return Error::from_errno(errno, "read delayline counters");
  nq_dl_stats sum{};
  for (const nq_dl_stats& s : per_cpu) {
    sum.matched += s.matched;
    sum.redirected += s.redirected;
    sum.lost += s.lost;
    sum.bypassed += s.bypassed;
    sum.returned += s.returned;
    sum.duplicated += s.duplicated;
    sum.corrupted += s.corrupted;
  }
  return sum;
}

}  // namespace nq::delay
