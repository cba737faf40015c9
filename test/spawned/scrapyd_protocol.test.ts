// test/scrapyd_protocol.test.ts with every test slave started --no-forkserver: the spawned path (see README.md).
process.env.SPIDERPLANE_TEST_FORKSERVER = '0';
await import('../scrapyd_protocol.test.ts');
