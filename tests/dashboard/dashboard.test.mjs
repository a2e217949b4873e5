// The dashboard scenario in headless Chromium (run by run.sh, which starts the daemons):
// DASHBOARD_URL, DASHBOARD_KEY (a read-write key; the API requires one), DASHBOARD_OUT
// (screenshots), CHROMIUM. Each check counts once; the last line is "N passed, N failed".
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.DASHBOARD_URL;
const KEY = process.env.DASHBOARD_KEY;
const OUT = process.env.DASHBOARD_OUT || path.join(path.dirname(new URL(import.meta.url).pathname), 'out');
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

let passed = 0;
let failed = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`);
    await shot(`failure-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`, false).catch(() => {});
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// The API, straight (for setting up and confirming what the page did).
async function api(method, p, body) {
  const res = await fetch(BASE + p, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
  return data;
}
const submit = (type, params, extra = {}) => api('POST', '/api/tasks', { type, params, ...extra }).then((r) => r.task_id);
const task = (id) => api('GET', `/api/tasks/${id}`);
async function until(fn, ms, what) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

fs.mkdirSync(OUT, { recursive: true });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'aipal-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: DESKTOP,
  deviceScaleFactor: 1,
  colorScheme: 'light',
  reducedMotion: 'reduce',
});
const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(10000);
const problems = []; // CSP violations, script errors
page.on('console', (m) => {
  const text = m.text();
  if (m.type() === 'error' && !/Failed to load resource/.test(text)) problems.push(text);
  if (/Content Security Policy/i.test(text)) problems.push(text);
});
page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
let external = 0;
page.on('request', (r) => { if (!r.url().startsWith(BASE) && !r.url().startsWith('data:')) external++; });

async function shot(name, fullPage = true) {
  if (fullPage) await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage });
}
const field = (p) => page.locator(`#submit-form [data-path="${p}"]`);
const badge = (id) => page.locator(`#task-rows tr[data-id="${id}"]`);

// Some history first: the list, the chart and the queues then have something to show.
const seeded = {};
let firstResponse;
await check('API ready and seeded', async () => {
  seeded.failed = await submit('fail', { message: 'requested failure', retryable: false });
  seeded.waiting = await submit('sleep', { ms: 1000 }, { queue: 'maintenance' }); // no worker there
  seeded.later = await submit('echo', { message: 'later' }, { delay_ms: 3600000 });
  await api('POST', '/api/tasks/batch', {
    tasks: Array.from({ length: 24 }, (_, i) => ({ type: 'echo', params: { message: `hello ${i}` } })),
  });
  for (let i = 0; i < 3; i++) await submit('fail', { message: `bad input ${i}`, retryable: false });
  await until(async () => (await task(seeded.failed)).status === 'failed', 20000, 'the worker to fail a task');
});

await check('page served with a strict CSP, no key: asks for one', async () => {
  firstResponse = await page.goto(`${BASE}/`);
  const h = firstResponse.headers();
  assert(firstResponse.status() === 200, `status ${firstResponse.status()}`);
  const csp = h['content-security-policy'] || '';
  assert(/default-src 'none'/.test(csp) && /script-src 'self'/.test(csp) && !/unsafe-inline/.test(csp), `CSP: ${csp}`);
  assert(/no-cache/.test(h['cache-control'] || ''), `Cache-Control: ${h['cache-control']}`);
  await page.locator('#key-panel').waitFor({ state: 'visible' });
  assert(/needs a key/.test(await page.locator('#key-reason').textContent()), 'no reason shown');
  await page.waitForFunction(() => document.getElementById('conn').dataset.mode === 'auth');
});

await check('API key from the key field: live event stream', async () => {
  await page.getByRole('textbox', { name: 'API key' }).fill(KEY);
  await page.getByRole('button', { name: 'Use key' }).click();
  await page.waitForFunction(() => document.getElementById('conn').dataset.mode === 'live', null, { timeout: 15000 });
  assert(await page.evaluate(() => sessionStorage.getItem('aipalq.apiKey')) === KEY, 'key not in sessionStorage');
  await page.locator('#task-rows tr').first().waitFor();
});

let formTask;
await check('submit through the form; completed through live updates', async () => {
  await page.getByRole('link', { name: 'Submit', exact: true }).click();
  await page.getByRole('combobox', { name: 'Task type', exact: true }).selectOption('sleep');
  await field('params.ms').fill('2500');
  const eventsBefore = Number(await page.locator('#conn').getAttribute('data-events') || 0);
  await page.getByRole('button', { name: 'Submit task' }).click();
  const link = page.locator('#submitted-link');
  await link.waitFor();
  formTask = await link.getAttribute('data-id');
  const t = await task(formTask);
  assert(t.task_type === 'sleep' && t.params.ms === 2500, `submitted ${JSON.stringify(t.params)}`);
  await page.getByRole('link', { name: 'Tasks', exact: true }).click();
  await badge(formTask).waitFor();
  // pending -> running -> completed, with no reload and no poll (the stream is live)
  await page.waitForFunction((id) => document.querySelector(`#task-rows tr[data-id="${id}"]`)?.dataset.status === 'running', formTask, { timeout: 10000 });
  await shot('desktop-tasks', false);
  await page.waitForFunction((id) => document.querySelector(`#task-rows tr[data-id="${id}"]`)?.dataset.status === 'completed', formTask, { timeout: 15000 });
  const eventsAfter = Number(await page.locator('#conn').getAttribute('data-events') || 0);
  assert(eventsAfter >= eventsBefore + 3, `events ${eventsBefore} -> ${eventsAfter}`);
  assert(await page.locator('#conn').getAttribute('data-mode') === 'live', 'not live');
});

await check('field errors of the API shown next to the fields', async () => {
  await page.keyboard.press('2');
  await page.getByRole('combobox', { name: 'Task type', exact: true }).selectOption('sleep');
  await field('params.ms').fill('-5');
  await page.getByRole('button', { name: 'Submit task' }).click();
  const err = page.locator('[data-field="params.ms"] > .field-error');
  await err.waitFor();
  const text = await err.textContent();
  assert(/between 0 and 3600000/.test(text), `error text: ${text}`);
  assert(await field('params.ms').getAttribute('aria-invalid') === 'true', 'not aria-invalid');
  assert(await page.evaluate(() => document.activeElement?.dataset.path) === 'params.ms', 'focus not on the bad field');
  // nested fields and envelope options too
  await page.getByRole('combobox', { name: 'Task type', exact: true }).selectOption('enforce_retention_policy');
  await field('params.policy.audit_logs').fill('0');
  await page.locator('details.options summary').click();
  await field('priority').fill('99');
  await page.getByRole('button', { name: 'Submit task' }).click();
  await page.locator('[data-field="params.policy.audit_logs"] > .field-error').waitFor();
  await page.locator('[data-field="priority"] > .field-error').waitFor();
  assert(/between 1 and 36500/.test(await page.locator('[data-field="params.policy.audit_logs"] > .field-error').textContent()), 'nested error');
  await page.getByRole('combobox', { name: 'Task type', exact: true }).selectOption('plan_ffe_goal');
  await field('params.goal_id').fill('goal-42');
  await field('params.complexity_level').selectOption('complex');
  await page.getByRole('button', { name: 'Submit task' }).click();
  await page.locator('[data-field="params.user_id"] > .field-error').waitFor();
  await page.locator('[data-field="params.goal_description"] > .field-error').waitFor();
  await shot('desktop-submit-errors');
});

await check('every task type gets its own fields from its schema', async () => {
  const types = (await api('GET', '/api/tasks/types')).types;
  for (const t of types) {
    await page.getByRole('combobox', { name: 'Task type', exact: true }).selectOption(t.name);
    for (const prop of Object.keys(t.params_schema.properties || {})) {
      const n = await page.locator(`#submit-param-fields [data-field="params.${prop}"]`).count();
      assert(n === 1, `${t.name}: no field for ${prop}`);
    }
  }
  // the example fills in and is accepted
  await page.getByRole('combobox', { name: 'Task type', exact: true }).selectOption('echo');
  await page.getByRole('button', { name: 'Fill in the example' }).click();
  assert((await field('params.message').inputValue()) === 'hello', 'example not filled');
  await page.getByRole('button', { name: 'Submit task' }).click();
  await page.locator('#submitted-link').waitFor();
});

await check('filters: status, type, queue', async () => {
  await page.keyboard.press('1');
  await page.locator('#view-tasks').waitFor();
  await page.locator('.status-filter label', { hasText: 'Failed' }).click();
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#task-rows tr')];
    return rows.length > 0 && rows.every((r) => r.dataset.status === 'failed');
  });
  assert(/status=failed/.test(page.url()), `url ${page.url()}`);
  await page.locator('.status-filter label', { hasText: 'All' }).click();
  await page.locator('#filter-type').selectOption('echo');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#task-rows tr')];
    return rows.length > 0 && rows.every((r) => r.querySelector('.type').textContent === 'echo');
  });
  // pagination: 25+ echo tasks, 20 a page
  const info = await page.locator('#page-info').textContent();
  assert(/^1–20 of (\d+)$/.test(info) && Number(info.split(' of ')[1]) > 20, `page info: ${info}`);
  await page.getByRole('button', { name: 'Next page' }).click();
  await page.waitForFunction(() => /^21–/.test(document.getElementById('page-info').textContent));
  await page.locator('#filter-type').selectOption('');
  await page.locator('#filter-queue').selectOption('maintenance');
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll('#task-rows tr')];
    return rows.length === 1 && rows[0].dataset.id === id;
  }, seeded.waiting);
  await page.locator('#filter-queue').selectOption('');
});

await check('cancel a pending task, with confirmation', async () => {
  await page.locator('.status-filter label', { hasText: 'Pending' }).click();
  const row = badge(seeded.waiting);
  await row.waitFor();
  await row.getByRole('button', { name: /^Cancel/ }).click();
  const dialog = page.locator('#confirm');
  await dialog.waitFor({ state: 'visible' });
  await shot('desktop-cancel-confirm', false);
  await page.keyboard.press('Escape'); // keeps the task
  await dialog.waitFor({ state: 'hidden' });
  assert((await task(seeded.waiting)).status === 'pending', 'cancelled without confirmation');
  await row.getByRole('button', { name: /^Cancel/ }).click();
  await page.locator('#confirm-yes').click();
  await until(async () => (await task(seeded.waiting)).status === 'cancelled', 5000, 'cancelled');
  await row.waitFor({ state: 'detached' }); // gone from the pending filter
  await page.locator('.status-filter label', { hasText: 'Cancelled' }).click();
  await page.waitForFunction((id) => document.querySelector(`#task-rows tr[data-id="${id}"]`)?.dataset.status === 'cancelled', seeded.waiting);
});

await check('task detail; retry a failed task', async () => {
  await page.goto(`${BASE}/#/task/${seeded.failed}`);
  await page.locator('#task-detail .badge').waitFor();
  assert(await page.locator('#task-detail .badge').first().textContent() === 'failed', 'not failed');
  assert(/requested failure/.test(await page.locator('#task-detail .error-message').textContent()), 'no error message');
  await page.locator('#task-detail .traceback pre').waitFor();
  await page.getByRole('heading', { name: 'Parameters' }).waitFor();
  assert(/Attempts/.test(await page.locator('#task-detail .facts').textContent()), 'no attempts');
  await shot('desktop-task-detail');
  const before = await task(seeded.failed);
  await page.getByRole('button', { name: 'Retry', exact: true }).click();
  await page.locator('#notice', { hasText: 'queued again' }).waitFor();
  // it runs again (and fails again: it is a 'fail' task); the page follows live
  const after = await until(async () => {
    const t = await task(seeded.failed);
    return t.status === 'failed' && t.started_at !== before.started_at && t;
  }, 15000, 'the retried task to run again');
  assert(after.attempts === 1, `attempts ${after.attempts}`);
  await page.waitForFunction(() => document.querySelector('#task-detail .badge')?.textContent === 'failed');
});

await check('workers, queues and throughput', async () => {
  await page.keyboard.press('3');
  const row = page.locator('#worker-rows tr[data-alive="true"]');
  await row.first().waitFor();
  const text = await row.first().textContent();
  assert(/online/i.test(text) && /default/.test(text), `worker row: ${text}`);
  await page.locator('#queue-rows tr[data-queue="default"]').waitFor();
  await page.waitForFunction(() => /Last 5 minutes: [1-9]/.test(document.getElementById('chart-summary').textContent));
  const inked = await page.evaluate(() => {
    const c = document.getElementById('chart');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  });
  assert(inked > 1000, `chart nearly empty (${inked} px)`);
  await shot('desktop-monitor');
});

await check('keyboard: shortcuts, help, skip link, labelled controls', async () => {
  await page.keyboard.press('?');
  await page.locator('#help').waitFor({ state: 'visible' });
  await page.keyboard.press('Escape');
  await page.locator('#help').waitFor({ state: 'hidden' });
  await page.goto(`${BASE}/#/tasks`);
  await page.reload();
  await page.locator('#task-rows tr').first().waitFor();
  await page.keyboard.press('Tab');
  assert(await page.evaluate(() => document.activeElement?.className) === 'skip', 'first tab is not the skip link');
  await page.keyboard.press('2');
  await page.locator('#view-submit').waitFor();
  await page.keyboard.press('1');
  await page.locator('#view-tasks').waitFor();
  await page.locator('#task-rows tr').first().waitFor(); // the list rendered: its filters stay
  await page.keyboard.press('/');
  const focused = await page.waitForFunction(() => document.activeElement?.name === 'status', null, { timeout: 3000 })
    .then(() => true, () => false);
  assert(focused, 'slash does not focus the filters');
  await page.keyboard.press('ArrowRight'); // radios: All -> Pending
  await page.waitForFunction(() => /status=pending/.test(location.hash));
  // Tab reaches a task link and Enter opens it. The list of every state must
  // have replaced the pending ones first: a link focused in the old list can
  // leave the page with its row when the new list renders.
  await page.locator('.status-filter label', { hasText: 'All' }).click();
  await page.waitForFunction(() => !/status=/.test(location.hash)
    && [...document.querySelectorAll('#task-rows tr')].some((tr) => tr.dataset.status !== 'pending'));
  await page.locator('#task-rows a').first().focus();
  assert(await page.evaluate(() => document.activeElement?.classList.contains('task-link')),
    'a task link does not take the focus');
  await page.keyboard.press('Enter');
  await page.locator('#view-task').waitFor();
  // every control has an accessible name, on every view
  for (const view of ['tasks', 'submit', 'monitor']) {
    await page.goto(`${BASE}/#/${view}`);
    await page.waitForTimeout(300);
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
      .filter((el) => el.offsetParent !== null || el.closest('dialog'))
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !(el.textContent || '').trim())
      .map((el) => el.outerHTML.slice(0, 80)));
    assert(unlabelled.length === 0, `${view}: unlabelled ${unlabelled.join(' ')}`);
  }
});

await check('phone width: no horizontal scrolling; screenshots', async () => {
  await page.setViewportSize(PHONE);
  for (const [view, name] of [['tasks', 'phone-tasks'], ['submit?type=plan_ffe_goal', 'phone-submit'], ['monitor', 'phone-monitor']]) {
    await page.goto(`${BASE}/#/${view}`);
    await page.waitForFunction(() => document.getElementById('conn').dataset.mode === 'live');
    await page.waitForTimeout(view === 'monitor' ? 1200 : 500);
    const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(over <= 1, `${view}: ${over}px wider than the screen`);
    await shot(name, name === 'phone-monitor');
  }
  await page.setViewportSize(DESKTOP);
});

await check('polling fallback when the event stream is unavailable', async () => {
  await page.route('**/api/tasks/events*', (r) => r.abort());
  await page.goto(`${BASE}/#/tasks`);
  await page.reload();
  await page.waitForFunction(() => document.getElementById('conn').dataset.mode === 'polling', null, { timeout: 15000 });
  const id = await submit('echo', { message: 'polled' });
  await page.waitForFunction((tid) => document.querySelector(`#task-rows tr[data-id="${tid}"]`)?.dataset.status === 'completed', id, { timeout: 12000 });
  await page.unroute('**/api/tasks/events*');
});

await check('no script errors, CSP violations or external requests', async () => {
  assert(problems.length === 0, problems.slice(0, 5).join(' | '));
  assert(external === 0, `${external} requests left the origin`);
});

await context.close();
fs.rmSync(profile, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
