// Test certificates made with the openssl CLI into a temp dir: a CA, member
// certificates it signs (SAN 127.0.0.1), one it signs and then revokes (with
// the CRL), one with a CommonName members do not allow, and one from another CA.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../support/processes.ts";

export interface CertFiles {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  ca: string;
  crl: string;
  /** Signed by `ca`, CN=`commonName`. */
  issue(name: string, commonName: string): CertFiles;
  /** Signed by `ca`, then revoked: listed in `crl`. */
  revoked: CertFiles;
  /** Signed by another CA with the same CommonName as the members. */
  otherCa: CertFiles;
}

const openssl = (dir: string, args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });

function makeCa(dir: string, name: string): void {
  openssl(dir, ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
    "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.crt`]);
}

function sign(dir: string, caName: string, name: string, commonName: string): CertFiles {
  writeFileSync(join(dir, `${name}.ext`), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
  openssl(dir, ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-subj", `/CN=${commonName}`, "-keyout", `${name}.key`, "-out", `${name}.csr`]);
  openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", `${caName}.crt`, "-CAkey", `${caName}.key`, "-CAcreateserial",
    "-days", "2", "-extfile", `${name}.ext`, "-out", `${name}.crt`]);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

export function makeTestPki(): TestPki {
  const dir = tempDir("edgetcd-pki");
  makeCa(dir, "ca");
  makeCa(dir, "other-ca");
  // `openssl ca` keeps its revocation list in a small database.
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "crlnumber"), "01\n");
  writeFileSync(
    join(dir, "ca.cnf"),
    ["[ca]", "default_ca = test", "[test]", `database = ${join(dir, "index.txt")}`, `crlnumber = ${join(dir, "crlnumber")}`,
      `certificate = ${join(dir, "ca.crt")}`, `private_key = ${join(dir, "ca.key")}`, "default_md = sha256", "default_crl_days = 2", ""].join("\n"),
  );
  const revoked = sign(dir, "ca", "revoked", "member");
  openssl(dir, ["ca", "-config", "ca.cnf", "-revoke", revoked.cert]);
  openssl(dir, ["ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem"]);
  return {
    dir,
    ca: join(dir, "ca.crt"),
    crl: join(dir, "crl.pem"),
    issue: (name, commonName) => sign(dir, "ca", name, commonName),
    revoked,
    otherCa: sign(dir, "other-ca", "stranger", "member"),
  };
}
