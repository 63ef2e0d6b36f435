package dev.wsproxy;

import static java.util.Objects.requireNonNull;

import java.util.List;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.internal.Origins;

/**
 * Decides whether an upgrade request's {@code Origin} may open a session: the defence against cross-site WebSocket
 * hijacking. A refused request gets {@code 403 Forbidden} before any backend connection is made.
 *
 * <p>Built-ins:
 * <ul>
 *   <li>{@link #allowAny()}: every origin (the default: a proxy is transparent, like nginx; the backend may check).</li>
 *   <li>{@link #sameOrigin()}: only the proxy's own origin (scheme, host and port of the request).</li>
 *   <li>{@link #allowList(String...)}: exact matches of scheme, host and port.</li>
 *   <li>{@link #allowPattern(String...)}: like the allow-list, and {@code https://*.example.com} for subdomains.</li>
 * </ul>
 * Combine them with {@link #or(OriginValidator)}; refuse requests without an {@code Origin} with
 * {@link #requireOrigin()}.
 *
 * <p>Browsers always send {@code Origin} with a WebSocket handshake; a request without one comes from a non-browser
 * client, which no cross-site attack can drive, so the built-ins allow it. The literal origin {@code null} (sandboxed
 * frames, {@code file:} pages) is refused by all built-ins but {@link #allowAny()}.
 *
 * <p>The built-ins read an origin as RFC 6454 section 6.1 writes it, {@code scheme://host[:port]} (a trailing
 * {@code /} tolerated), and compare scheme, host and port, case-insensitively, with the default port of {@code http}
 * and {@code https} filled in and {@code ws}/{@code wss} read as {@code http}/{@code https}. A host is a name of
 * dot-separated labels of letters, digits, {@code -} and {@code _} (docker-compose service names such as
 * {@code chat_app} included), an IPv4 address, or an IPv6 address in brackets, compared by address in any spelling
 * ({@code [0:0:0:0:0:0:0:1]} is {@code [::1]}, as browsers write it; in the {@code Host} that {@link #sameOrigin()}
 * compares with too); a port is 1 to 65535. Anything else (user info, a path, a query, a fragment, non-ASCII or
 * percent-encoded hosts, an IPv6 zone such as {@code %25eth0}, an IPv4 address with leading zeros, which browsers
 * read as octal, or another number as host, such as {@code 2130706433}) is no origin: refused, and refused as an entry
 * of {@link #allowList(String...)} or {@link #allowPattern(String...)}.
 *
 * <p>Any scheme is read so. A browser sends {@code null} for a page of a scheme it gives no origin of its own, but
 * {@code scheme://host} for browser extensions ({@code chrome-extension://id}, {@code moz-extension://id}) and for apps
 * that serve their pages from a scheme they register ({@code capacitor://localhost}, Electron's {@code app://host},
 * {@code tauri://localhost}): list those as they are sent. Such a scheme has no default port ({@code app://host} and
 * {@code app://host:99} are two origins; {@code ftp} has 21); a {@code file} origin is no origin ({@code file:} pages
 * send {@code null}). {@link #sameOrigin()} allows {@code http} and {@code https} origins only, the schemes a client
 * reaches the proxy with.
 *
 * <p>You can also implement your own. It is called on a Jetty thread for every upgrade request, concurrently; it must
 * be thread-safe and must not block. It may not stop the proxy, which would wait for that thread:
 * {@link WebSocketProxy#stop(java.time.Duration)} throws {@code IllegalStateException} there, a failure of the
 * validator's like any other it lets out ({@code 500}); hand the stop to a thread of yours.
 */
@FunctionalInterface
public interface OriginValidator {

    /**
     * Tells whether the origin may connect.
     *
     * @param origin the {@code Origin} header, or {@code null} when the request has none
     * @param request the upgrade request
     * @return {@code true} to go on with the handshake, {@code false} to answer {@code 403}
     */
    boolean isAllowed(@Nullable String origin, HandshakeRequest request);

    /**
     * Returns a validator that allows what this one or {@code other} allows. Its {@code toString()} names both, so the
     * warning logged when one of them throws names your class.
     *
     * @param other the second validator
     * @return the combination
     */
    default OriginValidator or(OriginValidator other) {
        requireNonNull(other, "other");
        OriginValidator self = this;
        return new OriginValidator() {
            @Override
            public boolean isAllowed(@Nullable String origin, HandshakeRequest request) {
                return self.isAllowed(origin, request) || other.isAllowed(origin, request);
            }

            @Override
            public String toString() {
                return self + ".or(" + other + ")";
            }
        };
    }

    /**
     * Returns a validator that refuses requests without an {@code Origin} header and asks this one about the others.
     * Use it on routes that only browsers may open.
     *
     * @return the stricter validator
     */
    default OriginValidator requireOrigin() {
        OriginValidator self = this;
        return new OriginValidator() {
            @Override
            public boolean isAllowed(@Nullable String origin, HandshakeRequest request) {
                return origin != null && self.isAllowed(origin, request);
            }

            @Override
            public String toString() {
                return self + ".requireOrigin()";
            }
        };
    }

    /**
     * Returns a validator that allows every origin.
     *
     * @return the permissive validator (the default)
     */
    static OriginValidator allowAny() {
        return Origins.ANY;
    }

    /**
     * Returns a validator that allows only the origin the client reached the proxy at: the same host and port as the
     * request's {@code Host} header (its {@code :authority} over HTTP/2, its {@code X-Forwarded-Host} from a trusted
     * proxy) and {@code https} for TLS clients, {@code http} otherwise (as a trusted proxy's {@code X-Forwarded-Proto}
     * says).
     *
     * @return the same-origin validator
     */
    static OriginValidator sameOrigin() {
        return Origins.SAME;
    }

    /**
     * Returns a validator that allows the listed origins only, compared on scheme, host and port (default ports
     * filled in, case-insensitive, IPv6 hosts by address).
     *
     * @param origins origins like {@code https://app.example.com}, {@code http://localhost:3000} or
     *     {@code capacitor://localhost}
     * @return the allow-list validator
     * @throws IllegalArgumentException if the list is empty or an origin is not {@code scheme://host[:port]}
     */
    static OriginValidator allowList(String... origins) {
        requireNonNull(origins, "origins");
        return Origins.allowList(List.of(origins));
    }

    /**
     * Returns a validator that allows origins matching one of the patterns: an exact origin, or {@code *.} before the
     * host for its subdomains at any depth. {@code https://*.example.com} allows {@code https://app.example.com} and
     * {@code https://a.b.example.com}, but not {@code https://example.com} (list it too if you want it), nor
     * {@code https://evil-example.com}, nor {@code https://example.com.evil.net}, nor another scheme or port.
     *
     * @param patterns patterns like {@code https://*.example.com} or {@code http://localhost:3000}
     * @return the pattern validator
     * @throws IllegalArgumentException if the list is empty or a pattern is not {@code scheme://[*.]host[:port]}
     */
    static OriginValidator allowPattern(String... patterns) {
        requireNonNull(patterns, "patterns");
        return Origins.allowPattern(List.of(patterns));
    }
}
