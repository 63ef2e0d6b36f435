package dev.wsproxy;

/**
 * Observes the proxy: sessions opening and closing, failed backend connections, refused handshakes, and backends
 * going down or coming back.
 *
 * <p>Every method has an empty default, so implement only what you need. Methods are called on Jetty threads, possibly
 * concurrently for different sessions; they must not block and should return quickly: a session's end is reported on
 * the selector thread that relays the frames of many other sessions, so a slow listener (or a logging appender that
 * waits for a disk or a network) delays them all. Hand slow work to an executor of your own, and so a stop of the proxy
 * ({@link WebSocketProxy#stop(java.time.Duration)} refuses to run in one of its own listeners, or any other hook of
 * the proxy's, which it would wait for; another proxy's listener may stop it). An exception thrown by a listener is
 * logged and otherwise ignored.
 *
 * <pre>{@code
 * ProxyListener metrics = new ProxyListener() {
 *     @Override
 *     public void onSessionClosed(ProxySession session, SessionClose close) {
 *         sessionsClosed.increment();
 *     }
 * };
 * }</pre>
 */
public interface ProxyListener {

    /** A listener that does nothing. */
    ProxyListener NOOP = new ProxyListener() {
    };

    /**
     * Called when both legs of a session are upgraded and frames start to flow.
     *
     * @param session the new session
     */
    default void onSessionOpened(ProxySession session) {
    }

    /**
     * Called once when both legs of an opened session have ended: for each session reported to
     * {@link #onSessionOpened}, and only for those, after {@code onSessionOpened} has returned on every listener (a
     * listener may close the session from there: its close is reported when the open has reached them all).
     * {@link WebSocketProxy#stop(java.time.Duration)} returns after every session's close has reached every listener, within
     * its drain timeout (see there).
     *
     * @param session the session, with its final counters
     * @param close how it ended
     */
    default void onSessionClosed(ProxySession session, SessionClose close) {
    }

    /**
     * Called when a backend of a route goes down or comes back: an active {@link HealthCheck} crossed a threshold, or
     * passive health took it down after failed connections (it comes back silently when its fail timeout has passed,
     * on trial, or when its route is left with it alone; a trial that fails takes it down again, reported
     * {@code UP -> DOWN}). Only changes of {@link BackendStatus#state()} are reported, each from
     * the state the backend had: a verdict that changes under another one (a health check's on a backend passive
     * health keeps down, or on a draining one) is not, and neither are drains.
     *
     * @param route the route prefix
     * @param backend the backend's live status, already in its new state
     * @param previous the state before the change
     */
    default void onBackendStateChanged(String route, BackendStatus backend, BackendStatus.State previous) {
    }

    /**
     * Called when the proxy could not open the backend leg: connection refused, host unknown, timeout, or a response
     * that is not a valid {@code 101}. {@link #onHandshakeRejected} follows with the status the client got, unless
     * failover found another backend. A plain HTTP request a route forwards is reported here too when it failed in
     * connecting to its backend (refused, host unknown, connect timeout, TLS handshake), then likewise. A backend skipped because it has its
     * {@linkplain ProxyBuilder#maxPendingBackendHandshakes(int) cap of handshakes in flight} did not fail and is not
     * reported here.
     *
     * @param request the client's upgrade request
     * @param backend the backend that failed
     * @param cause what went wrong
     */
    default void onBackendConnectFailed(HandshakeRequest request, Backend backend, Throwable cause) {
    }

    /**
     * Called when the client's upgrade request got an HTTP status instead of {@code 101}: a malformed request
     * ({@code 400}, {@code 426}), a refused origin ({@code 403}), a client over its handshake rate or its connection
     * limit ({@code 429}), the proxy at {@code maxConnections}, no backend, every backend tried busy, a session closed
     * by {@link ProxySession#close} during its backend handshake, or shutdown ({@code 503}), the route's
     * authenticator's refusal (its own status, or {@code 504} when it did not decide in time), a validator, selector
     * or authenticator that threw ({@code 500}), a backend failure ({@code 502}, {@code 504}), a client that could not
     * be upgraded ({@code 502}), or the backend's own refusal, relayed with its status. On the proxy's own connectors
     * ({@link WebSocketProxy#serverConnector}), a client that closes its connection while the proxy waits for the
     * backend's answer is reported with {@code 499}, as nginx logs it: nothing is sent, the backend connection is
     * closed at once, and the backend is not blamed. So is one that closes it while the route's
     * {@link Authenticator} has not decided yet: its decision, when it comes, is ignored, and no backend connection is
     * made. A WebSocket over HTTP/2 (RFC 8441) is watched so behind any connector, through its stream. Behind another
     * connector an HTTP/1.1 client is noticed only when its
     * {@code 101} is written: one that reset its connection is reported with {@code 499} then, one that closed it
     * normally gets its {@code 101} and is reported as a session that opened and closed at once (client code
     * {@code 1006}). Plain HTTP requests on a route are reported here too when the proxy refuses them itself (a
     * malformed request or request body, {@code 400}; {@code CONNECT} or {@code TRACE}, {@code 405}; a body that stopped
     * coming, {@code 408}; a transfer coding other than {@code chunked}, {@code 501}; shutdown, {@code 503}), when the
     * route's authenticator or selector refuses them, and when the proxy answers them itself with {@code 502} or
     * {@code 504} because their backend failed before its response began.
     *
     * @param request the client's upgrade request
     * @param status the HTTP status sent to the client, or {@code 499} when the client left first
     * @param reason a short explanation, for logs (never sent to the client): the proxy's own text, in printable
     *     ASCII and at most 300 characters, anything else written as <code>&#92;uXXXX</code>; the only text of the
     *     client's it quotes, a refused {@code Origin}, is cut to 100 characters (read the whole value with
     *     {@code request.header("Origin")})
     */
    default void onHandshakeRejected(HandshakeRequest request, int status, String reason) {
    }
}
