// The leases a primary lessor watches for expiry, ordered by the time each is
// due (etcd's LeaseExpiredNotifier): an indexed binary min-heap, so a renewal
// moves its lease in O(log n) instead of leaving a stale entry behind.

interface Item {
  id: bigint;
  dueMs: number;
}

export class ExpiryQueue {
  private readonly heap: Item[] = [];
  private readonly positions = new Map<bigint, number>();

  get size(): number {
    return this.heap.length;
  }

  /** The earliest item, without removing it. */
  peek(): Item | undefined {
    return this.heap[0];
  }

  /** Removes and returns the earliest id if it is due at `nowMs`; undefined when none is. */
  popDue(nowMs: number): bigint | undefined {
    const first = this.heap[0];
    if (first === undefined || first.dueMs > nowMs) return undefined;
    this.delete(first.id);
    return first.id;
  }

  /** Inserts `id` due at `dueMs`, or moves it there if it is queued. */
  set(id: bigint, dueMs: number): void {
    const position = this.positions.get(id);
    if (position === undefined) {
      this.heap.push({ id, dueMs });
      this.positions.set(id, this.heap.length - 1);
      this.up(this.heap.length - 1);
      return;
    }
    const item = this.heap[position] as Item;
    const earlier = dueMs < item.dueMs;
    item.dueMs = dueMs;
    if (earlier) this.up(position);
    else this.down(position);
  }

  delete(id: bigint): void {
    const position = this.positions.get(id);
    if (position === undefined) return;
    const last = this.heap.pop() as Item;
    this.positions.delete(id);
    if (position === this.heap.length) return;
    this.heap[position] = last;
    this.positions.set(last.id, position);
    this.up(position);
    this.down(position);
  }

  clear(): void {
    this.heap.length = 0;
    this.positions.clear();
  }

  private up(index: number): void {
    const heap = this.heap;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if ((heap[parent] as Item).dueMs <= (heap[index] as Item).dueMs) return;
      this.swap(index, parent);
      index = parent;
    }
  }

  private down(index: number): void {
    const heap = this.heap;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let smallest = index;
      if (left < heap.length && (heap[left] as Item).dueMs < (heap[smallest] as Item).dueMs) smallest = left;
      if (right < heap.length && (heap[right] as Item).dueMs < (heap[smallest] as Item).dueMs) smallest = right;
      if (smallest === index) return;
      this.swap(index, smallest);
      index = smallest;
    }
  }

  private swap(a: number, b: number): void {
    const heap = this.heap;
    const first = heap[a] as Item;
    const second = heap[b] as Item;
    heap[a] = second;
    heap[b] = first;
    this.positions.set(second.id, a);
    this.positions.set(first.id, b);
  }
}
