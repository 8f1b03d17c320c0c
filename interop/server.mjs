// A certified OpenID Connect / OAuth 2.0 authorization server (oidc-provider) and a small
// protected API, both on 127.0.0.1, for reauth's interop tests (tests/interop.rs).
//
// Prints one JSON line with its addresses once it listens, then serves until its standard
// input closes (the test process died or dropped it) or it gets SIGTERM.
//
// The authorization server: one confidential client (client_secret_basic) allowed
// authorization_code with PKCE, refresh_token (rotated on every use; a reused one revokes
// the grant, as oidc-provider does) and client_credentials; RFC 8707 resource indicators,
// with one resource server (the API) whose tokens are issued only to a request naming it
// with `resource=`.
//
// The API (its own port): `GET /api/items/<id>` validates the bearer token through the
// provider's own token lookup (after `?hold_ms=N`, at most 5 s, if given); an unknown, expired or foreign-audience token gets a 401 with
// `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750). `GET /api/dot/items/<id>`
// answers the same tokens the way django-oauth-toolkit's `ProtectedResourceView` does: a
// bare 403, no challenge. `GET /api/admin` needs scope `api:admin`, which no token has: a
// 403 with an `insufficient_scope` challenge.
//
// Admin routes on the issuer's port, for the tests:
//   POST /admin/login   a first token pair from a scripted authorization-code + PKCE flow,
//                       driven over HTTP through the provider's own endpoints
//   POST /admin/expire  every access token issued so far is expired at the API
//   POST /admin/revoke  every grant is revoked (an administrator removing the app's access)
//   GET  /admin/stats   counters, as JSON

import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import Provider, { errors } from 'oidc-provider';

const HOST = '127.0.0.1';
const CLIENT_ID = 'reauth-interop';
const CLIENT_SECRET = randomBytes(24).toString('base64url');
const REDIRECT_URI = 'http://127.0.0.1/callback';
const ACCOUNT = 'alice';
const API_SCOPE = 'api:read';

// Both ports first: the issuer and the resource indicator are URLs naming them.
const issuerServer = createServer();
const apiServer = createServer();
await Promise.all([listen(issuerServer), listen(apiServer)]);
const issuer = `http://${HOST}:${issuerServer.address().port}`;
const api = `http://${HOST}:${apiServer.address().port}`;
const RESOURCE = `${api}/api`;

const stats = {
  // Token-endpoint calls, by grant_type, whatever their outcome.
  token_calls: {},
  // Token-endpoint errors, by grant_type and OAuth error code.
  token_errors: {},
  // A rotated refresh token presented again: oidc-provider revokes the whole grant.
  reuse_detections: 0,
  // Grants revoked, for any reason (reuse detection or /admin/revoke).
  grants_revoked: 0,
  // API answers, by status.
  api: {},
};
const bump = (map, key) => {
  map[key] = (map[key] ?? 0) + 1;
};

const accessTokens = new Set(); // ids of every access token issued
const expired = new Set(); // ids expired by /admin/expire
const grants = new Set(); // ids of every grant saved

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      redirect_uris: [REDIRECT_URI],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig' }] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // A refresh (or code exchange) names its resource again; nothing is assumed.
      useGrantedResource: () => false,
      getResourceServerInfo: (ctx, indicator) => {
        if (indicator !== RESOURCE) {
          throw new errors.InvalidTarget();
        }
        return {
          scope: `${API_SCOPE} api:admin`,
          audience: RESOURCE,
          accessTokenTTL: 3600,
          accessTokenFormat: 'opaque',
        };
      },
    },
  },
  // Every use of a refresh token consumes it and issues a new one.
  rotateRefreshToken: true,
  issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: () => false,
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    ClientCredentials: 3600,
    Grant: 86400,
    IdToken: 3600,
    Interaction: 600,
    RefreshToken: 86400,
    Session: 86400,
  },
});

provider.on('access_token.saved', (token) => accessTokens.add(token.jti));
provider.on('client_credentials.saved', (token) => accessTokens.add(token.jti));
provider.on('grant.saved', (grant) => grants.add(grant.jti));
provider.on('grant.revoked', () => {
  stats.grants_revoked += 1;
});
provider.on('grant.error', (ctx, error) => {
  const grantType = ctx.oidc?.params?.grant_type ?? 'unknown';
  bump((stats.token_errors[grantType] ??= {}), error.error);
  if (error.error === 'invalid_grant' && error.error_detail === 'refresh token already used') {
    stats.reuse_detections += 1;
  }
});
// A post-middleware: after the provider answered, count every token-endpoint call.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.oidc?.route === 'token') {
    bump(stats.token_calls, ctx.oidc.params?.grant_type ?? 'unknown');
  }
});

const providerCallback = provider.callback();

issuerServer.on('request', (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  const route = path.startsWith('/interaction/')
    ? interaction
    : path.startsWith('/admin/')
      ? admin
      : providerCallback;
  Promise.resolve(route(req, res, path)).catch((error) => {
    console.error(error);
    if (!res.headersSent) {
      json(res, 500, { error: 'server_error' });
    } else {
      res.destroy();
    }
  });
});

apiServer.on('request', (req, res) => {
  resource(req, res).catch((error) => {
    console.error(error);
    res.destroy();
  });
});

// A user who logs in and consents to whatever the client asks, without a browser.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    return provider.interactionFinished(req, res, { login: { accountId: ACCOUNT } });
  }
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) {
    grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  }
  for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  return provider.interactionFinished(
    req,
    res,
    { consent: details.grantId ? {} : { grantId } },
    { mergeWithLastSubmission: true },
  );
}

async function admin(req, res, path) {
  if (req.method === 'GET' && path === '/admin/stats') {
    return json(res, 200, stats);
  }
  if (req.method !== 'POST') {
    return json(res, 405, { error: 'method_not_allowed' });
  }
  switch (path) {
    case '/admin/login':
      return json(res, 200, await codeFlow());
    case '/admin/expire':
      for (const id of accessTokens) {
        expired.add(id);
      }
      return json(res, 200, { expired: expired.size });
    case '/admin/revoke': {
      for (const id of grants) {
        await Promise.all([
          provider.AccessToken.revokeByGrantId(id),
          provider.RefreshToken.revokeByGrantId(id),
          provider.AuthorizationCode.revokeByGrantId(id),
          provider.Grant.adapter.destroy(id),
        ]);
        stats.grants_revoked += 1;
      }
      const revoked = grants.size;
      grants.clear();
      return json(res, 200, { revoked });
    }
    default:
      return json(res, 404, { error: 'not_found' });
  }
}

// The authorization-code flow with PKCE (RFC 7636, S256), as a client and a consenting
// user would drive it: the authorization endpoint, the interaction, the redirect back with
// the code, and the code exchange at the token endpoint, all over HTTP.
async function codeFlow() {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(16).toString('base64url');
  let url = `${issuer}/auth?${new URLSearchParams({
    client_id: CLIENT_ID,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: `openid ${API_SCOPE}`,
    resource: RESOURCE,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
  })}`;
  const cookies = new Map();
  let code;
  for (let hop = 0; hop < 10 && !code; hop += 1) {
    const response = await fetch(url, {
      redirect: 'manual',
      headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1));
    }
    const location = response.headers.get('location');
    if (!location) {
      throw new Error(`the authorization flow stopped with ${response.status}: ${await response.text()}`);
    }
    const next = new URL(location, url);
    if (`${next.origin}${next.pathname}` === REDIRECT_URI) {
      if (next.searchParams.get('state') !== state || !next.searchParams.get('code')) {
        throw new Error(`bad authorization response: ${next.search}`);
      }
      code = next.searchParams.get('code');
    }
    url = next.href;
  }
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
      resource: RESOURCE,
    }),
  });
  const body = await response.json();
  if (!response.ok || !body.refresh_token) {
    throw new Error(`code exchange failed with ${response.status}: ${JSON.stringify(body)}`);
  }
  return body;
}

// The resource server: bearer tokens checked through the provider's own token lookup.
async function resource(req, res) {
  const url = new URL(req.url, api);
  const path = url.pathname;
  const dot = path.startsWith('/api/dot/');
  const answer = (status, headers, body) => {
    bump(stats.api, status);
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const known = /^\/api\/(dot\/)?items\/[^/]+$/.test(path) || path === '/api/admin';
  if (!known || req.method !== 'GET') {
    return answer(404, {}, { error: 'not_found' });
  }
  // `?hold_ms=N` waits before the token is checked, so that a storm is all in flight
  // with the expired token before the first refusal comes back.
  const hold = Math.min(Number(url.searchParams.get('hold_ms')) || 0, 5000);
  if (hold > 0) {
    await new Promise((resolve) => {
      setTimeout(resolve, hold);
    });
  }
  const [scheme, value] = (req.headers.authorization ?? '').split(' ');
  if (scheme?.toLowerCase() !== 'bearer' || !value) {
    return answer(401, { 'www-authenticate': 'Bearer realm="interop"' }, { error: 'unauthorized' });
  }
  const token =
    (await provider.AccessToken.find(value)) ?? (await provider.ClientCredentials.find(value));
  if (!token || token.aud !== RESOURCE || expired.has(token.jti)) {
    if (dot) {
      // django-oauth-toolkit's stock ProtectedResourceView: HttpResponseForbidden.
      return answer(403, {}, { detail: 'forbidden' });
    }
    const challenge = 'Bearer realm="interop", error="invalid_token", error_description="the access token is expired, revoked or not for this API"';
    return answer(401, { 'www-authenticate': challenge }, { error: 'invalid_token' });
  }
  if (path === '/api/admin' && !token.scope?.split(' ').includes('api:admin')) {
    const challenge = 'Bearer realm="interop", error="insufficient_scope", scope="api:admin"';
    return answer(403, { 'www-authenticate': challenge }, { error: 'insufficient_scope' });
  }
  return answer(200, {}, { ok: true, path, subject: token.accountId ?? token.clientId });
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, resolve);
  });
}

// The test process owns this one: when it goes, so does the server.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));

console.log(
  JSON.stringify({
    issuer,
    token_endpoint: `${issuer}/token`,
    api,
    resource: RESOURCE,
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
  }),
);
