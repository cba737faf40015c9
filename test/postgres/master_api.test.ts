// test/master_api.test.ts with every test master on PostgreSQL (a fresh database each): the master suite's second engine.
process.env.SPIDERPLANE_TEST_DATABASE = 'postgres';
await import('../master_api.test.ts');
