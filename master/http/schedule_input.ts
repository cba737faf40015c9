import type { Master } from '../master.ts';
import { parseCron } from '../schedules/cron.ts';
import type { ScheduleInput } from '../schedules/schedule_store.ts';
import { Fields } from './input.ts';
import { readPolicy } from '../runs/run_policy.ts';

/**
 * A schedule as the API and the cron editor page both submit it, checked field by field: the cron
 * expression by croner (its reason on error), and the project, version and spider must exist.
 */
export async function parseScheduleInput(m: Master, body: Record<string, unknown>): Promise<ScheduleInput> {
  const f = new Fields(body);
  const cron = f.requiredString('cron', 200).trim().replace(/\s+/g, ' ');
  const timezone = f.string('timezone', { max: 100 });
  parseCron(cron, timezone);
  const project = f.name('project')!;
  const spider = f.name('spider')!;
  const version = f.name('version', false);
  await m.dispatcher.resolveVersion(project, version, spider);
  return {
    name: f.string('name', { max: 200 })?.trim() || `${project}/${spider}`, cron, timezone, project, spider, version, target: f.target('target'),
    args: f.stringMap('args'), settings: f.stringMap('settings'), priority: f.number('priority', 0), enabled: f.bool('enabled', true),
    overlap: f.oneOf('overlap', ['skip', 'allow'] as const, 'skip'), missed: f.oneOf('missed', ['skip', 'run_once'] as const, 'skip'),
    max_retries: f.number('max_retries', m.config.maxRetries, { min: 0, max: 20, integer: true }),
    policy: readPolicy(f),
  };
}
