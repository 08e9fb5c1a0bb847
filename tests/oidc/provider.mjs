// A real OpenID Provider for opsloop's sign-in tests: the certified `oidc-provider` package,
// on loopback only, with one confidential client (PKCE required), two people with passwords
// and groups, and plain login, consent and logout pages (no script, nothing fetched from
// elsewhere).
//
//   node provider.mjs PORT
//
// Environment: OIDC_ISSUER (default http://localhost:PORT), OIDC_CLIENT_ID (opsloop),
// OIDC_CLIENT_SECRET (opsloop-test-secret), OIDC_REDIRECT_URIS and
// OIDC_POST_LOGOUT_REDIRECT_URIS (comma-separated). It prints "listening on <issuer>" once
// it accepts connections, and stops on SIGTERM or when its standard input closes.

import { createServer } from 'node:http';
import { timingSafeEqual } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? process.env.OIDC_PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node provider.mjs PORT');
  process.exit(2);
}
const issuer = process.env.OIDC_ISSUER ?? `http://localhost:${port}`;
const list = (value) => (value ?? '').split(',').map((s) => s.trim()).filter(Boolean);

const ACCOUNTS = {
  'dev-1': {
    password: 'dev-1-password',
    claims: {
      email: 'dev-1@example.com',
      email_verified: true,
      name: 'Dev One',
      preferred_username: 'dev-1',
      groups: ['developers'],
    },
  },
  'oncall-1': {
    password: 'oncall-1-password',
    claims: {
      email: 'oncall-1@example.com',
      email_verified: true,
      name: 'Oncall One',
      preferred_username: 'oncall-1',
      groups: ['sre-oncall'],
    },
  },
  // Signs in but has no email: a console configured with the default user claim refuses it.
  'no-email': {
    password: 'no-email-password',
    claims: { name: 'No Email', preferred_username: 'no-email', groups: [] },
  },
};

function passwordMatches(login, password) {
  const account = ACCOUNTS[login];
  if (!account) return false;
  const a = Buffer.from(account.password);
  const b = Buffer.from(password ?? '');
  return a.length === b.length && timingSafeEqual(a, b);
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const pageOf = (title, body) => `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body><main><h1>${escape(title)}</h1>${body}</main></body></html>`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.OIDC_CLIENT_ID ?? 'opsloop',
      client_secret: process.env.OIDC_CLIENT_SECRET ?? 'opsloop-test-secret',
      client_name: 'opsloop',
      redirect_uris: list(process.env.OIDC_REDIRECT_URIS),
      post_logout_redirect_uris: list(process.env.OIDC_POST_LOGOUT_REDIRECT_URIS),
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  // The profile, email and groups claims go in the ID token (as Keycloak, Okta and Entra
  // can be set to do), not only at the userinfo endpoint.
  conformIdTokenClaims: false,
  findAccount: async (_ctx, sub) => {
    const account = ACCOUNTS[sub];
    if (!account) return undefined;
    return { accountId: sub, claims: async () => ({ sub, ...account.claims }) };
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['opsloop test provider cookie key, not a secret'] },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = pageOf(
          'Sign out of the test provider?',
          `${form}<button autofocus type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign out</button>`,
        );
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.body = pageOf('Signed out of the test provider', '<p>You are signed out.</p>');
      },
    },
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = pageOf('Provider error', `<pre>${escape(JSON.stringify(out))}</pre>`);
  },
});

function loginForm(uid, problem) {
  return pageOf(
    'Sign in to the test provider',
    `${problem ? `<p role="alert">${escape(problem)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
  <label>Username <input name="username" autocomplete="username" required autofocus></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in</button>
</form>`,
  );
}

function consentForm(uid, clientId, scopes) {
  return pageOf(
    `Allow ${clientId} to know who you are?`,
    `<p>It asks for: ${escape(scopes.join(' '))}</p>
<form method="post" action="/interaction/${escape(uid)}/confirm"><button type="submit">Allow</button></form>
<form method="post" action="/interaction/${escape(uid)}/abort"><button type="submit">Deny</button></form>`,
  );
}

async function formBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

// The interaction pages: what a real IdP's login screen does, in a few lines.
async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, pageOf('Wrong interaction', ''));
  const { prompt, params } = details;
  if (req.method === 'GET' && !action) {
    if (prompt.name === 'login') return send(res, 200, loginForm(uid));
    const scopes = String(params.scope ?? '').split(' ');
    return send(res, 200, consentForm(uid, params.client_id, scopes));
  }
  if (req.method !== 'POST') return send(res, 405, pageOf('Method not allowed', ''));
  if (action === 'login') {
    const form = await formBody(req);
    const username = form.get('username') ?? '';
    if (!passwordMatches(username, form.get('password'))) {
      return send(res, 401, loginForm(uid, 'Wrong username or password.'));
    }
    return provider.interactionFinished(req, res, { login: { accountId: username } }, {
      mergeWithLastSubmission: false,
    });
  }
  if (action === 'confirm') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
  }
  if (action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'The person denied the request',
    }, { mergeWithLastSubmission: false });
  }
  return send(res, 404, pageOf('Not found', ''));
}

const handle = provider.callback();
const server = createServer((req, res) => {
  const match = /^\/interaction\/([^/?]+)(?:\/(login|confirm|abort))?(?:\?.*)?$/.exec(req.url ?? '');
  if (!match) return handle(req, res);
  interaction(req, res, match[1], match[2]).catch((error) => {
    send(res, 400, pageOf('Interaction failed', `<pre>${escape(error.message)}</pre>`));
  });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on ${issuer}`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
