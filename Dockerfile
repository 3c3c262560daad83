# Images pinned by exact version and digest (the multi-arch index); move both together.
FROM node:20.19.5-bookworm-slim@sha256:9e70124bd00f47dd023e349cd587132ae61892acc0e47ed641416c3e18f401c3 AS build
WORKDIR /app
# npm ci runs `prepare` (the TypeScript build and the web console's), so the sources come first.
COPY package.json package-lock.json tsconfig.json tsconfig.build.json openapi.yaml ./
COPY patches ./patches
COPY src ./src
COPY migrations ./migrations
COPY console ./console
RUN npm ci --no-audit --no-fund && test -f dist/src/server.js && test -f dist/console/index.html && npm prune --omit=dev

FROM node:20.19.5-bookworm-slim@sha256:9e70124bd00f47dd023e349cd587132ae61892acc0e47ed641416c3e18f401c3
WORKDIR /app
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 DATA_DIR=/data
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json openapi.yaml ./
# The data directory (embedded database, generated JWT secret and audit key, the audit chain's
# checkpoint, mail outbox) belongs to the user the service runs as; a named volume mounted here
# starts with this owner. With DATABASE_URL, JWT_SECRET, MFA_KEY and AUDIT_KEY come from the environment.
RUN mkdir -p /data && chown node:node /data && chmod 700 /data
VOLUME /data
EXPOSE 3000
USER node
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:3000/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node itself, not npm: JSON log lines only, and SIGTERM reaches the server (it drains).
CMD ["node", "dist/src/server.js"]
