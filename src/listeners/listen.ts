/** Binds a server and reports the bound address; later errors are logged, never thrown. */
import type net from 'node:net';
import type { Logger } from 'pino';

export async function listenOn(
  server: net.Server,
  port: number,
  host: string,
  logger: Logger,
  what = 'listener',
): Promise<{ port: number; host: string }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, `${what} error`));
  const addr = server.address() as net.AddressInfo;
  return { port: addr.port, host: addr.address };
}
