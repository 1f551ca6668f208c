# syntax=docker/dockerfile:1

# Build a static binary: the web UI and the migrations are embedded in it,
# so the final image holds nothing else.
FROM golang:1.26 AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/agora ./cmd/agora \
 && mkdir -p /out/data

FROM scratch
# CA roots, for a DATABASE_URL with sslmode=verify-full.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/agora /usr/local/bin/agora
# A writable working directory for the non-root user: `serve --seed-demo`
# keeps the demo admin's password in .agora/ under it.
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data
USER 65532:65532
ENV AGORA_ADDR=:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/agora"]
CMD ["serve"]
