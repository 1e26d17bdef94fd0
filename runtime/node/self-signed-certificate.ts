// A self-signed server certificate for --auto-tls, as etcd's transport.SelfCert
// makes one: ECDSA key, organisation "etcd", server auth, valid a year, the
// listen hosts as subject alternative names.
//
// node:crypto makes keys and signatures but no X.509, so the certificate is
// encoded here (DER, RFC 5280): about a hundred lines instead of a dependency
// (node-forge, @peculiar/x509) and no shelling out to openssl. Kept in memory:
// etcd writes its pair under <data-dir>/fixtures/client, but nothing reads it
// back, and a key that never touches disk cannot leak from it.
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { isIP } from "node:net";

export interface SelfSignedPair {
  certificatePem: string;
  keyPem: string;
}

/** etcd's self-signed certificates last one year (transport.SelfCert). */
export const selfSignedValidityMs = 365 * 24 * 60 * 60 * 1000;

/**
 * `random` (16 bytes; tests give their own) becomes the serial number: a
 * positive DER INTEGER in its minimal form. The first byte is kept within
 * 0x40..0x7f: a first byte of 0 would be padding DER forbids (OpenSSL refused
 * one start in 256 with "asn1 encoding routines::illegal padding"), 0x80 and up
 * a negative number.
 */
export function selfSignedCertificate(hosts: readonly string[], nowMs = Date.now(), random: Uint8Array = randomBytes(16)): SelfSignedPair {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const subjectPublicKeyInfo = publicKey.export({ type: "spki", format: "der" });
  const ecdsaWithSha256 = sequence(oid("1.2.840.10045.4.3.2"));
  const name = sequence(
    set(sequence(oid("2.5.4.10"), utf8("etcd"))),
    set(sequence(oid("2.5.4.3"), utf8("edgetcd auto-tls"))),
  );
  const serial = Buffer.from(random);
  serial[0] = ((serial[0] ?? 0) & 0x3f) | 0x40;
  const tbsCertificate = sequence(
    tagged(0xa0, integer(Buffer.from([2]))), // version 3
    integer(serial),
    ecdsaWithSha256,
    name,
    sequence(utcTime(new Date(nowMs - 60_000)), utcTime(new Date(nowMs + selfSignedValidityMs))),
    name,
    subjectPublicKeyInfo,
    tagged(0xa3, sequence(...extensions(hosts))),
  );
  const signature = sign("sha256", tbsCertificate, privateKey);
  const certificate = sequence(tbsCertificate, ecdsaWithSha256, bitString(signature));
  return {
    certificatePem: pem("CERTIFICATE", certificate),
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

function extensions(hosts: readonly string[]): Buffer[] {
  const names = [...new Set(hosts)].map((host) => {
    const version = isIP(host);
    if (version === 4) return tagged(0x87, Buffer.from(host.split(".").map(Number)));
    if (version === 6) return tagged(0x87, ipv6Bytes(host));
    return tagged(0x82, Buffer.from(host, "ascii"));
  });
  return [
    // keyUsage (critical): digitalSignature and keyEncipherment.
    sequence(oid("2.5.29.15"), boolean(true), octetString(Buffer.from([0x03, 0x02, 0x05, 0xa0]))),
    // extKeyUsage: serverAuth.
    sequence(oid("2.5.29.37"), octetString(sequence(oid("1.3.6.1.5.5.7.3.1")))),
    // basicConstraints (critical): not a CA.
    sequence(oid("2.5.29.19"), boolean(true), octetString(sequence())),
    ...(names.length === 0 ? [] : [sequence(oid("2.5.29.17"), octetString(sequence(...names)))]),
  ];
}

function ipv6Bytes(host: string): Buffer {
  const [head = "", tail = ""] = host.split("::");
  const groups = (part: string) => (part === "" ? [] : part.split(":").map((group) => parseInt(group, 16)));
  const start = groups(head);
  const end = host.includes("::") ? groups(tail) : [];
  const words = [...start, ...new Array<number>(8 - start.length - end.length).fill(0), ...end];
  const bytes = Buffer.alloc(16);
  words.forEach((word, index) => bytes.writeUInt16BE(word, index * 2));
  return bytes;
}

function tagged(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content]);
}

function length(bytes: number): Buffer {
  if (bytes < 0x80) return Buffer.from([bytes]);
  const digits: number[] = [];
  for (let rest = bytes; rest > 0; rest = Math.floor(rest / 256)) digits.unshift(rest % 256);
  return Buffer.from([0x80 | digits.length, ...digits]);
}

const sequence = (...items: Buffer[]) => tagged(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tagged(0x31, Buffer.concat(items));
const integer = (bytes: Buffer) => tagged(0x02, bytes);
const boolean = (value: boolean) => tagged(0x01, Buffer.from([value ? 0xff : 0]));
const octetString = (bytes: Buffer) => tagged(0x04, bytes);
const bitString = (bytes: Buffer) => tagged(0x03, Buffer.concat([Buffer.from([0]), bytes]));
const utf8 = (text: string) => tagged(0x0c, Buffer.from(text, "utf8"));

function utcTime(date: Date): Buffer {
  // UTCTime (YYMMDDHHMMSSZ) holds years 1950-2049, which covers a year from now until 2048.
  const text = date.toISOString().replace(/[-:T]/g, "").slice(2, 14) + "Z";
  return tagged(0x17, Buffer.from(text, "ascii"));
}

function oid(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split(".").map(Number);
  const bytes = [first * 40 + second];
  for (const arc of rest) {
    const base128 = [arc & 0x7f];
    for (let value = arc >>> 7; value > 0; value >>>= 7) base128.unshift((value & 0x7f) | 0x80);
    bytes.push(...base128);
  }
  return tagged(0x06, Buffer.from(bytes));
}

function pem(label: string, der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}
