// A worker thread that runs checkPackage for package_checker.ts.
import { serveTasks } from '../workers/worker_tasks.ts';
import { checkPackage, type PackageCheckOptions } from './package_check.ts';
import { ManifestError } from './manifest.ts';

serveTasks({
  async check(args, bytes) {
    if (!bytes) throw new Error('check needs the package bytes');
    try {
      return await checkPackage(bytes, args as PackageCheckOptions);
    } catch (e) {
      if (e instanceof ManifestError) e.name = 'ManifestError'; // its class does not survive the thread boundary; its name does
      throw e;
    }
  },
});
