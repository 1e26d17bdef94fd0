// A bounded window of appends in flight to one follower (etcd's Inflights).
// Each slot holds the last index carried by one App message; a response that
// acknowledges index i frees every slot <= i. When the window is full the
// leader stops sending until the follower catches up (flow control).

export class Inflights {
  private readonly indexes: number[] = [];

  constructor(readonly capacity: number) {
    if (capacity <= 0) throw new Error(`inflights capacity must be positive, got ${capacity}`);
  }

  get count(): number {
    return this.indexes.length;
  }

  full(): boolean {
    return this.indexes.length >= this.capacity;
  }

  add(lastIndex: number): void {
    if (this.full()) throw new Error("inflights: add to a full window");
    const previous = this.indexes[this.indexes.length - 1];
    if (previous !== undefined && lastIndex < previous) {
      throw new Error(`inflights: index ${lastIndex} added after ${previous}`);
    }
    this.indexes.push(lastIndex);
  }

  /** Frees every in-flight append whose last index is <= `index`. */
  freeLE(index: number): void {
    let freed = 0;
    while (freed < this.indexes.length && (this.indexes[freed] as number) <= index) freed++;
    if (freed > 0) this.indexes.splice(0, freed);
  }

  freeFirstOne(): void {
    this.indexes.shift();
  }

  reset(): void {
    this.indexes.length = 0;
  }
}
