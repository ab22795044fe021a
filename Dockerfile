# syntax=docker/dockerfile:1
# OpenDIP production image. Three stages: production dependencies (better-sqlite3 compiled here),
# the build (tsc to dist/, the SBOM), and the runtime: node:20-slim with no compiler, no npm step, the
# code owned by root and read-only to the non-root `node` user, all state under the /data volume.
#
#   docker build -t opendip .
#   docker run -d --name opendip --restart unless-stopped --read-only --tmpfs /tmp -v opendip-data:/data -p 8443:8443 opendip
#   (a failed disk sync makes `dip serve` exit 70: the restart policy brings it back)
#   docker exec opendip dip participant add …        (the dip command, as in the README)
#
# The same image is a cluster node (PostgreSQL + NATS JetStream; docs/deployment.md, deploy/kubernetes):
#   docker run … -e DIP_STORAGE=cluster -e DIP_POSTGRES_URL=postgres://… -e DIP_NATS_SERVERS=nats-a:4222,… opendip
# with the PKI and key-encryption key shared by every node in /data (or DIP_KMS_MODULE for a KMS).
#
# Pin the base image by digest for a release (node:20-slim@sha256:…) so a rebuild is the same image.
ARG NODE_IMAGE=node:20-slim

# --- production dependencies only ---------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
# better-sqlite3 compiles from source when no prebuilt binary fits this platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# No package runs an install script except the one that must (the SQLite driver).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3 \
 && node -e "require('better-sqlite3')(':memory:').prepare('select 1').get()"

# --- build: dist/ and the SBOM ------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.sh scripts/
COPY src/ src/
RUN npm run build && npm run sbom

# --- runtime ------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    DIP_DATA_DIR=/data \
    DIP_HOST=0.0.0.0 \
    DIP_PORT=8443 \
    DIP_ADMIN_PORT=8444
WORKDIR /app
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/sbom/opendip.cdx.json ./sbom.cdx.json
COPY package.json ./
COPY bin/dip.js ./bin/dip.js
# `dip` on the PATH for `docker exec`; /data is the only place the DIP writes (database, PKI, keys,
# admin token) and belongs to the unprivileged user the DIP runs as.
RUN ln -s /app/bin/dip.js /usr/local/bin/dip \
 && mkdir /data && chown node:node /data && chmod 0700 /data
USER node
VOLUME ["/data"]
# 8443: participants (mutual TLS). The operator API (8444) listens on the container's loopback only:
# reach it with `docker exec`.
EXPOSE 8443
# Healthy = GET /admin/health answers 200: the store takes writes (503 when the disk is full or a sync
# failed). With the token the DIP wrote to /data/admin-token; the participants' port needs a client
# certificate, so the operator listener on the container's loopback is the one asked.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "const d=process.env.DIP_DATA_DIR||'/data';const t=require('fs').readFileSync(d+'/admin-token','utf8').trim();fetch('http://127.0.0.1:'+(process.env.DIP_ADMIN_PORT||8444)+'/admin/health',{headers:{authorization:'Bearer '+t},signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve"]
