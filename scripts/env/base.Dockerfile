# Local stand-in for the official heartexlabs/label-studio image, for machines that cannot pull
# from a registry. Built by scripts/env/up.sh FROM a debootstrap'ed Debian bookworm rootfs that
# was `docker import`ed, with `docker build --network host` so apt and pip reach their mirrors
# the same way the host does.
# It mirrors the official image's layout (venv at /label-studio/.venv on PATH, HOME and data dir
# under /label-studio, uid 1001) so orchestrator/image/Dockerfile builds the same FROM either.
ARG ROOTFS_IMAGE=labelfleet/debian-rootfs:bookworm
FROM ${ROOTFS_IMAGE}

ARG LS_VERSION=1.23.2

ENV LS_DIR=/label-studio \
    HOME=/label-studio \
    LABEL_STUDIO_BASE_DATA_DIR=/label-studio/data \
    PATH="/label-studio/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    DJANGO_SETTINGS_MODULE=core.settings.label_studio \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8

RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    # The mirror may serve a dated snapshot: do not reject its Release file as expired.
    apt-get -o Acquire::Check-Valid-Until=false update; \
    apt-get install -y --no-install-recommends python3 python3-venv ca-certificates; \
    apt-get clean; rm -rf /var/lib/apt/lists/*

# The build host may reach PyPI through a TLS-intercepting egress proxy: its CA bundle is passed
# in the build context and used for this one pip run only (it is not left in the image).
COPY build-ca-bundle.crt /tmp/build-ca-bundle.crt
RUN set -eux; \
    python3 -m venv /label-studio/.venv; \
    PIP_CERT=/tmp/build-ca-bundle.crt PIP_DEFAULT_TIMEOUT=180 PIP_DISABLE_PIP_VERSION_CHECK=1 \
      /label-studio/.venv/bin/pip install --no-cache-dir "label-studio==${LS_VERSION}"; \
    rm -f /tmp/build-ca-bundle.crt; \
    mkdir -p /label-studio/data; \
    chown -R 1001:0 /label-studio; chmod -R g=u /label-studio/data

WORKDIR /label-studio
USER 1001
EXPOSE 8080
CMD ["label-studio", "start", "--no-browser"]
