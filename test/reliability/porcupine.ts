// A linearizability checker: the Wing–Gong search with Lowe's cache of
// (linearized set, state), the way Porcupine does it.
//
// The history becomes a doubly linked list of call and return entries sorted
// by time. The search walks the list: at a call it tries to linearize that
// operation now (the model must accept its output from the current state); if
// the (linearized set, new state) pair was seen before, that branch is already
// known to fail and is skipped. Linearizing an operation lifts its call and
// return out of the list. Reaching a return entry means the operation it ends
// should already be linearized but is not: backtrack (unlift the last
// operation, restore its state, try the next candidate after it). The list
// empties exactly when every operation is linearized.
//
// An operation whose outcome the client does not know (a write that timed out
// or hit an unavailable member) gets return time +Infinity: it may take effect
// at any point after its call. The model decides whether "output unknown" also
// allows "never took effect" (a non-deterministic model keeps both states).
// Contract: the model accepts such an operation from every state. Two
// consequences keep failed writes from doubling the search each:
//  - once only +Infinity operations remain, they all go last, in any order;
//  - such an operation is never linearized where it would change nothing: if
//    a completion linearizes it there, the same completion without it, with
//    it appended last, is also one.
//
// The problem is NP-complete; a time budget turns a search that runs too long
// into "unknown" rather than a wrong answer.

export interface Operation<I, O> {
  /** The client (or client incarnation) that issued it; one request at a time per client. */
  clientId: number;
  input: I;
  /** Call time (any monotonic unit). */
  call: number;
  output: O;
  /** Return time; +Infinity when the client never learned the outcome. */
  return: number;
}

/** A deterministic sequential specification. */
export interface Model<S, I, O> {
  init(): S;
  /** Is `output` a legal answer to `input` from `state`, and which state follows? */
  step(state: S, input: I, output: O): [ok: boolean, next: S];
  /** A hash that equal states share (used to bucket the cache). */
  hash(state: S): string;
  equal(a: S, b: S): boolean;
  /** Split a history into independent ones (per key, for example). */
  partition?(history: readonly Operation<I, O>[]): Operation<I, O>[][];
  describeOperation?(input: I, output: O): string;
  describeState?(state: S): string;
}

/** A specification whose step may lead to several states (or none, when illegal). */
export interface NondeterministicModel<S, I, O> {
  init(): S[];
  step(state: S, input: I, output: O): S[];
  hash(state: S): string;
  equal(a: S, b: S): boolean;
  partition?(history: readonly Operation<I, O>[]): Operation<I, O>[][];
  describeOperation?(input: I, output: O): string;
  describeState?(state: S): string;
}

/**
 * Turns a non-deterministic model into a deterministic one whose state is the
 * set of states the system may be in (deduplicated). A step is legal when at
 * least one of those states accepts it.
 */
export function powersetModel<S, I, O>(model: NondeterministicModel<S, I, O>): Model<readonly S[], I, O> {
  const dedupe = (states: S[]): S[] => {
    if (states.length <= 1) return states;
    const byHash = new Map<string, S[]>();
    const kept: S[] = [];
    for (const state of states) {
      const key = model.hash(state);
      const bucket = byHash.get(key);
      if (bucket === undefined) byHash.set(key, [state]);
      else if (bucket.some((other) => model.equal(other, state))) continue;
      else bucket.push(state);
      kept.push(state);
    }
    return kept;
  };
  const setHash = (states: readonly S[]) =>
    states.length === 1 ? model.hash(states[0] as S) : states.map((state) => model.hash(state)).sort().join(";");
  return {
    init: () => dedupe(model.init()),
    step: (states, input, output) => {
      if (states.length === 1) {
        const next = dedupe(model.step(states[0] as S, input, output));
        return [next.length > 0, next];
      }
      const next: S[] = [];
      for (const state of states) next.push(...model.step(state, input, output));
      const kept = dedupe(next);
      return [kept.length > 0, kept];
    },
    hash: setHash,
    equal: (a, b) => a === b || (a.length === b.length && a.every((x) => b.some((y) => model.equal(x, y)))),
    partition: model.partition,
    describeOperation: model.describeOperation,
    describeState: (states) =>
      `{${states.map((state) => (model.describeState ? model.describeState(state) : model.hash(state))).join(" | ")}}`,
  };
}

export type CheckResult = "ok" | "illegal" | "unknown";

export interface CheckOptions {
  /** After this long the answer is "unknown" (undecided). Default: no limit. */
  timeoutMs?: number;
}

export interface PartitionReport<I, O> {
  result: CheckResult;
  operations: number;
  /** For an illegal partition: the longest linearizable prefix the search found, in order. */
  longestLinearized?: Operation<I, O>[];
  /** For an illegal partition: operations never linearized on that longest path. */
  notLinearized?: Operation<I, O>[];
}

export interface CheckReport<I, O> {
  result: CheckResult;
  partitions: PartitionReport<I, O>[];
  elapsedMs: number;
}

export function checkOperations<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  options: CheckOptions = {},
): CheckResult {
  return checkOperationsVerbose(model, history, options).result;
}

export function checkOperationsVerbose<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  options: CheckOptions = {},
): CheckReport<I, O> {
  const started = performance.now();
  const deadline = options.timeoutMs === undefined ? Infinity : started + options.timeoutMs;
  const partitions = model.partition ? model.partition(history) : [history.slice()];
  const reports: PartitionReport<I, O>[] = [];
  let result: CheckResult = "ok";
  for (const partition of partitions) {
    const report = checkSingle(model, partition, deadline);
    reports.push(report);
    if (report.result === "illegal") {
      result = "illegal";
      break; // one illegal partition makes the whole history illegal
    }
    if (report.result === "unknown") result = "unknown";
  }
  return { result, partitions: reports, elapsedMs: performance.now() - started };
}

/** One node of the entry list: a call (with `match` pointing at its return) or a return. */
interface Entry<I, O> {
  id: number;
  time: number;
  isCall: boolean;
  input: I | undefined;
  output: O | undefined;
  match: Entry<I, O> | undefined;
  prev: Entry<I, O> | undefined;
  next: Entry<I, O> | undefined;
}

function makeEntries<I, O>(history: readonly Operation<I, O>[]): Entry<I, O> {
  const flat: Entry<I, O>[] = [];
  history.forEach((operation, id) => {
    if (!(operation.call <= operation.return)) {
      throw new Error(`operation ${id} returns (${operation.return}) before its call (${operation.call})`);
    }
    const ret: Entry<I, O> = {
      id, time: operation.return, isCall: false, input: undefined, output: operation.output,
      match: undefined, prev: undefined, next: undefined,
    };
    const call: Entry<I, O> = {
      id, time: operation.call, isCall: true, input: operation.input, output: undefined,
      match: ret, prev: undefined, next: undefined,
    };
    flat.push(call, ret);
  });
  // At equal times calls come first: touching intervals count as concurrent,
  // the lenient reading when a clock cannot separate them.
  flat.sort((a, b) => (a.time !== b.time ? a.time - b.time : a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1));
  const head: Entry<I, O> = {
    id: -1, time: -Infinity, isCall: false, input: undefined, output: undefined,
    match: undefined, prev: undefined, next: undefined,
  };
  let last = head;
  for (const entry of flat) {
    last.next = entry;
    entry.prev = last;
    last = entry;
  }
  return head;
}

/** Takes a linearized call and its return out of the list. */
function lift<I, O>(call: Entry<I, O>): void {
  (call.prev as Entry<I, O>).next = call.next;
  if (call.next) call.next.prev = call.prev;
  const ret = call.match as Entry<I, O>;
  (ret.prev as Entry<I, O>).next = ret.next;
  if (ret.next) ret.next.prev = ret.prev;
}

/** Puts them back, in the reverse order of lift. */
function unlift<I, O>(call: Entry<I, O>): void {
  const ret = call.match as Entry<I, O>;
  (ret.prev as Entry<I, O>).next = ret;
  if (ret.next) ret.next.prev = ret;
  (call.prev as Entry<I, O>).next = call;
  if (call.next) call.next.prev = call;
}

class Bitset {
  readonly words: Uint32Array;
  constructor(size: number, words?: Uint32Array) {
    this.words = words ?? new Uint32Array(Math.ceil(size / 32) || 1);
  }
  set(bit: number): void {
    this.words[bit >>> 5]! |= 1 << (bit & 31);
  }
  clear(bit: number): void {
    this.words[bit >>> 5]! &= ~(1 << (bit & 31));
  }
  clone(): Bitset {
    return new Bitset(0, this.words.slice());
  }
  equals(other: Bitset): boolean {
    const a = this.words;
    const b = other.words;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  hash(): number {
    let hash = 0x811c9dc5;
    for (const word of this.words) hash = Math.imul(hash ^ word, 0x01000193);
    return hash >>> 0;
  }
}

interface CacheEntry<S> {
  linearized: Bitset;
  state: S;
}

function checkSingle<S, I, O>(model: Model<S, I, O>, history: readonly Operation<I, O>[], deadline: number): PartitionReport<I, O> {
  const head = makeEntries(history);
  const linearized = new Bitset(history.length);
  const cache = new Map<string, CacheEntry<S>[]>();
  const calls: { entry: Entry<I, O>; state: S }[] = [];
  let state = model.init();
  let longest: number[] = [];
  let iterations = 0;
  let entry = head.next;

  /** Is (linearized, next) in the cache? If not, remember it (with a copy of the bits). */
  const seenBefore = (bits: Bitset, next: S): boolean => {
    const key = `${bits.hash()}:${model.hash(next)}`;
    const bucket = cache.get(key);
    if (bucket !== undefined && bucket.some((seen) => seen.linearized.equals(bits) && model.equal(seen.state, next))) return true;
    const entry = { linearized: bits.clone(), state: next };
    if (bucket === undefined) cache.set(key, [entry]);
    else bucket.push(entry);
    return false;
  };

  while (head.next !== undefined) {
    if ((++iterations & 1023) === 0 && performance.now() > deadline) {
      return { result: "unknown", operations: history.length };
    }
    if (entry === undefined) throw new Error("linearizability search walked off the list");
    if (!entry.isCall && entry.time === Infinity && remainingAccepted(model, head, state)) break;
    if (entry.isCall) {
      const pending = (entry.match as Entry<I, O>).time === Infinity;
      const [ok, next] = model.step(state, entry.input as I, (entry.match as Entry<I, O>).output as O);
      let advanced = false;
      if (ok && !(pending && model.equal(next, state))) {
        linearized.set(entry.id);
        if (seenBefore(linearized, next)) {
          linearized.clear(entry.id);
        } else {
          calls.push({ entry, state });
          state = next;
          lift(entry);
          advanced = true;
          if (calls.length > longest.length) longest = calls.map((call) => call.entry.id);
        }
      }
      entry = advanced ? head.next : entry.next;
    } else {
      // A return whose call is still in the list: nothing left to try at this depth.
      const top = calls.pop();
      if (top === undefined) {
              const done = new Set(longest);
        return {
          result: "illegal",
          operations: history.length,
          longestLinearized: longest.map((id) => history[id] as Operation<I, O>),
          notLinearized: history.filter((_, id) => !done.has(id)),
        };
      }
      state = top.state;
      linearized.clear(top.entry.id);
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  return { result: "ok", operations: history.length };
}

/** Only operations returning at +Infinity are left: can they all go last, in call order? */
function remainingAccepted<S, I, O>(model: Model<S, I, O>, head: Entry<I, O>, state: S): boolean {
  for (let entry = head.next; entry !== undefined; entry = entry.next) {
    if (!entry.isCall) continue;
    const [ok, next] = model.step(state, entry.input as I, (entry.match as Entry<I, O>).output as O);
    if (!ok) return false;
    state = next;
  }
  return true;
}

/** A short human-readable account of an illegal report, for failure messages. */
export function describeReport<S, I, O>(model: Model<S, I, O>, report: CheckReport<I, O>, limit = 20): string {
  const describe = (operation: Operation<I, O>) =>
    `client ${operation.clientId} [${operation.call.toFixed(1)}, ${operation.return === Infinity ? "∞" : operation.return.toFixed(1)}] ` +
    (model.describeOperation ? model.describeOperation(operation.input, operation.output) : JSON.stringify([operation.input, operation.output]));
  const lines = [`result: ${report.result} in ${report.elapsedMs.toFixed(0)} ms`];
  for (const partition of report.partitions) {
    if (partition.result !== "illegal") continue;
    const prefix = partition.longestLinearized ?? [];
    lines.push(`longest linearizable prefix: ${prefix.length} of ${partition.operations}; last ones:`);
    for (const operation of prefix.slice(-limit)) lines.push(`  ${describe(operation)}`);
    lines.push("could not linearize next (earliest calls first):");
    const rest = (partition.notLinearized ?? []).slice().sort((a, b) => a.call - b.call);
    for (const operation of rest.slice(0, limit)) lines.push(`  ${describe(operation)}`);
  }
  return lines.join("\n");
}
