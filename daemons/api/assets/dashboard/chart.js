// Throughput: tasks that completed or failed, counted in 5-second buckets of
// the browser's clock over the last five minutes, and drawn as two lines
// (per second) on a <canvas>.

export const WINDOW_MS = 5 * 60 * 1000;
export const BUCKET_MS = 5000;
const BUCKETS = WINDOW_MS / BUCKET_MS;

export class Throughput {
  constructor() {
    this.seen = new Map(); // "task|status" -> time counted (a retried task may finish again)
    this.buckets = new Map(); // bucket index -> {completed, failed}
  }

  // Counts a task that reached `status` (completed or failed) at `atMs`
  // (browser clock). The same task and status within 2 s count once, so the
  // event stream and the list it is backfilled from do not double up.
  add(taskId, status, atMs, now = Date.now()) {
    if (status !== 'completed' && status !== 'failed') return false;
    if (!Number.isFinite(atMs) || atMs < now - WINDOW_MS || atMs > now + 60000) return false;
    const key = `${taskId}|${status}`;
    const prev = this.seen.get(key);
    if (prev !== undefined && Math.abs(prev - atMs) < 2000) return false;
    this.seen.set(key, atMs);
    const b = Math.floor(atMs / BUCKET_MS);
    const slot = this.buckets.get(b) || { completed: 0, failed: 0 };
    slot[status]++;
    this.buckets.set(b, slot);
    return true;
  }

  prune(now = Date.now()) {
    const oldest = Math.floor((now - WINDOW_MS) / BUCKET_MS) - 1;
    for (const b of this.buckets.keys()) if (b < oldest) this.buckets.delete(b);
    for (const [k, t] of this.seen) if (t < now - WINDOW_MS - 5000) this.seen.delete(k);
  }

  // [{t, completed, failed}] per bucket, oldest first; rates per second.
  series(now = Date.now()) {
    const last = Math.floor(now / BUCKET_MS);
    const out = [];
    for (let b = last - BUCKETS + 1; b <= last; b++) {
      const s = this.buckets.get(b) || { completed: 0, failed: 0 };
      out.push({ t: b * BUCKET_MS, completed: s.completed / (BUCKET_MS / 1000), failed: s.failed / (BUCKET_MS / 1000) });
    }
    return out;
  }

  // Totals over the last `ms`.
  totals(ms, now = Date.now()) {
    const from = Math.floor((now - ms) / BUCKET_MS);
    let completed = 0;
    let failed = 0;
    for (const [b, s] of this.buckets) if (b > from) { completed += s.completed; failed += s.failed; }
    return { completed, failed };
  }
}

// A round step (1, 2 or 5 times a power of ten) giving at most 5 grid lines up to v.
function niceStep(v) {
  const raw = Math.max(v, 0.2) / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}

function fmtRate(v) {
  if (Math.abs(v) < 1e-9) return '0';
  if (v < 1) return String(Number(v.toFixed(2)));
  return String(Number(v.toFixed(1)));
}

// Draws the series on the canvas, sized to its CSS box and the device pixel
// ratio; colours come from the canvas's CSS custom properties.
export function drawChart(canvas, series) {
  const rect = canvas.getBoundingClientRect();
  if (rect.width < 10 || rect.height < 10) return;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(rect.width * dpr);
  const hgt = Math.round(rect.height * dpr);
  if (canvas.width !== w || canvas.height !== hgt) { canvas.width = w; canvas.height = hgt; }
  const ctx = canvas.getContext('2d');
  const css = getComputedStyle(canvas);
  const color = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  const cText = color('--chart-text', '#5b6475');
  const cGrid = color('--chart-grid', '#e3e6ec');
  const cDone = color('--chart-completed', '#1f9d55');
  const cFail = color('--chart-failed', '#d64545');

  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, rect.width, rect.height);
  const font = `12px ${css.fontFamily || 'system-ui, sans-serif'}`;
  ctx.font = font;

  const step = niceStep(Math.max(...series.map((p) => Math.max(p.completed, p.failed))));
  const max = Math.max(0.2, step, Math.ceil(Math.max(...series.map((p) => Math.max(p.completed, p.failed))) / step - 1e-9) * step);
  const left = Math.ceil(ctx.measureText(fmtRate(max)).width) + 12;
  const right = 8;
  const top = 8;
  const bottom = 22;
  const pw = rect.width - left - right;
  const ph = rect.height - top - bottom;
  const x = (i) => left + (series.length <= 1 ? 0 : (i / (series.length - 1)) * pw);
  const y = (v) => top + ph - (v / max) * ph;

  // grid and axes
  ctx.strokeStyle = cGrid;
  ctx.fillStyle = cText;
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let v = 0; v <= max + step / 2; v += step) {
    const yy = Math.round(y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(left + pw, yy); ctx.stroke();
    ctx.fillText(fmtRate(v), left - 6, yy);
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  const minutes = WINDOW_MS / 60000;
  for (let m = 0; m <= minutes; m++) {
    const xx = left + (m / minutes) * pw;
    const label = m === minutes ? 'now' : `-${minutes - m}m`;
    ctx.textAlign = m === 0 ? 'left' : m === minutes ? 'right' : 'center';
    ctx.fillText(label, xx, top + ph + 6);
  }

  const line = (key, stroke) => {
    ctx.beginPath();
    series.forEach((p, i) => (i ? ctx.lineTo(x(i), y(p[key])) : ctx.moveTo(x(i), y(p[key]))));
    ctx.strokeStyle = stroke;
    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    ctx.stroke();
    ctx.lineTo(x(series.length - 1), y(0));
    ctx.lineTo(x(0), y(0));
    ctx.closePath();
    ctx.globalAlpha = 0.12;
    ctx.fillStyle = stroke;
    ctx.fill();
    ctx.globalAlpha = 1;
  };
  line('completed', cDone);
  line('failed', cFail);
}
