// --client-crl-file / --peer-crl-file as etcd checks them (pkg/transport
// checkCRL): after the handshake, the certificates the peer sent are looked up
// by serial number in the revocation list, read again for every connection
// (so a new list takes effect without a restart). Like etcd, neither the
// list's dates nor its signature are judged: OpenSSL's own CRL check refuses
// every client once the list's nextUpdate has passed, which etcd does not.
import { readFileSync } from "node:fs";
import type * as tls from "node:tls";
import { AsnConvert } from "@peculiar/asn1-schema";
import { CertificateList } from "@peculiar/asn1-x509";

/** A serial number as hex without sign padding (Go's big.Int Bytes()). */
function serialKey(hex: string): string {
  return hex.toLowerCase().replace(/^(00)+(?=.)/, "");
}

/** The revoked serial numbers of a CRL file, PEM or DER as etcd reads it. */
export function revokedSerials(bytes: Uint8Array): Set<string> {
  const text = Buffer.from(bytes.subarray(0, 64)).toString("latin1");
  const der = text.includes("-----BEGIN")
    ? Buffer.from(Buffer.from(bytes).toString("latin1").replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64")
    : Buffer.from(bytes);
  const list = AsnConvert.parse(der, CertificateList);
  return new Set((list.tbsCertList.revokedCertificates ?? []).map((entry) => serialKey(Buffer.from(entry.userCertificate).toString("hex"))));
}

/** Whether any certificate the peer sent (its own and the chain) is revoked by the CRL file at `path`. */
export function peerCertificateRevoked(socket: tls.TLSSocket, path: string): boolean {
  let revoked: Set<string>;
  try {
    revoked = revokedSerials(readFileSync(path));
  } catch {
    // An unreadable or malformed list refuses the connection, as etcd's checkCRL error does.
    return true;
  }
  let certificate: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  const seen = new Set<string>();
  while (certificate !== undefined && certificate !== null && Object.keys(certificate).length > 0 && !seen.has(certificate.fingerprint256)) {
    seen.add(certificate.fingerprint256);
    if (revoked.has(serialKey(certificate.serialNumber))) return true;
    certificate = certificate.issuerCertificate;
  }
  return false;
}
