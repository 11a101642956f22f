// Bundles src/main.ts (and the CSS it imports) into spyglass/web/static/dist, where the Python package serves
// it (under /static/dist), and writes index.html pointing at the bundle with a content hash so browsers never run a
// stale one. Everything written here is build output (gitignored).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, "..", "spyglass", "web", "static", "dist");
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });

await build({
  entryPoints: { app: join(here, "src", "main.ts") },
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  outdir,
  legalComments: "linked",
  logLevel: "warning",
});

const hash = createHash("sha256");
for (const name of ["app.js", "app.css"]) hash.update(readFileSync(join(outdir, name)));
const version = hash.digest("hex").slice(0, 12);
const shell = readFileSync(join(here, "index.html"), "utf8").replaceAll("__VERSION__", version);
writeFileSync(join(outdir, "index.html"), shell);
