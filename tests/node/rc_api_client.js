'use strict';
// Drives a running tokend with Rocket.Chat's own REST client from npm,
// `@rocket.chat/api-client` (the `RestClient` of Rocket.Chat's web client),
// pinned with its whole tree in package-lock.json beside this file.
//
// Run by scripts/rc-api-client-test, which installs the client (NODE_PATH
// points at it), starts tokend and passes the connection details:
//
//   TOKEND_URL          base URL, e.g. http://127.0.0.1:40123
//   TOKEND_ADMIN_USER   seeded admin (ADMIN_USERNAME)
//   TOKEND_ADMIN_PASS   its password (ADMIN_PASS)
//
// Every request goes through the client's own `get`/`post` (so its URL
// building, query encoding, credential headers, error handling and
// two-factor retry are what tokend answers); the form-encoded login passes
// its body and Content-Type through `post`'s fetch options, since the client
// only sends JSON or multipart on its own. Prints one line per step and a
// closing "N passed, N failed, N skipped"; exits non-zero on any failure.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { RestClient } = require('@rocket.chat/api-client');

const BASE_URL = process.env.TOKEND_URL;
const ADMIN_USER = process.env.TOKEND_ADMIN_USER;
const ADMIN_PASS = process.env.TOKEND_ADMIN_PASS;
assert.ok(BASE_URL && ADMIN_USER && ADMIN_PASS, 'TOKEND_URL, TOKEND_ADMIN_USER and TOKEND_ADMIN_PASS must be set');

const USERNAME = `rc-api-client-${Date.now()}`;
const PASSWORD = 'api-client-pass-123';

const state = {};

const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');
const show = (v) => JSON.stringify(v);

/** A client logged in with the answer of POST /v1/login. */
function clientWith(userId, authToken) {
  return new RestClient({
    baseUrl: BASE_URL,
    credentials: { 'X-User-Id': userId, 'X-Auth-Token': authToken },
  });
}

/**
 * Awaits `promise`, which must be refused with this HTTP status: the client
 * rejects with the fetch `Response` of any answer that is not 2xx. Returns
 * the parsed body.
 */
async function refused(promise, status) {
  let response;
  try {
    const value = await promise;
    assert.fail(`expected HTTP ${status}, the call succeeded with ${show(value)}`);
  } catch (err) {
    if (!(err instanceof Response)) throw err;
    response = err;
  }
  const body = await response.json();
  assert.equal(response.status, status, `status ${response.status}, wanted ${status}: ${show(body)}`);
  return body;
}

/**
 * A user as `me`/login show it: Rocket.Chat replaces the password hash by
 * `services.password.exists` and never shows login tokens.
 */
function checkNoSecrets(user) {
  const text = show(user);
  for (const word of ['bcrypt', 'loginTokens', 'hashedToken', 'secret']) {
    assert.ok(!text.includes(word), `${word} in ${text}`);
  }
  if (user.services && user.services.password) {
    assert.deepEqual(user.services.password, { exists: true }, text);
  }
}

/** The checks every successful login answer passes (Rocket.Chat's shape). */
function checkLoginAnswer(res, username) {
  assert.equal(res.status, 'success', show(res));
  const { data } = res;
  assert.ok(data && typeof data.userId === 'string' && data.userId, `no userId: ${show(res)}`);
  assert.ok(typeof data.authToken === 'string' && data.authToken.length === 43, `authToken: ${show(res)}`);
  assert.equal(data.me.username, username, show(res));
  assert.equal(data.me._id, data.userId, show(res));
  checkNoSecrets(data.me);
  return data;
}

async function loginJson() {
  const anon = new RestClient({ baseUrl: BASE_URL });
  const res = await anon.post('/v1/login', { user: ADMIN_USER, password: ADMIN_PASS });
  const data = checkLoginAnswer(res, ADMIN_USER);
  state.adminId = data.userId;
  state.admin = clientWith(data.userId, data.authToken);
}

async function loginJsonDigest() {
  // The password as its SHA-256 hex, as Rocket.Chat's own clients send it.
  const anon = new RestClient({ baseUrl: BASE_URL });
  const res = await anon.post('/v1/login', {
    user: { username: ADMIN_USER },
    password: { digest: sha256(ADMIN_PASS), algorithm: 'sha-256' },
  });
  const data = checkLoginAnswer(res, ADMIN_USER);
  assert.equal(data.userId, state.adminId, show(res));
  assert.notEqual(data.authToken, state.admin.getCredentials()['X-Auth-Token'], 'a login reused a token');
}

async function loginJsonWrongPassword() {
  const anon = new RestClient({ baseUrl: BASE_URL });
  const body = await refused(anon.post('/v1/login', { user: ADMIN_USER, password: `${ADMIN_PASS}x` }), 401);
  // Rocket.Chat 7.x: the 6.x login failure plus `success: false`.
  assert.deepEqual(body, { success: false, status: 'error', error: 'Unauthorized', message: 'Unauthorized' });
}

async function serverInfo() {
  // GET /api/info (the client prefixes /api), no credentials.
  const info = await new RestClient({ baseUrl: BASE_URL }).get('/info');
  assert.equal(info.success, true, show(info));
  // Without an admin login Rocket.Chat shows only MAJOR.MINOR.
  assert.match(info.version, /^\d+\.\d+$/, show(info));
}

async function adminMe() {
  const me = await state.admin.get('/v1/me');
  assert.equal(me.success, true, show(me));
  assert.equal(me._id, state.adminId, show(me));
  assert.equal(me.username, ADMIN_USER, show(me));
  assert.ok(Array.isArray(me.roles) && me.roles.includes('admin'), show(me));
  checkNoSecrets(me);
}

async function createUser() {
  const res = await state.admin.post('/v1/users.create', {
    email: `${USERNAME}@example.org`,
    name: 'RC API Client',
    password: PASSWORD,
    username: USERNAME,
    verified: true,
    joinDefaultChannels: false,
  });
  assert.equal(res.success, true, show(res));
  assert.equal(res.user.username, USERNAME, show(res));
  state.userId = res.user._id;
}

async function usersList() {
  // The client encodes the query with query-string (arrays as `a[]=`).
  const res = await state.admin.get('/v1/users.list', { count: 100, offset: 0 });
  assert.equal(res.success, true, show(res));
  assert.ok(Array.isArray(res.users), show(res));
  for (const key of ['count', 'offset', 'total']) {
    assert.equal(typeof res[key], 'number', `${key}: ${show(res)}`);
  }
  assert.equal(res.offset, 0, show(res));
  assert.equal(res.count, res.users.length, show(res));
  assert.ok(res.total >= res.users.length, show(res));
  const names = res.users.map((u) => u.username);
  assert.ok(names.includes(ADMIN_USER) && names.includes(USERNAME), show(names));
  for (const u of res.users) {
    assert.ok(!('services' in u), `users.list leaks services: ${show(u)}`);
  }
  const mine = res.users.find((u) => u.username === USERNAME);
  assert.equal(mine._id, state.userId, show(mine));
  assert.equal(mine.active, true, show(mine));
}

async function loginForm() {
  // application/x-www-form-urlencoded, as curl -d or an HTML form sends it.
  const anon = new RestClient({ baseUrl: BASE_URL });
  const res = await anon.post('/v1/login', undefined, {
    body: new URLSearchParams({ user: USERNAME, password: PASSWORD }).toString(),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  });
  const data = checkLoginAnswer(res, USERNAME);
  assert.equal(data.userId, state.userId, show(res));
  state.user = clientWith(data.userId, data.authToken);
}

async function loginFormWrongPassword() {
  const anon = new RestClient({ baseUrl: BASE_URL });
  const body = await refused(
    anon.post('/v1/login', undefined, {
      body: new URLSearchParams({ user: USERNAME, password: 'not-it' }).toString(),
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    }),
    401,
  );
  assert.deepEqual(body, { success: false, status: 'error', error: 'Unauthorized', message: 'Unauthorized' });
}

async function userMe() {
  const me = await state.user.get('/v1/me');
  assert.equal(me.success, true, show(me));
  assert.equal(me._id, state.userId, show(me));
  assert.equal(me.username, USERNAME, show(me));
  assert.equal(me.active, true, show(me));
}

async function twoFactorChallengeThroughTheClient() {
  // A protected action without a code answers 400 totp-required with
  // details.method; the client's handler is asked for a code and the client
  // retries with x-2fa-code / x-2fa-method. No TOTP or email factor is set up,
  // so the method is `password` and the code the password's SHA-256 hex. The
  // handler first answers a wrong code: totp-invalid (with details.method)
  // makes the client ask again, flagged as an invalid attempt.
  const asked = [];
  state.user.handleTwoFactorChallenge(async (challenge) => {
    asked.push(challenge);
    return asked.length === 1 ? sha256('not-the-password') : sha256(PASSWORD);
  });
  const res = await state.user.post('/v1/users.generatePersonalAccessToken', { tokenName: 'api-client' });
  assert.equal(res.success, true, show(res));
  assert.ok(typeof res.token === 'string' && res.token, show(res));
  assert.deepEqual(
    asked.map(({ method, invalidAttempt }) => ({ method, invalidAttempt })),
    [
      { method: 'password', invalidAttempt: false },
      { method: 'password', invalidAttempt: true },
    ],
    show(asked),
  );
  const pat = clientWith(state.userId, res.token);
  const me = await pat.get('/v1/me');
  assert.equal(me._id, state.userId, show(me));
  state.user.handleTwoFactorChallenge(undefined);
}

async function userLogout() {
  const res = await state.user.post('/v1/logout');
  assert.equal(res.status, 'success', show(res));
  assert.ok(res.data && typeof res.data.message === 'string', show(res));
  const body = await refused(state.user.get('/v1/me'), 401);
  assert.equal(body.status, 'error', show(body));
}

async function deleteUser() {
  const res = await state.admin.post('/v1/users.delete', { userId: state.userId });
  assert.equal(res.success, true, show(res));
  const list = await state.admin.get('/v1/users.list', { count: 100 });
  assert.ok(!list.users.some((u) => u.username === USERNAME), show(list));
}

async function adminLogout() {
  const res = await state.admin.post('/v1/logout');
  assert.equal(res.status, 'success', show(res));
  await refused(state.admin.get('/v1/me'), 401);
  await refused(state.admin.get('/v1/users.list'), 401);
}

const STEPS = [
  loginJson,
  loginJsonDigest,
  loginJsonWrongPassword,
  serverInfo,
  adminMe,
  createUser,
  usersList,
  loginForm,
  loginFormWrongPassword,
  userMe,
  twoFactorChallengeThroughTheClient,
  userLogout,
  deleteUser,
  adminLogout,
];

async function main() {
  let passed = 0;
  let failed = 0;
  for (const step of STEPS) {
    try {
      await step();
    } catch (err) {
      failed += 1;
      console.log(`not ok - ${step.name}`);
      if (err instanceof Response) {
        // An unexpected refusal: show what tokend answered.
        console.log(`  HTTP ${err.status} from ${err.url}: ${await err.text()}`);
      } else {
        console.log(err && err.stack ? err.stack : err);
      }
      break; // later steps build on this one
    }
    passed += 1;
    console.log(`ok - ${step.name}`);
  }
  const skipped = STEPS.length - passed - failed;
  console.log(`rc-api-client: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  return failed === 0 && skipped === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.log(err);
    process.exit(1);
  },
);
