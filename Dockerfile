# syntax=docker/dockerfile:1
#
# gatehouse edge container (SPEC §6): built in a builder stage, run from a small runtime
# image as a fixed non-root user; config at /etc/gatehouse/gateway.toml, data volume /data.
#
#   docker build -t gatehouse .
#   docker run -d -p 8080:8080 -p 127.0.0.1:9091:9091 -e GATEHOUSE_SECRET=... \
#     -v gatehouse-data:/data gatehouse
#
# Replace the shipped config by mounting your own over /etc/gatehouse/gateway.toml.

ARG RUST_VERSION=1

# ---- builder -------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
# The whole context minus .dockerignore: Cargo.toml names targets (benches) that must exist.
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is copied out
# of the cached target dir in the same step. --locked: exactly the tested dependency set.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin gatehouse --example echo \
 && install -D -m 0755 target/release/gatehouse /out/gatehouse \
 && install -D -m 0755 target/release/examples/echo /out/gatehouse-echo \
 && install -d -m 0700 /out/data

# ---- runtime -------------------------------------------------------------------------
# distroless cc: glibc + libgcc and nothing else (no shell, no package manager); the same
# Debian 12 glibc the builder linked against.
FROM gcr.io/distroless/cc-debian12 AS runtime
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    GATEHOUSE_CONFIG=/etc/gatehouse/gateway.toml
COPY --from=builder /out/gatehouse /usr/local/bin/gatehouse
# The demo upstream (examples/echo.rs) for deploy/compose/single.yaml; a few MB, never run
# unless a container's entrypoint names it.
COPY --from=builder /out/gatehouse-echo /usr/local/bin/gatehouse-echo
# Config and binary stay root-owned and read-only to the gateway's user.
COPY --chmod=0444 deploy/gateway.container.toml /etc/gatehouse/gateway.toml
# The store directory: owned by the gateway's uid, mode 0700 (a named volume copies both).
COPY --from=builder --chown=10001:10001 /out/data /data
USER 10001:10001
VOLUME ["/data"]
# 8080: the gateway; 9091: /healthz, /readyz, /metrics (publish it privately, if at all).
EXPOSE 8080 9091
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["gatehouse", "healthcheck"]
ENTRYPOINT ["gatehouse"]
CMD ["serve"]
