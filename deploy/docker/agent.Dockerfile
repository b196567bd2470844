# nodequake-agent image: the agent, its stressor and nqctl (for the node-local
# kill switch: kubectl exec ... -- nqctl agent revert-all).
#
#   docker build -f deploy/docker/agent.Dockerfile -t nodequake/agent:0.1.0 .
#
# Build stage: Debian 12 with the build dependencies of scripts/install-deps.sh
# (the same list the project builds with everywhere). Tests and benchmarks
# are not built.
FROM debian:12 AS build
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN /src/scripts/install-deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DNQ_BUILD_TESTS=OFF -DNQ_BUILD_BENCH=OFF -DNQ_WERROR=OFF \
 && cmake --build /build -j"$(nproc)" --target nodequake-agent nq-stressor nqctl \
 && install -D -m 0755 -t /out/usr/local/bin \
        /build/bin/nodequake-agent /build/bin/nq-stressor /build/bin/nqctl \
 && strip --strip-debug /out/usr/local/bin/*

# Runtime: only the shared libraries the three binaries link (ldd + dpkg -S
# on a Debian 12 build). No shell tools are needed: the agent uses netlink,
# libbpf and syscalls, never tc/ip/iptables.
FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libnl-3-200 libnl-route-3-200 libbpf1 libelf1 \
        libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libre2-9 libc-ares2 \
        libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1 \
        libyaml-cpp0.7 libspdlog1.10 libfmt9 libssl3 libcurl4 zlib1g ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /
# Root inside the container: what the agent may do is bounded by the
# capabilities the DaemonSet grants (charts/nodequake/values.yaml).
USER 0
ENTRYPOINT ["/usr/local/bin/nodequake-agent"]
