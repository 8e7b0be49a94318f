// validate-k8s.mjs — validate rendered Kubernetes manifests (helm template
// output) against the Kubernetes API schemas, strictly, plus the chart's own
// production rules.
//
//   node validate-k8s.mjs LABEL < rendered.yaml
//
// 1. Schema: every object is loaded into its kubernetes-models class
//    (apiVersion/kind → module; monitoring.coreos.com through
//    @kubernetes-models/prometheus-operator) and validated: types, required
//    fields, enums, formats, as the API server's OpenAPI schema says.
// 2. Unknown fields: kubernetes-models accepts extra properties (the API
//    server would drop or reject them), so every field is also checked against
//    the type declarations shipped with the same packages (*.d.ts), walking
//    named types recursively — a typo like "replcias" fails here.
// 3. Chart rules: non-root read-only containers with requests and limits and
//    probes; signal workers probed on /readyz and /healthz with a preStop hook
//    and a grace period longer than their drain timeout; no session affinity
//    on the signal Service or the Ingress.
// Prints one line per object and exits 1 on any failure.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { parseAllDocuments } from "yaml";

const require = createRequire(import.meta.url);
const label = process.argv[2] || "manifests";
const text = fs.readFileSync(0, "utf8");

// ---- type declarations: interface name → { field → type } -------------------
const pkgRoots = ["kubernetes-models", "@kubernetes-models/apimachinery", "@kubernetes-models/prometheus-operator"].map(
  (p) => path.dirname(require.resolve(`${p}/package.json`)),
);
const fileIfaces = new Map(); // file → Map(localName → fields)
const globalNames = new Map(); // IIoK8s… alias → { file, local }

function parseDts(file) {
  const src = fs.readFileSync(file, "utf8");
  const ifaces = new Map();
  const re = /^export interface (\w+)[^{]*\{\n([\s\S]*?)^\}/gm;
  let m;
  while ((m = re.exec(src))) {
    const fields = new Map();
    for (const line of m[2].split("\n")) {
      const f = /^ {4}"([^"]+)"\??: (.*?);?$/.exec(line);
      if (f) fields.set(f[1], f[2]);
    }
    ifaces.set(m[1], fields);
  }
  fileIfaces.set(file, ifaces);
  const ex = /export type \{([^}]*)\}/g;
  while ((m = ex.exec(src))) {
    for (const part of m[1].split(",")) {
      const a = /^\s*(\w+) as (\w+)\s*$/.exec(part);
      if (a && ifaces.has(a[1])) globalNames.set(a[2], { file, local: a[1] });
    }
  }
}
function walkDir(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== "node_modules" && e.name !== "_schemas") walkDir(p);
    } else if (e.name.endsWith(".d.ts")) parseDts(p);
  }
}
pkgRoots.forEach(walkDir);

function fieldsOfGlobal(name) {
  const g = globalNames.get(name);
  return g ? fileIfaces.get(g.file).get(g.local) : undefined;
}

// Unknown-field walk. A field whose type is a named interface (or an array of
// one) is descended into; inline object types and maps are left to step 1.
function checkFields(obj, fields, where, errors) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return;
  for (const [k, v] of Object.entries(obj)) {
    if (!fields.has(k)) {
      errors.push(`${where}.${k}: unknown field`);
      continue;
    }
    const t = fields.get(k);
    const arr = /^Array<(\w+)>$/.exec(t);
    const named = arr ? arr[1] : /^\w+$/.test(t) ? t : null;
    const sub = named && fieldsOfGlobal(named);
    if (!sub) continue;
    if (arr && Array.isArray(v)) v.forEach((e, i) => checkFields(e, sub, `${where}.${k}[${i}]`, errors));
    else if (!arr) checkFields(v, sub, `${where}.${k}`, errors);
  }
}

// ---- apiVersion/kind → model module -------------------------------------------
// Core group objects ("v1") live at the package root: kubernetes-models/v1/Pod.
function modelFile(apiVersion, kind) {
  const monitoring = apiVersion.startsWith("monitoring.coreos.com/");
  const root = monitoring ? pkgRoots[2] : pkgRoots[0];
  return path.join(root, apiVersion, `${kind}.js`);
}
function dtsFor(apiVersion, kind) {
  return fileIfaces.get(modelFile(apiVersion, kind).replace(/\.js$/, ".d.ts"))?.get(`I${kind}`);
}

// ---- chart rules ----------------------------------------------------------------
function podSpecOf(o) {
  if (["Deployment", "StatefulSet", "DaemonSet"].includes(o.kind)) return o.spec?.template?.spec;
  return undefined;
}
// No stickiness anywhere in front of the signal workers: any worker serves
// any request of a session (docs/architecture.md, "Long-polling across
// workers"), and an affinity setting would only hide a regression.
function noAffinityRules(o, where, errors) {
  const component = o.metadata?.labels?.["app.kubernetes.io/component"];
  if (o.kind === "Service" && component === "signal" && (o.spec?.sessionAffinity ?? "None") !== "None")
    errors.push(`${where}: sessionAffinity must be None`);
  if (o.kind === "Ingress") {
    for (const k of Object.keys(o.metadata?.annotations || {}))
      if (/affinity|sticky|upstream-hash-by/.test(k)) errors.push(`${where}: annotation ${k} makes sessions sticky`);
  }
}

function chartRules(o, errors) {
  const spec = podSpecOf(o);
  if (!spec) return;
  const where = `${o.kind}/${o.metadata.name}`;
  const podSc = spec.securityContext || {};
  if (spec.automountServiceAccountToken !== false) errors.push(`${where}: automountServiceAccountToken must be false`);
  for (const c of [...(spec.initContainers || []), ...spec.containers]) {
    const sc = c.securityContext || {};
    const cw = `${where} container ${c.name}`;
    if (!(sc.runAsNonRoot ?? podSc.runAsNonRoot)) errors.push(`${cw}: runAsNonRoot is not set`);
    if (sc.readOnlyRootFilesystem !== true) errors.push(`${cw}: readOnlyRootFilesystem is not true`);
    if (sc.allowPrivilegeEscalation !== false) errors.push(`${cw}: allowPrivilegeEscalation is not false`);
    if (!sc.capabilities?.drop?.includes("ALL")) errors.push(`${cw}: capabilities are not dropped`);
    for (const r of ["requests", "limits"])
      for (const k of ["cpu", "memory"]) if (!c.resources?.[r]?.[k]) errors.push(`${cw}: resources.${r}.${k} missing`);
    if (!c.readinessProbe) errors.push(`${cw}: no readinessProbe`);
    if (!c.livenessProbe) errors.push(`${cw}: no livenessProbe`);
  }
  const component = o.metadata.labels?.["app.kubernetes.io/component"];
  if (["signal", "roomapi", "coturn", "redis"].includes(component) && !o.spec.template.metadata?.annotations?.["checksum/config"])
    errors.push(`${where}: no checksum/config annotation`);
  if (component === "signal" || component === "roomapi") {
    const c = spec.containers[0];
    const env = Object.fromEntries((c.env || []).filter((e) => "value" in e).map((e) => [e.name, e.value]));
    const drainS = Number(env.PD_DRAIN_TIMEOUT_MS) / 1000;
    const preStop = c.lifecycle?.preStop?.exec?.command;
    const sleepS = preStop && preStop[0] === "sleep" ? Number(preStop[1]) : NaN;
    if (!(drainS > 0)) errors.push(`${where}: PD_DRAIN_TIMEOUT_MS not set`);
    if (!(sleepS >= 0)) errors.push(`${where}: no preStop sleep`);
    if (!(spec.terminationGracePeriodSeconds > drainS + sleepS))
      errors.push(`${where}: terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds} <= preStop ${sleepS}s + drain ${drainS}s`);
    if (!c.startupProbe) errors.push(`${where}: no startupProbe`);
    if (component === "signal") {
      if (c.readinessProbe?.httpGet?.path !== "/readyz") errors.push(`${where}: readinessProbe is not /readyz`);
      if (c.livenessProbe?.httpGet?.path !== "/healthz") errors.push(`${where}: livenessProbe is not /healthz`);
      if (c.startupProbe?.httpGet?.path !== "/healthz") errors.push(`${where}: startupProbe is not /healthz`);
    }
  }
}

// ---- main ------------------------------------------------------------------------
let failed = 0;
let count = 0;
const docs = parseAllDocuments(text);
for (const doc of docs) {
  if (doc.errors.length) {
    console.log(`not ok - ${label}: YAML error: ${doc.errors[0].message}`);
    failed++;
    continue;
  }
  const o = doc.toJS();
  if (o === null || o === undefined) continue;
  count++;
  const name = `${o.kind}/${o.metadata?.name}`;
  const errors = [];
  if (!o.apiVersion || !o.kind || !o.metadata?.name) errors.push("apiVersion, kind and metadata.name are required");
  else {
    let Model;
    const file = modelFile(o.apiVersion, o.kind);
    if (fs.existsSync(file)) Model = (await import(file))[o.kind];
    if (!Model) errors.push(`no schema for ${o.apiVersion} ${o.kind}`);
    if (Model) {
      try {
        new Model(o).validate();
      } catch (e) {
        errors.push(`schema: ${e.message}`);
      }
      const fields = dtsFor(o.apiVersion, o.kind);
      if (!fields) errors.push(`no type declaration for ${o.kind}`);
      else checkFields(o, fields, o.kind, errors);
    }
    chartRules(o, errors);
    noAffinityRules(o, name, errors);
  }
  if (errors.length) {
    failed++;
    console.log(`not ok - ${label}: ${name}`);
    for (const e of errors) console.log(`    ${e}`);
  } else console.log(`ok - ${label}: ${name}`);
}
if (count === 0) {
  console.log(`not ok - ${label}: no objects rendered`);
  failed++;
}
process.exit(failed ? 1 : 0);
