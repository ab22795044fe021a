import { RateLimiter } from '../src/security/rate-limit.js';
import { ReplayGuard } from '../src/security/replay-guard.js';
import { SingleProcessLeases } from '../src/adapters/embedded/leases.js';
import { openNatsCoordination } from '../src/adapters/nats/index.js';
import { coordinationContract } from './contract/coordination.contract.js';
import { deleteBuckets, NATS_SERVERS, testPrefix } from './helpers/nats.js';

coordinationContract('one process, in memory', {
  shared: false,
  leaseTtlMs: 0,
  leaseSkewMs: 0,
  async system() {
    return {
      node: async (_clock, rate) => ({ leases: new SingleProcessLeases(), replayGuard: ReplayGuard.forClockSkew(300_000), rateLimits: new RateLimiter(rate), close: async () => {} }),
      close: async () => {},
    };
  },
});

const leases = { ttlMs: 3_000, skewMs: 500 };
coordinationContract('NATS JetStream', {
  shared: true,
  leaseTtlMs: leases.ttlMs,
  leaseSkewMs: leases.skewMs,
  async system() {
    const prefix = testPrefix();
    return {
      node: (clock, rateLimit) => openNatsCoordination({ servers: NATS_SERVERS, prefix, replicas: 1 }, { clock, maxClockSkewMs: 300_000, rateLimit, leases }),
      close: () => deleteBuckets(prefix),
    };
  },
});
