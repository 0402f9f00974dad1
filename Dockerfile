# letta-bridge container image (docs/operations.md, "Docker").
#
# The build context is only what .dockerignore lets in: the manifests, src/,
# assets/ and vendor/hyper. CI replays the builder stage from exactly that
# context (.ci/docker-build-check), as no Docker engine runs there.
#
# The image listens on 0.0.0.0:8284 (LETTA_BRIDGE_LISTEN below). On a
# non-loopback address the bridge refuses to start unless
# LETTA_BRIDGE_RUNTIME_TOKEN and LETTA_BRIDGE_CLIENT_TOKEN are set (and
# different); set LETTA_BRIDGE_ADMIN_TOKEN too if clients need privileged
# commands. Example:
#
#   docker build -t letta-bridge .
#   docker run --rm -p 127.0.0.1:8284:8284 \
#     -e LETTA_BRIDGE_RUNTIME_TOKEN=... -e LETTA_BRIDGE_CLIENT_TOKEN=... \
#     letta-bridge

# ---- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /build

# Dependency layer: every dependency built against placeholder sources, so
# that editing src/ or assets/ does not rebuild the dependency graph. Cargo
# reads the whole workspace first: the manifests, the lock file, the test
# kit's manifest (a workspace member and a dev-dependency: an empty library
# stands in for it, the release build does not compile it) and vendor/hyper
# (the patched hyper that Cargo.toml's [patch.crates-io] builds instead of
# the crates.io release).
COPY Cargo.toml Cargo.lock ./
COPY testkit/Cargo.toml ./testkit/
COPY vendor/hyper ./vendor/hyper
# Swagger UI's bundles the /docs/ page never loads, replaced (.cargo/config.toml, vendor/README.md).
COPY .cargo ./.cargo
COPY vendor/swagger-ui ./vendor/swagger-ui
RUN mkdir -p src testkit/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs testkit/src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# The real sources (assets/ holds the web console, compiled into the binary).
# COPY keeps the files' own timestamps, which may be older than the
# placeholder build: touch them so cargo rebuilds the crate.
COPY src ./src
COPY assets ./assets
RUN find src -name '*.rs' -exec touch {} + \
    && cargo build --release --locked \
    && ./target/release/letta-bridge --version

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim

# curl is only for the HEALTHCHECK below. ca-certificates: the one outgoing
# TLS connection, to Redis in cluster mode (a rediss:// LETTA_BRIDGE_CLUSTER_URL),
# verifies the server against the system's CA store. Serving TLS
# (LETTA_BRIDGE_TLS_CERT/KEY) needs none.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 letta-bridge \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin letta-bridge

COPY --from=builder /build/target/release/letta-bridge /usr/local/bin/letta-bridge

USER 10001:10001

# Listen on all interfaces inside the container: this makes the two tokens
# above mandatory. Every other setting keeps its default (see --help).
ENV LETTA_BRIDGE_LISTEN=0.0.0.0:8284
EXPOSE 8284

# /healthz needs no token. If you change the port in LETTA_BRIDGE_LISTEN or
# serve TLS, override this check too.
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8284/healthz"]

ENTRYPOINT ["/usr/local/bin/letta-bridge"]
