// Build the static site into dist/: bundles app.js and pow-worker.js with
// esbuild, copies index.html, styles.css, the product image and a default
// config.json (deploy overwrites config.json with the real endpoints).
import { build } from "esbuild";
import { cp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const src = join(root, "src");
const dist = join(root, "dist");

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });

// Same-origin only: FingerprintJS has an opt-out usage ping to its CDN. We
// already load it with { monitoring: false }; this also strips the code path
// so the bundle contains no off-origin endpoint at all.
const noMonitoring = {
  name: "fingerprintjs-no-monitoring",
  setup(b) {
    b.onLoad({ filter: /@fingerprintjs[\\/]fingerprintjs[\\/]dist[\\/]fp\.esm\.js$/ }, async (args) => {
      const code = await readFile(args.path, "utf8");
      const guard = "if (window.__fpjs_d_m || Math.random() >= 0.001) {";
      if (!code.includes(guard)) throw new Error("FingerprintJS monitor() changed; review the no-monitoring patch");
      return { contents: code.replace(guard, "if (true) {"), loader: "js" };
    });
  },
};

const common = {
  bundle: true,
  minify: true,
  sourcemap: false,
  target: ["es2020", "chrome90", "firefox88", "safari15"],
  legalComments: "eof",
  logLevel: "info",
};

await build({ ...common, entryPoints: [join(src, "app.js")], outfile: join(dist, "app.js"), format: "esm", plugins: [noMonitoring] });
// Classic (non-module) worker: works in every browser that has Web Workers.
await build({ ...common, entryPoints: [join(src, "pow-worker.js")], outfile: join(dist, "pow-worker.js"), format: "iife" });
await build({ ...common, entryPoints: [join(src, "styles.css")], outfile: join(dist, "styles.css"), loader: { ".css": "css" } });

await cp(join(src, "index.html"), join(dist, "index.html"));
await cp(join(src, "jacket.svg"), join(dist, "jacket.svg"));

// Guard: nothing in dist may point at another origin.
for (const file of ["index.html", "app.js", "pow-worker.js", "styles.css"]) {
  const text = await readFile(join(dist, file), "utf8");
  const hits = (text.match(/\b(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^"'`\s)]*/gi) || [])
    .filter((u) => !/fingerprint\.com\/github/.test(u)); // text of a result field, never fetched
  if (hits.length) throw new Error(`${file} references another origin: ${hits.join(", ")}`);
}

const config = JSON.parse(await readFile(join(src, "config.json"), "utf8"));
await writeFile(join(dist, "config.json"), JSON.stringify(config, null, 2) + "\n");

console.log("dist/ ready:", ["index.html", "app.js", "pow-worker.js", "styles.css", "config.json", "jacket.svg"].join(", "));
