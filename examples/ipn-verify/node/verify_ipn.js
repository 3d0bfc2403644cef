// Check a Citcon IPN (Online API, CHOP): CITCON_TOKEN=... node verify_ipn.js < body
'use strict';
const crypto = require('node:crypto');

// body: the raw form posted to your ipn_url; token: your merchant token.
function citconIpnValid(body, token) {
  const form = new URLSearchParams(body);
  const fields = form.get('fields');
  const sign = form.get('sign');
  if (fields === null || sign === null) return false;
  const keys = [...new Set([...fields.split(',').filter(Boolean), 'fields'])].sort();
  if (!keys.every((k) => form.has(k))) return false;
  const text = keys.map((k) => `${k}=${form.get(k)}`).join('&') + `&token=${token}`;
  const expected = Buffer.from(crypto.createHash('md5').update(text, 'utf8').digest('hex'));
  const given = Buffer.from(sign.toLowerCase());
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}
module.exports = { citconIpnValid };

if (require.main === module) {
  const chunks = [];
  process.stdin.on('data', (chunk) => chunks.push(chunk));
  process.stdin.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const ok = citconIpnValid(body, process.env.CITCON_TOKEN || '');
    console.log(ok ? 'valid' : 'invalid');
    process.exit(ok ? 0 : 1);
  });
}
