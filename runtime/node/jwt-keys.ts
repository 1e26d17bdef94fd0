// The key files of --auth-token jwt (Node and Bun), read as etcd 3.4 reads them
// (auth/options.go): pub-key is a PEM public key or a certificate (etcd's own
// tests pass server.crt), priv-key a PEM private key in PKCS#1, SEC1 or PKCS#8;
// for HS256/384/512 priv-key's bytes are the shared secret. With pub-key only,
// the member verifies tokens but signs none. Whether the two keys are one pair
// is checked by src/auth/jwt-tokens.ts, which signs and verifies a probe.
import { createPrivateKey, createPublicKey, createSecretKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { JwtTokenOptions } from "../../src/auth/token-options.ts";

/** The curve each ECDSA method signs with (node:crypto's names). */
const curveOfMethod: Record<string, string> = { ES256: "prime256v1", ES384: "secp384r1", ES512: "secp521r1" };

export async function loadJwtKeys(options: Pick<JwtTokenOptions, "signMethod" | "publicKeyPath" | "privateKeyPath">): Promise<{ signKey?: KeyObject; verifyKey: KeyObject }> {
  const { signMethod, publicKeyPath, privateKeyPath } = options;
  const privatePem = privateKeyPath === undefined ? undefined : await readKeyFile(privateKeyPath, "priv-key");
  if (signMethod.startsWith("HS")) {
    if (privatePem === undefined) throw new Error(`auth: missing key data (--auth-token priv-key, the shared secret, for ${signMethod})`);
    const secret = createSecretKey(privatePem);
    return { signKey: secret, verifyKey: secret };
  }
  const signKey = privatePem === undefined ? undefined : parseKey(() => createPrivateKey(privatePem), "priv-key", privateKeyPath);
  const publicPem = publicKeyPath === undefined ? undefined : await readKeyFile(publicKeyPath, "pub-key");
  const verifyKey = publicPem === undefined ? undefined : parseKey(() => publicKeyOf(publicPem), "pub-key", publicKeyPath);
  if (verifyKey === undefined && signKey === undefined) throw new Error(`auth: missing key data (--auth-token pub-key, priv-key or both for ${signMethod})`);
  for (const [key, option] of [[signKey, "priv-key"], [verifyKey, "pub-key"]] as const) if (key !== undefined) checkKeyFitsMethod(key, signMethod, option);
  // priv-key alone: its public half verifies, as etcd verifies with the private key's PublicKey.
  return { ...(signKey === undefined ? {} : { signKey }), verifyKey: verifyKey ?? createPublicKey(signKey as KeyObject) };
}

async function readKeyFile(path: string, option: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new Error(`auth: cannot read --auth-token ${option} ${path}: ${(error as Error).message}`);
  }
}

function parseKey(parse: () => KeyObject, option: string, path: string | undefined): KeyObject {
  try {
    return parse();
  } catch (error) {
    throw new Error(`auth: --auth-token ${option} ${path} is not a PEM key${option === "pub-key" ? " or certificate" : ""}: ${(error as Error).message}`);
  }
}

function publicKeyOf(pem: Buffer): KeyObject {
  // Go reads the first PEM block only; a certificate chain's first is the certificate itself.
  if (pem.includes("-----BEGIN CERTIFICATE-----")) return new X509Certificate(pem).publicKey;
  return createPublicKey(pem);
}

function checkKeyFitsMethod(key: KeyObject, signMethod: string, option: string): void {
  const type = key.asymmetricKeyType;
  const fits = signMethod.startsWith("ES")
    ? type === "ec" && key.asymmetricKeyDetails?.namedCurve === curveOfMethod[signMethod]
    : type === "rsa" || (signMethod.startsWith("PS") && type === "rsa-pss");
  if (!fits) {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    throw new Error(`auth: --auth-token ${option} is a ${type}${curve === undefined ? "" : ` ${curve}`} key, which cannot be used with sign-method ${signMethod}`);
  }
}
