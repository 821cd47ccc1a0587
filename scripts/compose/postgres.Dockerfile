# Local stand-in for the official postgres image (same contract: POSTGRES_USER/PASSWORD/DB,
# data in /var/lib/postgresql/data, `postgres ...` arguments, pg_isready) for machines that
# cannot pull from a registry. Debian bookworm's PostgreSQL 15. Built by scripts/compose/standins.sh.
ARG ROOTFS_IMAGE
FROM ${ROOTFS_IMAGE}
RUN set -eux; export DEBIAN_FRONTEND=noninteractive; \
    apt-get -o Acquire::Check-Valid-Until=false update; \
    apt-get install -y --no-install-recommends postgresql-15; \
    apt-get clean; rm -rf /var/lib/apt/lists/*; \
    mkdir -p /var/lib/postgresql/data /var/run/postgresql; chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
