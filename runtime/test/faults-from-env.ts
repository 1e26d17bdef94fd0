// What a test composition root reads from the environment: the faults, the
// mutant and the crash point a test asked for (runtime/faults/), handed to
// createHost. The production roots (runtime/node/main.ts, runtime/bun/main.ts)
// never import this file or anything in runtime/faults/ (test/tidy.test.ts).
import type { Runtime } from "../../src/ports.ts";
import type { HostTestFaults } from "../node/host.ts";
import { crashPointsFromEnv } from "../faults/crash-points.ts";
import { runtimeWithTestFaults } from "../faults/mutants.ts";
import { peerDialerFromEnv } from "../faults/peer-dial.ts";

export function testFaultsFromEnv(runtime: Runtime, env: Record<string, string | undefined>): HostTestFaults {
  const peerDialer = peerDialerFromEnv(env);
  const crashPoints = crashPointsFromEnv(env);
  const walSegmentBytes = Number(env.EDGETCD_TEST_WAL_SEGMENT_BYTES);
  return {
    // EDGETCD_TEST_DISK=lose-unsynced|fail-datasync-when:<path>, EDGETCD_MUTANT=<name>.
    runtime: runtimeWithTestFaults(runtime, env),
    // EDGETCD_TEST_PEER_DIAL=<origin map>: peers dialled through a fault proxy.
    ...(peerDialer === undefined ? {} : { peerDialer }),
    // EDGETCD_CRASH_POINT=<name>:<n>.
    ...(crashPoints === undefined ? {} : { crashPoints }),
    // EDGETCD_TEST_WAL_SEGMENT_BYTES=<bytes>: small WAL segments, so tests see several.
    ...(Number.isSafeInteger(walSegmentBytes) && walSegmentBytes > 0 ? { walSegmentBytesMax: walSegmentBytes } : {}),
  };
}
