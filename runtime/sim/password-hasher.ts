// The PasswordHasher port in the simulator: bcryptjs run synchronously (no
// worker threads: the simulator is one thread stepped by its clock), answered
// through a resolved promise as the real pool answers later, with salts drawn
// from the seeded Random so a run replays exactly. bcryptjs's own salts come
// from the host's crypto and would make seeds lie.
import bcrypt from "bcryptjs";
import type { PasswordHasher, Random } from "../../src/ports.ts";

/** bcrypt's cost bounds, as the Node and Bun pool checks them. */
const bcryptCostMin = 4;
const bcryptCostMax = 31;
/** bcrypt's salt, in bytes. */
const bcryptSaltBytes = 16;

export function simPasswordHasher(random: Random): PasswordHasher {
  return {
    hash(password, cost) {
      if (!Number.isInteger(cost) || cost < bcryptCostMin || cost > bcryptCostMax) {
        return Promise.reject(new Error(`bcrypt cost must be an integer in [${bcryptCostMin}, ${bcryptCostMax}], got ${cost}`));
      }
      // "$2a$" as Go's bcrypt writes it (see runtime/node/password-hasher.ts).
      const salt = `$2a$${String(cost).padStart(2, "0")}$${bcrypt.encodeBase64(random.bytes(bcryptSaltBytes), bcryptSaltBytes)}`;
      return Promise.resolve().then(() => bcrypt.hashSync(password, salt));
    },
    verify(password, hash) {
      return Promise.resolve().then(() => {
        try {
          return bcrypt.compareSync(password, hash);
        } catch {
          return false; // a malformed salt in the hash
        }
      });
    },
    close: () => Promise.resolve(),
  };
}
