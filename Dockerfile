# autoshares-bff: a production image without the sandbox feature.
#   docker build -t autoshares-bff .
#   docker run --rm -p 8080:8080 -p 9090:9090 -e BFF__UPSTREAM__BASE_URL=... autoshares-bff
# No `# syntax=` line: the builder's own Dockerfile frontend is used, so a builder that
# cannot reach a registry needs only the two base images below. tests/container/run.sh
# builds the runtime stage with podman and runs it as the Helm chart does.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when Cargo.toml or
# Cargo.lock change, not when the service's own code does.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --no-default-features \
    && rm -rf src

# The service itself. Migrations are embedded in the binary by sqlx::migrate!.
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --no-default-features \
    && cp target/release/autoshares-bff /autoshares-bff

# Runtime: glibc, CA certificates and nothing else; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
WORKDIR /app
COPY --from=build /autoshares-bff /usr/local/bin/autoshares-bff
COPY config ./config
ENV BFF_ENV=production
# The allocator (mimalloc) commits memory as it is used rather than a whole arena at once,
# which keeps the resident set near the working set (docs/benchmarks.md).
ENV MIMALLOC_ARENA_EAGER_COMMIT=0
# SQLite and TLS allocate through glibc's malloc, which otherwise keeps an arena per thread
# (each SQLite connection has one): two arenas take about 2.5 MiB less under load.
ENV MALLOC_ARENA_MAX=2
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/autoshares-bff"]
CMD ["serve"]
