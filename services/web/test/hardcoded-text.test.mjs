// No user-visible text written into the page code: every label, message,
// title, placeholder and aria-label comes from the catalogs (src/i18n/).
// Scans src/*.ts (the catalogs excepted) with the TypeScript parser, and
// index.html, and fails listing each literal that would reach the screen.
//
// "Text" is a literal with a letter in it (\p{L}): "×", "✓", " · " or "/"
// carry no language. A literal counts where it reaches the screen:
//   - assigned to textContent, innerText, title, placeholder, ariaLabel, alt;
//   - setAttribute("title" | "placeholder" | "aria-label" | "alt" | ..., literal);
//   - alert/confirm/prompt(literal), createTextNode(literal),
//     el.append/prepend/replaceChildren/before/after(literal);
//   - h(tag, { title | placeholder | aria-label | alt: literal }, ...literal children).
// Inside such an expression, branches (?:, ||, ??, +, template literals) are
// followed; a call's arguments are not (t("some.key") names a key, not text).
// Text handed on through a variable or a helper's return value is not
// followed: keep DOM writes direct (el.textContent = t(...)).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));
const INDEX = fileURLToPath(new URL("../index.html", import.meta.url));

const TEXT_PROPS = new Set(["textContent", "innerText", "title", "placeholder", "ariaLabel", "alt", "label"]);
const TEXT_ATTRS = new Set(["title", "placeholder", "aria-label", "aria-description", "aria-roledescription", "aria-valuetext", "alt", "label"]);
const TEXT_FUNCS = new Set(["alert", "confirm", "prompt", "createTextNode"]);
const CHILD_METHODS = new Set(["append", "prepend", "replaceChildren", "before", "after", "replaceWith"]);
const hasLetter = (s) => /\p{L}/u.test(s);

/** Literal pieces of `expr` that would reach the screen as they are. */
function literalTexts(expr) {
  const out = [];
  const visit = (e) => {
    if (!e) return;
    if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) {
      if (hasLetter(e.text)) out.push(e);
    } else if (ts.isTemplateExpression(e)) {
      if (hasLetter(e.head.text) || e.templateSpans.some((s) => hasLetter(s.literal.text))) out.push(e);
      for (const s of e.templateSpans) visit(s.expression);
    } else if (ts.isConditionalExpression(e)) {
      visit(e.whenTrue);
      visit(e.whenFalse);
    } else if (ts.isBinaryExpression(e)) {
      visit(e.left);
      visit(e.right);
    } else if (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isNonNullExpression(e)) {
      visit(e.expression);
    } else if (ts.isArrayLiteralExpression(e)) {
      e.elements.forEach(visit);
    }
  };
  visit(expr);
  return out;
}

const propName = (n) => (ts.isIdentifier(n) || ts.isStringLiteral(n) ? n.text : null);

/** [{file, line, text}] for one TypeScript source. */
export function scanSource(file, code) {
  const sf = ts.createSourceFile(file, code, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found = [];
  const report = (nodes) => {
    for (const n of nodes) {
      found.push({ file, line: sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1, text: n.getText(sf) });
    }
  };
  const visit = (node) => {
    if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.EqualsToken &&
        ts.isPropertyAccessExpression(node.left) && TEXT_PROPS.has(node.left.name.text)) {
      report(literalTexts(node.right));
    } else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const name = ts.isIdentifier(callee) ? callee.text : ts.isPropertyAccessExpression(callee) ? callee.name.text : "";
      const args = node.arguments;
      if (name === "setAttribute" && args.length === 2 && ts.isStringLiteral(args[0]) && TEXT_ATTRS.has(args[0].text)) {
        report(literalTexts(args[1]));
      } else if (TEXT_FUNCS.has(name)) {
        args.forEach((a) => report(literalTexts(a)));
      } else if (CHILD_METHODS.has(name) && ts.isPropertyAccessExpression(callee)) {
        args.forEach((a) => report(literalTexts(a)));
      } else if (name === "h" && ts.isIdentifier(callee)) {
        const [, attrs, ...children] = args;
        if (attrs && ts.isObjectLiteralExpression(attrs)) {
          for (const p of attrs.properties) {
            if (ts.isPropertyAssignment(p) && TEXT_ATTRS.has(propName(p.name) ?? "")) report(literalTexts(p.initializer));
          }
        }
        children.forEach((c) => report(literalTexts(c)));
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

/** [{file, line, text}] for index.html: text nodes and text attributes with letters. */
export function scanHtml(file, html) {
  const found = [];
  const lineOf = (i) => html.slice(0, i).split("\n").length;
  // Comments and the contents of script/style are not shown.
  const blank = (m) => m.replace(/[^\n]/g, " ");
  const src = html.replace(/<!--[\s\S]*?-->/g, blank)
    .replace(/(<(script|style)\b[^>]*>)([\s\S]*?)(<\/\2>)/gi, (_, a, _t, body, b) => a + blank(body) + b);
  for (const m of src.matchAll(/>([^<]+)</g)) {
    if (hasLetter(m[1])) found.push({ file, line: lineOf(m.index), text: m[1].trim() });
  }
  for (const tag of src.matchAll(/<([a-zA-Z][\w-]*)\b([^>]*)>/g)) {
    const attrs = tag[2];
    for (const a of attrs.matchAll(/([\w:-]+)\s*=\s*"([^"]*)"/g)) {
      const [, name, value] = a;
      const shown = TEXT_ATTRS.has(name.toLowerCase()) ||
        (name === "content" && /\bname="(description|application-name|apple-mobile-web-app-title)"/.test(attrs)) ||
        (name === "value" && /\btype="(button|submit|reset)"/.test(attrs));
      if (shown && hasLetter(value)) found.push({ file, line: lineOf(tag.index), text: `${name}="${value}"` });
    }
  }
  return found;
}

function scanTree() {
  const found = [];
  for (const f of fs.readdirSync(SRC)) {
    if (!f.endsWith(".ts") || f.endsWith(".d.ts")) continue; // i18n/ (the catalogs) is a folder: not listed here
    found.push(...scanSource(`src/${f}`, fs.readFileSync(path.join(SRC, f), "utf8")));
  }
  found.push(...scanHtml("index.html", fs.readFileSync(INDEX, "utf8")));
  return found;
}

describe("no hard-coded user-visible text", () => {
  it("none in src/*.ts and index.html", () => {
    const found = scanTree();
    assert.deepEqual(found.map((f) => `${f.file}:${f.line}: ${f.text}`), [],
      "put these in src/i18n/en.ts (and every other catalog) and use t()");
  });

  it("the scan looks at the page's real code (it finds the DOM writes that use t())", () => {
    // Guards against a scan that passes because it sees nothing: the same
    // places, with the catalog calls swapped for literals, must be reported.
    let swapped = 0;
    let found = 0;
    for (const f of ["send-view.ts", "receive-view.ts", "ui.ts", "main.ts"]) {
      const code = fs.readFileSync(path.join(SRC, f), "utf8").replace(/\bt\("[\w.]+"(, \{[^}]*\})?\)/g, () => {
        swapped++;
        return '"Some text"';
      });
      found += scanSource(f, code).length;
    }
    // Text handed on through a variable or a return value (a progress note, a
    // folder's size line) is beyond a syntax scan; nearly all writes are direct.
    assert.ok(swapped >= 10, `only ${swapped} calls of t() swapped`);
    assert.ok(found >= swapped - 3, `${found} of ${swapped} literals put where t() was are found`);
  });

  it("finds each kind of literal that reaches the screen", () => {
    const cases = [
      'el.textContent = "Hello";',
      'el.innerText = ok ? "Done" : t("x");',
      'el.title = `Saved ${n} files`;',
      '(el as HTMLInputElement).placeholder = "Type here";',
      'el.setAttribute("aria-label", "Close " + name);',
      'alert("Oops");',
      'box.append(h("p", {}, "Nothing here"));',
      'box.append("Loading");',
      'h("button", { "aria-label": "Dismiss", onclick }, "×");',
      'h("button", { title: cond ? "Stop" : t("a") });',
      'document.createTextNode(`Item ${i}`);',
      'el.textContent = (x ?? "Unknown");',
    ];
    for (const c of cases) assert.equal(scanSource("case.ts", c).length, 1, c);
    const fine = [
      'el.textContent = t("send.title");',
      'el.textContent = "×";',
      'el.textContent = ` ${pct} ✓`;',
      'el.setAttribute("data-state", "sending");',
      'h("span", { class: "name size" }, e.name, " ", "·");',
      'debug("joined the room");',
      'throw new Error("the file changed");',
      'el.title = t("progress.label", { name: "not text" });',
    ];
    for (const c of fine) assert.deepEqual(scanSource("case.ts", c), [], c);
  });

  it("finds text nodes and text attributes in HTML", () => {
    const html = `<html><head><title>My page</title><meta name="description" content="A page">
<meta name="viewport" content="width=device-width"><style>body{font:x}</style></head>
<body><!-- a comment --><p data-i18n="k"></p><span>…</span><button aria-label="Close">×</button>
<input placeholder="Name"><input type="submit" value="Send"><button value="ok" data-i18n="x"></button>
<label>Pick <input type="file"></label><script>const x = "not shown";</script></body></html>`;
    const texts = scanHtml("t.html", html).map((f) => f.text);
    assert.deepEqual(texts.sort(), ["My page", "Pick", 'aria-label="Close"', 'content="A page"', 'placeholder="Name"', 'value="Send"'].sort());
  });
});
