// The attacker's own process: runs one client-port attack by name and prints
// its result as one JSON line. Kept apart from the test process so the
// attacker's CPU does not slow the well-behaved client it is measured against.
// Usage: attack-main.ts <attack name> <client port> <scale>
import { clientAttacks } from "./client-attacks.ts";

const [name, port, scale] = process.argv.slice(2);
const attack = clientAttacks.find((candidate) => candidate.name === name);
if (attack === undefined) {
  console.error(`no attack named ${name}`);
  process.exit(2);
}
const result = await attack.run(Number(port), Number(scale));
console.log(`attack-result ${JSON.stringify(result)}`);
process.exit(0);
