// The range watchers of a group, kept so that "which ranges contain this key"
// costs O(log n + matches) instead of a scan of every range watcher (etcd keeps
// an augmented interval tree for the same reason). A treap ordered by (low,
// sequence), each node augmented with the greatest `high` in its subtree, so a
// stabbing query skips every subtree that ends at or before the key.
//
// Keys are binary strings (see key-bytes.ts): native string comparison is byte
// order. Intervals are half-open [low, high); `unbounded` (one code unit above
// any byte) stands for "no upper bound", as etcd's from-key watch.

/** Greater than every binary string, so [low, unbounded) holds every key >= low. */
export const unbounded = "\u0100";

interface TreeNode<T> {
  low: string;
  high: string;
  sequence: number;
  priority: number;
  maxHigh: string;
  left: TreeNode<T> | undefined;
  right: TreeNode<T> | undefined;
  value: T;
}

/** Handle for removing an interval: the tree keeps no map from values to nodes. */
export interface IntervalHandle {
  readonly low: string;
  readonly sequence: number;
}

export class IntervalTree<T> {
  private root: TreeNode<T> | undefined;
  private nextSequence = 0;
  // Deterministic xorshift32 for heap priorities: the core takes no randomness
  // from outside, and a fixed sequence still balances in expectation because
  // priorities are independent of the keys inserted.
  private seed = 0x9e3779b9;
  size = 0;

  insert(low: string, high: string, value: T): IntervalHandle {
    const node: TreeNode<T> = {
      low,
      high,
      sequence: this.nextSequence++,
      priority: this.nextPriority(),
      maxHigh: high,
      left: undefined,
      right: undefined,
      value,
    };
    this.root = insertNode(this.root, node);
    this.size++;
    return node;
  }

  /** Removes the interval `handle` names; false when it is not in the tree. */
  remove(handle: IntervalHandle): boolean {
    const before = this.size;
    this.root = removeNode(this.root, handle.low, handle.sequence, this);
    return this.size < before;
  }

  /** Calls `visit` with the value of every interval containing `point`. */
  stab(point: string, visit: (value: T) => void): void {
    stabNode(this.root, point, visit);
  }

  /** Every value in the tree, in no particular order. */
  values(): T[] {
    const out: T[] = [];
    const pending: TreeNode<T>[] = [];
    if (this.root !== undefined) pending.push(this.root);
    for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
      out.push(node.value);
      if (node.left !== undefined) pending.push(node.left);
      if (node.right !== undefined) pending.push(node.right);
    }
    return out;
  }

  /** Called by removeNode when it unlinks a node. */
  removed(): void {
    this.size--;
  }

  private nextPriority(): number {
    let x = this.seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.seed = x >>> 0;
    return this.seed;
  }
}

function before<T>(node: TreeNode<T>, low: string, sequence: number): boolean {
  return node.low < low || (node.low === low && node.sequence < sequence);
}

function update<T>(node: TreeNode<T>): void {
  let maxHigh = node.high;
  if (node.left !== undefined && node.left.maxHigh > maxHigh) maxHigh = node.left.maxHigh;
  if (node.right !== undefined && node.right.maxHigh > maxHigh) maxHigh = node.right.maxHigh;
  node.maxHigh = maxHigh;
}

function rotateRight<T>(node: TreeNode<T>): TreeNode<T> {
  const left = node.left as TreeNode<T>;
  node.left = left.right;
  left.right = node;
  update(node);
  update(left);
  return left;
}

function rotateLeft<T>(node: TreeNode<T>): TreeNode<T> {
  const right = node.right as TreeNode<T>;
  node.right = right.left;
  right.left = node;
  update(node);
  update(right);
  return right;
}

function insertNode<T>(root: TreeNode<T> | undefined, node: TreeNode<T>): TreeNode<T> {
  if (root === undefined) return node;
  if (before(root, node.low, node.sequence)) {
    root.right = insertNode(root.right, node);
    if (root.right.priority > root.priority) return rotateLeft(root);
  } else {
    root.left = insertNode(root.left, node);
    if (root.left.priority > root.priority) return rotateRight(root);
  }
  update(root);
  return root;
}

function removeNode<T>(
  root: TreeNode<T> | undefined,
  low: string,
  sequence: number,
  tree: IntervalTree<T>,
): TreeNode<T> | undefined {
  if (root === undefined) return undefined;
  if (root.low === low && root.sequence === sequence) {
    tree.removed();
    return joinNodes(root.left, root.right);
  }
  if (before(root, low, sequence)) root.right = removeNode(root.right, low, sequence, tree);
  else root.left = removeNode(root.left, low, sequence, tree);
  update(root);
  return root;
}

/** Joins two treaps where every node of `left` sorts before every node of `right`. */
function joinNodes<T>(left: TreeNode<T> | undefined, right: TreeNode<T> | undefined): TreeNode<T> | undefined {
  if (left === undefined) return right;
  if (right === undefined) return left;
  if (left.priority > right.priority) {
    left.right = joinNodes(left.right, right);
    update(left);
    return left;
  }
  right.left = joinNodes(left, right.left);
  update(right);
  return right;
}

function stabNode<T>(node: TreeNode<T> | undefined, point: string, visit: (value: T) => void): void {
  // Iterative over right spines, recursive over left children: depth is O(log n) expected.
  while (node !== undefined && node.maxHigh > point) {
    stabNode(node.left, point, visit);
    if (node.low > point) return;
    if (point < node.high) visit(node.value);
    node = node.right;
  }
}
