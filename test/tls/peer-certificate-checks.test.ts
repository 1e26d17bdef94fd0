// --peer-cert-allowed-cn and --peer-cert-allowed-hostname as etcd 3.4 checks a
// verified certificate (pkg/transport's VerifyPeerCertificate): the CN
// exactly; the hostname against the SANs, as a server name is checked.
// Certificates made by openssl (SAN IP:127.0.0.1).
import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { PeerCertificate } from "node:tls";
import { certificateRefusal, type PeerTlsMaterial } from "../../runtime/node/peer-tls.ts";
import { makeTestPki } from "./peer-certs.ts";

const pki = makeTestPki();
const memberCert = new X509Certificate(readFileSync(pki.issue("m1", "member").cert)).toLegacyObject() as PeerCertificate;

function material(allowed: Pick<PeerTlsMaterial, "allowedCn" | "allowedHostname">): PeerTlsMaterial {
  return { cert: Buffer.alloc(0), key: Buffer.alloc(0), ca: undefined, crlFile: undefined, requireClientCert: true, ...allowed };
}

test("no allowed CN or hostname: any verified certificate is taken", () => {
  assert.equal(certificateRefusal(material({ allowedCn: undefined, allowedHostname: undefined }), memberCert), undefined);
});

test("--peer-cert-allowed-cn: the CommonName must match exactly", () => {
  assert.equal(certificateRefusal(material({ allowedCn: "member", allowedHostname: undefined }), memberCert), undefined);
  assert.match(certificateRefusal(material({ allowedCn: "Member", allowedHostname: undefined }), memberCert) ?? "", /CommonName "member" is not "Member"/);
});

test("--peer-cert-allowed-hostname: a SAN must cover it", () => {
  assert.equal(certificateRefusal(material({ allowedCn: undefined, allowedHostname: "127.0.0.1" }), memberCert), undefined);
  assert.notEqual(certificateRefusal(material({ allowedCn: undefined, allowedHostname: "10.0.0.1" }), memberCert), undefined);
  assert.notEqual(certificateRefusal(material({ allowedCn: undefined, allowedHostname: "member" }), memberCert), undefined);
});

test("no certificate at all is refused when a CN or hostname is demanded", () => {
  assert.equal(certificateRefusal(material({ allowedCn: "member", allowedHostname: undefined }), undefined), "no certificate");
});
