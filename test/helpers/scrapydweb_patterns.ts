// ScrapydWeb's own regexes, pasted from its source (each with the file it comes from), shared by
// the tests that check our /jobs page and /logs/ listings parse the way ScrapydWeb parses them.
// Copied from my8100/scrapydweb (master, v1.4/1.5.0 era).
import { pyRe } from './python_re.ts';

// scrapydweb/views/dashboard/jobs.py -- JobsView.dispatch_request()
export const JOBS_PAGE_CHECK = pyRe(String.raw`<body><h1>Jobs</h1>`);
export const THEAD_SUB = pyRe(String.raw`<thead>.*?</thead>`, { S: true });
// scrapydweb/views/dashboard/jobs.py (identical pattern in scrapydweb/utils/poll.py)
export const JOB_PATTERN = pyRe(
  String.raw`
                            <tr>
                                <td>(?P<Project>.*?)</td>
                                <td>(?P<Spider>.*?)</td>
                                <td>(?P<Job>.*?)</td>
                                (?:<td>(?P<PID>.*?)</td>)?
                                (?:<td>(?P<Start>.*?)</td>)?
                                (?:<td>(?P<Runtime>.*?)</td>)?
                                (?:<td>(?P<Finish>.*?)</td>)?
                                (?:<td>(?P<Log>.*?)</td>)?
                                (?:<td>(?P<Items>.*?)</td>)?
                                [\w\W]*?  # Temp support for Scrapyd v1.3.0 (not released)
                            </tr>
                          `,
  { X: true },
);
// scrapydweb/views/dashboard/jobs.py
export const JOB_KEYS = ['project', 'spider', 'job', 'pid', 'start', 'runtime', 'finish', 'href_log', 'href_items'];
// scrapydweb/utils/poll.py
export const POLL_JOB_KEYS = ['project', 'spider', 'job', 'pid', 'start', 'runtime', 'finish', 'log', 'items'];
// scrapydweb/views/dashboard/jobs.py
export const HREF_PATTERN = pyRe(String.raw`href=['"](.+?)['"]`);

// Older ScrapydWeb (scrapydweb/vars.py `pattern_jobs`, ScrapydWeb <= 1.1): no `[\w\W]*?`,
// so it only parses rows without the Cancel column.
export const OLD_JOB_PATTERN = pyRe(
  String.raw`<tr>
                        <td>(?P<Project>.*?)</td>
                        <td>(?P<Spider>.*?)</td>
                        <td>(?P<Job>.*?)</td>
                        (?:<td>(?P<PID>.*?)</td>)?
                        (?:<td>(?P<Start>.*?)</td>)?
                        (?:<td>(?P<Runtime>.*?)</td>)?
                        (?:<td>(?P<Finish>.*?)</td>)?
                        (?:<td>(?P<Log>.*?)</td>)?
                        (?:<td>(?P<Items>.*?)</td>)?
                        </tr>
                    `,
  { X: true },
);

// Whitespace-tolerant variant, as carried by ScrapydWeb forks after the Scrapyd 1.5 fix
// (M4hbod/scrapydweb scrapydweb/routers/jobs.py). Stand-in for ScrapydWeb >= 1.5.1.
export const WS_JOB_PATTERN = pyRe(
  String.raw`
    <tr>\s*<td>(?P<Project>.*?)</td>\s*<td>(?P<Spider>.*?)</td>\s*<td>(?P<Job>.*?)</td>\s*
    (?:<td>(?P<PID>.*?)</td>\s*)?(?:<td>(?P<Start>.*?)</td>\s*)?(?:<td>(?P<Runtime>.*?)</td>\s*)?
    (?:<td>(?P<Finish>.*?)</td>\s*)?(?:<td>(?P<Log>.*?)</td>\s*)?(?:<td>(?P<Items>.*?)</td>\s*)?
    [\w\W]*?</tr>`,
  { X: true },
);

// scrapydweb/views/files/logs.py and items.py -- dispatch_request()
export const LOGS_PAGE_CHECK = pyRe(String.raw`Directory listing for /logs/`);
export const ITEMS_PAGE_CHECK = pyRe(String.raw`Directory listing for /items/`);
// scrapydweb/vars.py -- "For LogsView and ItemsView"
export const DIRECTORY_PATTERN = pyRe(
  String.raw`
                                    <tr\sclass="(?P<odd_even>odd|even)">\n
                                        \s+<td>(?P<filename>.*?)</td>\n
                                        \s+<td>(?P<size>.*?)</td>\n
                                        \s+<td>(?P<content_type>.*?)</td>\n
                                        \s+<td>(?P<content_encoding>.*?)</td>\n
                                    </tr>
                                `,
  { X: true },
);
export const DIRECTORY_KEYS = ['odd_even', 'filename', 'size', 'content_type', 'content_encoding'];
export const HREF_NAME_PATTERN = pyRe(String.raw`href="(.+?)">(.+?)<`);
// Fork variant with an optional Last modified cell (M4hbod/scrapydweb scrapydweb/vars.py).
export const DIRECTORY_PATTERN_LM = pyRe(
  String.raw`
                                    <tr\sclass="(?P<odd_even>odd|even)">\n
                                        \s+<td>(?P<filename>.*?)</td>\n
                                        \s+<td>(?P<size>.*?)</td>\n
                                        (?:\s+<td>(?P<last_modified>.*?)</td>\n)?
                                        \s+<td>(?P<content_type>.*?)</td>\n
                                        \s+<td>(?P<content_encoding>.*?)</td>\n
                                    </tr>
                                `,
  { X: true },
);


// ---- ScrapydWeb 1.6.0 exactly (my8100/scrapydweb tag v1.6.0), the release that pins LogParser >= 0.8.4.
// scrapydweb/views/dashboard/jobs.py -- JobsView.dispatch_request(): `re.search(r'<h1>Jobs</h1>', self.text)`
export const V16_JOBS_PAGE_CHECK = pyRe(String.raw`<h1>Jobs</h1>`);
// scrapydweb/views/dashboard/jobs.py (same in scrapydweb/utils/poll.py)
export const V16_JOB_PATTERN = pyRe(
  String.raw`
                            <tr>\s*
                                <td>(?P<Project>.*?)</td>\s*
                                <td>(?P<Spider>.*?)</td>\s*
                                <td>(?P<Job>.*?)</td>\s*
                                (?:<td>(?P<PID>.*?)</td>\s*)?
                                (?:<td>(?P<Start>.*?)</td>\s*)?
                                (?:<td>(?P<Runtime>.*?)</td>\s*)?
                                (?:<td>(?P<Finish>.*?)</td>\s*)?
                                (?:<td>(?P<Log>.*?)</td>\s*)?
                                (?:<td>(?P<Items>.*?)</td>\s*)?
                                [\w\W]*?  # Temp support for Scrapyd v1.3.0 (not released)
                            </tr>
                          `,
  { X: true },
);
// scrapydweb/vars.py -- DIRECTORY_PATTERN / DIRECTORY_KEYS (with the optional Last modified cell)
export const V16_DIRECTORY_PATTERN = DIRECTORY_PATTERN_LM;
export const V16_DIRECTORY_KEYS = ['odd_even', 'filename', 'size', 'last_modified', 'content_type', 'content_encoding'];
// The URLs ScrapydWeb 1.6 builds from SCRAPYD_SERVER ('host:port'):
//   jobs.py  'http://%s/jobs'                         api.py 'http://{}/{}.json' (liststats -> logs/stats)
//   log.py   'http://{}/logs/{}/{}/{}' + '.log' | '.log.gz' | '.txt', and '.../{job}.json' (LogParser)
//   logs.py / items.py 'http://{}/logs/{}/{}/' and '/items/...'
export const V16_LOG_EXTENSIONS = ['.log', '.log.gz', '.txt'];
/** ScrapydWeb 1.6 compares this with `logparser.__version__` (setup.py: logparser>=0.8.4). */
export const V16_LOGPARSER_VERSION = '0.8.4';
