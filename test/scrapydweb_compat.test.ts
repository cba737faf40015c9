// ScrapydWeb 1.6.0, unchanged, pointed at a slave and at the master: the exact requests it makes
// (the URLs it builds from SCRAPYD_SERVER, with HTTP basic auth) and the regexes it parses the
// answers with (test/helpers/scrapydweb_patterns.ts, pasted from its v1.6.0 source), against real
// daemons and a real Scrapy crawl. The same checks run against both targets.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { findall } from './helpers/python_re.ts';
import {
  HREF_NAME_PATTERN, HREF_PATTERN, JOB_KEYS, THEAD_SUB, V16_DIRECTORY_KEYS, V16_DIRECTORY_PATTERN, V16_JOB_PATTERN, V16_JOBS_PAGE_CHECK,
  V16_LOG_EXTENSIONS, V16_LOGPARSER_VERSION,
} from './helpers/scrapydweb_patterns.ts';
import { ADMIN, basic, CLUSTER_TOKEN, startMaster, type MasterHandle } from './helpers/master_process.ts';
import { FAST_MASTER_ARGS, joinSlave, waitNodeStatus } from './helpers/master_slave_pair.ts';
import { getJson, postForm, startSlave, tempDir, waitFor, type Json, type SlaveHandle } from './helpers/slave_process.ts';
import { buildDemoEgg } from './helpers/fixtures.ts';
import { loginByHttp } from './helpers/browser.ts';

const zip = (keys: string[], row: string[]): Record<string, string> => Object.fromEntries(keys.map((k, i) => [k, row[i] ?? '']));

/** JobsView.dispatch_request(): the check, the thead removal, JOB_PATTERN, and the status rule of handle_jobs_with_db(). */
function jobsAsScrapydWebSeesThem(html: string): Array<Record<string, string>> {
  assert.ok(html.search(V16_JOBS_PAGE_CHECK) !== -1, "ScrapydWeb 1.6 requires '<h1>Jobs</h1>'");
  return findall(V16_JOB_PATTERN, html.replace(THEAD_SUB, '')).map((row) => {
    const j = zip(JOB_KEYS, row);
    const href = (v: string) => (v ? [...v.matchAll(HREF_PATTERN)][0]?.[1] ?? v : '');
    return { ...j, href_log: href(j.href_log!), href_items: href(j.href_items!), status: !j.start ? 'pending' : !j.finish ? 'running' : 'finished' };
  });
}

/** LogsView / ItemsView: the check, DIRECTORY_PATTERN, HREF_NAME_PATTERN. */
function listingAsScrapydWebSeesIt(html: string, top: 'logs' | 'items') {
  assert.ok(html.includes(`Directory listing for /${top}/`), `ScrapydWeb requires 'Directory listing for /${top}/'`);
  return findall(V16_DIRECTORY_PATTERN, html).map((row) => {
    const r = zip(V16_DIRECTORY_KEYS, row);
    const m = [...r.filename!.matchAll(HREF_NAME_PATTERN)][0];
    assert.ok(m, `HREF_NAME_PATTERN must match ${r.filename}`);
    return { href: m[1]!, name: m[2]!, size: r.size! };
  });
}

interface Target { name: string; base: string; auth: Record<string, string> }

describe('ScrapydWeb 1.6.0 against a slave and against the master', () => {
  let master: MasterHandle;
  let slave: SlaveHandle;
  let targets: Target[];
  let finishedJob = '';
  let runningJob = '';
  const admin = { Authorization: basic(ADMIN.user, ADMIN.password) };

  before(async () => {
    master = await startMaster({ args: FAST_MASTER_ARGS });
    slave = await joinSlave(master, 'n1');
    // scrapy.cfg-style deploy through the master: it lands on the slave.
    const egg = await readFile(await buildDemoEgg(tempDir()));
    const form = new FormData();
    form.set('project', 'demo');
    form.set('version', '1.0');
    form.set('egg', new Blob([new Uint8Array(egg)]), 'demo-1.0.egg');
    const added = (await (await fetch(`${master.url}/addversion.json`, { method: 'POST', body: form, headers: admin })).json()) as Json;
    assert.equal(added.status, 'ok', JSON.stringify(added));

    // One crawl that finished (log and items exist) and one that runs until the test ends.
    const quick = await postForm(master.url, '/schedule.json', { project: 'demo', spider: 'quick', jobid: 'swquick1' }, admin);
    assert.equal(quick.status, 'ok', JSON.stringify(quick));
    finishedJob = quick.jobid as string;
    const slow = await postForm(master.url, '/schedule.json', { project: 'demo', spider: 'slow', seconds: '3600', jobid: 'swslow1' }, admin);
    assert.equal(slow.status, 'ok', JSON.stringify(slow));
    runningJob = slow.jobid as string;
    // ScrapydWeb is given `user:password@host:port`: the slave's cluster token works as a basic-auth password.
    targets = [
      { name: 'slave', base: slave.url, auth: { Authorization: basic('scrapydweb', CLUSTER_TOKEN) } },
      { name: 'master', base: master.url, auth: admin },
    ];
    // Wait for states, on the master (whose view follows the heartbeats): finished with items, running with a pid.
    await waitFor('the quick crawl finished with its log and items, the slow one running with a pid', async () => {
      const l = (await getJson(master.url, '/listjobs.json', { project: 'demo' }, admin)) as Json & { running: Array<Record<string, unknown>>; finished: Array<Record<string, unknown>> };
      const f = l.finished.find((j) => j.id === finishedJob);
      const r = l.running.find((j) => j.id === runningJob);
      return f && f.items_url && f.log_url && r && typeof r.pid === 'number' && r.log_url ? true : undefined;
    }, 90_000, 250);
  });

  after(async () => {
    await postForm(master.url, '/cancel.json', { project: 'demo', job: runningJob }, admin).catch(() => undefined);
    await slave?.stop();
    await master?.stop();
  });

  for (const which of ['slave', 'master'] as const) {
    test(`${which}: /jobs parses with JOB_PATTERN; its links resolve`, async () => {
      const t = targets.find((x) => x.name === which)!;
      const r = await fetch(`${t.base}/jobs`, { headers: t.auth });
      assert.equal(r.status, 200);
      const jobs = jobsAsScrapydWebSeesThem(await r.text());
      const done = jobs.find((j) => j.job === finishedJob);
      const running = jobs.find((j) => j.job === runningJob);
      assert.ok(done && running, JSON.stringify(jobs));
      assert.equal(done.status, 'finished');
      assert.equal(done.project, 'demo');
      assert.equal(done.spider, 'quick');
      assert.match(done.start!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
      assert.match(done.finish!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
      assert.equal(running.status, 'running');
      assert.match(running.pid!, /^\d+$/, 'a real pid');
      // jobs.py: urljoin(self.public_url or self.url, href) for items; the log link the same way.
      const log = await fetch(new URL(done.href_log, `${t.base}/jobs`), { headers: t.auth });
      assert.equal(log.status, 200, done.href_log);
      assert.match(await log.text(), /Spider closed \(finished\)/);
      const items = await fetch(new URL(done.href_items, `${t.base}/jobs`), { headers: t.auth });
      assert.equal(items.status, 200, done.href_items);
      assert.equal((await items.text()).trim().split('\n').length, 3, 'the quick spider scrapes 3 items');
    });

    test(`${which}: /logs/ and /items/ listings parse with DIRECTORY_PATTERN down to the job's files`, async () => {
      const t = targets.find((x) => x.name === which)!;
      for (const [top, ext] of [['logs', '.log'], ['items', '.jl']] as const) {
        let path = `/${top}/`;
        for (const name of ['demo', 'quick', `${finishedJob}${ext}`]) {
          const r = await fetch(`${t.base}${path}`, { headers: t.auth });
          assert.equal(r.status, 200, path);
          const rows = listingAsScrapydWebSeesIt(await r.text(), top);
          const row = rows.find((x) => x.name === name || x.name === `${name}/`);
          assert.ok(row, `${path} lists ${name}: ${JSON.stringify(rows)}`);
          path += row.href;
        }
        const file = await fetch(`${t.base}${path}`, { headers: t.auth });
        assert.equal(file.status, 200, path);
        assert.ok((await file.text()).length > 0);
      }
    });

    test(`${which}: LogParser ${V16_LOGPARSER_VERSION} stats.json and per-job JSON as ScrapydWeb 1.6 accepts them`, async () => {
      const t = targets.find((x) => x.name === which)!;
      // api.py liststats: 'http://{}/logs/stats.json', status 'ok' and logparser_version == LOGPARSER_VERSION.
      const stats = (await (await fetch(`${t.base}/logs/stats.json`, { headers: t.auth })).json()) as Json & { datas: Record<string, Record<string, Record<string, Record<string, unknown>>>> };
      assert.equal(stats.status, 'ok');
      assert.equal(stats.logparser_version, V16_LOGPARSER_VERSION);
      const entry = stats.datas.demo?.quick?.[finishedJob];
      assert.ok(entry, JSON.stringify(stats.datas));
      assert.equal(entry.items, 3);
      assert.equal(entry.finish_reason, 'finished');
      // log.py request_stats_by_logparser(): 'http://{}/logs/{}/{}/{}.json'.
      const job = (await (await fetch(`${t.base}/logs/demo/quick/${finishedJob}.json`, { headers: t.auth })).json()) as Json & Record<string, unknown>;
      assert.equal(job.logparser_version, V16_LOGPARSER_VERSION);
      for (const k of ['status', 'pages', 'items', 'shutdown_reason', 'finish_reason', 'runtime', 'first_log_time', 'latest_log_time', 'log_categories', 'latest_matches', 'datas', 'crawler_stats', 'crawler_engine', 'last_update_time']) {
        assert.ok(k in job, `per-job JSON has ${k}`);
      }
      const matches = job.latest_matches as Record<string, string>;
      assert.deepEqual(Object.keys(matches).slice(-3), ['latest_stat', 'latest_scrape', 'latest_item'], '0.8.4 key order');
      // The demo project logs at INFO: no "Scraped from" lines, so no item (as LogParser 0.8.4 finds none).
      assert.equal(typeof matches.latest_item, 'string');
      const cs = job.crawler_stats as Record<string, unknown>;
      assert.deepEqual(Object.keys(cs).slice(0, 3), ['source', 'last_update_time', 'last_update_timestamp'], 'what get_ordered_dict() pops');
      // The log itself, by the first of SCRAPYD_LOG_EXTENSIONS, whole and by range.
      const log = await fetch(`${t.base}/logs/demo/quick/${finishedJob}${V16_LOG_EXTENSIONS[0]}`, { headers: t.auth });
      assert.equal(log.status, 200);
      const text = await log.text();
      const part = await fetch(`${t.base}/logs/demo/quick/${finishedJob}.log`, { headers: { ...t.auth, Range: 'bytes=0-99' } });
      assert.equal(part.status, 206);
      assert.equal(await part.text(), Buffer.from(text).subarray(0, 100).toString());
    });

    test(`${which}: listjobs.json gives a pid and URLs that resolve on it`, async () => {
      const t = targets.find((x) => x.name === which)!;
      const l = (await getJson(t.base, '/listjobs.json', { project: 'demo' }, t.auth)) as Json & { running: Array<Record<string, unknown>>; finished: Array<Record<string, unknown>> };
      const r = l.running.find((j) => j.id === runningJob)!;
      assert.equal(typeof r.pid, 'number');
      const f = l.finished.find((j) => j.id === finishedJob)!;
      for (const url of [r.log_url, f.log_url, f.items_url]) {
        assert.equal(typeof url, 'string');
        const res = await fetch(`${t.base}${url as string}`, { headers: t.auth });
        assert.equal(res.status, 200, String(url));
        await res.arrayBuffer();
      }
    });
  }

  test('master: /jobs is the web UI for a browser session, Scrapyd for API credentials, the login for nobody', async () => {
    const { cookie } = await loginByHttp(master.url, ADMIN.user, ADMIN.password);
    const ui = await fetch(`${master.url}/jobs`, { headers: { Cookie: cookie } });
    assert.equal(ui.status, 200);
    const uiHtml = await ui.text();
    assert.match(uiHtml, /class="topbar"/, 'the web UI page');
    assert.doesNotMatch(uiHtml, /<title>Scrapyd<\/title>/);
    const anon = await fetch(`${master.url}/jobs`, { redirect: 'manual' });
    assert.equal(anon.status, 302);
    assert.match(anon.headers.get('location') ?? '', /\/login/);
    const wrong = await fetch(`${master.url}/jobs`, { headers: { Authorization: basic(ADMIN.user, 'wrong') } });
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers.get('www-authenticate') ?? '', /^Basic/i);
    const logsAnon = await fetch(`${master.url}/logs/`);
    assert.equal(logsAnon.status, 401);
  });

  // The urlencoded addversion.json ScrapydWeb sends is tested in scrapydweb_deploy.test.ts (real python-requests).

  // Last: stops the slave.
  test('master: a file on a node that is down is a prompt 503 page naming the node', async () => {
    await postForm(master.url, '/cancel.json', { project: 'demo', job: runningJob }, admin);
    await waitFor(`${runningJob} finished`, async () => ((await getJson(master.url, '/status.json', { job: runningJob }, admin)).currstate === 'finished' ? true : undefined), 60_000, 250);
    await slave.stop();
    const t0 = Date.now();
    const r = await fetch(`${master.url}/logs/demo/quick/${finishedJob}.log`, { headers: admin });
    const took = Date.now() - t0;
    assert.equal(r.status, 503);
    assert.match(await r.text(), /node n1 .* not answering/);
    assert.ok(took < 10_000, `answered in ${took} ms`);
    await waitNodeStatus(master, 'n1', 'offline', 60_000);
    const later = await fetch(`${master.url}/items/demo/quick/${finishedJob}.jl`, { headers: admin });
    assert.equal(later.status, 503);
    assert.match(await later.text(), /offline since/);
    const listing = await fetch(`${master.url}/logs/`, { headers: admin });
    assert.equal(listing.status, 503, 'no node answers: not an empty 404');
    await listing.arrayBuffer();
  });

  // Last: the stopped slave comes back for an older ScrapydWeb.
  test('slave --logparser-version 0.8.2: stats in 0.8.2 shape, also for jobs that finished under 0.8.4', async () => {
    const old = await startSlave({ dataDir: slave.dataDir, args: ['--logparser-version', '0.8.2'] });
    try {
      const stats = await getJson(old.url, '/logs/stats.json');
      assert.equal(stats.logparser_version, '0.8.2');
      const job = (await getJson(old.url, `/logs/demo/quick/${finishedJob}.json`)) as Json & { latest_matches: Record<string, string> };
      assert.equal(job.logparser_version, '0.8.2');
      assert.deepEqual(Object.keys(job.latest_matches).slice(-3), ['latest_scrape', 'latest_item', 'latest_stat'], '0.8.2 key order');
    } finally {
      await old.stop();
    }
  });
});
