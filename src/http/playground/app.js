// The playground: pick a language, write code, run it; output streams in
// as the program prints it (GET /v1/jobs/{id}/events, read with fetch so
// that an API key can go in a header), and in interactive mode what is
// typed goes to the program's stdin (POST /v1/jobs/{id}/input).
// Everything comes from this service; the key stays in this browser.

import { CodeJar } from "/playground/vendor/codejar.js";
import { withLineNumbers } from "/playground/vendor/codejar-linenumbers.js";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "code-runner-key";

// A first program for the languages most people try first.
const SAMPLES = {
  python: 'name = input("What is your name? ")\nprint(f"Hello, {name}!")\n',
  javascript: 'console.log("Hello, world!");\n',
  c: '#include <stdio.h>\n\nint main(void) {\n\tprintf("Hello, world!\\n");\n\treturn 0;\n}\n',
  cpp: '#include <iostream>\n\nint main() {\n\tstd::cout << "Hello, world!" << std::endl;\n}\n',
  bash: 'echo "Hello, world!"\n',
};

const editor = $("editor");
const jar = CodeJar(editor, withLineNumbers(() => {}), { tab: "\t" });
const state = { job: null, reader: null, languages: [] };
// For scripts driving the page (its browser test): set the code as if typed.
window.playground = { setCode: (code) => jar.updateCode(code) };

function notice(text, error = false) {
  $("notice").textContent = text;
  $("notice").className = error ? "error" : "";
}

function headers(json = false) {
  const h = {};
  const key = localStorage.getItem(KEY_STORE);
  if (key) h.Authorization = `Bearer ${key}`;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

function askForKey(message) {
  $("key-box").hidden = false;
  notice(message, true);
  $("key").focus();
}

$("save-key").addEventListener("click", () => {
  const key = $("key").value.trim();
  if (key) localStorage.setItem(KEY_STORE, key);
  else localStorage.removeItem(KEY_STORE);
  $("key-box").hidden = true;
  notice("key saved in this browser");
});

function print(text, cls) {
  const terminal = $("terminal");
  const span = document.createElement("span");
  if (cls) span.className = cls;
  span.textContent = text;
  terminal.appendChild(span);
  terminal.scrollTop = terminal.scrollHeight;
}

async function loadLanguages() {
  const response = await fetch("/v1/languages");
  const body = await response.json();
  state.languages = body.languages || [];
  const select = $("language");
  select.replaceChildren();
  for (const l of state.languages) {
    const option = document.createElement("option");
    option.value = l.id;
    option.textContent = `${l.name} ${l.versions[0] || l.version}${l.ready ? "" : " (not ready)"}`;
    select.appendChild(option);
  }
  const remembered = localStorage.getItem("code-runner-language");
  select.value = state.languages.some((l) => l.id === remembered) ? remembered : (state.languages.find((l) => l.id === "python") || state.languages[0] || {}).id;
  jar.updateCode(SAMPLES[select.value] || "");
}

$("language").addEventListener("change", () => {
  const id = $("language").value;
  localStorage.setItem("code-runner-language", id);
  if (!jar.toString().trim() || Object.values(SAMPLES).includes(jar.toString())) {
    jar.updateCode(SAMPLES[id] || "");
  }
});

$("interactive").addEventListener("change", () => {
  $("stdin-box").hidden = $("interactive").checked;
});

function setRunning(running) {
  $("run").disabled = running;
  $("stop").disabled = !running;
  $("typing").hidden = !(running && $("interactive").checked);
  if (!$("typing").hidden) $("line").focus();
}

async function run() {
  const interactive = $("interactive").checked;
  const body = { language: $("language").value, code: jar.toString() };
  if (interactive) body.interactive = true;
  else if ($("stdin").value) body.stdin = $("stdin").value;
  $("terminal").replaceChildren();
  $("verdict").replaceChildren();
  notice("submitting…");
  const response = await fetch("/v1/jobs", { method: "POST", headers: headers(true), body: JSON.stringify(body) });
  const answer = await response.json().catch(() => ({}));
  if (response.status === 401) return askForKey("this service needs an API key");
  if (!response.ok) return notice(`${response.status}: ${answer.error || "refused"}${answer.field ? ` (${answer.field})` : ""}`, true);
  state.job = answer.id;
  setRunning(true);
  notice("queued");
  try {
    await follow(answer.id);
  } catch (e) {
    notice(`the stream broke: ${e}`, true);
  }
  setRunning(false);
}

// Reads the job's Server-Sent Events until its result.
async function follow(id) {
  const response = await fetch(`/v1/jobs/${id}/events`, { headers: headers() });
  if (!response.ok) throw new Error(`events answered ${response.status}`);
  const reader = response.body.getReader();
  state.reader = reader;
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data) continue;
      const message = JSON.parse(data);
      if (show(message)) {
        reader.cancel().catch(() => {});
        return;
      }
    }
  }
}

// Shows one message; true once the job is over.
function show(message) {
  switch (message.type) {
    case "state":
      notice(message.state === "waiting" ? "waiting for a worker" : message.state);
      break;
    case "phase":
      notice(message.phase);
      break;
    case "stdout":
    case "stderr":
      print(message.data, message.type === "stderr" || message.step === "compile" ? "stderr" : "");
      break;
    case "gap":
      print(`\n[${message.bytes} bytes not streamed; the result has them]\n`, "note");
      break;
    case "reset":
      print("\n[the run starts again]\n", "note");
      $("terminal").replaceChildren();
      break;
    case "result":
      showResult(message.job);
      return true;
    case "error":
      notice(message.message, true);
      return true;
  }
  return false;
}

function showResult(job) {
  const verdict = $("verdict");
  verdict.replaceChildren();
  notice(job.state);
  const result = job.result;
  const strong = document.createElement("span");
  if (!result) {
    strong.className = "other";
    strong.textContent = job.error || job.state;
    verdict.append(strong);
    return;
  }
  if (result.compile_output && !$("terminal").textContent.includes(result.compile_output.trim())) {
    print(result.compile_output, "stderr");
  }
  strong.className = result.verdict === "accepted" ? "accepted" : "other";
  strong.id = "verdict-name";
  strong.textContent = result.verdict;
  const facts = [];
  if (result.message) facts.push(result.message);
  if (result.exit_code !== null && result.exit_code !== undefined) facts.push(`exit code ${result.exit_code}`);
  if (result.signal) facts.push(result.signal);
  facts.push(`${result.wall_time_ms} ms wall, ${result.cpu_time_ms} ms CPU`);
  facts.push(`${(result.memory_peak_bytes / 1048576).toFixed(1)} MiB`);
  const link = document.createElement("a");
  link.href = `/v1/jobs/${job.id}`;
  link.target = "_blank";
  link.textContent = "the job";
  verdict.append(strong, ` · ${facts.join(" · ")} · `, link);
}

async function sendInput(body) {
  if (!state.job) return;
  const response = await fetch(`/v1/jobs/${state.job}/input`, { method: "POST", headers: headers(true), body: JSON.stringify(body) });
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    notice(`input refused: ${answer.error || response.status}`, true);
  }
}

$("typing").addEventListener("submit", (event) => {
  event.preventDefault();
  const line = $("line").value;
  $("line").value = "";
  print(`${line}\n`, "typed");
  sendInput({ data: `${line}\n` });
});
$("line").addEventListener("keydown", (event) => {
  if (event.ctrlKey && event.key === "d") { event.preventDefault(); sendInput({ eof: true }); }
  if (event.ctrlKey && event.key === "c" && !window.getSelection().toString()) { event.preventDefault(); sendInput({ signal: "SIGINT" }); }
});
$("eof").addEventListener("click", () => sendInput({ eof: true }));
$("interrupt").addEventListener("click", () => sendInput({ signal: "SIGINT" }));

$("run").addEventListener("click", () => run().catch((e) => { notice(String(e), true); setRunning(false); }));
$("stop").addEventListener("click", async () => {
  if (!state.job) return;
  await fetch(`/v1/jobs/${state.job}`, { method: "DELETE", headers: headers() });
});
editor.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "Enter") { event.preventDefault(); $("run").click(); }
});

loadLanguages().catch((e) => notice(`cannot list languages: ${e}`, true));
