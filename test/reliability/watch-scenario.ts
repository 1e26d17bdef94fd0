// W1 of the scorecard: the watch guarantees (ordered, unique, reliable,
// atomic, resumable, bookmarkable, filters, IsCreate, prev_kv) for watchers
// started at current ± 100 revisions on every member, with progress
// notifications, while three faults drawn from the seed hit the members
// other than the writer's: kill -9 and restart, SIGSTOP and SIGCONT, or (on
// edgetcd clusters, which dial through peer proxies) isolation from the
// peers. The run itself is test/watch/cluster-watch-run.ts.
import { Prng } from "../../runtime/sim/prng.ts";
import { runClusterWatch, type WatchFault } from "../watch/cluster-watch-run.ts";
import { withCluster } from "./faults.ts";
import type { RunResult, Scenario } from "./scenarios.ts";

export const watchScenario: Scenario = {
  id: "W1",
  title: "watch guarantees, 3 nodes, watchers at current ± 100 with progress notify, three faults",
  async run(seed, options): Promise<RunResult> {
    const random = new Prng(seed);
    return await withCluster(3, options, async (cluster) => {
      const kinds: WatchFault[] = cluster.cluster.links === undefined ? ["kill", "pause"] : ["kill", "pause", "isolate"];
      const faults = [random.pick(kinds), random.pick(kinds), random.pick(kinds)] as const;
      try {
        const result = await runClusterWatch(cluster.cluster, seed, faults);
        for (const violation of result.violations.slice(0, 5)) options.log(`  W1 seed ${seed}: ${violation}`);
        const notes = [...result.notes, `${result.watchers} watchers (${result.reconnected} reconnected), ${result.events} events, ${result.progressNotifications} progress notifications`];
        return {
          verdict: result.violations.length > 0 ? "illegal" : result.watchers === 0 || result.events < 20 ? "undecided" : "valid",
          lost: 0,
          watchViolations: result.violations.length,
          checkMs: result.checkMs,
          operations: result.writes,
          notes,
        };
      } catch (error) {
        return {
          verdict: "failed",
          lost: 0,
          watchViolations: 0,
          checkMs: 0,
          operations: 0,
          notes: [`${faults.join(",")}: ${String(error).replace(/\s+/g, " ").slice(0, 300)}`],
        };
      }
    });
  },
};
