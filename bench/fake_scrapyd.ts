// Many simulated Scrapyd-compatible nodes in one process, for master benchmarks: node i lives
// under http://127.0.0.1:PORT/nI and answers the calls a heartbeat and a dispatch make.
// Run: tsx bench/fake_scrapyd.ts  (prints "fake scrapyd on PORT")
import { createServer } from 'node:http';

const ok = (payload: Record<string, unknown>) => JSON.stringify({ ...payload, status: 'ok', node_name: 'fake' });
const metrics = () => ({
  time: Date.now() / 1000, cpu_percent: 10 + Math.random() * 20, cpu_count: 8, load: [0.5, 0.4, 0.3],
  memory: { total_bytes: 16e9, used_bytes: 4e9, available_bytes: 12e9, used_percent: 25 },
  disks: [{ mount: '/', size_bytes: 1e12, used_bytes: 3e11, used_percent: 30 }],
  network: { rx_bytes_per_sec: 1000, tx_bytes_per_sec: 500 }, uptime_seconds: 1000, daemon_uptime_seconds: 100,
  running: 0, pending: 0, max_proc: 8,
});
let scheduled = 0;

const server = createServer((req, res) => {
  const path = (req.url ?? '').split('?')[0]!.replace(/^\/n\d+/, '');
  const send = (body: string) => { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end(body + '\n'); };
  req.resume();
  req.on('end', () => {
    switch (path) {
      case '/daemonstatus.json': return send(ok({ pending: 0, running: 0, finished: 0 }));
      case '/metrics.json': return send(ok(metrics()));
      case '/listjobs.json': return send(ok({ pending: [], running: [], finished: [] }));
      case '/listprojects.json': return send(ok({ projects: [] }));
      case '/listversions.json': return send(ok({ versions: [] }));
      case '/listspiders.json': return send(ok({ spiders: ['s'] }));
      case '/addversion.json': return send(ok({ project: 'p', version: 'v', spiders: 1 }));
      case '/schedule.json': scheduled++; return send(ok({ jobid: `job${scheduled}` }));
      default: res.writeHead(404); res.end();
    }
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  console.log(`fake scrapyd on ${typeof addr === 'object' && addr ? addr.port : '?'}`);
});
