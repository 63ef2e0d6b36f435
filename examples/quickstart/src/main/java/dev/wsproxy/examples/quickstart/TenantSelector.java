package dev.wsproxy.examples.quickstart;

import java.net.URI;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.SelectionContext;

/**
 * A selector of your own: sends each session to the backend of the tenant named in its {@code X-Tenant} header, the
 * one whose host ({@code ws://blue.internal:9000}) or path ({@code ws://10.0.0.1:9000/blue/}) starts with the tenant.
 * A session without a tenant, or whose tenant's backend is down, gets {@code 503}.
 *
 * <pre>{@code
 * ProxyBuilder.create()
 *         .route("/ws/", Backend.of("ws://blue.internal:9000"), Backend.of("ws://green.internal:9000"))
 *         .backendSelector(new TenantSelector());
 * }</pre>
 *
 * <p>Stateless, so one instance serves every route and every thread.
 */
public final class TenantSelector implements BackendSelector {

    @Override
    public @Nullable Backend select(SelectionContext context) {
        // tenant selector begins
        String tenant = context.header("X-Tenant");
        if (tenant == null) {
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
