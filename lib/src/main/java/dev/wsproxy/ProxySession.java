package dev.wsproxy;

import java.net.InetSocketAddress;
import java.net.URI;
import java.time.Instant;
import java.util.Map;

import org.jspecify.annotations.Nullable;

/**
 * A proxied WebSocket session: the client leg (client to proxy) and the backend leg (proxy to backend).
 *
 * <p>Counters are live and may be read from any thread.
 *
 * @see ProxyListener
 * @see WebSocketProxy#sessions()
 */
public interface ProxySession {

    /**
     * Returns the session id, unique within the proxy; log lines about the session carry it.
     *
     * @return the id
     */
    String id();

    /**
     * Returns the path prefix of the route that served the session.
     *
     * @return the route prefix
     */
    String route();

    /**
     * Returns the client's address: the peer that connected to the proxy or, when that peer is one of
     * {@link ProxyBuilder#trustedProxies(String...)}, the client it names, with port 0: the right-most hop of its
     * {@code X-Forwarded-For} that is not a trusted proxy, or its {@code X-Real-IP} when it sends no
     * {@code X-Forwarded-For}.
     *
     * @return the client's socket address
     */
    InetSocketAddress clientAddress();

    /**
     * Returns the backend the selector picked.
     *
     * @return the backend
     */
    Backend backend();

    /**
     * Returns the URI the backend leg connected to, after path mapping.
     *
     * @return the backend request URI
     */
    URI backendUri();

    /**
     * Returns the subprotocol the backend chose, which the client was given too.
     *
     * @return the subprotocol, or {@code null} when none was chosen
     */
    @Nullable String subprotocol();

    /**
     * Returns when the client leg was upgraded.
     *
     * @return the opening instant, {@link Instant#EPOCH} while the backend handshake is in progress
     */
    Instant openedAt();

    /**
     * Returns the payload bytes relayed from the client to the backend: handed to the backend's connection, not
     * received only. Frames that arrive once the backend's leg is closed for output are dropped and not counted: the
     * proxy has sent the backend its close (it ended the session: an idle timeout, a limit, a stop,
     * {@link #close(int, String)}), or the backend's connection is gone. A frame being written when the connection
     * breaks is counted.
     *
     * @return the byte count
     */
    long clientToBackendBytes();

    /**
     * Returns the complete data messages relayed from the client to the backend, counted as
     * {@link #clientToBackendBytes()} counts their bytes: a message whose last frame was dropped is not.
     *
     * @return the message count
     */
    long clientToBackendMessages();

    /**
     * Returns the payload bytes relayed from the backend to the client, counted as {@link #clientToBackendBytes()}.
     *
     * @return the byte count
     */
    long backendToClientBytes();

    /**
     * Returns the complete data messages relayed from the backend to the client, counted as
     * {@link #clientToBackendMessages()}.
     *
     * @return the message count
     */
    long backendToClientMessages();

    /**
     * Closes both legs with the given code and reason, as the proxy. A leg that was already sent a close keeps it; a
     * close a peer started that the proxy still holds (waiting for the other peer's answer) is answered with this code.
     * A session still in its backend handshake ends it: the client gets {@code 503} instead of {@code 101}, and the
     * backend is neither blamed nor replaced by another. Does nothing once the session has ended.
     *
     * @param code a close code that may be sent: 1000 to 1003, 1007 to 1014, or 3000 to 4999 (RFC 6455 section 7.4)
     * @param reason the reason, at most 123 UTF-8 bytes
     * @throws IllegalArgumentException if the code may not be sent or the reason is too long
     */
    void close(int code, String reason);

    /**
     * Returns the attributes the route's {@link Authenticator} attached to this session's request, like a user id.
     *
     * @return an unmodifiable map, empty without an authenticator
     */
    default Map<String, Object> attributes() {
        return Map.of();
    }
}
