// A real OpenID provider on loopback for Airlock's tests: `node op.mjs CONFIG.json`.
// CONFIG: {port, issuer, resources: [url...], scope, ttl, jwks: {keys: [private JWK...]}, clients: [...],
//          accounts: {id: {claims...}}}
// Access tokens for a listed resource are JWTs (RFC 9068) with aud = that resource; any other
// resource is refused (invalid_target), as a real deployment's resource registry would; those in
// `opaque` get opaque tokens instead, which resource servers look up at /token/introspection.
// With `accounts`, people sign in through the provider's own login and consent pages
// (devInteractions: any password, a listed login), and their claims (email, groups, ...) go into
// the ID token itself (conformIdTokenClaims: false), as the inbox's single sign-on reads them.
import { readFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const accounts = config.accounts || {};
const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: config.jwks,
  scopes: ['openid', 'email', 'profile', 'groups', ...config.scope.split(' ')],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false,
  findAccount: (ctx, id) =>
    accounts[id] ? { accountId: id, claims: () => ({ sub: id, ...accounts[id] }) } : undefined,
  features: {
    devInteractions: { enabled: Object.keys(accounts).length > 0 },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.resources[0],
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (!config.resources.includes(resource)) throw new errors.InvalidTarget();
        const format = (config.opaque || []).includes(resource) ? 'opaque' : 'jwt';
        return { scope: config.scope, accessTokenFormat: format, accessTokenTTL: config.ttl };
      },
    },
  },
});
provider.listen(config.port, '127.0.0.1', () => console.log(`listening ${config.issuer}`));
