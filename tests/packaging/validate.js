#!/usr/bin/env node
// Validates every Kubernetes object in the given YAML files against the Kubernetes API schemas,
// as `kubectl apply --validate=strict` would before sending them:
//   1. the OpenAPI schema of its apiVersion/kind, with the validators that kubernetes-models
//      generates from it (types, required fields, enums, formats, int-or-string, ...);
//   2. strict field checking: a field that the schema does not define is an error (the
//      generated validators accept unknown fields; a misspelt `readinessprobe` would otherwise
//      pass and be dropped silently by the API server). Field names come from the TypeScript
//      declarations generated from the same OpenAPI document, walked with the compiler's
//      type checker.
// Objects whose apiVersion is not a built-in API (CRDs) fail: no schema to check them with.
// Before the files, a self-test feeds known-bad objects and fails if any is accepted.
// Prints "PASS <what>" or "FAIL <what>: <why>" per object; exits 1 if any failed.
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");
const ts = require("typescript");

const here = __dirname;

// apiVersion + kind -> module path inside kubernetes-models.
function modulePath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
}

function loadModel(apiVersion, kind) {
  try {
    return require(modulePath(apiVersion, kind))[kind];
  } catch (e) {
    return null;
  }
}

// ---- strict fields: the TypeScript declarations as a type graph ----
let checker = null;
const rootTypes = new Map(); // "apiVersion|kind" -> ts.Type

function buildChecker(kinds) {
  const virtual = path.join(here, "__aipal_kinds__.ts");
  let src = "";
  const keys = [];
  kinds.forEach((k, i) => {
    const [apiVersion, kind] = k.split("|");
    src += `import type { I${kind} as T${i} } from "${modulePath(apiVersion, kind)}";\nexport type K${i} = T${i};\n`;
    keys.push(k);
  });
  const options = {
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    target: ts.ScriptTarget.ES2020,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) =>
    path.resolve(name) === virtual
      ? ts.createSourceFile(name, src, lang, true)
      : getSourceFile(name, lang, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => path.resolve(name) === virtual || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (path.resolve(name) === virtual ? src : readFile(name));
  const program = ts.createProgram([virtual], options, host);
  checker = program.getTypeChecker();
  const sf = program.getSourceFile(virtual);
  const diags = ts.getPreEmitDiagnostics(program, sf);
  const broken = new Set();
  for (const d of diags) {
    const line = sf.getLineAndCharacterOfPosition(d.start || 0).line;
    broken.add(Math.floor(line / 2));
  }
  const aliases = sf.statements.filter((s) => ts.isTypeAliasDeclaration(s));
  aliases.forEach((decl, i) => {
    if (!broken.has(i)) rootTypes.set(keys[i], checker.getTypeAtLocation(decl.name));
  });
}

function isArrayType(t) {
  return (t.symbol && (t.symbol.name === "Array" || t.symbol.name === "ReadonlyArray")) ||
    (checker.isArrayType && checker.isArrayType(t));
}

// Unknown fields of `value` against type `t`, as JSON pointer paths.
function unknownFields(value, t, where, out) {
  if (value === null || typeof value !== "object" || !t) return;
  if (t.isUnion()) {
    const objs = t.types.filter((m) => m.flags & ts.TypeFlags.Object);
    if (Array.isArray(value)) {
      const arr = objs.find(isArrayType);
      if (arr) unknownFields(value, arr, where, out);
      return;
    }
    const plain = objs.filter((m) => !isArrayType(m));
    if (plain.length === 1) unknownFields(value, plain[0], where, out);
    return; // several object shapes: leave it to the schema validator
  }
  if (isArrayType(t)) {
    const el = checker.getTypeArguments(t)[0];
    value.forEach((v, i) => unknownFields(v, el, `${where}/${i}`, out));
    return;
  }
  if (!(t.flags & ts.TypeFlags.Object) || Array.isArray(value)) return;
  const index = t.getStringIndexType();
  for (const key of Object.keys(value)) {
    const prop = t.getProperty(key);
    if (prop) {
      const decl = prop.valueDeclaration || (prop.declarations && prop.declarations[0]);
      const pt = decl ? checker.getTypeOfSymbolAtLocation(prop, decl) : checker.getTypeOfSymbol(prop);
      unknownFields(value[key], checker.getNonNullableType(pt), `${where}/${key}`, out);
    } else if (index) {
      unknownFields(value[key], index, `${where}/${key}`, out);
    } else if (t.getProperties().length > 0) {
      out.push(`${where}/${key}`);
    }
  }
}

function check(doc) {
  if (!doc || typeof doc !== "object") return "not a mapping";
  const { apiVersion, kind } = doc;
  if (!apiVersion || !kind) return "no apiVersion/kind";
  const Model = loadModel(apiVersion, kind);
  if (!Model) return `no built-in schema for ${apiVersion} ${kind}`;
  if (!doc.metadata || !doc.metadata.name) return "metadata.name missing";
  try {
    new Model(JSON.parse(JSON.stringify(doc))).validate();
  } catch (e) {
    return (e.message || String(e)).replace(/\s+/g, " ").slice(0, 600);
  }
  const t = rootTypes.get(`${apiVersion}|${kind}`);
  if (!t) return `no field declarations for ${apiVersion} ${kind}`;
  const unknown = [];
  unknownFields(doc, t, "", unknown);
  if (unknown.length) return `unknown field(s): ${unknown.join(", ")}`;
  return null;
}

// Known-bad objects: each must be rejected, else the validator is not checking anything.
const badObjects = [
  ["unknown field in a container", { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x" },
    spec: { selector: { matchLabels: { a: "b" } }, template: { metadata: { labels: { a: "b" } },
      spec: { containers: [{ name: "c", image: "i", readinessprobe: { httpGet: { path: "/", port: 1 } } }] } } } }],
  ["port as a string", { apiVersion: "v1", kind: "Service", metadata: { name: "x" },
    spec: { ports: [{ port: "80" }] } }],
  ["missing required field", { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x" },
    spec: { template: { spec: { containers: [{ name: "c" }] } } } }],
  ["bad enum", { apiVersion: "v1", kind: "Service", metadata: { name: "x" },
    spec: { type: "Balancer", ports: [{ port: 80 }] } }],
  ["unknown field at the top of a spec", { apiVersion: "policy/v1", kind: "PodDisruptionBudget",
    metadata: { name: "x" }, spec: { minAvailable: 1, selektor: {} } }],
  ["unknown kind", { apiVersion: "monitoring.coreos.com/v1", kind: "ServiceMonitor", metadata: { name: "x" } }],
];

function main() {
  const files = process.argv.slice(2);
  const objects = [];
  for (const f of files) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(f, "utf8"));
    docs.forEach((d, i) => {
      if (d.errors.length) {
        objects.push({ what: `${f} document ${i + 1}`, parseError: d.errors[0].message });
        return;
      }
      const obj = d.toJS();
      if (obj === null) return; // empty document
      const name = obj && obj.metadata && obj.metadata.name;
      objects.push({ what: `${path.basename(f)}: ${obj && obj.kind}/${name}`, obj });
    });
  }
  const kinds = new Set();
  for (const o of [...objects.map((x) => x.obj), ...badObjects.map((b) => b[1])])
    if (o && o.apiVersion && o.kind && loadModel(o.apiVersion, o.kind)) kinds.add(`${o.apiVersion}|${o.kind}`);
  buildChecker([...kinds]);

  let failed = 0;
  for (const [why, obj] of badObjects) {
    const err = check(obj);
    if (err) console.log(`PASS self-test rejects ${why} (${err.slice(0, 100)})`);
    else { console.log(`FAIL self-test: accepted ${why}`); failed++; }
  }
  for (const o of objects) {
    const err = o.parseError ? `YAML: ${o.parseError}` : check(o.obj);
    if (err) { console.log(`FAIL ${o.what}: ${err}`); failed++; }
    else console.log(`PASS ${o.what}`);
  }
  process.exit(failed ? 1 : 0);
}

main();
