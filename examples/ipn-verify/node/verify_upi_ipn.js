// Check a Citcon UPI v1 IPN: CITCON_PRIVATE_KEY=... node verify_upi_ipn.js < body
'use strict';
const crypto = require('node:crypto');

// body: the raw JSON posted to urls.ipn; privateKey: your UPI private key.
function citconUpiIpnValid(body, privateKey) {
  const data = JSON.parse(body);
  if (typeof data.fields !== 'string' || typeof data.sign !== 'string') return false;
  const keys = [...new Set([...data.fields.split(',').filter(Boolean), 'fields'])].sort();
  if (!keys.every((k) => Object.hasOwn(data, k))) return false;
  // A number as its digits, null as nothing (as PHP interpolates them).
  const text = keys.map((k) => `${k}=${data[k] === null ? '' : data[k]}`).join('&');
  const digest = crypto.createHash('sha256').update(`${text}&secret=${privateKey}`, 'utf8');
  const expected = Buffer.from(digest.digest('hex'));
  const given = Buffer.from(data.sign.toLowerCase());
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}
module.exports = { citconUpiIpnValid };

if (require.main === module) {
  const chunks = [];
  process.stdin.on('data', (chunk) => chunks.push(chunk));
  process.stdin.on('end', () => {
    const ok = citconUpiIpnValid(Buffer.concat(chunks).toString('utf8'),
      process.env.CITCON_PRIVATE_KEY || '');
    console.log(ok ? 'valid' : 'invalid');
    process.exit(ok ? 0 : 1);
  });
}
