package dev.wsproxy;

import static java.util.Objects.requireNonNull;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.function.Function;

/**
 * Authenticates upgrade requests before any backend connection (nginx's {@code auth_request}, done in-process).
 *
 * <p>The proxy calls {@link #authenticate} after it has checked the handshake, the Origin, the handshake rate and the
 * connection limits, and before it picks a backend. The answer is an {@link AuthDecision}:
 * <ul>
 *   <li>{@link AuthDecision#reject(int)}: the client gets that status (for instance {@code 401} with
 *       {@code WWW-Authenticate}), and no backend hears of the request;</li>
 *   <li>{@link AuthDecision#allow()}: the handshake goes on, with the headers the decision adds for the backend (a
 *       verified user id, replacing any header of that name the client sent) and the attributes it attaches, which
 *       {@link BackendSelector}s read with {@link HandshakeRequest#attribute(String)} and listeners with
 *       {@link ProxySession#attributes()}.</li>
 * </ul>
 *
 * <pre>{@code
 * Authenticator bearer = Authenticator.of(request -> {
 *     String token = request.queryParameter("token");
 *     User user = token == null ? null : tokens.verify(token);
 *     if (user == null) {
 *         return AuthDecision.reject(401).withResponseHeader("WWW-Authenticate", "Bearer realm=\"chat\"");
 *     }
 *     return AuthDecision.allow()
 *             .withBackendHeader("X-User-Id", user.id())
 *             .withAttribute("tenant", user.tenant());
 * });
 * }</pre>
 *
 * <p>With mutual TLS ({@link ServerTls#withClientCertificates(java.nio.file.Path)}, or your connector's
 * {@code setNeedClientAuth} when mounted), the TLS handshake has verified the client's certificate against the
 * trusted CA, and {@link HandshakeRequest#clientCertificates()} says who it was issued to: the authenticator decides
 * whom of them to let in, as nginx's {@code $ssl_client_s_dn} and {@code $ssl_client_i_dn} are checked. To pass the
 * identity to the backend (nginx's {@code proxy_set_header X-SSL-Client-S-DN $ssl_client_s_dn}), add it as a backend
 * header: one the client sent under that name is removed, so it cannot be forged.
 *
 * <pre>{@code
 * X500Principal clientCa = new X500Principal("CN=Example Client CA,O=Example");
 * Set<X500Principal> allowed = Set.of(new X500Principal("CN=billing-service,O=Example"));
 * Authenticator mtls = Authenticator.of(request -> {
 *     List<X509Certificate> chain = request.clientCertificates();
 *     if (chain.isEmpty()) {
 *         return AuthDecision.reject(403);   // no certificate: only with withOptionalClientCertificates
 *     }
 *     X509Certificate client = chain.get(0);
 *     if (!client.getIssuerX500Principal().equals(clientCa)
 *             || !allowed.contains(client.getSubjectX500Principal())) {
 *         return AuthDecision.reject(403);
 *     }
 *     return AuthDecision.allow()
 *             .withBackendHeader("X-SSL-Client-S-DN", client.getSubjectX500Principal().getName());
 * });
 * }</pre>
 *
 * <p>Compare {@code X500Principal}s (or their {@code getName()}, the RFC 2253 form) rather than text you format:
 * the same name has several spellings. A backend header's value is visible ASCII: a subject with other characters
 * must be encoded (percent-encoding, for instance) or sent as something else, such as a user id you map it to.
 *
 * <p>The stage may complete later, on any thread: an authenticator that asks a remote service returns that call's
 * future, and no proxy thread waits for it. It must complete within the route's connect timeout
 * ({@link TimeoutPolicy#connectTimeout()}), or the client gets {@code 504} (a decision after that is ignored). An
 * authenticator that throws, or whose stage completes exceptionally or with {@code null}, gets the client {@code 500};
 * the exception is logged, never sent. On the proxy's own connectors ({@link WebSocketProxy#serverConnector}), and for
 * a WebSocket over HTTP/2 behind any connector, a client that closes its connection (or resets its stream) while the
 * stage is pending is noticed at once: listeners get {@code 499} ({@link ProxyListener#onHandshakeRejected}), its
 * connection slot is given back, and the decision that comes after is ignored, no backend connection made; the stage
 * is not cancelled. A proxy that stops while the stage is pending answers the client {@code 503} with
 * {@code Retry-After}, as a request that arrives while it stops, and ignores the decision likewise. The request passed
 * in can be read until the stage completes or the timeout has answered the client. Implementations must be
 * thread-safe. {@link #authenticate} may not stop the proxy, which would wait for the Jetty thread it runs on:
 * {@link WebSocketProxy#stop(java.time.Duration)} throws {@code IllegalStateException} there, a failure of the
 * authenticator's like any other it lets out ({@code 500}); hand the stop to a thread of yours (the thread that
 * completes a later stage is yours already).
 *
 * <p>A route's authenticator guards the WebSocket upgrades on the route and the plain HTTP requests the route
 * forwards to its backends ({@link PlainHttp#PROXY_TO_BACKEND}, like Socket.IO's polling fallback), which get the
 * same backend headers; requests passed to your own handler ({@link PlainHttp#NEXT_HANDLER}) are yours to check.
 */
@FunctionalInterface
public interface Authenticator {

    /**
     * Decides on one upgrade request.
     *
     * @param request the client's upgrade request, readable until the returned stage completes
     * @return the decision, now or later
     */
    CompletionStage<AuthDecision> authenticate(HandshakeRequest request);

    /**
     * Adapts a function that decides at once, on the thread that handles the request: for checks that do not block,
     * like verifying a signed token. Its {@code toString()} names {@code check}, so the warning logged when the check
     * fails names your class.
     *
     * @param check the decision function
     * @return an authenticator
     */
    static Authenticator of(Function<? super HandshakeRequest, AuthDecision> check) {
        requireNonNull(check, "check");
        return new Authenticator() {
            @Override
            public CompletionStage<AuthDecision> authenticate(HandshakeRequest request) {
                return CompletableFuture.completedFuture(check.apply(request));
            }

            @Override
            public String toString() {
                return "Authenticator.of(" + check + ")";
            }
        };
    }

    /**
     * Returns the authenticator that lets every request through, to turn a proxy-wide authenticator off on one route.
     *
     * @return an authenticator that allows everything, without delay
     */
    static Authenticator allowAll() {
        return AuthDecision.ALLOW_ALL;
    }
}
