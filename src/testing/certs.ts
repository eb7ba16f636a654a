/**
 * Test certificates made with the `openssl` command into a directory: a CA, server certificates
 * for 127.0.0.1/localhost, client certificates signed by the CA and one signed by another CA.
 * EC P-256 keys (fast to make). `makeTestRevocation` adds a revoked client certificate and the
 * CA's CRL (`openssl ca`). Tests only.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  ca: string;
  /** Server certificate and key for 127.0.0.1 / localhost. */
  serverCert: string;
  serverKey: string;
  /** Client certificate CN=alice signed by the CA. */
  clientCert: string;
  clientKey: string;
  /** Client certificate CN=mallory signed by another CA. */
  otherClientCert: string;
  otherClientKey: string;
  /** Another server certificate (same CA) for reload tests; `server2.pem` / `server2.key`. */
  server2Cert: string;
  server2Key: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
}

function makeCa(dir: string, name: string, cn: string): void {
  openssl(dir, [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/O=Skein tests/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

function makeLeaf(dir: string, name: string, subject: string, ca: string, ext: string): void {
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
  writeFileSync(join(dir, `${name}.ext`), ext);
  const serial = '0x' + Math.floor(Math.random() * 2 ** 48).toString(16);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-set_serial', serial, '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`]);
}

const SERVER_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n';
const CLIENT_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n';

/** Makes the whole set in `dir` (takes well under a second). */
export function makeTestPki(dir: string): TestPki {
  makeCa(dir, 'ca', 'Skein Test CA');
  makeCa(dir, 'otherca', 'Other CA');
  makeLeaf(dir, 'server', '/CN=localhost', 'ca', SERVER_EXT);
  makeLeaf(dir, 'server2', '/CN=localhost', 'ca', SERVER_EXT);
  makeLeaf(dir, 'client', '/O=Skein tests/OU=devices/CN=alice', 'ca', CLIENT_EXT);
  makeLeaf(dir, 'other', '/CN=mallory', 'otherca', CLIENT_EXT);
  const p = (f: string) => join(dir, f);
  return {
    dir,
    ca: p('ca.pem'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
    otherClientCert: p('other.pem'),
    otherClientKey: p('other.key'),
    server2Cert: p('server2.pem'),
    server2Key: p('server2.key'),
  };
}

export interface TestRevocation {
  /** Client certificate CN=revoked-client signed by the CA, then revoked. */
  revokedCert: string;
  revokedKey: string;
  /** Client certificate CN=good-client signed by the CA (not revoked). */
  goodCert: string;
  goodKey: string;
  /** PEM CRL signed by the CA listing `revokedCert` (`openssl ca -gencrl`). */
  crl: string;
  /** PEM CRL of the CA made before the revocation (lists nothing). */
  emptyCrl: string;
}

/**
 * Revokes a fresh client certificate with `openssl ca` (a minimal CA database in `dir/cadb`) and
 * writes the CA's CRL. Needs the CA of `makeTestPki(dir)`.
 */
export function makeTestRevocation(pki: TestPki): TestRevocation {
  const dir = pki.dir;
  const db = join(dir, 'cadb');
  mkdirSync(db, { recursive: true });
  writeFileSync(join(db, 'index.txt'), '');
  writeFileSync(join(db, 'crlnumber'), '01\n');
  const conf = [
    '[ ca ]',
    'default_ca = test_ca',
    '[ test_ca ]',
    `database = ${join(db, 'index.txt')}`,
    `new_certs_dir = ${db}`,
    `certificate = ${pki.ca}`,
    `private_key = ${join(dir, 'ca.key')}`,
    `crlnumber = ${join(db, 'crlnumber')}`,
    'default_md = sha256',
    'default_crl_days = 2',
    'unique_subject = no',
    '',
  ].join('\n');
  const confFile = join(db, 'ca.cnf');
  writeFileSync(confFile, conf);
  makeLeaf(dir, 'revoked', '/CN=revoked-client', 'ca', CLIENT_EXT);
  makeLeaf(dir, 'good', '/CN=good-client', 'ca', CLIENT_EXT);
  openssl(dir, ['ca', '-config', confFile, '-batch', '-gencrl', '-out', 'crl-empty.pem']);
  openssl(dir, ['ca', '-config', confFile, '-batch', '-revoke', 'revoked.pem', '-crl_reason', 'keyCompromise']);
  openssl(dir, ['ca', '-config', confFile, '-batch', '-gencrl', '-out', 'crl.pem']);
  const p = (f: string) => join(dir, f);
  return { revokedCert: p('revoked.pem'), revokedKey: p('revoked.key'), goodCert: p('good.pem'), goodKey: p('good.key'), crl: p('crl.pem'), emptyCrl: p('crl-empty.pem') };
}
