# hyperswap in a container: `docker build -t hyperswap .`, then
# `docker run --rm -e DATABASE_URL=... -v "$PWD/plans:/plans" hyperswap plan apply /plans/x.yaml`.
# The build needs crates.io (or your mirror, configured for cargo in the build stage).
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY sql sql
COPY examples examples
COPY workload workload
RUN cargo build --release --locked --bin hyperswap

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/hyperswap /usr/local/bin/hyperswap
USER nobody
ENTRYPOINT ["/usr/local/bin/hyperswap"]
