/**
 * The `skein` command line. Thin: parses arguments and calls into the composition root.
 *   skein start [-c FILE] [-p PORT] [--host ADDR] [--data-dir DIR] [--log-level L] [--node-id ID]
 *   skein --version | --help
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/load.js';
import { startNode } from '../node.js';
import { VERSION } from '../version.js';

const HELP = `skein ${VERSION} - high-availability MQTT broker

Usage:
  skein start [options]     start a broker node (embedded store, no Redis needed)
  skein --version           print the version
  skein --help              print this help

Options for start:
  -c, --config FILE         YAML or JSON configuration file (also SKEIN_CONFIG)
  -p, --port PORT           port of the first listener (default 1883)
      --host ADDR           bind address of the first listener (default 0.0.0.0)
      --data-dir DIR        directory of the embedded store (default ./data)
      --log-level LEVEL     fatal|error|warn|info|debug|trace|silent (default info)
      --node-id ID          name of this node

Every configuration key can also be set from the environment, e.g.
SKEIN_LIMITS__MAX_PACKET_SIZE=2MiB or SKEIN_LOG_LEVEL=debug. See src/config/README.md.
`;

export async function main(argv: string[]): Promise<number> {
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
      },
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 78; // EX_CONFIG
    }
    throw err;
  }
  let node;
  try {
    node = await startNode(config);
  } catch (err) {
    process.stderr.write(`skein: could not start: ${(err as Error).message}\n`);
    return 1;
  }
  // Print where to connect on stdout (logs go to stderr), so scripts and tests can read it.
  for (const a of node.addresses) process.stdout.write(`skein listening on mqtt://${a.host}:${a.port}\n`);
  return await new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        node.logger.warn({ signal: sig }, 'second signal, exiting now');
        resolve(130);
        return;
      }
      node.logger.info({ signal: sig }, 'signal received');
      const timer = setTimeout(() => {
        node.logger.error('shutdown timed out');
        resolve(1);
      }, config.shutdownTimeoutMs);
      timer.unref();
      node.stop().then(
        () => resolve(0),
        (err) => {
          node.logger.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
