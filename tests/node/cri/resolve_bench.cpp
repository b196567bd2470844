// nq-bench-cri-resolve: what resolving targets through a real containerd
// costs. Starts the tests' containerd (tests/support/containerd/), runs N
// pods (default 30), then times a selector resolution (ListPodSandbox +
// PodSandboxStatus/ListContainers/ContainerStatus per pod + /proc/PID/cgroup,
// then the selector and safety rules) -- sequentially and with pods resolved
// in parallel (--parallel 1 8) -- and a single-pod get_pod, printing p50/p99.
// Root only; everything it starts is torn down at exit.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <vector>

#include "agent/runtime/cri/cri_runtime.h"
#include "agent/runtime/selector.h"
#include "tests/support/containerd/containerd_env.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void print(const char* what, const std::vector<double>& v) {
  std::printf("%-34s n=%-4zu p50 %8.2f ms   p99 %8.2f ms   max %8.2f ms\n", what, v.size(),
              percentile(v, 50), percentile(v, 99), *std::max_element(v.begin(), v.end()));
}

}  // namespace

int main(int argc, char** argv) {
  int pods = 30;
  int rounds = 100;
  std::vector<size_t> parallel = {1, 8};
  CLI::App app{"nq-bench-cri-resolve: selector resolution through a real containerd"};
  app.add_option("--pods", pods, "Pods to run")->capture_default_str();
  app.add_option("--rounds", rounds, "Timed resolutions")->capture_default_str();
  app.add_option("--parallel", parallel,
                 "Pods resolved at once (CriRuntime::Options::parallel_pods); each value is "
                 "measured on the same pods, interleaved round by round")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (parallel.empty() || rounds < 1 || pods < 2) {
    std::cerr << "--parallel needs a value, --rounds at least 1, --pods at least 2\n";
    return 2;
  }
  if (::geteuid() != 0) {
    std::cerr << "needs root (containerd, runc, CNI)\n";
    return 2;
  }

  nq::testing::ContainerdOptions opts;
  opts.pause = NQ_PAUSE_PATH;
  auto env = nq::testing::ContainerdEnv::start(opts);
  if (!env.ok()) {
    std::cerr << "containerd: " << env.error().message() << "\n";
    return 1;
  }
  std::vector<double> create;
  for (int i = 0; i < pods; ++i) {
    nq::testing::PodSpec spec;
    spec.namespace_name = i % 2 ? "shop" : "bench";
    spec.name = "pod-" + std::to_string(i);
    spec.labels = {{"app", "app-" + std::to_string(i % 3)}, {"chaos-ready", "true"}};
    const auto t0 = Clock::now();
    auto pod = (*env)->run_pod(spec);
    if (!pod.ok()) {
      std::cerr << pod.error().message() << "\n";
      return 1;
    }
    create.push_back(ms_since(t0));
  }

  // One runtime per fan-out width, measured round by round in turn so that
  // load from other work on the machine falls on each alike.
  std::vector<std::unique_ptr<nq::cri::CriRuntime>> runtimes;
  for (size_t width : parallel) {
    nq::cri::CriRuntime::Options ropts;
    ropts.socket = (*env)->socket().string();
    ropts.parallel_pods = width;
    auto rt = nq::cri::CriRuntime::connect(ropts);
    if (!rt.ok()) {
      std::cerr << rt.error().message() << "\n";
      return 1;
    }
    runtimes.push_back(std::move(*rt));
  }
  nq::runtime::Selector sel;
  sel.namespaces = {"bench"};
  sel.match_labels = {{"app", "app-0"}};
  std::vector<std::vector<double>> resolve(runtimes.size());
  std::vector<double> get;
  size_t matched = 0;
  for (int r = 0; r < rounds; ++r) {
    for (size_t k = 0; k < runtimes.size(); ++k) {
      const auto t0 = Clock::now();
      auto all = runtimes[k]->list_pods();
      if (!all.ok() || all->size() != static_cast<size_t>(pods)) {
        std::cerr << "list_pods: "
                  << (all.ok() ? std::to_string(all->size()) + " pods" : all.error().message())
                  << "\n";
        return 1;
      }
      matched = 0;
      for (const auto& p : *all)
        if (sel.matches(p) && nq::runtime::check_eligible(p, {}).ok()) ++matched;
      resolve[k].push_back(ms_since(t0));
    }

    const auto t0 = Clock::now();
    auto one = runtimes.back()->get_pod("shop", "pod-" + std::to_string(2 * (r % (pods / 2)) + 1));
    if (!one.ok()) {
      std::cerr << "get_pod: " << one.error().message() << "\n";
      return 1;
    }
    get.push_back(ms_since(t0));
  }
  std::printf("containerd %s, %d pods (1 container each), %zu match the selector\n",
              runtimes.front()->version().c_str(), pods, matched);
  print("RunPodSandbox+Create+Start (pod)", create);
  for (size_t k = 0; k < runtimes.size(); ++k) {
    const std::string what = "resolve selector, " + std::to_string(parallel[k]) + " at once";
    print(what.c_str(), resolve[k]);
  }
  print("get_pod (one pod)", get);
  return 0;
}
