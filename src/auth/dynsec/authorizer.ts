/**
 * `DynsecAuthorizer`: the broker's `Authorizer` over the current Dynamic Security state.
 * Authentication as the plugin's basic-auth callback (`auth.c`), ACL checks as `acl.c` (see
 * state.ts). The `decide*` methods return Mosquitto's three outcomes (`defer` = dynsec does not
 * know this client, another authorizer of a chain may decide) for whoever composes authorizers;
 * the `Authorizer` methods treat `defer` as a refusal, like Mosquitto with no other plugin.
 */
import type { AuthResult, Authorizer, ClientIdentity, ConnectCredentials } from '../types.js';
import { CONTROL_TOPIC } from './commands.js';
import { checkAcl, emptyState, verifyPassword, type Decision, type DynsecState } from './state.js';

/** Client id of the internal command handler (U+0000 cannot appear in an MQTT client id). */
export const INTERNAL_CLIENT_ID = '\u0000dynsec';

const NOT_AUTHORIZED = 0x87;

export interface DynsecAuthorizerOptions {
  /** Let clients without a username connect (Mosquitto `allow_anonymous`; default false). Their
   *  access is the anonymous group's roles, then the default access. */
  allowAnonymous?: boolean;
}

export class DynsecAuthorizer implements Authorizer {
  /** Replaced as a whole by the service on every change (never mutated in place). */
  state: DynsecState = emptyState();
  /** False until the service has loaded the state: everything is refused until then. */
  ready = false;
  allowAnonymous: boolean;

  constructor(opts: DynsecAuthorizerOptions = {}) {
    this.allowAnonymous = opts.allowAnonymous ?? false;
  }

  async decideConnect(creds: ConnectCredentials): Promise<Decision> {
    if (!this.ready) return 'deny';
    if (creds.username === undefined) return this.allowAnonymous ? 'allow' : 'defer';
    const client = this.state.clients.get(creds.username);
    // A user name from a verified TLS certificate: no password check (Mosquitto
    // `use_identity_as_username`); a disabled dynsec client stays out.
    if (creds.certificateUsername) return client?.disabled ? 'deny' : 'allow';
    if (!client) return 'defer';
    if (client.disabled) return 'deny';
    if (client.clientid !== undefined && client.clientid !== creds.clientId) return 'deny';
    if (!client.password || !creds.password) return 'deny';
    const pw = client.password;
    return (await verifyPassword(pw, creds.password)) ? 'allow' : 'deny';
  }

  async authenticate(creds: ConnectCredentials): Promise<AuthResult> {
    const d = await this.decideConnect(creds);
    return d === 'allow' ? { reasonCode: 0 } : { reasonCode: NOT_AUTHORIZED, reasonString: 'not authorized' };
  }

  decidePublish(client: ClientIdentity, topic: string): Decision {
    if (!this.ready) return 'deny';
    return checkAcl(this.state, client.username, 'publishClientSend', topic);
  }

  decideSubscribe(client: ClientIdentity, filter: string): Decision {
    if (client.clientId === INTERNAL_CLIENT_ID) return 'allow';
    if (!this.ready) return 'deny';
    return checkAcl(this.state, client.username, 'subscribe', filter);
  }

  decideUnsubscribe(client: ClientIdentity, filter: string): Decision {
    if (!this.ready) return 'deny';
    return checkAcl(this.state, client.username, 'unsubscribe', filter);
  }

  decideDelivery(client: ClientIdentity, topic: string): Decision {
    // Commands go to the command handler only (Mosquitto hands `$CONTROL` publishes to the
    // plugin, never to subscribers).
    if (client.clientId === INTERNAL_CLIENT_ID) return topic === CONTROL_TOPIC ? 'allow' : 'deny';
    if (topic === CONTROL_TOPIC) return 'deny';
    if (!this.ready) return 'deny';
    return checkAcl(this.state, client.username, 'publishClientReceive', topic);
  }

  authorizePublish(client: ClientIdentity, topic: string): boolean {
    return this.decidePublish(client, topic) === 'allow';
  }
  authorizeSubscribe(client: ClientIdentity, filter: string): boolean {
    return this.decideSubscribe(client, filter) === 'allow';
  }
  /** Not called by the broker today (the `Authorizer` interface has no unsubscribe check). */
  authorizeUnsubscribe(client: ClientIdentity, filter: string): boolean {
    return this.decideUnsubscribe(client, filter) === 'allow';
  }
  authorizeDelivery(client: ClientIdentity, topic: string): boolean {
    return this.decideDelivery(client, topic) === 'allow';
  }
}
