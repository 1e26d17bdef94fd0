// A transcript interpreter for the Raft core, in the style of etcd-io/raft's
// datadriven interaction tests. A script is a list of blocks:
//
//   command arg key=value ...
//   ----
//   expected output
//
// separated by blank lines; `#` starts a comment line. Nodes run over
// in-memory storage; messages wait in one queue until delivered, so a script
// controls every interleaving. Election timeouts are not randomized here
// (randomInt returns 0): `tick-election` fires exactly one.
import { MemoryStorage, bootstrapStorage } from "../../src/raft/memory-storage.ts";
import { decodeConfChange, RawNode } from "../../src/raft/raw-node.ts";
import { testRaftConfig } from "./test-node.ts";
import {
  ConfChangeType,
  EntryType,
  MessageType,
  StateType,
  type Entry,
  type Message,
  type NodeId,
  type Ready,
} from "../../src/raft/types.ts";

const electionTick = 10;
const heartbeatTick = 1;

interface Node {
  id: NodeId;
  raft: RawNode;
  storage: MemoryStorage;
  applied: string[];
}

export class Interaction {
  private readonly nodes = new Map<NodeId, Node>();
  private queue: Message[] = [];
  private readonly isolated = new Set<NodeId>();
  private options = { preVote: false, checkQuorum: false, readOnly: "safe" as "safe" | "lease" };

  run(command: string, args: string[], named: Map<string, string>): string {
    switch (command) {
      case "add-nodes":
        return this.addNodes(Number(args[0]), named);
      case "campaign":
        this.node(args[0]).raft.campaign();
        return "ok";
      case "propose":
        return this.attempt(() => this.node(args[0]).raft.propose(new TextEncoder().encode(args[1] ?? "")));
      case "propose-conf-change":
        return this.attempt(() => this.node(args[0]).raft.proposeConfChange(parseConfChange(args[1] ?? "")));
      case "tick-heartbeat":
        for (let i = 0; i < heartbeatTick; i++) this.node(args[0]).raft.tick();
        return "ok";
      case "tick-election":
        for (let i = 0; i < electionTick; i++) this.node(args[0]).raft.tick();
        return "ok";
      case "process-ready":
        return args.map((id) => this.processReady(this.node(id))).join("\n");
      case "deliver-msgs":
        return this.deliver(named.get("drop"));
      case "stabilize":
        return this.stabilize();
      case "isolate":
        this.isolated.add(Number(args[0]));
        return "ok";
      case "heal":
        this.isolated.clear();
        return "ok";
      case "read-index":
        this.node(args[0]).raft.readIndex(new TextEncoder().encode(args[1] ?? ""));
        return "ok";
      case "transfer-leader":
        this.node(args[0]).raft.transferLeader(Number(args[1]));
        return "ok";
      case "report-unreachable":
        this.node(args[0]).raft.reportUnreachable(Number(args[1]));
        return "ok";
      case "compact":
        return this.compact(this.node(args[0]), Number(args[1]));
      case "status":
        return args.map((id) => this.status(this.node(id))).join("\n");
      case "log":
        return this.log(this.node(args[0]));
      case "applied":
        return `${args[0]}: ${this.node(args[0]).applied.join(" ") || "(none)"}`;
      default:
        throw new Error(`unknown command ${command}`);
    }
  }

  private node(id: string | undefined): Node {
    const node = this.nodes.get(Number(id));
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  private attempt(action: () => void): string {
    try {
      action();
      return "ok";
    } catch (error) {
      return `error: ${error instanceof Error ? error.message : String(error)}`;
    }
  }

  private addNodes(count: number, named: Map<string, string>): string {
    const list = (key: string) => (named.get(key) ?? "").replace(/[()]/g, "").split(",").filter(Boolean).map(Number);
    const voters = named.has("voters") ? list("voters") : Array.from({ length: count }, (_, i) => this.nodes.size + i + 1);
    const learners = list("learners");
    this.options = {
      preVote: named.get("prevote") === "true",
      checkQuorum: named.get("checkquorum") === "true",
      readOnly: named.get("read-only") === "lease" ? "lease" : "safe",
    };
    const lines: string[] = [];
    for (let i = 0; i < count; i++) {
      const id = this.nodes.size + 1;
      const storage = new MemoryStorage();
      // A brand-new node (joining later) starts empty; founders share the initial configuration.
      if (voters.includes(id) || learners.includes(id)) bootstrapStorage({ voters, learners }, 1, storage);
      const raft = new RawNode(
        testRaftConfig(id, storage, {
          electionTick,
          heartbeatTick,
          preVote: this.options.preVote,
          checkQuorum: this.options.checkQuorum,
          maxSizePerMsg: Number(named.get("max-size") ?? 1024 * 1024),
          maxInflightMsgs: Number(named.get("inflight") ?? 256),
          readOnlyOption: this.options.readOnly,
        }),
      );
      this.nodes.set(id, { id, raft, storage, applied: [] });
      lines.push(`${id}: voters=(${voters.join(",")}) learners=(${learners.join(",")}) first=${storage.firstIndex()} last=${storage.lastIndex()}`);
    }
    return lines.join("\n");
  }

  private processReady(node: Node): string {
    if (!node.raft.hasReady()) return `${node.id}: no ready`;
    const ready = node.raft.ready();
    const lines = [`${node.id} ready:`];
    lines.push(...describeReady(ready).map((line) => `  ${line}`));
    this.carryOut(node, ready);
    return lines.join("\n");
  }

  private carryOut(node: Node, ready: Ready): void {
    if (ready.snapshot !== undefined) node.storage.applySnapshot(ready.snapshot);
    node.storage.append(ready.entries);
    if (ready.hardState !== undefined) node.storage.setHardState(ready.hardState);
    this.queue.push(...ready.messages, ...ready.messagesAfterPersist);
    for (const entry of ready.committedEntries) {
      if (entry.type === EntryType.ConfChange) {
        const change = decodeConfChange(entry.data);
        node.raft.applyConfChange(change);
        node.applied.push(`${entry.index}:${describeConfChange(change.type, change.nodeId)}`);
      } else if (entry.data.length > 0) {
        node.applied.push(`${entry.index}:${new TextDecoder().decode(entry.data)}`);
      }
    }
    node.raft.advance(ready);
  }

  private deliver(drop: string | undefined): string {
    const dropped = new Set((drop ?? "").replace(/[()]/g, "").split(",").filter(Boolean).map(Number));
    const messages = this.queue;
    this.queue = [];
    const lines: string[] = [];
    for (const message of messages) {
      if (dropped.has(message.to) || this.isolated.has(message.to) || this.isolated.has(message.from)) {
        lines.push(`dropped ${describeMessage(message)}`);
        continue;
      }
      const node = this.nodes.get(message.to);
      if (node === undefined) continue;
      lines.push(describeMessage(message));
      try {
        node.raft.step(message);
      } catch (error) {
        lines.push(`  ${message.to} refused: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    return lines.length === 0 ? "no messages" : lines.join("\n");
  }

  /** Process readies and deliver messages until nothing moves; print the messages and state changes. */
  private stabilize(): string {
    const lines: string[] = [];
    for (let round = 0; round < 100; round++) {
      let moved = false;
      for (const node of this.nodes.values()) {
        if (!node.raft.hasReady()) continue;
        moved = true;
        const ready = node.raft.ready();
        if (ready.softState !== undefined) {
          lines.push(`${node.id} becomes ${StateType[ready.softState.state]} (lead=${ready.softState.lead})`);
        }
        for (const state of ready.readStates) {
          lines.push(`${node.id} read-state index=${state.index} ctx=${new TextDecoder().decode(state.requestCtx)}`);
        }
        for (const entry of ready.committedEntries) {
          if (entry.data.length > 0) lines.push(`${node.id} applies ${describeEntry(entry)}`);
        }
        this.carryOut(node, ready);
      }
      if (this.queue.length > 0) {
        moved = true;
        const delivered = this.deliver(undefined);
        if (delivered !== "no messages") lines.push(...delivered.split("\n"));
      }
      if (!moved) return lines.length === 0 ? "(stable)" : lines.join("\n");
    }
    throw new Error("stabilize did not converge in 100 rounds");
  }

  private compact(node: Node, index: number): string {
    node.storage.createSnapshot(index, node.raft.confState(), new TextEncoder().encode(`snapshot@${index}`));
    node.storage.compact(index);
    return `${node.id}: first=${node.storage.firstIndex()} last=${node.storage.lastIndex()}`;
  }

  private status(node: Node): string {
    const status = node.raft.status();
    const progress = [...status.progress]
      .sort(([a], [b]) => a - b)
      .map(([id, p]) => `${id}:${["probe", "replicate", "snapshot"][p.state]} match=${p.match} next=${p.next}${p.isLearner ? " learner" : ""}`);
    return (
      `${node.id}: ${StateType[status.softState.state]} term=${status.hardState.term} vote=${status.hardState.vote} ` +
      `lead=${status.softState.lead} commit=${status.hardState.commit} applied=${status.applied} last=${node.storage.lastIndex()}` +
      (progress.length > 0 ? `\n  ${progress.join("\n  ")}` : "")
    );
  }

  private log(node: Node): string {
    const first = node.storage.firstIndex();
    const last = node.storage.lastIndex();
    if (last < first) return `${node.id}: (empty after ${first - 1})`;
    return `${node.id}: ` + node.storage.entries(first, last + 1, Number.MAX_SAFE_INTEGER).map(describeEntry).join(" ");
  }
}

function parseConfChange(text: string) {
  const match = /^([vlr])(\d+)$/.exec(text);
  if (match === null) throw new Error(`conf change "${text}" is not v<id>, l<id> or r<id>`);
  const type = { v: ConfChangeType.AddNode, l: ConfChangeType.AddLearnerNode, r: ConfChangeType.RemoveNode }[match[1] as "v" | "l" | "r"];
  return { type, nodeId: Number(match[2]), context: new Uint8Array(0) };
}

function describeConfChange(type: ConfChangeType, id: NodeId): string {
  return `${{ [ConfChangeType.AddNode]: "v", [ConfChangeType.AddLearnerNode]: "l", [ConfChangeType.RemoveNode]: "r", [ConfChangeType.UpdateNode]: "u" }[type]}${id}`;
}

function describeEntry(entry: Entry): string {
  if (entry.type === EntryType.ConfChange) {
    const change = decodeConfChange(entry.data);
    return `${entry.term}/${entry.index} conf:${describeConfChange(change.type, change.nodeId)}`;
  }
  return `${entry.term}/${entry.index} ${entry.data.length === 0 ? "(empty)" : JSON.stringify(new TextDecoder().decode(entry.data))}`;
}

export function describeMessage(m: Message): string {
  let text = `${m.from}->${m.to} ${MessageType[m.type]} term=${m.term}`;
  switch (m.type) {
    case MessageType.App:
      text += ` log=${m.logTerm}/${m.index} commit=${m.commit}`;
      if (m.entries.length > 0) text += ` entries=[${m.entries.map(describeEntry).join(", ")}]`;
      break;
    case MessageType.AppResp:
      text += ` index=${m.index}${m.reject ? ` reject hint=${m.rejectHint} logTerm=${m.logTerm}` : ""}`;
      break;
    case MessageType.Vote:
    case MessageType.PreVote:
      text += ` log=${m.logTerm}/${m.index}`;
      break;
    case MessageType.VoteResp:
    case MessageType.PreVoteResp:
      text += m.reject ? " rejected" : " granted";
      break;
    case MessageType.Heartbeat:
      text += ` commit=${m.commit}`;
      break;
    case MessageType.Snap:
      text += ` snapshot=${m.snapshot?.metadata.term}/${m.snapshot?.metadata.index}`;
      break;
    case MessageType.Prop:
      text += ` entries=[${m.entries.map(describeEntry).join(", ")}]`;
      break;
    case MessageType.ReadIndexResp:
      text += ` index=${m.index}`;
      break;
  }
  if (m.context.length > 0) text += ` ctx=${new TextDecoder().decode(m.context)}`;
  return text;
}

function describeReady(ready: Ready): string[] {
  const lines: string[] = [];
  if (ready.softState !== undefined) lines.push(`soft: ${StateType[ready.softState.state]} lead=${ready.softState.lead}`);
  if (ready.hardState !== undefined) {
    lines.push(`hard: term=${ready.hardState.term} vote=${ready.hardState.vote} commit=${ready.hardState.commit}`);
  }
  if (ready.entries.length > 0) lines.push(`entries: ${ready.entries.map(describeEntry).join(" ")}`);
  if (ready.snapshot !== undefined) lines.push(`snapshot: ${ready.snapshot.metadata.term}/${ready.snapshot.metadata.index}`);
  if (ready.committedEntries.length > 0) lines.push(`committed: ${ready.committedEntries.map(describeEntry).join(" ")}`);
  for (const m of ready.messages) lines.push(`send now: ${describeMessage(m)}`);
  for (const m of ready.messagesAfterPersist) lines.push(`send after persist: ${describeMessage(m)}`);
  for (const state of ready.readStates) lines.push(`read-state: index=${state.index}`);
  if (ready.mustSync) lines.push("must sync");
  return lines;
}

/** Runs a script, returning it with every block's output replaced by what the core printed. */
export function runScript(script: string): string {
  const interaction = new Interaction();
  const blocks = script.split(/\n\n+/).filter((block) => block.trim() !== "");
  const out: string[] = [];
  for (const block of blocks) {
    const lines = block.split("\n");
    const comments = lines.filter((line) => line.startsWith("#"));
    const body = lines.filter((line) => !line.startsWith("#"));
    const commandLine = body[0];
    if (commandLine === undefined) {
      out.push(comments.join("\n"));
      continue;
    }
    const words = commandLine.trim().split(/\s+/);
    const command = words[0] as string;
    const args = words.slice(1).filter((word) => !word.includes("="));
    const named = new Map(
      words
        .slice(1)
        .filter((word) => word.includes("="))
        .map((word) => word.split("=") as [string, string]),
    );
    let output: string;
    try {
      output = interaction.run(command, args, named);
    } catch (error) {
      output = `error: ${error instanceof Error ? error.message : String(error)}`;
    }
    out.push([...comments, commandLine, "----", output].join("\n"));
  }
  return `${out.join("\n\n")}\n`;
}
