// Legal etcd histories drawn from a sequential simulation, for testing the checker.
import { Prng } from "../../runtime/sim/prng.ts";
import type { Operation } from "./porcupine.ts";
import { applyEtcd, initialEtcdState, isReadOnly, type EtcdRequest, type EtcdResponse } from "./models.ts";
import { Traffic } from "./traffic.ts";

type EtcdOp = Operation<EtcdRequest, EtcdResponse>;
const unknown = { type: "unknown" } as const;

/**
 * A legal history: clients issue one request at a time; each takes effect at a
 * random point inside its interval, and outputs come from applying requests
 * in that order. Some writes fail (output unknown, return +Infinity), taking
 * effect or not; the client then continues under a new id.
 */
export function randomLegalHistory(seed: number, operations: number, clients: number, failureChance = 0.01, spanMax = 4, gapMax = 4): EtcdOp[] {
  const random = new Prng(seed);
  const traffic = new Traffic(random, { keys: 8, leases: true, compaction: true, nonUniqueInFlightMax: 3 });
  const planned: { clientId: number; call: number; at: number; ret: number; fails: boolean }[] = [];
  const clock = Array.from({ length: clients }, () => random.float() * 5);
  const ids = Array.from({ length: clients }, (_, i) => i + 1);
  for (let i = 0; i < operations; i++) {
    const client = random.int(clients);
    const call = clock[client] as number;
    const at = call + random.float() * spanMax;
    const ret = at + random.float() * spanMax;
    clock[client] = ret + random.float() * gapMax;
    const fails = random.chance(failureChance);
    planned.push({ clientId: ids[client] as number, call, at, ret, fails });
    if (fails) ids[client] = (ids[client] as number) + 1000; // after a failure the client continues as someone new
  }
  planned.sort((a, b) => a.at - b.at);
  let state = initialEtcdState();
  const history: EtcdOp[] = [];
  for (const plan of planned) {
    const { request } = traffic.next(plan.clientId);
    const fails = plan.fails && !isReadOnly(request);
    const result = applyEtcd(state, request);
    if (!fails || random.chance(0.5)) state = result.state;
    traffic.observe(request, result.response);
    history.push({ clientId: plan.clientId, call: plan.call, return: fails ? Infinity : plan.ret, input: request, output: fails ? unknown : result.response });
  }
  return history;
}

