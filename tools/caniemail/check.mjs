// Feature errors of an email's HTML for Gmail, Outlook and Apple Mail (caniemail data); HTML on stdin.
import { caniemail } from 'caniemail';
import { readFileSync } from 'node:fs';
const html = readFileSync(0, 'utf8');
const clients = process.argv.slice(2).length ? process.argv.slice(2) : ['gmail.*', 'outlook.*', 'apple-mail.*'];
const { issues } = caniemail({ clients, html });
const errors = {};
for (const client of [...issues.errors.keys()].sort()) {
  errors[client] = [...new Set(issues.errors.get(client).map((issue) => issue.title))].sort();
}
console.log(JSON.stringify({ errors }, null, 1));
