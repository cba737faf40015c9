import { sanitizeVersion, nameProblem } from '../../../common/names.ts';
import { PackageRejected, type VersionRequirements } from '../../packages/package_repo.ts';
import { DispatchError } from '../../runs/dispatcher.ts';
import { Fields, HttpError } from '../../http/input.ts';
import { nodeView } from '../../nodes/node_registry.ts';
import type { Context } from 'koa';
import { action, baseQuery, page, pageOf, type PageContext } from '../page_kit.ts';
import { kvRows, numberOr, optional, policyFields, targetFrom } from '../forms.ts';
import { readPolicy } from '../../runs/run_policy.ts';
import { redirect, render } from '../render.ts';

/** Projects, versions, the upload form, deployments with live progress, and "run now". */
export function mountProjectPages(pc: PageContext): void {
  const { m, env } = pc;

  const projectSummaries = async () => {
    const out = [];
    for (const project of await m.repo.projects()) {
      const versions = await m.repo.versions(project);
      const newest = versions[versions.length - 1];
      const row = newest === undefined ? undefined : await m.repo.get(project, newest);
      if (!row) continue; // deleted meanwhile
      out.push({
        project, versions: versions.length, newest, kind: row.kind, uploaded_at: row.uploaded_at,
        spiders: row.spiders ? (JSON.parse(row.spiders) as string[]) : null, nodes: (await m.repo.nodesWith(project, row.version)).size,
      });
    }
    return out;
  };

  const listVars = async (ctx: Context) => {
    const all = await projectSummaries();
    const p = pageOf(ctx, all.length, 50);
    const nodes = await m.nodes.all();
    // One denominator for every row: all known nodes, with how many of them are not online.
    return { projects: all.slice(p.offset, p.offset + p.limit), page: p, pageBase: baseQuery(ctx, []), totalNodes: nodes.length, offlineNodes: nodes.filter((n) => n.status !== 'online').length };
  };

  page(pc, '/projects', 'viewer', async (ctx) => {
    render(env, ctx, 'projects.njk', await listVars(ctx));
  });

  action(pc, '/projects/upload', 'operator', async (ctx, form, user) => {
    const project = (form.get('project') ?? '').trim();
    const version = (form.get('version') ?? '').trim();
    const file = form.files.get('egg');
    const fail = async (text: string, status = 400) => {
      render(env, ctx, 'projects.njk', { ...await listVars(ctx), uploadError: text, upload: { project, version } }, status);
    };
    const problem = !project ? 'Give the project a name.' : nameProblem(project) ? `The project name ${nameProblem(project)}.` :
      !version ? 'Give the version a name.' : nameProblem(sanitizeVersion(version)) ? `The version ${nameProblem(sanitizeVersion(version))}.` :
      !file || file.length === 0 ? 'Choose a package file (.egg or .zip).' : null;
    if (problem) return fail(problem);
    try {
      await m.repo.add(project, sanitizeVersion(version), file!, user.username);
    } catch (e) {
      // The message is shared with the Scrapyd API, whose users may need a curl tip; a browser does not.
      if (e instanceof PackageRejected) return fail(e.message.replace(/\s*\(if using curl[^)]*\)\s*$/, '').replace(/^egg is not a ZIP file$/, 'This file is not a ZIP archive: upload a Scrapy egg (.egg) or a zip package (.zip).'), e.status);
      throw e;
    }
    const { id } = await m.deployer.deploy(project, sanitizeVersion(version), (await m.nodes.all()).filter((n) => n.status === 'online'), 'upload');
    redirect(ctx, `/deployments/${id}`, { kind: 'ok', text: `${project} ${sanitizeVersion(version)} uploaded; deploying to every online node.` });
  }, { upload: 'egg' });

  const findProject = async (project: string) => {
    if ((await m.repo.versions(project)).length === 0) throw new HttpError(404, `There is no project named ${project}.`);
    return project;
  };

  page(pc, '/projects/:project', 'viewer', async (ctx) => {
    const project = await findProject(ctx.params.project!);
    const allNodes = await m.nodes.all();
    const names = new Map(allNodes.map((n) => [n.id, n.name]));
    const versions = [];
    for (const version of (await m.repo.versions(project)).reverse()) {
      const row = await m.repo.get(project, version);
      if (!row) continue; // deleted meanwhile
      // A node has a version only once its environment is built (a failed build refuses it), so
      // "On nodes" is also where its requirements are built.
      versions.push({
        ...row, spiders: row.spiders ? (JSON.parse(row.spiders) as string[]) : null, reqs: row.requirements ? (JSON.parse(row.requirements) as VersionRequirements) : null,
        nodes: [...await m.repo.nodesWith(project, version)].map((id) => names.get(id) ?? '?').sort(),
      });
    }
    const newest = versions[0];
    if (!newest) throw new HttpError(404, `There is no project named ${project}.`);
    render(env, ctx, 'project.njk', {
      project, versions, spiders: newest.spiders ?? [], newest: newest.version,
      nodes: allNodes.map(nodeView).filter((n) => n.status === 'online'),
      deployments: await m.deployer.recent(project, 8), runError: null, runForm: {},
    });
  });

  action(pc, '/projects/:project/versions/:version/deploy', 'operator', async (ctx) => {
    const project = await findProject(ctx.params.project!);
    const version = ctx.params.version!;
    if (!(await m.repo.get(project, version))) throw new HttpError(404, `Version ${version} of ${project} does not exist.`);
    const { id } = await m.deployer.deploy(project, version, (await m.nodes.all()).filter((n) => n.status === 'online'), 'roll');
    redirect(ctx, `/deployments/${id}`);
  });

  action(pc, '/projects/:project/versions/:version/delete', 'operator', async (ctx) => {
    const project = await findProject(ctx.params.project!);
    const version = ctx.params.version!;
    if (!(await m.repo.deleteVersion(project, version))) throw new HttpError(404, `Version ${version} of ${project} does not exist.`);
    const results = await m.deployer.deleteEverywhere(project, version);
    const failed = results.filter((r) => !r.ok);
    const left = (await m.repo.versions(project)).length;
    redirect(ctx, left ? `/projects/${encodeURIComponent(project)}` : '/projects', {
      kind: failed.length ? 'error' : 'ok',
      text: `Version ${version} deleted${failed.length ? `, but not on ${failed.map((f) => f.node).join(', ')} yet (it will be when they return)` : ' on every node'}.`,
    });
  });

  action(pc, '/projects/:project/run', 'operator', async (ctx, form, user) => {
    const project = await findProject(ctx.params.project!);
    try {
      const f = new Fields({
        project, spider: form.get('spider'), version: optional(form, 'version'), args: kvRows(form, 'args'), settings: kvRows(form, 'settings'),
        priority: numberOr(form, 'priority', 0), target: targetFrom(form), ...policyFields(form),
      });
      const runs = await m.dispatcher.dispatch({
        project, spider: f.name('spider')!, version: f.name('version', false), args: f.stringMap('args'), settings: f.stringMap('settings'),
        priority: f.number('priority', 0), target: f.target('target'), scheduleId: null, retriesLeft: m.config.maxRetries, createdBy: user.username,
        policy: readPolicy(f),
      });
      if (runs.length === 1) return redirect(ctx, `/jobs/${runs[0]!.job}`, { kind: runs[0]!.state === 'failed' ? 'error' : 'ok', text: runs[0]!.state === 'failed' ? runs[0]!.note ?? 'Dispatch failed.' : `Started on ${runs[0]!.node}.` });
      redirect(ctx, `/jobs?project=${encodeURIComponent(project)}&spider=${encodeURIComponent(form.get('spider') ?? '')}`, { kind: 'ok', text: `Started on ${runs.length} nodes.` });
    } catch (e) {
      if (!(e instanceof DispatchError || e instanceof HttpError)) throw e;
      redirect(ctx, `/projects/${encodeURIComponent(project)}`, { kind: 'error', text: e.message });
    }
  });

  page(pc, '/deployments/:id', 'viewer', async (ctx) => {
    const d = await m.deployer.get(Number(ctx.params.id));
    if (!d) throw new HttpError(404, `There is no deployment ${ctx.params.id}.`);
    render(env, ctx, 'deployment.njk', { d });
  });
}
