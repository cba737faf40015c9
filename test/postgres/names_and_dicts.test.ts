// test/names_and_dicts.test.ts with every test master on PostgreSQL (a fresh database each): the master suite's second engine.
process.env.SPIDERPLANE_TEST_DATABASE = 'postgres';
await import('../names_and_dicts.test.ts');
