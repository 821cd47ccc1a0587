# The LabelFleet service (admin API + reconciler). Label Studio instances use their own image:
# orchestrator/image/Dockerfile.
#
# Production runs on a supported Node.js LTS (24); development and the test suite run on the
# Node 20.19+ of the machine (package.json "engines" covers both). NODE_IMAGE lets a machine
# without registry access build FROM a local stand-in (scripts/compose/standins.sh).
ARG NODE_IMAGE=node:24-bookworm-slim
FROM ${NODE_IMAGE}
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY orchestrator ./orchestrator
COPY migrations ./migrations
# `npm start`'s bundle: no TypeScript loader at run time (about 60 MB less resident memory).
RUN npm run build
COPY docker/entrypoint.sh /usr/local/bin/fleet-entrypoint
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/api/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Heap limit as `npm start` sets it (package.json config.heapMb); override with FLEET_HEAP_MB.
ENV FLEET_HEAP_MB=192
# Starts as root only to join the Docker socket's group, then runs as `node` (docker/entrypoint.sh).
ENTRYPOINT ["fleet-entrypoint"]
CMD ["serve"]
