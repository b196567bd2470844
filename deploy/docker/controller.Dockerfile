# nodequake-controller image: the controller daemon and nqctl (kubectl exec
# ... -- nqctl run -f /dev/stdin < experiment.yaml).
#
#   docker build -f deploy/docker/controller.Dockerfile -t nodequake/controller:0.1.0 .
FROM debian:12 AS build
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN /src/scripts/install-deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DNQ_BUILD_TESTS=OFF -DNQ_BUILD_BENCH=OFF -DNQ_WERROR=OFF \
 && cmake --build /build -j"$(nproc)" --target nodequake-controller nqctl \
 && install -D -m 0755 -t /out/usr/local/bin /build/bin/nodequake-controller /build/bin/nqctl \
 && strip --strip-debug /out/usr/local/bin/*

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libnl-3-200 libnl-route-3-200 libbpf1 libelf1 \
        libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libre2-9 libc-ares2 \
        libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1 \
        libyaml-cpp0.7 libspdlog1.10 libfmt9 libssl3 libcurl4 zlib1g ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /
# Non-root: the controller only talks gRPC/HTTP and writes its state dir (a
# volume). 65532 is the chart's runAsUser.
RUN groupadd -g 65532 nodequake && useradd -u 65532 -g 65532 -d /var/lib/nodequake-controller -M -s /usr/sbin/nologin nodequake \
 && install -d -o 65532 -g 65532 /var/lib/nodequake-controller /run/nodequake
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/nodequake-controller"]
