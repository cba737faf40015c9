import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { giveTree, lockTree, removeSpiderTree } from '../slave/runner/tree_lock.ts';

// What root does to a tree the spiders' user wrote (slave/runner/tree_lock.ts): nothing outside it
// is changed or deleted through a symlink, and what stays is unwritable by anyone but its owner.

const uid = process.getuid?.() ?? 0;
const gid = process.getgid?.() ?? 0;

function fixture(): { dir: string; tree: string; outside: string } {
  const dir = mkdtempSync(join(tmpdir(), 'spiderplane-treelock-'));
  const outside = join(dir, 'outside.txt');
  writeFileSync(outside, 'keep me');
  chmodSync(outside, 0o666);
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'bin', 'deep'), { recursive: true });
  writeFileSync(join(tree, 'bin', 'python'), '#!/bin/sh\n');
  chmodSync(join(tree, 'bin', 'python'), 0o4777); // setuid, world-writable
  chmodSync(join(tree, 'bin'), 0o777);
  chmodSync(join(tree, 'bin', 'deep'), 0o1777);
  symlinkSync(outside, join(tree, 'bin', 'link-out'));
  symlinkSync(join(dir), join(tree, 'dir-out'));
  execFileSync('mkfifo', [join(tree, 'bin', 'fifo')]);
  return { dir, tree, outside };
}

test('lockTree strips group/other write and setuid, follows no symlink, drops FIFOs', async () => {
  const { dir, tree, outside } = fixture();
  try {
    await lockTree(tree, uid, gid);
    assert.equal(statSync(join(tree, 'bin')).mode & 0o7777, 0o755);
    assert.equal(statSync(join(tree, 'bin', 'deep')).mode & 0o7777, 0o755);
    assert.equal(statSync(join(tree, 'bin', 'python')).mode & 0o7777, 0o755);
    assert.equal(existsSync(join(tree, 'bin', 'fifo')), false, 'a FIFO is removed');
    assert.ok(lstatSync(join(tree, 'bin', 'link-out')).isSymbolicLink(), 'a symlink stays a symlink');
    assert.equal(statSync(outside).mode & 0o777, 0o666, 'the file a symlink points to is untouched');
    assert.equal(statSync(dir).mode & 0o777, 0o700, 'the folder a symlink points to is untouched');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lockTree refuses a tree that is itself a symlink (ELOOP), removeSpiderTree just unlinks it', async () => {
  const { dir, tree, outside } = fixture();
  try {
    const link = join(dir, 'swapped');
    symlinkSync(tree, link);
    await assert.rejects(lockTree(link, uid, gid), /ELOOP|ENOTDIR/);
    await removeSpiderTree(link, uid, gid);
    assert.equal(existsSync(link), false);
    assert.ok(existsSync(join(tree, 'bin', 'python')), 'the target of the link is not deleted');
    await removeSpiderTree(tree, uid, gid);
    assert.equal(existsSync(tree), false);
    assert.equal(readFileSync(outside, 'utf8'), 'keep me', 'nothing outside is deleted through a link');
    assert.ok(existsSync(dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('giveTree changes owners children first and never follows a symlink', async () => {
  const { dir, tree, outside } = fixture();
  try {
    const before = lstatSync(outside);
    const to = uid === 0 ? 65534 : uid; // as root: really give it away (to nobody)
    await giveTree(tree, to, to === uid ? gid : 65534);
    assert.equal(lstatSync(outside).uid, before.uid, 'the file a symlink points to keeps its owner');
    assert.equal(lstatSync(join(tree, 'bin', 'python')).uid, to);
    assert.equal(lstatSync(join(tree, 'bin', 'link-out')).uid, to, 'the symlink itself is given');
    assert.equal(lstatSync(tree).uid, to);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
