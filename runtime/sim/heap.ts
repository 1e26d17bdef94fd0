// A binary min-heap ordered by (time, insertion sequence): events due at the
// same instant come out in the order they were scheduled, so the simulation is
// deterministic without any tie-breaking randomness of its own.

interface HeapItem<T> {
  time: number;
  sequence: number;
  value: T;
}

export class EventHeap<T> {
  private items: HeapItem<T>[] = [];
  private nextSequence = 0;

  get size(): number {
    return this.items.length;
  }

  push(time: number, value: T): void {
    const item = { time, sequence: this.nextSequence++, value };
    const items = this.items;
    items.push(item);
    let index = items.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(item, items[parent] as HeapItem<T>)) break;
      items[index] = items[parent] as HeapItem<T>;
      index = parent;
    }
    items[index] = item;
  }

  peekTime(): number | undefined {
    return this.items[0]?.time;
  }

  pop(): { time: number; value: T } | undefined {
    const items = this.items;
    const top = items[0];
    if (top === undefined) return undefined;
    const last = items.pop() as HeapItem<T>;
    if (items.length > 0) {
      let index = 0;
      for (;;) {
        const left = 2 * index + 1;
        if (left >= items.length) break;
        const right = left + 1;
        const child = right < items.length && before(items[right] as HeapItem<T>, items[left] as HeapItem<T>) ? right : left;
        if (!before(items[child] as HeapItem<T>, last)) break;
        items[index] = items[child] as HeapItem<T>;
        index = child;
      }
      items[index] = last;
    }
    return { time: top.time, value: top.value };
  }
}

function before<T>(a: HeapItem<T>, b: HeapItem<T>): boolean {
  return a.time < b.time || (a.time === b.time && a.sequence < b.sequence);
}
