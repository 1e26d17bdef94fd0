// A simulated network between numbered endpoints. Each message gets its own
// fate drawn from the PRNG: dropped, delayed (delays differ, so messages
// reorder), sometimes duplicated, sometimes very slow. Links are directional,
// so a cut a→b may leave b→a working (asymmetric partitions). A link that is
// cut when a message is sent or when it arrives loses the message, as a real
// partition loses what is in flight.

import type { SimClock } from "./clock.ts";
import type { Prng } from "./prng.ts";

export interface NetworkFaults {
  /** Probability that a message is lost. */
  dropRate: number;
  /** Probability that a delivered message arrives twice. */
  duplicateRate: number;
  delayMsMin: number;
  delayMsMax: number;
  /** Probability that a message takes up to `slowDelayMsMax` instead. */
  slowRate: number;
  slowDelayMsMax: number;
}

export const reliableNetwork: NetworkFaults = {
  dropRate: 0,
  duplicateRate: 0,
  delayMsMin: 1,
  delayMsMax: 3,
  slowRate: 0,
  slowDelayMsMax: 0,
};

export type SendOutcome = "sent" | "dropped" | "cut";

export type DeliverFn<T> = (from: number, to: number, payload: T) => void;
export type LossFn<T> = (from: number, to: number, payload: T, why: "dropped" | "cut") => void;

export class SimNetwork<T> {
  private readonly cutLinks = new Set<number>();
  faults: NetworkFaults;
  sentCount = 0;
  deliveredCount = 0;
  lostCount = 0;

  constructor(
    private readonly clock: SimClock,
    private readonly random: Prng,
    private readonly deliver: DeliverFn<T>,
    /** Called for every message the network loses (e.g. to report a snapshot as failed). */
    private readonly onLoss: LossFn<T> = () => {},
    faults: NetworkFaults = reliableNetwork,
  ) {
    this.faults = { ...faults };
  }

  private static linkKey(from: number, to: number): number {
    return from * 65536 + to;
  }

  isCut(from: number, to: number): boolean {
    return this.cutLinks.has(SimNetwork.linkKey(from, to));
  }

  /** Cuts the one-way link from → to. */
  cut(from: number, to: number): void {
    this.cutLinks.add(SimNetwork.linkKey(from, to));
  }

  restore(from: number, to: number): void {
    this.cutLinks.delete(SimNetwork.linkKey(from, to));
  }

  /** Cuts every link between different groups, both ways; links inside a group stay. */
  partition(groups: readonly (readonly number[])[]): void {
    for (const [i, group] of groups.entries()) {
      for (const [j, other] of groups.entries()) {
        if (i === j) continue;
        for (const from of group) for (const to of other) this.cut(from, to);
      }
    }
  }

  healAll(): void {
    this.cutLinks.clear();
  }

  cutLinkCount(): number {
    return this.cutLinks.size;
  }

  send(from: number, to: number, payload: T): SendOutcome {
    this.sentCount++;
    if (this.isCut(from, to)) return this.lose(from, to, payload, "cut");
    if (this.random.chance(this.faults.dropRate)) return this.lose(from, to, payload, "dropped");
    this.scheduleDelivery(from, to, payload);
    if (this.random.chance(this.faults.duplicateRate)) this.scheduleDelivery(from, to, payload);
    return "sent";
  }

  private lose(from: number, to: number, payload: T, why: "dropped" | "cut"): SendOutcome {
    this.lostCount++;
    this.onLoss(from, to, payload, why);
    return why;
  }

  private scheduleDelivery(from: number, to: number, payload: T): void {
    const { delayMsMin, delayMsMax, slowRate, slowDelayMsMax } = this.faults;
    const delayMs = this.random.chance(slowRate)
      ? this.random.between(delayMsMax, Math.max(delayMsMax, slowDelayMsMax))
      : this.random.between(delayMsMin, Math.max(delayMsMin, delayMsMax));
    this.clock.setTimer(delayMs, () => {
      if (this.isCut(from, to)) {
        this.lose(from, to, payload, "cut");
        return;
      }
      this.deliveredCount++;
      this.deliver(from, to, payload);
    });
  }
}
