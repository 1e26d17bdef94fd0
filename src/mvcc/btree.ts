// sorted-btree is CommonJS with `exports.default = BTree`. Node's ESM loader
// hands a default import the whole exports object, Bun hands it the class;
// this picks the class on both.
import * as sortedBtree from "sorted-btree";

type BTreeConstructor = typeof sortedBtree.default.default;
const imported = sortedBtree.default as unknown as BTreeConstructor & { default?: BTreeConstructor };

export const BTree: BTreeConstructor = imported.default ?? imported;
