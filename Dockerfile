# The redline image: the one `redline` binary on Debian slim, run as a non-root user.
#
#   docker build -t redline .            # or: docker compose build
#   docker run --rm redline producer --help
#
# Stage 1 builds with the official Rust image (rust-version 1.88 or later, as Cargo.toml
# asks); --locked builds exactly the committed Cargo.lock. Stage 2 keeps only the binary.
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p redline \
    && install -D -m 0755 target/release/redline /out/redline

FROM debian:bookworm-slim
# ca-certificates: for rediss:// and https:// InfluxDB URLs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin redline
COPY --from=builder /out/redline /usr/local/bin/redline
USER redline
# 8186: producer HTTP API (InfluxDB /write); 9187: consumer --metrics-listen.
EXPOSE 8186 9187
ENTRYPOINT ["redline"]
CMD ["--help"]
