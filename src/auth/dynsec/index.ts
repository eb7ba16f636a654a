/** Mosquitto-compatible Dynamic Security: see README.md in this folder. */
export { DynsecAuthorizer, INTERNAL_CLIENT_ID, type DynsecAuthorizerOptions } from './authorizer.js';
export { DynsecChainAuthorizer } from './chained.js';
export { startDynsec, type DynsecService, type StartDynsecOptions, type DynsecRedis } from './service.js';
export { runCommands, COMMANDS, CONTROL_TOPIC, RESPONSE_TOPIC } from './commands.js';
export { parseState, serializeState, initialState, checkAcl, type DynsecState } from './state.js';
