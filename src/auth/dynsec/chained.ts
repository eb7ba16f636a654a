/**
 * `DynsecChainAuthorizer`: Dynamic Security together with the built-in files (password file, ACL
 * file; also JWT and the HTTP hook of `../chain.ts`), in Mosquitto 2.0's order. Mosquitto loads
 * plugins first and appends its `password_file` / `acl_file` checks to the same callback lists
 * afterwards (`mosquitto_security_init`: plugins, then `mosquitto_security_init_default`), and
 * asks the list in order until one does not defer (`plugin__unpwd_check`, `plugin__acl_check`):
 *
 * CONNECT: dynsec first. A client dynsec knows is decided by it (wrong password, disabled,
 *   client id mismatch: 0x87 / 5). A user name dynsec does not know (and an anonymous client when
 *   `auth.allowAnonymous` is off) goes to the chain: the password file, JWT, the HTTP hook. When
 *   the chain has no authenticator (only an ACL file), such a client is refused.
 * PUBLISH / SUBSCRIBE / delivery: dynsec first (its roles, groups, then default access); when it
 *   defers (user name unknown to dynsec, or default access denies) the ACL file and the client's
 *   own rules (JWT / HTTP) decide; no rule anywhere = refused (all deferred is a denial).
 *
 * `$CONTROL/dynamic-security/#` stays dynsec's: the internal command client is decided by dynsec
 * only, and commands are never delivered to subscribers.
 */
import type { ChainAuthorizer, ReloadableAuthorizer } from '../chain.js';
import { READ, WRITE } from '../acl-file.js';
import type { AuthResult, ClientIdentity, ConnectCredentials } from '../types.js';
import { INTERNAL_CLIENT_ID, type DynsecAuthorizer } from './authorizer.js';
import type { Decision } from './state.js';

const NOT_AUTHORIZED = 0x87;

export class DynsecChainAuthorizer implements ReloadableAuthorizer {
  constructor(
    readonly dynsec: DynsecAuthorizer,
    readonly chain: ChainAuthorizer,
  ) {}

  /** Re-reads the chain's files (the dynsec document reloads itself). */
  reload(): Promise<void> {
    return this.chain.reload();
  }

  async authenticate(creds: ConnectCredentials): Promise<AuthResult> {
    const d = await this.dynsec.decideConnect(creds);
    if (d === 'allow') {
      // Rules left by an earlier connection of this client id through the chain do not apply.
      this.chain.forget(creds.clientId);
      return { reasonCode: 0 };
    }
    if (d === 'deny' || !this.dynsec.ready) return { reasonCode: NOT_AUTHORIZED, reasonString: 'not authorized' };
    if (!this.chain.hasAuthenticators) {
      // Only an ACL file besides dynsec: nobody else can vouch for this client.
      return { reasonCode: NOT_AUTHORIZED, reasonString: 'not authorized' };
    }
    return this.chain.authenticate(creds);
  }

  private combine(client: ClientIdentity, d: Decision, topic: string, access: typeof READ | typeof WRITE, subscribe: boolean): boolean {
    if (d !== 'defer') return d === 'allow';
    if (client.clientId === INTERNAL_CLIENT_ID || !this.dynsec.ready) return false;
    return this.chain.decideAcl(client, topic, access, subscribe) === 'allow';
  }

  authorizePublish(client: ClientIdentity, topic: string): boolean {
    return this.combine(client, this.dynsec.decidePublish(client, topic), topic, WRITE, false);
  }

  authorizeSubscribe(client: ClientIdentity, filter: string): boolean {
    return this.combine(client, this.dynsec.decideSubscribe(client, filter), filter, READ, true);
  }

  authorizeDelivery(client: ClientIdentity, topic: string): boolean {
    return this.combine(client, this.dynsec.decideDelivery(client, topic), topic, READ, false);
  }
}
