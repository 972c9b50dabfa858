// The product docs' JavaScript example under "Using API Keys > Examples" (authentication.md),
// as written, with two substitutions only: the base URL https://api.twig.so is
// process.env.KEYRACK_URL, and sk_live_abc123... is process.env.KEYRACK_KEY. Needs Node 18 or
// later (global fetch); an .mjs module, so the docs' top-level await works as written.
//
// One addition, after the docs' lines: print the body, then the status on a line of its own.
//
//   KEYRACK_URL=http://127.0.0.1:8000 KEYRACK_KEY=sk_live_… node tests/examples/chat.mjs
for (const name of ['KEYRACK_URL', 'KEYRACK_KEY']) {
  if (!process.env[name]) {
    console.error(`set ${name} (the platform base URL, and an API key)`);
    process.exit(2);
  }
}

const response = await fetch(`${process.env.KEYRACK_URL}/api/chat`, {
  method: 'POST',
  headers: {
    'Authorization': `Bearer ${process.env.KEYRACK_KEY}`,
    'Content-Type': 'application/json'
  },
  body: JSON.stringify({
    prompt: 'Hello',
    agentId: 'agent-123'
  })
});

console.log(await response.text());
console.log(response.status);
