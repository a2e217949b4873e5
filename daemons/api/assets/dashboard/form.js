// Form fields generated from a JSON Schema (the subset the task catalog uses:
// object, string with enum/minLength/maxLength, integer, number, boolean,
// arrays of strings, nested objects and free-form objects), with reading the
// values back, filling in an example, and showing field errors by path
// ("params.policy.audit_logs", "params.texts[3]") next to the fields.

// h('tag', {attr: value}, ...children): an element; strings become text
// nodes (never parsed as HTML), null and false children are skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

let uid = 0;

// A field-path as the API names it -> the id-safe suffix of the control.
function slug(path) {
  return path.replace(/[^A-Za-z0-9_-]+/g, '-');
}

function describe(schema) {
  const bits = [];
  if (schema.description) bits.push(schema.description);
  const range = [];
  if (schema.minimum !== undefined && schema.maximum !== undefined) range.push(`${schema.minimum} to ${schema.maximum}`);
  else if (schema.minimum !== undefined) range.push(`at least ${schema.minimum}`);
  else if (schema.maximum !== undefined) range.push(`at most ${schema.maximum}`);
  if (schema.maxLength !== undefined) range.push(`up to ${schema.maxLength} characters`);
  if (range.length) bits.push(`(${range.join(', ')})`);
  return bits.join(' ');
}

function isStringArray(schema) {
  return schema.type === 'array' && schema.items && schema.items.type === 'string';
}

function hasProps(schema) {
  return schema.type === 'object' && schema.properties && Object.keys(schema.properties).length > 0;
}

function defaultText(schema) {
  if (schema.default === undefined || schema.default === null) return '';
  if (Array.isArray(schema.default)) return schema.default.join(', ');
  if (typeof schema.default === 'object') return JSON.stringify(schema.default);
  return String(schema.default);
}

// One control: returns {node, read(out, errors), fill(value), clear(), paths}.
function control(path, name, schema, required) {
  const id = `f-${slug(path)}-${++uid}`;
  const hintId = `${id}-hint`;
  const errId = `${id}-error`;
  const hint = describe(schema);
  const def = defaultText(schema);
  let input;
  let kind;

  if (hasProps(schema)) return group(path, name, schema, required);

  if (schema.type === 'boolean') {
    kind = 'boolean';
    input = h('select', { id, name: path });
    if (!required) input.append(h('option', { value: '' }, def ? `Default (${def})` : 'Not set'));
    input.append(h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'));
  } else if (Array.isArray(schema.enum)) {
    kind = 'enum';
    input = h('select', { id, name: path });
    if (!required || def === '') input.append(h('option', { value: '' }, def ? `Default (${def})` : required ? 'Choose…' : 'Not set'));
    for (const v of schema.enum) input.append(h('option', { value: String(v) }, String(v)));
  } else if (schema.type === 'integer' || schema.type === 'number') {
    kind = schema.type;
    input = h('input', {
      id, name: path, type: 'number', inputmode: schema.type === 'integer' ? 'numeric' : 'decimal',
      step: schema.type === 'integer' ? '1' : 'any',
    });
    if (schema.minimum !== undefined) input.min = schema.minimum;
    if (schema.maximum !== undefined) input.max = schema.maximum;
  } else if (isStringArray(schema)) {
    kind = 'lines';
    input = h('textarea', { id, name: path, rows: 3 });
  } else if (schema.type === 'string') {
    kind = 'string';
    if ((schema.maxLength || 0) > 300) input = h('textarea', { id, name: path, rows: 3 });
    else input = h('input', { id, name: path, type: 'text', autocomplete: 'off' });
    if (schema.maxLength) input.maxLength = schema.maxLength;
  } else {
    kind = 'json';
    input = h('textarea', { id, name: path, rows: 3, spellcheck: 'false', class: 'mono' });
  }
  if (def && kind !== 'boolean' && kind !== 'enum') input.placeholder = `default: ${def}`;
  else if (kind === 'lines') input.placeholder = 'one per line';
  else if (kind === 'json') input.placeholder = '{ "any": "JSON object" }';
  if (required) input.setAttribute('aria-required', 'true');
  input.dataset.path = path;
  const describedBy = [];
  if (hint || kind === 'lines' || kind === 'json') describedBy.push(hintId);
  describedBy.push(errId);
  input.setAttribute('aria-describedby', describedBy.join(' '));

  const hintText = kind === 'lines' ? `${hint} One item per line.`.trim()
    : kind === 'json' ? `${hint} A JSON object.`.trim() : hint;
  const node = h('div', { class: 'field', 'data-field': path },
    h('label', { for: id }, name, required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null,
      required ? h('span', { class: 'sr-only' }, ' (required)') : null),
    input,
    hintText ? h('p', { id: hintId, class: 'hint' }, hintText) : null,
    h('p', { id: errId, class: 'field-error', hidden: '' }));

  function read(out, errors) {
    const raw = input.value;
    if (kind === 'integer' || kind === 'number') {
      if (input.validity.badInput) { errors.push({ field: path, error: 'must be a number' }); return; }
      if (raw.trim() === '') return;
      out[name] = Number(raw);
    } else if (kind === 'boolean') {
      if (raw !== '') out[name] = raw === 'true';
    } else if (kind === 'enum') {
      if (raw !== '') {
        const hit = schema.enum.find((v) => String(v) === raw);
        out[name] = hit === undefined ? raw : hit;
      }
    } else if (kind === 'lines') {
      const items = raw.split('\n').map((s) => s.trim()).filter((s) => s !== '');
      if (items.length) out[name] = items;
    } else if (kind === 'string') {
      if (raw !== '') out[name] = raw;
    } else if (raw.trim() !== '') {
      try { out[name] = JSON.parse(raw); } catch { errors.push({ field: path, error: 'is not valid JSON' }); }
    }
  }

  function fill(value) {
    if (value === undefined || value === null) { input.value = ''; return; }
    if (kind === 'lines') input.value = Array.isArray(value) ? value.join('\n') : String(value);
    else if (kind === 'json') input.value = JSON.stringify(value, null, 2);
    else input.value = String(value);
  }

  return { node, read, fill, clear: () => { input.value = ''; }, paths: [path] };
}

// A nested object with properties: a fieldset of its own controls.
function group(path, name, schema, required) {
  const req = new Set(schema.required || []);
  const children = Object.entries(schema.properties).map(
    ([key, sub]) => [key, control(`${path}.${key}`, key, sub, req.has(key))]);
  const hint = describe(schema);
  const node = h('fieldset', { class: 'group', 'data-field': path },
    h('legend', {}, name, required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null),
    hint ? h('p', { class: 'hint' }, hint) : null,
    ...children.map(([, c]) => c.node),
    h('p', { class: 'field-error', hidden: '' }));

  function read(out, errors) {
    const obj = {};
    for (const [, c] of children) c.read(obj, errors);
    if (Object.keys(obj).length) out[name] = obj;
  }
  function fill(value) {
    for (const [key, c] of children) c.fill(value && typeof value === 'object' ? value[key] : undefined);
  }
  return {
    node, read, fill,
    clear: () => children.forEach(([, c]) => c.clear()),
    paths: [path, ...children.flatMap(([, c]) => c.paths)],
  };
}

// The controls of an object schema's properties, their paths prefixed with
// `prefix` ("params" gives "params.x"; "" gives "x").
export function buildFields(container, schema, prefix) {
  container.replaceChildren();
  const req = new Set(schema.required || []);
  const controls = Object.entries(schema.properties || {}).map(
    ([key, sub]) => [key, control(prefix ? `${prefix}.${key}` : key, key, sub, req.has(key))]);
  for (const [, c] of controls) container.append(c.node);
  if (!controls.length) container.append(h('p', { class: 'hint' }, 'This type takes no parameters.'));
  return {
    // {value, errors}: the object of the filled-in fields and the fields that
    // cannot be read (bad number, bad JSON).
    read() {
      const value = {};
      const errors = [];
      for (const [, c] of controls) c.read(value, errors);
      return { value, errors };
    },
    fill(obj) { for (const [key, c] of controls) c.fill(obj ? obj[key] : undefined); },
    clear() { for (const [, c] of controls) c.clear(); },
  };
}

// The field (or enclosing group) an API error path belongs to, within root.
function fieldFor(root, path) {
  let p = path;
  for (;;) {
    const el = root.querySelector(`[data-field="${CSS.escape(p)}"]`);
    if (el) return el;
    const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
    if (cut <= 0) return null;
    p = p.slice(0, cut);
  }
}

export function clearErrors(root) {
  for (const el of root.querySelectorAll('.field-error')) { el.textContent = ''; el.hidden = true; }
  for (const el of root.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  for (const el of root.querySelectorAll('.invalid')) el.classList.remove('invalid');
}

// Puts each {field, error} next to its field; returns the errors no field
// took and the first control marked invalid.
export function showErrors(root, errors) {
  const unplaced = [];
  let first = null;
  for (const e of errors) {
    const field = e.field ? fieldFor(root, e.field) : null;
    if (!field) { unplaced.push(e); continue; }
    field.classList.add('invalid');
    const msg = field.querySelector(':scope > .field-error');
    const sub = e.field !== field.dataset.field ? `${e.field.slice(field.dataset.field.length).replace(/^\./, '')}: ` : '';
    msg.textContent = msg.textContent ? `${msg.textContent}; ${sub}${e.error}` : `${sub}${e.error}`;
    msg.hidden = false;
    const ctl = field.querySelector(':scope > input, :scope > select, :scope > textarea') || field.querySelector('input, select, textarea');
    if (ctl) {
      ctl.setAttribute('aria-invalid', 'true');
      first = first || ctl;
    }
  }
  return { unplaced, first };
}
