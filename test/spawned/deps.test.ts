// test/deps.test.ts with every test slave started --no-forkserver: the spawned path (see README.md).
process.env.SPIDERPLANE_TEST_FORKSERVER = '0';
await import('../deps.test.ts');
