// The aipal-api dashboard: tasks (live from the event stream, else polled),
// submission from the catalog's schemas, task details with cancel and retry,
// workers, queues and throughput. Plain ES modules, no build step; served
// from the daemon's embedded files.

import { h, buildFields, clearErrors, showErrors } from './form.js';
import { Throughput, drawChart, WINDOW_MS } from './chart.js';

const POLL_MS = 5000;
const SAFETY_REFRESH_MS = 30000;
const KEY_STORE = 'aipalq.apiKey';
const FILTER_STATES = {
  all: null,
  pending: 'pending,scheduled,retrying',
  running: 'running',
  completed: 'completed',
  failed: 'failed',
  cancelled: 'cancelled',
};
const WAITING = new Set(['pending', 'scheduled', 'retrying']);

const $ = (id) => document.getElementById(id);

const state = {
  types: [],
  typeByName: new Map(),
  queues: [],
  view: null,
  taskId: null,
  filters: { status: 'all', type: '', queue: '', page: 0, size: 20 },
  lastStatus: new Map(), // task id -> status last rendered (to highlight changes)
  total: 0,
  detail: null,
  prefill: null, // params to put in the submission form
  clockOffset: 0, // server clock - browser clock, ms
  events: 0,
  lastViewLoad: 0,
};
const throughput = new Throughput();

// ------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, code, detail, body) {
    super(typeof detail === 'string' ? detail : code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.body = body;
  }
}

function apiKey() {
  try { return sessionStorage.getItem(KEY_STORE) || ''; } catch { return ''; }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    setConn('offline');
    throw new ApiError(0, 'unreachable', 'The API cannot be reached.');
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (res.status === 401) {
    setConn('auth');
    openKeyPanel(apiKey() ? 'The API refused this key. Enter another one.' : 'This API needs a key. Enter it to continue.');
  } else if (state.conn === 'offline' || state.conn === 'auth') {
    setConn(live.open ? 'live' : 'polling');
  }
  if (!res.ok) {
    let detail = data && data.detail;
    if (res.status === 403) detail = 'This key may only read: submitting, cancelling and retrying need a read-write key.';
    if (res.status === 429) detail = 'Too many requests; slow down a little.';
    throw new ApiError(res.status, data && data.error, detail || `HTTP ${res.status}`, data);
  }
  return data;
}

function errorText(e) {
  if (!(e instanceof ApiError)) return String(e && e.message ? e.message : e);
  if (Array.isArray(e.detail)) return e.detail.map((d) => `${d.field}: ${d.error}`).join('; ');
  return e.detail || e.message;
}

// Remembers how far the server's clock is from ours (for the chart).
function noteServerTime(iso, sentAt) {
  const t = Date.parse(iso);
  if (Number.isFinite(t)) state.clockOffset = t - (sentAt + Date.now()) / 2;
}
const toLocal = (iso) => Date.parse(iso) - state.clockOffset;

// ------------------------------------------------------------- formatting

function ago(iso) {
  if (!iso) return '–';
  const s = Math.round((Date.now() - toLocal(iso)) / 1000);
  if (s < 0) return `in ${fmtSecs(-s)}`;
  if (s < 2) return 'just now';
  return `${fmtSecs(s)} ago`;
}

function fmtSecs(s) {
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d`;
}

function fmtDuration(sec) {
  if (sec === null || sec === undefined) return '–';
  if (sec < 1) return `${Math.round(sec * 1000)} ms`;
  if (sec < 60) return `${sec.toFixed(sec < 10 ? 2 : 1)} s`;
  return fmtSecs(sec);
}

function timeEl(iso) {
  if (!iso) return h('span', { class: 'muted' }, '–');
  return h('time', { datetime: iso, title: new Date(iso).toLocaleString() }, ago(iso));
}

function badge(status) {
  return h('span', { class: 'badge', 'data-status': status }, status);
}

function shortId(id) {
  return id ? `…${id.slice(-12)}` : '';
}

function pretty(v) {
  if (typeof v === 'string') {
    try { return JSON.stringify(JSON.parse(v), null, 2); } catch { return v; }
  }
  return JSON.stringify(v, null, 2);
}

// ------------------------------------------------------------ notices

let noticeTimer = null;
function notify(text, kind = 'ok', link = null) {
  const n = $('notice');
  n.replaceChildren(...[h('span', {}, text), link && h('a', { href: link.href }, link.text)].filter(Boolean));
  n.dataset.kind = kind;
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { n.hidden = true; }, kind === 'error' ? 10000 : 6000);
}

function showBanner(id, text) {
  const b = $(id);
  b.textContent = text || '';
  b.hidden = !text;
}

// ----------------------------------------------------- live connection

const CONN_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  polling: 'Polling every 5 s',
  offline: 'API unreachable',
  auth: 'API key needed',
};

function setConn(mode) {
  if (state.conn === mode) return;
  state.conn = mode;
  const c = $('conn');
  c.dataset.mode = mode;
  c.textContent = CONN_TEXT[mode];
  c.title = mode === 'live' ? 'Updates arrive from the event stream (GET /api/tasks/events)'
    : mode === 'polling' ? 'The event stream is not available; the page polls the API every 5 seconds' : '';
}

const live = {
  es: null,
  open: false,
  retry: null,
  start() {
    this.stop();
    if (!('EventSource' in window)) { setConn('polling'); return; }
    const key = apiKey();
    const es = new EventSource(`/api/tasks/events${key ? `?access_token=${encodeURIComponent(key)}` : ''}`);
    this.es = es;
    es.onopen = () => {
      this.open = true;
      setConn('live');
      backfillThroughput();
      refreshView();
    };
    es.addEventListener('task', (e) => {
      let ev;
      try { ev = JSON.parse(e.data); } catch { return; }
      onTaskEvent(ev);
    });
    es.onerror = () => {
      this.open = false;
      if (state.conn !== 'auth' && state.conn !== 'offline') setConn('polling');
      if (es.readyState === EventSource.CLOSED) {
        // refused (auth, overload, no stream): poll, and try the stream again later
        this.es = null;
        this.retry = setTimeout(() => this.start(), SAFETY_REFRESH_MS);
      }
    };
  },
  stop() {
    clearTimeout(this.retry);
    if (this.es) this.es.close();
    this.es = null;
    this.open = false;
  },
};

function onTaskEvent(ev) {
  state.events++;
  $('conn').dataset.events = String(state.events);
  if (ev.kind === 'transition' && ev.at) {
    if (throughput.add(ev.task_id, ev.status, toLocal(ev.at)) && state.view === 'monitor') redrawChart();
  }
  if (state.view === 'tasks') {
    const f = state.filters;
    if ((!f.type || !ev.type || ev.type === f.type) && (!f.queue || !ev.queue || ev.queue === f.queue)) schedule('view');
  } else if (state.view === 'task' && ev.task_id === state.taskId) {
    schedule('view');
  } else if (state.view === 'monitor') {
    schedule('view', 1000);
  }
}

// Debounced, never-overlapping refreshes.
const pending = new Map();
function schedule(what, delay = 200) {
  let p = pending.get(what);
  if (!p) { p = { timer: null, running: false, again: false }; pending.set(what, p); }
  if (p.running) { p.again = true; return; }
  if (p.timer) return;
  p.timer = setTimeout(async () => {
    p.timer = null;
    p.running = true;
    try { await (what === 'view' ? loadView() : null); } finally {
      p.running = false;
      if (p.again) { p.again = false; schedule(what, delay); }
    }
  }, delay);
}

function refreshView() { schedule('view', 0); }

// Counts the recently finished tasks into the chart (at start, when the
// stream (re)opens, and on every poll without it).
async function backfillThroughput() {
  try {
    const data = await api('GET', '/api/tasks?status=completed,failed&limit=100');
    for (const t of data.tasks || []) {
      if (t.completed_at) throughput.add(t.task_id, t.status, toLocal(t.completed_at));
    }
    if (state.view === 'monitor') redrawChart();
  } catch { /* shown by the views */ }
}

function tick() {
  if (document.hidden) return;
  const stale = Date.now() - state.lastViewLoad > (live.open ? SAFETY_REFRESH_MS : POLL_MS - 250);
  if (state.view === 'monitor' || (stale && state.view !== 'submit')) refreshView();
  if (!live.open) backfillThroughput();
  throughput.prune();
}

// ------------------------------------------------------------- routing

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query] = raw.split('?');
  const parts = path.split('/').filter(Boolean);
  return { parts, params: new URLSearchParams(query || '') };
}

function setHash(hash, replace) {
  if (location.hash === hash) return;
  if (replace) history.replaceState(null, '', hash);
  else location.hash = hash;
}

function route(userNav) {
  const { parts, params } = parseHash();
  let view = parts[0] || 'tasks';
  if (view === 'task' && parts[1]) state.taskId = decodeURIComponent(parts[1]);
  else if (!['tasks', 'submit', 'monitor'].includes(view)) view = 'tasks';
  if (view === 'tasks') readFilters(params);
  const changed = state.view !== view;
  state.view = view;
  for (const v of ['tasks', 'task', 'submit', 'monitor']) $(`view-${v}`).hidden = v !== view;
  for (const a of document.querySelectorAll('.views a')) {
    const on = a.dataset.view === view || (view === 'task' && a.dataset.view === 'tasks');
    if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const titles = { tasks: 'Tasks', task: 'Task', submit: 'Submit a task', monitor: 'Workers & queues' };
  document.title = `${titles[view]} · AI-Pal job queue`;
  if (view === 'submit') openSubmit(params);
  if (changed && userNav) $(`${view}-title`).focus({ preventScroll: false });
  if (view === 'task' && changed) { $('task-detail').replaceChildren(); state.detail = null; }
  if (view !== 'submit') refreshView();
  else state.lastViewLoad = Date.now();
  if (view === 'monitor') redrawChart();
}

async function loadView() {
  state.lastViewLoad = Date.now();
  if (state.view === 'tasks') await loadTasks();
  else if (state.view === 'task') await loadTask();
  else if (state.view === 'monitor') await loadMonitor();
}

// --------------------------------------------------------------- tasks

function readFilters(params) {
  const f = state.filters;
  f.status = FILTER_STATES[params.get('status')] !== undefined ? params.get('status') : 'all';
  f.type = params.get('type') || '';
  f.queue = params.get('queue') || '';
  f.page = Math.max(0, parseInt(params.get('page') || '1', 10) - 1) || 0;
  const size = parseInt(params.get('size') || '20', 10);
  f.size = [20, 50, 100].includes(size) ? size : 20;
  const form = $('filters');
  form.elements.status.value = f.status;
  ensureOption($('filter-type'), f.type);
  ensureOption($('filter-queue'), f.queue);
  $('filter-type').value = f.type;
  $('filter-queue').value = f.queue;
  $('page-size').value = String(f.size);
}

function ensureOption(select, value) {
  if (value && ![...select.options].some((o) => o.value === value)) select.append(h('option', { value }, value));
}

function filtersHash() {
  const f = state.filters;
  const q = new URLSearchParams();
  if (f.status !== 'all') q.set('status', f.status);
  if (f.type) q.set('type', f.type);
  if (f.queue) q.set('queue', f.queue);
  if (f.page) q.set('page', String(f.page + 1));
  if (f.size !== 20) q.set('size', String(f.size));
  const s = q.toString();
  return `#/tasks${s ? `?${s}` : ''}`;
}

function applyFilters(resetPage = true) {
  const form = $('filters');
  const f = state.filters;
  f.status = form.elements.status.value || 'all';
  f.type = $('filter-type').value;
  f.queue = $('filter-queue').value;
  f.size = parseInt($('page-size').value, 10) || 20;
  if (resetPage) f.page = 0;
  setHash(filtersHash(), true);
  refreshView();
}

// The list request of the current filters.
function tasksQuery() {
  const f = state.filters;
  const q = new URLSearchParams({ limit: String(f.size), offset: String(f.page * f.size) });
  if (FILTER_STATES[f.status]) q.set('status', FILTER_STATES[f.status]);
  if (f.type) q.set('type', f.type);
  if (f.queue) q.set('queue', f.queue);
  return q.toString();
}

async function loadTasks() {
  const f = state.filters;
  const want = tasksQuery();
  let data;
  try {
    data = await api('GET', `/api/tasks?${want}`);
  } catch (e) {
    showBanner('tasks-error', `Cannot load tasks: ${errorText(e)}`);
    return;
  }
  showBanner('tasks-error', '');
  // Filters changed while the request was out: the load they scheduled
  // renders; this answer would show the old list for a moment, and take
  // the keyboard focus away with the row it left on.
  if (state.view !== 'tasks' || tasksQuery() !== want) return;
  state.total = data.total_count || 0;
  if (f.page > 0 && f.page * f.size >= state.total) { // the page emptied: go back
    f.page = Math.max(0, Math.ceil(state.total / f.size) - 1);
    setHash(filtersHash(), true);
    schedule('view', 0);
    return;
  }
  renderTasks(data.tasks || []);
}

function canCancel(t) {
  return (WAITING.has(t.status) || t.status === 'running') && !t.cancel_requested;
}
function canRetry(t) {
  return t.status === 'failed' || t.status === 'cancelled';
}

function actionButtons(t, compact) {
  const out = [];
  if (canCancel(t)) {
    out.push(h('button', {
      type: 'button', class: `danger${compact ? ' small' : ''}`, 'data-action': 'cancel', 'data-id': t.task_id,
      'aria-label': compact ? `Cancel ${t.task_type} task ${t.task_id}` : null,
    }, 'Cancel'));
  }
  if (canRetry(t)) {
    out.push(h('button', {
      type: 'button', class: compact ? 'small' : '', 'data-action': 'retry', 'data-id': t.task_id,
      'aria-label': compact ? `Retry ${t.task_type} task ${t.task_id}` : null,
    }, 'Retry'));
  }
  return out;
}

function progressBar(t, cls = '') {
  const p = Math.max(0, Math.min(100, Number(t.progress) || 0));
  return h('progress', { class: `progress ${cls}`, max: '100', value: String(p), 'aria-label': `Progress ${p}%` }, `${p}%`);
}

// A horizontal bar of pct percent (CSSOM, which the CSP allows, unlike style attributes).
function bar(pct) {
  const el = h('span', { class: 'bar' });
  el.style.width = `${Math.max(0, Math.min(100, pct))}%`;
  return el;
}

function renderTasks(tasks) {
  const rows = $('task-rows');
  const prev = state.lastStatus;
  const next = new Map();
  const focusedId = document.activeElement && document.activeElement.closest && document.activeElement.closest('tr') ? document.activeElement.closest('tr').dataset.id : null;
  const focusedAction = focusedId && document.activeElement.dataset.action;
  rows.replaceChildren(...tasks.map((t) => {
    next.set(t.task_id, t.status);
    const changed = prev.has(t.task_id) && prev.get(t.task_id) !== t.status;
    const running = t.status === 'running';
    const duration = t.duration_seconds !== null && t.duration_seconds !== undefined ? fmtDuration(t.duration_seconds)
      : running && t.started_at ? `${fmtSecs((Date.now() - toLocal(t.started_at)) / 1000)} so far` : '–';
    return h('tr', { 'data-id': t.task_id, 'data-status': t.status, class: changed ? 'changed' : null },
      h('td', { 'data-label': 'Status' }, badge(t.status),
        running ? progressBar(t) : null,
        t.cancel_requested ? h('span', { class: 'tag' }, 'cancel requested') : null),
      h('td', { 'data-label': 'Task' },
        h('a', { href: `#/task/${encodeURIComponent(t.task_id)}`, class: 'task-link' },
          h('span', { class: 'type' }, t.task_type),
          h('span', { class: 'id mono' }, shortId(t.task_id)))),
      h('td', { 'data-label': 'Queue' }, t.queue),
      h('td', { 'data-label': 'Created' }, timeEl(t.created_at)),
      h('td', { 'data-label': 'Duration' }, duration),
      h('td', { class: 'row-actions' }, ...actionButtons(t, true)));
  }));
  state.lastStatus = next;
  if (focusedId) { // keep the keyboard where it was across live refreshes
    const row = rows.querySelector(`tr[data-id="${CSS.escape(focusedId)}"]`);
    const el = row && (row.querySelector(`[data-action="${focusedAction}"]`) || row.querySelector('a'));
    if (el) el.focus();
  }
  $('tasks-empty').hidden = tasks.length > 0;
  $('task-table').classList.toggle('is-empty', tasks.length === 0);
  const f = state.filters;
  const from = state.total ? f.page * f.size + 1 : 0;
  const to = f.page * f.size + tasks.length;
  $('page-info').textContent = state.total ? `${from}–${to} of ${state.total}` : '0 tasks';
  $('page-prev').disabled = f.page === 0;
  $('page-next').disabled = to >= state.total;
}

function goPage(delta) {
  const f = state.filters;
  const last = Math.max(0, Math.ceil(state.total / f.size) - 1);
  const page = Math.min(last, Math.max(0, f.page + delta));
  if (page === f.page) return;
  f.page = page;
  setHash(filtersHash(), true);
  refreshView();
}

// ---------------------------------------------------------- task detail

async function loadTask() {
  const id = state.taskId;
  let t;
  try {
    t = await api('GET', `/api/tasks/${encodeURIComponent(id)}`);
  } catch (e) {
    showBanner('task-error', e.status === 404 ? 'There is no task with this id.' : `Cannot load the task: ${errorText(e)}`);
    return;
  }
  showBanner('task-error', '');
  if (state.view !== 'task' || state.taskId !== id) return;
  state.detail = t;
  renderTask(t);
}

function dlRow(term, value) {
  return h('div', { class: 'fact' }, h('dt', {}, term),
    h('dd', {}, value === null || value === undefined || value === '' ? h('span', { class: 'muted' }, '–') : value));
}

function codeBlock(title, value, cls) {
  return h('section', { class: `block ${cls || ''}` }, h('h2', {}, title), h('pre', { tabindex: '0' }, h('code', {}, pretty(value))));
}

function renderTask(t) {
  $('task-title').textContent = `Task ${t.task_type}`;
  const p = Math.max(0, Math.min(100, Number(t.progress) || 0));
  const showProgress = t.status === 'running' || p > 0 || t.progress_message;
  const detail = h('div', { class: 'detail' },
    h('div', { class: 'detail-head' },
      badge(t.status),
      t.cancel_requested ? h('span', { class: 'tag' }, 'cancel requested') : null,
      h('code', { class: 'mono task-id', title: 'Task id' }, t.task_id),
      h('div', { class: 'detail-actions' },
        ...actionButtons(t, false),
        h('button', { type: 'button', class: 'ghost', 'data-action': 'again', 'data-id': t.task_id }, 'Submit again…'))),
    showProgress ? h('div', { class: 'progress-row' },
      progressBar(t, 'big'),
      h('span', {}, `${p}%${t.progress_message ? ` · ${t.progress_message}` : ''}`)) : null,
    h('dl', { class: 'facts' },
      dlRow('Type', `${t.task_type}${t.category ? ` (${t.category})` : ''}`),
      dlRow('Queue', t.queue),
      dlRow('Priority', t.priority),
      dlRow('Attempts', `${t.attempts} of at most ${(t.max_retries || 0) + 1}`),
      dlRow('Worker', t.worker_id),
      dlRow('User', t.user_id),
      dlRow('Idempotency key', t.idempotency_key),
      dlRow('Created', timeEl(t.created_at)),
      dlRow('Runs at', t.run_at ? timeEl(t.run_at) : null),
      dlRow('Started', timeEl(t.started_at)),
      dlRow('Finished', timeEl(t.completed_at)),
      dlRow('Duration', fmtDuration(t.duration_seconds))),
    t.error_message ? h('section', { class: 'block error-block' }, h('h2', {}, 'Error'), h('p', { class: 'error-message' }, t.error_message)) : null,
    t.error_detail ? codeBlock('Traceback', t.error_detail, 'traceback') : null,
    codeBlock('Parameters', t.params || {}),
    t.result !== null && t.result !== undefined ? codeBlock('Result', t.result) : null);
  const keep = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.action : null;
  $('task-detail').replaceChildren(detail);
  if (keep) {
    const el = $('task-detail').querySelector(`[data-action="${keep}"]`);
    if (el) el.focus(); else $('task-title').focus();
  }
}

// -------------------------------------------------------------- actions

function confirmDialog(title, text, yes, id) {
  const d = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-yes').textContent = yes;
  const back = document.activeElement;
  return new Promise((resolve) => {
    d.addEventListener('close', () => {
      resolve(d.returnValue === 'yes');
      if (back && back.isConnected) { back.focus(); return; }
      // the list was redrawn meanwhile: the same task's row, else the heading
      const row = id && document.querySelector(`#view-${state.view} [data-id="${CSS.escape(id)}"]`);
      const el = row && (row.querySelector('button, a') || row);
      (el && el.focus ? el : $(`${state.view}-title`)).focus();
    }, { once: true });
    d.returnValue = '';
    d.showModal();
    $('confirm-no').focus();
  });
}

async function cancelTask(id) {
  const t = state.detail && state.detail.task_id === id ? state.detail : null;
  const row = $('task-rows').querySelector(`tr[data-id="${CSS.escape(id)}"]`);
  const type = t ? t.task_type : row && row.querySelector('.type') ? row.querySelector('.type').textContent : '';
  const what = type ? `${type} task` : 'task';
  const running = (t ? t.status : row && row.dataset.status) === 'running';
  const ok = await confirmDialog(`Cancel this ${what}?`,
    `${running ? 'Its worker is asked to stop it within a second; ' : 'It will not run; '}a cancelled task can be retried later. Task ${id}.`,
    'Cancel task', id);
  if (!ok) return;
  try {
    const r = await api('DELETE', `/api/tasks/${encodeURIComponent(id)}`);
    notify(r.cancel_requested ? 'Cancel requested: the worker stops the task within a second.' : 'Task cancelled.');
  } catch (e) {
    notify(`Cannot cancel: ${errorText(e)}`, 'error');
  }
  refreshView();
}

async function retryTask(id) {
  try {
    await api('POST', `/api/tasks/${encodeURIComponent(id)}/retry`);
    notify('Task queued again.', 'ok', state.view === 'task' ? null : { href: `#/task/${encodeURIComponent(id)}`, text: 'View' });
  } catch (e) {
    notify(`Cannot retry: ${errorText(e)}`, 'error');
  }
  refreshView();
}

document.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-action]');
  if (!b) return;
  const id = b.dataset.id;
  if (b.dataset.action === 'cancel') cancelTask(id);
  else if (b.dataset.action === 'retry') retryTask(id);
  else if (b.dataset.action === 'again' && state.detail) {
    state.prefill = { type: state.detail.task_type, params: state.detail.params };
    setHash(`#/submit?type=${encodeURIComponent(state.detail.task_type)}`);
  }
});

// --------------------------------------------------------------- submit

let paramFields = null;
let optionFields = null;
let submitType = null;

function fillTypeSelects() {
  const sel = $('submit-type');
  sel.replaceChildren();
  const byQueue = new Map();
  for (const t of state.types) {
    if (!byQueue.has(t.queue)) byQueue.set(t.queue, []);
    byQueue.get(t.queue).push(t);
  }
  for (const [queue, types] of byQueue) {
    sel.append(h('optgroup', { label: `Queue ${queue}` }, ...types.map((t) => h('option', { value: t.name }, t.name))));
  }
  const ft = $('filter-type');
  const keepT = ft.value;
  ft.replaceChildren(h('option', { value: '' }, 'All types'), ...state.types.map((t) => h('option', { value: t.name }, t.name)));
  ft.value = keepT;
  const fq = $('filter-queue');
  const keepQ = fq.value;
  fq.replaceChildren(h('option', { value: '' }, 'All queues'), ...state.queues.map((q) => h('option', { value: q }, q)));
  fq.value = keepQ;
}

function openSubmit(params) {
  if (!state.types.length) return;
  const wanted = (state.prefill && state.prefill.type) || params.get('type');
  const name = state.typeByName.has(wanted) ? wanted : submitType || state.types[0].name;
  if (name !== submitType || !paramFields) selectType(name);
  if (state.prefill && state.prefill.type === name) {
    paramFields.fill(state.prefill.params);
    state.prefill = null;
  }
}

function selectType(name) {
  const t = state.typeByName.get(name);
  if (!t) return;
  submitType = name;
  $('submit-type').value = name;
  $('submit-type-hint').textContent = `${t.description.replace(/\.?$/, '.')} Runs on queue ${t.queue}; up to ${t.max_retries} retries.`;
  paramFields = buildFields($('submit-param-fields'), t.params_schema || { properties: {} }, 'params');
  optionFields = buildFields($('submit-option-fields'), {
    type: 'object',
    properties: {
      priority: { type: 'integer', minimum: 1, maximum: t.max_priority || 10, default: t.priority, description: 'Higher runs first.' },
      queue: { type: 'string', enum: state.queues, default: t.queue, description: "Route to this queue instead of the type's." },
      delay_ms: { type: 'integer', minimum: 0, description: 'Run no earlier than this many milliseconds from now.' },
      max_retries: { type: 'integer', minimum: 0, maximum: 1000, default: t.max_retries, description: "Override the type's retries." },
      idempotency_key: { type: 'string', maxLength: 200, description: 'Submitting the same key again while the task is unfinished returns that task.' },
      user_id: { type: 'string', maxLength: 200, description: 'The user the task is for (default: params.user_id).' },
    },
  }, '');
  clearErrors($('submit-form'));
  showBanner('submit-errors', '');
  const want = `#/submit?type=${encodeURIComponent(name)}`;
  if (state.view === 'submit') setHash(want, true);
}

async function submitTask(e) {
  e.preventDefault();
  const form = $('submit-form');
  const t = state.typeByName.get($('submit-type').value);
  if (!t) return;
  clearErrors(form);
  showBanner('submit-errors', '');
  $('submit-result').hidden = true;
  const p = paramFields.read();
  const o = optionFields.read();
  const body = { type: t.name, params: p.value, ...o.value };
  let errors = [...p.errors, ...o.errors];
  if (!errors.length) {
    const button = $('submit-button');
    button.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      const r = await api('POST', '/api/tasks', body);
      const link = `#/task/${encodeURIComponent(r.task_id)}`;
      const res = $('submit-result');
      res.replaceChildren(
        h('span', {}, r.created === false ? 'An unfinished task already holds this idempotency key: ' : 'Task submitted: '),
        h('a', { href: link, id: 'submitted-link', 'data-id': r.task_id }, `${r.type || t.name} ${shortId(r.task_id)}`),
        h('span', {}, ` (${r.status} on queue ${r.queue || t.queue}).`));
      res.hidden = false;
      return;
    } catch (err) {
      if (err.status === 400 && Array.isArray(err.detail)) errors = err.detail;
      else { showBanner('submit-errors', `The task was not submitted: ${errorText(err)}`); return; }
    } finally {
      button.disabled = false;
      form.removeAttribute('aria-busy');
    }
  }
  const { unplaced, first } = showErrors(form, errors);
  if (unplaced.some((x) => /^(priority|queue|delay_ms|max_retries|idempotency_key|user_id)$/.test(x.field)) || form.querySelector('.options .invalid')) {
    form.querySelector('details.options').open = true;
  }
  const n = errors.length;
  const b = $('submit-errors');
  const placed = n - unplaced.length;
  b.replaceChildren(...[
    h('p', {}, `The task was not submitted: ${n} field error${n === 1 ? '' : 's'}${placed ? `, shown next to ${placed === 1 ? 'its field' : 'the fields'}` : ''}.`),
    unplaced.length && h('ul', {}, ...unplaced.map((x) => h('li', {}, `${x.field || 'request'}: ${x.error}`))),
  ].filter(Boolean));
  b.hidden = false;
  if (form.querySelector('.options .invalid')) form.querySelector('details.options').open = true;
  (first || b).focus();
}

// -------------------------------------------------------------- monitor

async function loadMonitor() {
  const sent = Date.now();
  const [w, q] = await Promise.allSettled([api('GET', '/api/workers'), api('GET', '/api/queues')]);
  if (state.view !== 'monitor') return;
  const errs = [w, q].filter((r) => r.status === 'rejected').map((r) => errorText(r.reason));
  showBanner('monitor-error', errs.length ? `Cannot load: ${[...new Set(errs)].join('; ')}` : '');
  if (w.status === 'fulfilled') {
    if (w.value.timestamp) noteServerTime(w.value.timestamp, sent);
    renderWorkers(w.value.workers || []);
  }
  if (q.status === 'fulfilled') renderQueues(q.value.queues || []);
  renderSummary(w.status === 'fulfilled' ? w.value : null, q.status === 'fulfilled' ? q.value : null);
  redrawChart();
}

function renderWorkers(workers) {
  workers.sort((a, b) => (b.alive - a.alive) || String(a.host).localeCompare(String(b.host)));
  const now = Date.now() + state.clockOffset; // the server's clock
  $('worker-rows').replaceChildren(...workers.map((w) => {
    const counts = w.counts || {};
    const beat = w.last_heartbeat_ms ? `${fmtSecs(Math.max(0, (now - w.last_heartbeat_ms) / 1000))} ago` : '–';
    const up = w.started_at_ms ? fmtSecs(Math.max(0, (now - w.started_at_ms) / 1000)) : '–';
    const queues = Array.isArray(w.queues) ? w.queues : String(w.queues || '').split(',').filter(Boolean);
    return h('tr', { 'data-id': w.id, 'data-alive': String(!!w.alive) },
      h('td', { 'data-label': 'State' }, h('span', { class: 'badge', 'data-status': w.alive ? 'online' : 'offline' }, w.alive ? 'online' : 'offline')),
      h('td', { 'data-label': 'Host' }, h('span', { class: 'host' }, w.host || '?'), h('span', { class: 'id mono', title: w.id }, ` pid ${w.pid ?? '?'}${w.mode ? ` · ${w.mode}` : ''}`)),
      h('td', { 'data-label': 'Queues', class: 'wrap' }, h('span', { class: 'chips' }, ...queues.map((q) => h('span', { class: 'chip' }, q)))),
      h('td', { 'data-label': 'Running' }, `${w.running ?? 0} / ${w.concurrency ?? '?'}`),
      h('td', { 'data-label': 'Heartbeat' }, beat),
      h('td', { 'data-label': 'Done' }, String(counts.completed ?? 0)),
      h('td', { 'data-label': 'Failed' }, String(counts.failed ?? 0)),
      h('td', { 'data-label': 'Up' }, up));
  }));
  $('workers-empty').hidden = workers.length > 0;
}

function renderQueues(queues) {
  const maxDepth = Math.max(1, ...queues.map((q) => q.depth || 0));
  $('queue-rows').replaceChildren(...queues.map((q) => {
    const s = q.states || {};
    const pct = ((q.depth || 0) / maxDepth) * 100;
    return h('tr', { 'data-queue': q.name },
      h('th', { scope: 'row', 'data-label': 'Queue' }, q.name),
      h('td', { 'data-label': 'Ready' }, String(q.ready ?? '–')),
      h('td', { 'data-label': 'Scheduled' }, String(q.scheduled ?? '–')),
      h('td', { 'data-label': 'Running' }, String(q.leased ?? '–')),
      h('td', { 'data-label': 'Depth' }, h('span', { class: 'depth' }, h('span', { class: 'track' }, bar(pct)), h('span', {}, String(q.depth ?? 0)))),
      h('td', { 'data-label': 'Completed 1 h' }, String(s.completed_last_hour || 0)),
      h('td', { 'data-label': 'Failed 1 h' }, String(s.failed_last_hour || 0)));
  }));
}

function renderSummary(w, q) {
  const minute = throughput.totals(60000);
  const qs = q ? q.queues || [] : [];
  const sum = (k) => qs.reduce((a, x) => a + (x[k] || 0), 0);
  const cards = [
    ['Workers online', w ? `${w.alive} / ${w.count}` : '–'],
    ['Queued', q ? String(sum('ready') + sum('scheduled')) : '–'],
    ['Running', q ? String(sum('leased')) : '–'],
    ['Completed, last minute', String(minute.completed)],
    ['Failed, last minute', String(minute.failed)],
  ];
  $('summary').replaceChildren(...cards.map(([k, v]) => h('li', { class: 'card' }, h('span', { class: 'card-value' }, v), h('span', { class: 'card-label' }, k))));
}

function redrawChart() {
  if (state.view !== 'monitor') return;
  const series = throughput.series();
  drawChart($('chart'), series);
  const all = throughput.totals(WINDOW_MS);
  const minute = throughput.totals(60000);
  const text = `Last 5 minutes: ${all.completed} completed, ${all.failed} failed. Last minute: ${minute.completed} completed (${(minute.completed / 60).toFixed(2)}/s), ${minute.failed} failed (${(minute.failed / 60).toFixed(2)}/s).`;
  $('chart').setAttribute('aria-label', `Throughput chart. ${text}`);
  $('chart-summary').textContent = text;
}

// ---------------------------------------------------------------- API key

function openKeyPanel(reason) {
  const panel = $('key-panel');
  const r = $('key-reason');
  r.textContent = reason || '';
  r.hidden = !reason;
  if (panel.hidden) {
    panel.hidden = false;
    $('key-button').setAttribute('aria-expanded', 'true');
    $('key-input').value = apiKey();
    $('key-input').focus();
  }
}

function closeKeyPanel() {
  $('key-panel').hidden = true;
  $('key-button').setAttribute('aria-expanded', 'false');
}

function setKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORE, key); else sessionStorage.removeItem(KEY_STORE);
  } catch { /* storage disabled: the key lasts as long as the page */ }
  $('key-button').textContent = key ? 'API key ✓' : 'API key';
  closeKeyPanel();
  setConn('connecting');
  start();
}

// -------------------------------------------------------------- keyboard

function onKey(e) {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t && (t.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(t.tagName))) return;
  if (document.querySelector('dialog[open]')) return;
  const go = { 1: '#/tasks', 2: '#/submit', 3: '#/monitor' };
  if (go[e.key]) { e.preventDefault(); location.hash = go[e.key] === '#/tasks' ? filtersHash() : go[e.key]; }
  else if (e.key === 'r') { e.preventDefault(); refreshView(); backfillThroughput(); notify('Refreshed.'); }
  else if (e.key === '/') {
    e.preventDefault();
    if (state.view !== 'tasks') location.hash = filtersHash();
    setTimeout(() => { const f = $('filters').querySelector('input[name=status]:checked'); if (f) f.focus(); }, 0);
  } else if (e.key === '[' && state.view === 'tasks') goPage(-1);
  else if (e.key === ']' && state.view === 'tasks') goPage(1);
  else if (e.key === 'k') { e.preventDefault(); openKeyPanel(''); }
  else if (e.key === '?') { e.preventDefault(); $('help').showModal(); }
}

// ------------------------------------------------------------------ start

async function loadTypes() {
  try {
    const data = await api('GET', '/api/tasks/types');
    state.types = data.types || [];
    state.queues = data.queues || [...new Set(state.types.map((t) => t.queue))];
    state.typeByName = new Map(state.types.map((t) => [t.name, t]));
    fillTypeSelects();
    return true;
  } catch (e) {
    if (e.status !== 401) notify(`Cannot load the task types: ${errorText(e)}`, 'error');
    return false;
  }
}

async function start() {
  submitType = null;
  paramFields = null;
  if (await loadTypes()) {
    route(false);
    live.start();
    backfillThroughput();
  } else if (state.conn !== 'auth') {
    setTimeout(start, POLL_MS); // the API is down: try again
  }
}

function wire() {
  window.addEventListener('hashchange', () => route(true));
  $('filters').addEventListener('change', () => applyFilters(true));
  $('filters').addEventListener('submit', (e) => e.preventDefault());
  $('page-size').addEventListener('change', () => applyFilters(true));
  $('page-prev').addEventListener('click', () => goPage(-1));
  $('page-next').addEventListener('click', () => goPage(1));
  $('submit-type').addEventListener('change', (e) => selectType(e.target.value));
  $('submit-form').addEventListener('submit', submitTask);
  $('submit-example').addEventListener('click', () => {
    const t = state.typeByName.get(submitType);
    if (t) { paramFields.fill(t.example || (t.params_schema || {}).example || {}); clearErrors($('submit-form')); showBanner('submit-errors', ''); }
  });
  $('submit-clear').addEventListener('click', () => { selectType(submitType); $('submit-result').hidden = true; });
  $('key-button').addEventListener('click', () => ($('key-panel').hidden ? openKeyPanel('') : closeKeyPanel()));
  $('key-form').addEventListener('submit', (e) => { e.preventDefault(); setKey($('key-input').value.trim()); });
  $('key-clear').addEventListener('click', () => { $('key-input').value = ''; setKey(''); });
  $('key-panel').addEventListener('keydown', (e) => { if (e.key === 'Escape') { closeKeyPanel(); $('key-button').focus(); } });
  document.addEventListener('keydown', onKey);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshView(); });
  new ResizeObserver(() => redrawChart()).observe($('chart'));
  setInterval(tick, POLL_MS);
  setInterval(() => { if (state.view === 'monitor' && !document.hidden) { throughput.prune(); redrawChart(); } }, 1000);
  if (apiKey()) $('key-button').textContent = 'API key ✓';
}

wire();
start();
