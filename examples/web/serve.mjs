// The web example's server, also the browser tests' page origin: static files under URL
// prefixes, and /v1/* forwarded to a collector, so the page and its uploads share one origin
// (a first-party collection path, which also spares the collector CORS).
//
//   node examples/web/serve.mjs            # after `bash wasm/build.sh`
//
// starts a collector (the release build, micro mode) and serves this page on
// http://127.0.0.1:8000; watch what arrives at http://127.0.0.1:8000/micro/good.
import { spawn } from 'node:child_process';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { createInterface } from 'node:readline';

const TYPES = {
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.html': 'text/html',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
  '.png': 'image/png',
};

function serveFile(res, root, path) {
  const file = normalize(join(root, path));
  if (!file.startsWith(root) || !existsSync(file) || !statSync(file).isFile()) {
    res.writeHead(404).end();
    return;
  }
  // Revalidated on every load, so a rebuilt package is seen at once; not `no-store`, which
  // would keep pages out of the back/forward cache.
  res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
  createReadStream(file).pipe(res);
}

/**
 * Serves `roots` (URL prefix -> directory, longest prefix first) and forwards the
 * collector's paths (`/v1/*`, `/micro/*`) to `collectorUrl`.
 */
export async function startSite(collectorUrl, roots, port = 0) {
  const target = new URL(collectorUrl);
  const prefixes = Object.keys(roots).sort((a, b) => b.length - a.length);
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path.startsWith('/v1/') || path.startsWith('/micro/')) {
      const upstream = request(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
      return;
    }
    const prefix = prefixes.find((p) => path.startsWith(p));
    if (prefix === undefined) res.writeHead(404).end();
    else serveFile(res, roots[prefix], path.slice(prefix.length) || 'index.html');
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}

/** Starts `binary serve --micro` on an ephemeral port; resolves with its URL and process. */
export async function startMicroCollector(binary, extraArgs = []) {
  const child = spawn(binary, ['serve', '--micro', '--listen', '127.0.0.1:0', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`collector exited with ${code}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /listening on (\S+)/.exec(line);
      if (m !== null) resolve(`http://${m[1]}`);
    });
  });
  return { url, child };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const repo = new URL('../..', import.meta.url).pathname;
  const target = process.env.CARGO_TARGET_DIR ?? join(repo, 'target');
  const binary = join(target, 'release/sightline-collector');
  if (!existsSync(binary) || !existsSync(join(repo, 'wasm/js/dist/index.js'))) {
    console.error('build first: cargo build --release -p sightline-collector && bash wasm/build.sh');
    process.exit(1);
  }
  const collector = await startMicroCollector(binary, ['--app-key', 'demo-key']);
  const site = await startSite(
    collector.url,
    { '/sdk/': join(repo, 'wasm/js/dist'), '/': join(repo, 'examples/web') },
    Number(process.env.PORT ?? 8000),
  );
  console.log(`open ${site.url}/ (collector ${collector.url}; rows at ${site.url}/micro/good)`);
  const stop = async () => {
    await site.stop();
    collector.child.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
