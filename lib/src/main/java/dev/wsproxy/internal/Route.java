package dev.wsproxy.internal;

import java.util.List;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.OriginValidator;
import dev.wsproxy.PlainHttp;
import dev.wsproxy.ProxyListener;
import dev.wsproxy.TimeoutPolicy;

/** A route with every setting resolved; immutable. */
public record Route(
        String prefix,
        List<Backend> backends,
        BackendSelector selector,
        TimeoutPolicy timeouts,
        OriginValidator originValidator,
        long maxMessageSize,
        PlainHttp plainHttp,
        boolean preserveHost,
        ProxyListener listener) {

    /** Tells whether this route serves {@code path} (a decoded path in context). */
    boolean matches(String path) {
        return path.startsWith(prefix);
    }
}
