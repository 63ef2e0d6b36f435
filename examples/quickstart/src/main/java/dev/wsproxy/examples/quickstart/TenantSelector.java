package dev.wsproxy.examples.quickstart;

import java.net.URI;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Authenticator;
import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.SelectionContext;

/**
 * A selector of your own: sends each session to the backend of its tenant, the one whose host
 * ({@code ws://blue.internal:9000}) or path ({@code ws://10.0.0.1:9000/blue/}) starts with the tenant. The tenant is
 * the {@code tenant} attribute that an {@link Authenticator} verified, such as {@link SignedTokenAuthenticator} from
 * the client's signed token. A session without one (no authenticator on the route, or one that sets no tenant), or
 * whose tenant has no backend that can take it, gets {@code 503}.
 *
 * <pre>{@code
 * ProxyBuilder.create()
 *         .route("/ws/", Backend.of("ws://blue.internal:9000"), Backend.of("ws://green.internal:9000"))
 *         .authenticator(new SignedTokenAuthenticator(secret, Clock.systemUTC()))
 *         .backendSelector(new TenantSelector());
 * }</pre>
 *
 * <p>Why not a header such as {@code X-Tenant}: the client writes its own headers, so any client could name any
 * tenant and reach that tenant's backend, and a gateway in front that sets the header does not help a client that
 * reaches the proxy another way or sends the header through it. A tenant boundary must come from something the client
 * cannot forge; attributes come only from your authenticator, never from the request.
 *
 * <p>Tenants are compared exactly, case included: {@code Blue} and {@code blue} may be two tenants, and folding case
 * would send one to the other's backend. {@link Backend#of(String)} lower-cases host names, so a tenant matched by host
 * must be issued in lower case; one matched by path may have any case.
 *
 * <p>Stateless, so one instance serves every route and every thread.
 */
public final class TenantSelector implements BackendSelector {

    @Override
    public @Nullable Backend select(SelectionContext context) {
        // tenant selector begins
        // The tenant the authenticator verified, never a header the client wrote.
        if (!(context.attribute("tenant") instanceof String tenant) || tenant.isEmpty()) {
            return null;
        }
        for (BackendStatus candidate : context.candidates()) {
            URI uri = candidate.backend().uri();
            if (uri.getHost().startsWith(tenant + ".") || uri.getPath().startsWith("/" + tenant + "/")) {
                return candidate.backend();
            }
        }
        return null;
        // tenant selector ends
    }
}
