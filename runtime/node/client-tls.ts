// Turns the client TLS settings (src/server/client-tls.ts) into what the TLS
// listener takes: reads the PEM files, or makes a self-signed pair for
// --auto-tls, and checks --client-cert-allowed-hostname after the handshake.
import { readFileSync } from "node:fs";
import * as tls from "node:tls";
import type { ClientTlsSettings } from "../../src/server/client-tls.ts";
import type { TlsListenOptions } from "./http-listener.ts";
import { selfSignedCertificate } from "./self-signed-certificate.ts";
import { peerCertificateRevoked, revokedSerials } from "./crl.ts";

/**
 * Go's crypto/tls keeps its TLS 1.3 suites whatever --cipher-suites says
 * (etcd's list covers TLS 1.2 only); OpenSSL takes both from one string, so
 * the TLS 1.3 defaults are named alongside the operator's list.
 */
const tls13CipherSuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

export function clientTlsListenOptions(settings: ClientTlsSettings): TlsListenOptions {
  const pair =
    settings.certFile !== undefined && settings.keyFile !== undefined
      ? { cert: readFileSync(settings.certFile), key: readFileSync(settings.keyFile) }
      : generatedPair(settings.autoTlsHosts ?? []);
  const secureOptions: tls.TlsOptions = {
    ...pair,
    // etcd 3.4's floor (pkg/transport baseConfig).
    minVersion: "TLSv1.2",
    requestCert: settings.requireClientCertificate,
    rejectUnauthorized: settings.requireClientCertificate,
    ...(settings.trustedCaFile === undefined ? {} : { ca: readFileSync(settings.trustedCaFile) }),
    ...(settings.cipherSuites.length === 0 ? {} : { ciphers: [...settings.cipherSuites, tls13CipherSuites].join(":") }),
  };
  const { allowedHostname, crlFile } = settings;
  if (crlFile !== undefined) revokedSerials(readFileSync(crlFile)); // a list that does not parse stops the start
  if (allowedHostname === undefined && crlFile === undefined) return { secureOptions };
  return {
    secureOptions,
    acceptPeer: (socket) =>
      (allowedHostname === undefined || certificateAllowsHostname(socket, allowedHostname)) && (crlFile === undefined || !peerCertificateRevoked(socket, crlFile)),
  };
}

function generatedPair(hosts: readonly string[]): { cert: string; key: string } {
  const pair = selfSignedCertificate(hosts);
  return { cert: pair.certificatePem, key: pair.keyPem };
}

/**
 * etcd's check (pkg/transport baseConfig): the verified client certificate must
 * be valid for the hostname, by Go's VerifyHostname rules (SANs). Node's
 * checkServerIdentity applies the same rules to a peer certificate.
 */
function certificateAllowsHostname(socket: tls.TLSSocket, hostname: string): boolean {
  const certificate = socket.getPeerCertificate();
  if (certificate === null || Object.keys(certificate).length === 0) return false;
  return tls.checkServerIdentity(hostname, certificate) === undefined;
}
