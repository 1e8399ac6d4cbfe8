// The npm Piston client (piston-client, as Discord bots use it), pointed at
// code-runner. Usage: node piston_client.mjs <base URL>. Prints one JSON
// line with what the client saw.
import piston from "piston-client";

const client = piston({ server: process.argv[2] });
const runtimes = await client.runtimes();
const python = await client.execute("python", "import sys\nprint(input(), sys.argv[1:])", {
  stdin: "from piston",
});
const cpp = await client.execute(
  "c++",
  "#include <iostream>\nint main() { std::cout << \"compiled\" << std::endl; return 2; }",
);
console.log(JSON.stringify({
  runtimes: runtimes.length,
  python: { language: python.language, version: python.version, run: python.run },
  cpp: { compile: cpp.compile, run: cpp.run },
}));
