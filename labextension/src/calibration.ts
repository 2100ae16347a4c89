/**
 * The planner's calibration (`GET /plms/calibration`) in a main-area tab: PLMS's figure
 * (predicted p50/p90 against actual durations, p90 coverage over time, drift alarms) and the
 * report, one row per lane — what `direng plms calibration --plot` and `%direng plms` show.
 */
import { Widget } from '@lumino/widgets';

import { Calibration, DirEngAPI, DirEngAPIError } from './api';

export const CALIBRATION_ID = 'direng-calibration';

const COLUMNS: [string, string][] = [
  ['lane', 'Lane'],
  ['n', 'Runs'],
  ['scored', 'Scored'],
  ['within_p90', '≤ p90'],
  ['within_p10_p90', 'p10–p90'],
  ['p50_s', 'p50 (s)'],
  ['p90_s', 'p90 (s)'],
  ['drift', 'Drift']
];

function cell(key: string, value: unknown): string {
  if (value === null || value === undefined) {
    return '–';
  }
  if (key.startsWith('within') && typeof value === 'number') {
    return `${Math.round(value * 100)}%`;
  }
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : value.toFixed(1);
  }
  if (typeof value === 'boolean') {
    return value ? 'yes' : '';
  }
  return String(value);
}

export class CalibrationView extends Widget {
  private readonly body: HTMLElement;

  constructor(private readonly api: DirEngAPI) {
    super();
    this.id = CALIBRATION_ID;
    this.addClass('direng-calibration');
    this.title.label = 'Planner Calibration';
    this.title.closable = true;
    this.body = document.createElement('div');
    this.node.appendChild(this.body);
  }

  /** Load the report and the figure again. */
  async refresh(): Promise<void> {
    this.body.textContent = 'Loading the calibration…';
    try {
      this.render(await this.api.calibration(true));
    } catch (err) {
      this.body.textContent = err instanceof DirEngAPIError ? err.describe() : String(err);
      this.body.className = 'direng-error';
    }
  }

  private render(c: Calibration): void {
    this.body.className = 'direng-calibration-body';
    this.body.textContent = '';
    const head = document.createElement('div');
    head.className = 'direng-calibration-head';
    head.textContent = c.runs
      ? `${c.runs} finished run${c.runs === 1 ? '' : 's'}; each scored against the estimate made before it.`
      : 'No finished runs yet: the estimates are the priors.';
    this.body.appendChild(head);
    if (c.png) {
      const img = document.createElement('img');
      img.className = 'direng-calibration-plot';
      img.alt = 'PLMS calibration: predicted p50/p90 against actual durations, p90 coverage over time';
      img.src = `data:image/png;base64,${c.png}`;
      this.body.appendChild(img);
    }
    const table = document.createElement('table');
    table.className = 'direng-calibration-table';
    const hr = table.createTHead().insertRow();
    for (const [, label] of COLUMNS) {
      const th = document.createElement('th');
      th.textContent = label;
      hr.appendChild(th);
    }
    const tbody = table.createTBody();
    for (const row of c.lanes) {
      const tr = tbody.insertRow();
      tr.dataset.lane = String(row.lane);
      for (const [key] of COLUMNS) {
        tr.insertCell().textContent = cell(key, row[key]);
      }
    }
    this.body.appendChild(table);
  }
}
