// Lays out the installed packages the way the public CDN does, so a plain static file server
// can stand in for it: node_modules/react -> <out>/react@18.2.0/, and so on.
//
//   npm ci && node mirror.mjs /srv/graphiql-assets
//   IDENTITY_GRAPHIQL_ASSETS_URL=https://static.example/graphiql-assets/
//
// Run it in the folder that holds package.json and node_modules (this one, or a copy of it).
import { cpSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

const out = resolve(process.argv[2] ?? "dist");
const { dependencies } = JSON.parse(readFileSync("package.json", "utf8"));

for (const [name, pinned] of Object.entries(dependencies)) {
  const source = join("node_modules", name);
  const { version } = JSON.parse(readFileSync(join(source, "package.json"), "utf8"));
  if (version !== pinned) {
    throw new Error(`${name}: ${version} is installed but package.json pins ${pinned}; run npm ci`);
  }
  const target = join(out, `${name}@${version}`);
  rmSync(target, { recursive: true, force: true });
  // Only the package's own files: its nested node_modules are bundled into the UMD builds.
  cpSync(source, target, {
    recursive: true,
    filter: (path) => !path.slice(source.length).includes("node_modules"),
  });
  console.log(`${target}`);
}
