// ReadIndex requests waiting for a quorum to confirm this leader (safe mode,
// thesis §6.4): each is keyed by its context, carries the commit index at the
// time it arrived, and is released, with every request queued before it, once
// a quorum acknowledged a heartbeat carrying its context.
import type { Message, NodeId } from "./types.ts";

interface PendingRead {
  index: number;
  request: Message;
  acks: Set<NodeId>;
}

/** How many answered contexts a leader remembers in its term. */
const answeredLimit = 4096;

export class ReadOnlyQueue {
  private readonly pending = new Map<string, PendingRead>();
  private readonly queue: string[] = [];
  /**
   * Contexts answered in this term, with the index they were answered with.
   * A request re-sent with one of them (its answer was lost or is late) is
   * answered from here (see answeredIndex), not queued anew: acknowledgements of older
   * heartbeats that carried the context may still be on their way, and they
   * would confirm the new entry, and every entry queued before it, with a
   * leadership that may have ended since (a stale read).
   */
  private readonly answered = new Map<string, number>();

  /** The index a context was answered with in this term, if it was. */
  answeredIndex(context: Uint8Array): number | undefined {
    return this.answered.get(contextKey(context));
  }

  add(index: number, request: Message): void {
    const key = contextKey(request.context);
    if (this.pending.has(key)) return;
    this.pending.set(key, { index, request, acks: new Set() });
    this.queue.push(key);
  }

  /** Records an acknowledgement; returns how many acknowledged that context (0 if unknown). */
  ack(from: NodeId, context: Uint8Array): number {
    const read = this.pending.get(contextKey(context));
    if (read === undefined) return 0;
    read.acks.add(from);
    return read.acks.size;
  }

  acks(context: Uint8Array): ReadonlySet<NodeId> {
    return this.pending.get(contextKey(context))?.acks ?? new Set();
  }

  /** Releases the request with this context and every request queued before it. */
  advance(context: Uint8Array): Array<{ index: number; request: Message }> {
    const key = contextKey(context);
    const position = this.queue.indexOf(key);
    if (position < 0) return [];
    const released = this.queue.splice(0, position + 1);
    return released.map((released) => {
      const read = this.pending.get(released) as PendingRead;
      this.pending.delete(released);
      this.answered.set(released, read.index);
      if (this.answered.size > answeredLimit) this.answered.delete(this.answered.keys().next().value as string);
      return { index: read.index, request: read.request };
    });
  }

  /** The context of the newest pending request, to piggyback on heartbeats. */
  lastContext(): Uint8Array | undefined {
    const key = this.queue[this.queue.length - 1];
    return key === undefined ? undefined : this.pending.get(key)?.request.context;
  }

  clear(): void {
    this.pending.clear();
    this.queue.length = 0;
    this.answered.clear();
  }
}

function contextKey(context: Uint8Array): string {
  let key = "";
  for (const byte of context) key += String.fromCharCode(byte);
  return key;
}
