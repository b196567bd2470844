// Bounded fan-out for the per-pod CRI calls. Resolving a node's pods is
// dominated by round trips to the runtime (a verbose PodSandboxStatus and a
// ContainerStatus per pod, ~2 ms each with containerd), which the runtime
// serves concurrently; a few calls in flight on the one channel cut the wall
// time without flooding the runtime, which on a busy node serves the kubelet
// first.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace nq::cri {

// Calls fn(i) once for every i in [0, n), on at most `width` threads at a
// time (the caller's thread is one of them), and returns when all are done.
// fn must not throw; results go wherever fn puts them (one slot per i).
template <class F>
void bounded_parallel_for(size_t n, size_t width, F&& fn) {
  width = std::clamp<size_t>(width, 1, std::max<size_t>(n, 1));
  std::atomic<size_t> next{0};
  const auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) fn(i);
  };
  std::vector<std::jthread> helpers;
  helpers.reserve(width - 1);
  for (size_t k = 1; k < width; ++k) helpers.emplace_back(worker);
  worker();
  // ~jthread joins the helpers.
}

}  // namespace nq::cri
