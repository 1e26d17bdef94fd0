// A member whose certificate a peer refuses (--peer-cert-allowed-cn or
// --peer-cert-allowed-hostname) hears why, as under etcd 3.4, where Go's
// bad_certificate alert makes the refused member log "remote error: tls: bad
// certificate" (etcd's e2e TestEtcdPeerCNAuth waits for that line). Node
// cannot fail the handshake on those checks, so the refusing side sends an
// HTTP/2 GOAWAY (INADEQUATE_SECURITY, "bad certificate") and nothing else
// (runtime/node/peer-refusal.ts). Checked here: the frame reader.
import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeGoaway } from "../../runtime/node/h2-frame-guard.ts";
import {
  certificateRefusalCode,
  certificateRefusalDebugData,
  holdsCertificateRefusal,
  isCertificateRefusal,
  serverRefusalFrames,
} from "../../runtime/node/peer-refusal.ts";

const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const emptySettings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
const refusalGoaway = encodeGoaway(0, certificateRefusalCode, "bad certificate");

test("the frame reader finds a client's refusal GOAWAY after its preface and other frames, and nothing else", () => {
  assert.ok(holdsCertificateRefusal(Buffer.concat([preface, emptySettings, refusalGoaway])));
  const headers = Buffer.concat([Buffer.from([0, 0, 3, 1, 4, 0, 0, 0, 1]), Buffer.from([0x82, 0x86, 0x84])]);
  assert.ok(holdsCertificateRefusal(Buffer.concat([preface, emptySettings, headers, refusalGoaway])));
  // A refusal needs the exact code and debug data; a cut-off frame is not one yet.
  assert.ok(!holdsCertificateRefusal(Buffer.concat([preface, emptySettings, encodeGoaway(0, 0, "bad certificate")])));
  assert.ok(!holdsCertificateRefusal(Buffer.concat([preface, emptySettings, encodeGoaway(0, certificateRefusalCode, "too_many_pings")])));
  const whole = Buffer.concat([preface, emptySettings, refusalGoaway]);
  assert.ok(!holdsCertificateRefusal(whole.subarray(0, whole.length - 1)));
  // Not HTTP/2 at all.
  assert.ok(!holdsCertificateRefusal(Buffer.concat([Buffer.from("GET / HTTP/1.1\r\n\r\n"), refusalGoaway])));
  assert.ok(!holdsCertificateRefusal(new Uint8Array(0)));
  // A length field larger than the bytes read never reads past them.
  assert.ok(!holdsCertificateRefusal(Buffer.concat([preface, Buffer.from([0xff, 0xff, 0xff, 7, 0, 0, 0, 0, 0])])));
});

test("a server's refusal is its empty SETTINGS then the GOAWAY", () => {
  assert.deepEqual(serverRefusalFrames(), Buffer.concat([emptySettings, refusalGoaway]));
  assert.ok(isCertificateRefusal(certificateRefusalCode, certificateRefusalDebugData));
  assert.ok(!isCertificateRefusal(certificateRefusalCode, undefined));
});
