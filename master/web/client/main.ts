// The admin UI's only script (no inline scripts: the CSP forbids them). Each feature looks for its
// data-* hooks on the page and does nothing where they are absent.
import { confirmForms, keyValueRows, projectPickers, ruleForms, targetPickers } from './forms.ts';
import { cronEditor } from './cron_editor.ts';
import { liveLog } from './live_log.ts';
import { autoRefresh, deploymentProgress, uploadPrefill } from './widgets.ts';
import { clusterCharts, nodeCharts } from './charts.ts';
import { localTimes } from './time.ts';

function start(): void {
  localTimes();
  confirmForms();
  keyValueRows();
  targetPickers();
  projectPickers();
  ruleForms();
  cronEditor();
  liveLog();
  deploymentProgress();
  uploadPrefill();
  nodeCharts();
  clusterCharts();
  autoRefresh();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
