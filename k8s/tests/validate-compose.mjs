// validate-compose.mjs — docker-compose.yml against the Compose Specification
// schema, after the same variable interpolation `docker compose config` does.
//
//   node validate-compose.mjs docker-compose.yml .env.example
//
// 1. Interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err},
//    ${VAR?err} and $$ are expanded with the values of the .env example (the
//    documented settings); a required variable missing there is an error.
// 2. Schema: the compose-spec JSON schema shipped in the dclint package
//    (schemas/compose.schema.json), with Ajv.
// 3. Project rules: every long-running service has a healthcheck; every build
//    names an existing Dockerfile and, when given, a stage of it; every
//    depends_on target exists.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import Ajv from "ajv";
import { parse } from "yaml";

const require = createRequire(import.meta.url);
const [composeFile, envFile] = process.argv.slice(2);
if (!composeFile || !envFile) {
  console.error("usage: validate-compose.mjs docker-compose.yml .env.example");
  process.exit(2);
}
const top = path.dirname(path.resolve(composeFile));
let failed = 0;
const ok = (m) => console.log(`ok - compose: ${m}`);
const notOk = (m) => {
  console.log(`not ok - compose: ${m}`);
  failed++;
};

// ---- .env ------------------------------------------------------------------------
const env = {};
for (const line of fs.readFileSync(envFile, "utf8").split("\n")) {
  const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
  if (m) env[m[1]] = m[2];
}

// ---- interpolation ---------------------------------------------------------------
const errors = [];
function interpolate(s) {
  return s.replace(/\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g, (all, _x, name, op, arg, bare) => {
    if (all === "$$") return "$";
    if (bare) return env[bare] ?? "";
    const v = env[name];
    const unset = v === undefined;
    const empty = unset || v === "";
    switch (op) {
      case ":-": return empty ? arg : v;
      case "-": return unset ? arg : v;
      case ":?": if (empty) errors.push(`${name}: ${arg}`); return v ?? "";
      case "?": if (unset) errors.push(`${name}: ${arg}`); return v ?? "";
      default: return v ?? "";
    }
  });
}
// Interpolate every string scalar (keys and values), as compose does.
function walk(x) {
  if (typeof x === "string") return interpolate(x);
  if (Array.isArray(x)) return x.map(walk);
  if (x && typeof x === "object") return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, walk(v)]));
  return x;
}
let raw;
try {
  raw = parse(fs.readFileSync(composeFile, "utf8"), { merge: true });
} catch (e) {
  notOk(`${composeFile} is not valid YAML: ${e.message.split("\n")[0]}`);
  process.exit(1);
}
const doc = walk(raw);
// Compose casts interpolated strings back to the schema's types; the fields
// this file interpolates into non-string types are the replica counts.
for (const s of Object.values(doc.services || {})) {
  if (s.deploy && typeof s.deploy.replicas === "string") s.deploy.replicas = Number(s.deploy.replicas);
}
// x- extension fields at the top level are allowed by the spec; drop them.
for (const k of Object.keys(doc)) if (k.startsWith("x-")) delete doc[k];
if (errors.length) errors.forEach((e) => notOk(`required variable missing from ${envFile}: ${e}`));
else ok(`every required variable is set in ${path.basename(envFile)}`);

// ---- schema ----------------------------------------------------------------------
const schemaFile = path.join(path.dirname(require.resolve("dclint/package.json")), "schemas", "compose.schema.json");
const schema = JSON.parse(fs.readFileSync(schemaFile, "utf8"));
// The file names draft-07 by its https URI, which Ajv (draft-07 by default)
// knows under http: drop the pointer, keep the rules.
delete schema.$schema;
const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
const validate = ajv.compile(schema);
if (validate(doc)) ok("matches the compose-spec schema");
else for (const e of validate.errors) notOk(`schema: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);

// ---- project rules ---------------------------------------------------------------
const services = doc.services || {};
for (const [name, s] of Object.entries(services)) {
  if (!s.healthcheck || !Array.isArray(s.healthcheck.test)) notOk(`${name}: no healthcheck`);
  else ok(`${name}: healthcheck ${JSON.stringify(s.healthcheck.test.slice(1).join(" ")).slice(0, 60)}`);
  if (s.build) {
    const df = path.join(top, s.build.context || ".", s.build.dockerfile || "Dockerfile");
    if (!fs.existsSync(df)) notOk(`${name}: Dockerfile ${df} missing`);
    else if (s.build.target) {
      const stages = [...fs.readFileSync(df, "utf8").matchAll(/^FROM\s+\S+\s+AS\s+(\S+)/gim)].map((m) => m[1]);
      if (stages.includes(s.build.target)) ok(`${name}: builds stage ${s.build.target} of ${path.relative(top, df)}`);
      else notOk(`${name}: stage ${s.build.target} not in ${df} (${stages})`);
    } else ok(`${name}: builds ${path.relative(top, df)}`);
  }
  for (const dep of Object.keys(s.depends_on || {})) if (!services[dep]) notOk(`${name}: depends_on unknown service ${dep}`);
}
process.exit(failed ? 1 : 0);
