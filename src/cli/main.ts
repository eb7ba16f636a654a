/**
 * The `skein` command line. Thin: parses arguments and calls into the composition root.
 *   skein start [-c FILE] [-p PORT] [--host ADDR] [--data-dir DIR] [--log-level L] [--node-id ID]
 *               [--redis URL | --sentinels H:P,...] [--health-port PORT]
 *   skein cluster up|status ...      (src/cli/cluster.ts)
 *   skein lb-config ...              (src/cli/cluster.ts)
 *   skein passwd [-c|-D] [-b] FILE USER [PASSWORD]   (src/cli/passwd.ts)
 *   skein --version | --help
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/load.js';
import { isClustered, startNode } from '../node.js';
import { createLogger } from '../log.js';
import { warmUp } from '../runtime/warmup.js';
import { adaptYoungGeneration } from '../runtime/young-generation.js';
import { clusterCommand, lbConfigCommand } from './cluster.js';
import { passwdCommand } from './passwd.js';
import { VERSION } from '../version.js';

const HELP = `skein ${VERSION} - high-availability MQTT broker

Usage:
  skein start [options]     start a broker node (embedded store, no Redis needed)
  skein cluster up --nodes N [--base-port 1883] [--sentinel]
                            try a cluster on this machine: Redis, N nodes, HAProxy
  skein cluster status [--redis URL | --sentinels LIST]
                            nodes, clients per node and the lease holder, from Redis
  skein lb-config --nodes HOST:PORT,... [--kind haproxy|nginx] [--listen PORT]
                  [--tls-listen 8883 --tls-cert FILE] [--health-port PORT]
                  [--keepalive SECONDS] [--proxy-protocol]
                            print a load balancer configuration for the nodes
  skein passwd [-H sha512-pbkdf2|sha512] [-I N] [-c | -D] [-b] FILE USER [PASSWORD]
                            add, change (-c: new file) or delete (-D) a user of a
                            Mosquitto-format password file (auth.passwordFile)
  skein --version           print the version
  skein --help              print this help

Options for start:
  -c, --config FILE         YAML or JSON configuration file (also SKEIN_CONFIG), or a
                            Mosquitto configuration (*.conf): its options are mapped onto
                            Skein's, with a warning per option that is not supported
  -p, --port PORT           port of the first listener (default 1883)
      --host ADDR           bind address of the first listener (default 0.0.0.0)
      --data-dir DIR        directory of the embedded store (default ./data)
      --log-level LEVEL     fatal|error|warn|info|debug|trace|silent (default info)
      --node-id ID          name of this node (unique in a cluster)
      --redis URL           join a cluster whose shared state is in Redis, e.g. redis://127.0.0.1:6379
      --sentinels LIST      or reach Redis through Sentinel: host:port[,host:port...]
      --sentinel-name NAME  name of the Sentinel-monitored primary (default mymaster)
      --health-port PORT    HTTP /live, /ready, POST /drain on this port (default 0 = off)

In a cluster, SIGTERM drains the node: readiness fails, clients are moved away at
cluster.drainRate per second (MQTT 5: DISCONNECT 0x8B with another node as Server
Reference), then the process exits. SIGHUP re-reads auth.passwordFile and
auth.aclFile (subscriptions no longer allowed are removed) and the TLS certificate,
key, CA and CRL files of mqtts/wss listeners (open connections keep theirs).

Every configuration key can also be set from the environment, e.g.
SKEIN_LIMITS__MAX_PACKET_SIZE=2MiB or SKEIN_LOG_LEVEL=debug. See src/config/README.md.
`;

export async function main(argv: string[]): Promise<number> {
  // Subcommands with their own options.
  if (argv[0] === 'cluster') return clusterCommand(argv.slice(1));
  if (argv[0] === 'lb-config') return lbConfigCommand(argv.slice(1));
  if (argv[0] === 'passwd') return passwdCommand(argv.slice(1));
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        port: { type: 'string', short: 'p' },
        host: { type: 'string' },
        'data-dir': { type: 'string' },
        'log-level': { type: 'string' },
        'node-id': { type: 'string' },
        redis: { type: 'string' },
        sentinels: { type: 'string' },
        'sentinel-name': { type: 'string' },
        'health-port': { type: 'string' },
        version: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    process.stderr.write(`skein: ${(err as Error).message}\nTry 'skein --help'.\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const command = positionals[0];
  if (values.help || command === 'help' || command === undefined) {
    process.stdout.write(HELP);
    return command === undefined && !values.help ? 2 : 0;
  }
  if (command !== 'start') {
    process.stderr.write(`skein: unknown command '${command}'\nTry 'skein --help'.\n`);
    return 2;
  }
  let config;
  try {
    config = loadConfig({
      file: values.config,
      flags: {
        port: values.port,
        host: values.host,
        dataDir: values['data-dir'],
        logLevel: values['log-level'],
        nodeId: values['node-id'],
        redis: values.redis,
        sentinels: values.sentinels,
        sentinelName: values['sentinel-name'],
        healthPort: values['health-port'],
      },
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 78; // EX_CONFIG
    }
    throw err;
  }
  const logger = createLogger(config.logLevel, { name: 'skein' });
  // Process-level tuning belongs to the executable, not to startNode (which tests embed). The
  // warm-up runs while the young generation is still frozen (bin/skein.js), so its load does not
  // grow it for the node.
  if (config.warmup.enabled) {
    // Nothing real has started yet: SIGINT / SIGTERM during the warm-up just end the process.
    const quit = (sig: NodeJS.Signals): void => process.exit(sig === 'SIGINT' ? 130 : 143);
    process.once('SIGINT', quit);
    process.once('SIGTERM', quit);
    const r = await warmUp(config, config.warmup.timeoutMs);
    process.off('SIGINT', quit);
    process.off('SIGTERM', quit);
    if (r.stoppedEarly !== undefined) logger.warn({ ms: r.ms, rounds: r.rounds, reason: r.stoppedEarly }, 'warm-up stopped early');
    else logger.info({ ms: r.ms, rounds: r.rounds, delivered: r.delivered }, 'warm-up done');
  }
  adaptYoungGeneration(config.limits.youngGenerationSize);
  let node;
  try {
    node = await startNode(config, { logger });
  } catch (err) {
    process.stderr.write(`skein: could not start: ${(err as Error).message}\n`);
    return 1;
  }
  // Print where to connect on stdout (logs go to stderr), so scripts and tests can read it. A
  // reader that went away (`skein start | head -1`) must not take the broker down: the write's
  // EPIPE would otherwise be an uncaught 'error' event, and the process die at start.
  process.stdout.on('error', () => undefined);
  node.addresses.forEach((a, i) => {
    const l = config.listeners[i]!;
    const path = l.protocol === 'ws' || l.protocol === 'wss' ? l.path || '/' : '';
    process.stdout.write(`skein listening on ${l.protocol}://${a.host}:${a.port}${path}\n`);
  });
  if (node.health) process.stdout.write(`skein health on http://${node.health.host}:${node.health.port}/ready\n`);
  return await new Promise<number>((resolve) => {
    // POST /drain on the health endpoint stops the node too: exit when it is done.
    void node.stopped.then((err) => {
      if (err) node.logger.error({ err }, 'shutdown failed');
      resolve(err ? 1 : 0);
    });
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        node.logger.warn({ signal: sig }, 'second signal, exiting now');
        resolve(130);
        return;
      }
      node.logger.info({ signal: sig }, 'signal received');
      // A cluster node drains first: allow for it at the configured rate.
      const drainMs = isClustered(config) ? Math.ceil((node.broker.targets.size / config.cluster.drainRate) * 1000) + 1000 : 0;
      const timer = setTimeout(() => {
        node.logger.error('shutdown timed out');
        resolve(1);
      }, config.shutdownTimeoutMs + drainMs);
      timer.unref();
      node.stop().then(
        () => resolve(0),
        (err) => {
          node.logger.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    // SIGHUP: re-read the password and ACL files (subscriptions no longer allowed are removed).
    process.on('SIGHUP', () => {
      node.logger.info({ signal: 'SIGHUP' }, 'reloading');
      node.reload().then(
        (removed) => node.logger.info({ removedSubscriptions: removed }, 'reloaded'),
        (err: unknown) => node.logger.error({ err }, 'reload failed'),
      );
    });
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // SIGHUP also re-reads the TLS certificates (as Mosquitto does); failures are logged and
    // the listener keeps its previous ones.
    process.on('SIGHUP', () => void node.reloadTls());
  });
}
