// The last lines of what happened in a run, printed with a failure so the
// seed comes with a readable story. A ring buffer: cheap enough to keep on.

export class Trace {
  private readonly lines: string[] = [];
  private next = 0;

  constructor(
    private readonly capacity = 60,
    private readonly now: () => number = () => 0,
  ) {}

  add(line: string): void {
    const stamped = `${String(this.now()).padStart(6)}ms ${line}`;
    if (this.lines.length < this.capacity) this.lines.push(stamped);
    else this.lines[this.next] = stamped;
    this.next = (this.next + 1) % this.capacity;
  }

  tail(count = this.capacity): string[] {
    const ordered = this.lines.length < this.capacity ? this.lines : [...this.lines.slice(this.next), ...this.lines.slice(0, this.next)];
    return ordered.slice(-count);
  }
}
