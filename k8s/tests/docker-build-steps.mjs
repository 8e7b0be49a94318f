// docker-build-steps.mjs — run a Dockerfile's build stage natively, without a
// Docker daemon: the same files, the same make targets.
//
//   node docker-build-steps.mjs REPO_ROOT DOCKERFILE WORKDIR
//
// Reads the first stage of DOCKERFILE (up to the next FROM), copies exactly
// what its COPY instructions copy (no --from) from REPO_ROOT into WORKDIR (the
// stage's WORKDIR), then runs every `make …` of its RUN instructions there.
// `npm ci` in a RUN is replaced by a link to REPO_ROOT's node_modules of the
// same folder (installed by `make deps` from the same package-lock.json), so
// the check needs no network. Apt installs are not repeated: `make deps`
// installs the same packages on this machine. Exit status: that of the first
// failing step; 1 when the stage has no make step (nothing would be checked).
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";

const [root, dockerfile, work] = process.argv.slice(2);
if (!root || !dockerfile || !work) {
  console.error("usage: docker-build-steps.mjs REPO_ROOT DOCKERFILE WORKDIR");
  process.exit(2);
}
const lines = fs.readFileSync(dockerfile, "utf8").replace(/\\\n/g, " ").split("\n");
const instrs = lines.map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
const first = instrs.findIndex((l) => /^FROM\s/i.test(l));
let end = instrs.findIndex((l, i) => i > first && /^FROM\s/i.test(l));
if (end < 0) end = instrs.length;
const stage = instrs.slice(first, end);

let workdir = "/";
const steps = [];
for (const ins of stage) {
  const [op, ...rest] = ins.split(/\s+/);
  const args = rest.join(" ");
  switch (op.toUpperCase()) {
    case "WORKDIR":
      workdir = path.posix.resolve(workdir, args);
      break;
    case "COPY": {
      if (/--from=/.test(args)) break;
      const parts = rest.filter((p) => !p.startsWith("--"));
      const rawDest = parts.pop();
      const dest = path.posix.resolve(workdir, rawDest);
      const destIsDir = rawDest.endsWith("/") || rawDest === "." || parts.length > 1;
      for (const src of parts) steps.push({ copy: src, dest, destIsDir });
      break;
    }
    case "RUN":
      for (const cmd of args.split(/&&|;/).map((c) => c.trim())) {
        const cd = /^cd\s+(\S+)$/.exec(cmd);
        if (cd) steps.push({ cd: cd[1] });
        else if (/^make(\s|$)/.test(cmd)) steps.push({ make: cmd.replace(/-j"?\$\(nproc\)"?/, `-j${Math.max(1, (await import("node:os")).cpus().length)}`) });
        else if (/^npm ci(\s|$)/.test(cmd)) steps.push({ npmci: true });
        else if (/^test\s/.test(cmd)) steps.push({ test: cmd });
      }
      steps.push({ cd: null });
      break;
  }
}

const inWork = (p) => path.join(work, path.posix.relative(workdir, p));
let cwd = workdir;
let makes = 0;
for (const s of steps) {
  if (s.copy !== undefined) {
    const from = path.join(root, s.copy);
    if (!fs.existsSync(from)) {
      console.log(`not ok - ${path.basename(dockerfile)}: COPY source ${s.copy} does not exist`);
      process.exit(1);
    }
    const to = s.destIsDir && !fs.statSync(from).isDirectory() ? path.join(inWork(s.dest), path.basename(from)) : inWork(s.dest);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    // Like a build context filtered by the .dockerignore: no build trees or node_modules.
    fs.cpSync(from, to, {
      recursive: true,
      filter: (p) => !/(^|\/)(node_modules|build|dist)(\/|$)/.test(path.relative(root, p)),
    });
  } else if ("cd" in s) {
    cwd = s.cd === null ? workdir : path.posix.resolve(cwd, s.cd);
  } else if (s.npmci) {
    const rel = path.posix.relative(workdir, cwd);
    const lock = path.join(root, rel, "package-lock.json");
    if (!fs.existsSync(lock) || !fs.existsSync(path.join(root, rel, "node_modules"))) {
      console.log(`not ok - ${path.basename(dockerfile)}: npm ci in ${rel} needs ${rel}/package-lock.json and make deps`);
      process.exit(1);
    }
    fs.symlinkSync(path.join(root, rel, "node_modules"), path.join(work, rel, "node_modules"));
    console.log(`# ${path.basename(dockerfile)}: npm ci in ${rel} -> node_modules from make deps`);
  } else {
    const cmd = s.make || s.test;
    console.log(`# ${path.basename(dockerfile)}: (cd ${path.posix.relative(workdir, cwd) || "."} && ${cmd})`);
    try {
      execFileSync("sh", ["-c", cmd], { cwd: inWork(cwd), stdio: ["ignore", "inherit", "inherit"] });
    } catch (e) {
      console.log(`not ok - ${path.basename(dockerfile)}: '${cmd}' failed (exit ${e.status})`);
      process.exit(e.status || 1);
    }
    if (s.make) makes++;
  }
}
if (makes === 0) {
  console.log(`not ok - ${path.basename(dockerfile)}: its build stage runs no make target`);
  process.exit(1);
}
console.log(`ok - ${path.basename(dockerfile)}: build stage (${makes} make step${makes > 1 ? "s" : ""}) passed natively`);
